//! End-to-end tests for lastmile. This package has no library code of its own: it
//! builds the real binary (`lastmile-e2e`, from `proxy/src/main.rs`) and drives it from
//! the integration tests in `e2e/`, against a recording upstream started by each test.
//!
//! Run them with `cargo nextest run -p lastmile-tests`.
