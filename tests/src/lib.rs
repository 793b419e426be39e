//! Shared helpers for the integration tests (see tests/tests/*.rs).
