//! caro-core's integration tests: one binary, one module per area.

mod daemon;
mod download;
mod embedded;
mod fakehub;
mod remote;
mod safety;
