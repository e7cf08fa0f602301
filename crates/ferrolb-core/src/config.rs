//! Pool configuration parsing and validation (not written yet).
