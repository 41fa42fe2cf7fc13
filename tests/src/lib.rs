//! End-to-end tests of deploykit live in `tests/`: each deploys one of the
//! `examples/` with the `deploykit` binary against the servers `script/test`
//! starts (PostgreSQL, sshd, PM2, a Docker engine). This crate has no code.
#![forbid(unsafe_code)]
