// TempDir, run, freePorts, canConnect: shared with the other server-starting test targets.
@_exported import TestSupport
