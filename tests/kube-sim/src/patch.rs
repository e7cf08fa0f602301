//! Patch engines: JSON merge, JSON patch, strategic merge (not written yet).
