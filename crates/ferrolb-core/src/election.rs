//! Per-IP speaker election (not written yet).
