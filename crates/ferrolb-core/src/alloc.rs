//! IP allocation from pools (not written yet).
