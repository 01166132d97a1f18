#ifndef CBUILDINFO_H
#define CBUILDINFO_H

/// The git commit this binary was built from (`EDGEPROXY_COMMIT` at build time), or "unknown".
const char *CBuildInfo_commit(void);

#endif
