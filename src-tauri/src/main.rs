//! The tray app's entry point; everything lives in the library so it can be tested.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]
#![forbid(unsafe_code)]

fn main() {
    caro_tray::run();
}
