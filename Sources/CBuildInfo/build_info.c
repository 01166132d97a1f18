#include "CBuildInfo.h"

#ifndef EDGEPROXY_COMMIT
#define EDGEPROXY_COMMIT "unknown"
#endif

const char *CBuildInfo_commit(void) { return EDGEPROXY_COMMIT; }
