// libnghttp2 imports cleanly into Swift (its enums need `.rawValue`), so this header only pulls it
// in. Macros that the clang importer cannot see would be wrapped here as static inline functions.
#ifndef EDGEPROXY_CNGHTTP2_SHIM_H
#define EDGEPROXY_CNGHTTP2_SHIM_H
#include <nghttp2/nghttp2.h>
#endif
