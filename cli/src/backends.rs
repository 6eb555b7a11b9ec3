//! The generator chain comes from caro-core, shared with `caro serve` and the tray app.

pub use caro_core::chain::*;
