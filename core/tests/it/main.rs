//! caro-core's integration tests: one binary, one module per area.

mod embedded;
mod remote;
mod safety;
