//! caro-core's integration tests: one binary, one module per area.

mod bounds;
mod daemon;
mod download;
mod embedded;
mod faults;
mod fuzz;
mod remote;
mod select;
