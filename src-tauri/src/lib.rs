//! caro's tray app: it owns the warm model, opens a popup on a global hotkey, and serves the
//! same model to the `caro` CLI over the local socket. Tauri glue only; the work is in
//! [`state::AppState`] and caro-core.

#![forbid(unsafe_code)]

pub mod commands;
pub mod download;
pub mod error;
pub mod history;
pub mod state;
pub mod tray;

use caro_core::daemon::{Daemon, DaemonOptions, Serving, socket_path};
use state::AppState;
use std::sync::Mutex;
use std::time::Duration;
use tauri::{AppHandle, Emitter, Manager};
use tauri_plugin_global_shortcut::{GlobalShortcutExt, ShortcutState};

pub const POPUP: &str = "popup";

/// The socket service while it runs, so the tray can restart it after a settings change.
#[derive(Default)]
struct DaemonHandle(Mutex<Option<Serving>>);

/// Shows the popup near the top centre of the screen, focused, and tells the page.
pub fn show_popup(app: &AppHandle) {
    let Some(w) = app.get_webview_window(POPUP) else {
        return;
    };
    if let Ok(Some(monitor)) = w.current_monitor() {
        let size = monitor.size();
        let scale = monitor.scale_factor();
        let width = 680.0 * scale;
        let x = monitor.position().x as f64 + (size.width as f64 - width) / 2.0;
        let y = monitor.position().y as f64 + size.height as f64 * 0.18;
        let _ = w.set_position(tauri::PhysicalPosition::new(x, y));
    }
    let _ = w.show();
    let _ = w.set_focus();
    let _ = app.emit("popup-shown", ());
}

fn toggle_popup(app: &AppHandle) {
    match app.get_webview_window(POPUP) {
        Some(w) if w.is_visible().unwrap_or(false) => {
            let _ = w.hide();
        }
        _ => show_popup(app),
    }
}

fn start_daemon(app: &AppHandle) {
    let state = app.state::<AppState>();
    let idle = state.tray_config().idle_unload_secs;
    let opts = DaemonOptions {
        socket: socket_path(),
        idle_unload: (idle > 0).then(|| Duration::from_secs(idle)),
        allowed_uid: None,
    };
    match Daemon::bind(state.service(), opts) {
        Ok(daemon) => {
            // Clients that send no deadline of their own are bounded as `caro serve` bounds
            // them: by the settings' `timeout_secs`.
            if let Some(t) = state.request_timeout() {
                daemon.set_request_timeout(t);
            }
            if let Ok(mut h) = app.state::<DaemonHandle>().0.lock() {
                *h = Some(daemon.spawn());
            }
        }
        // Another caro (say `caro serve`) already serves this user: the app still works,
        // the CLI just talks to the other one.
        Err(e) => tracing::warn!(error = %e, "not serving the CLI"),
    }
}

pub fn stop_daemon(app: &AppHandle) {
    let serving = app
        .state::<DaemonHandle>()
        .0
        .lock()
        .ok()
        .and_then(|mut h| h.take());
    // Waits for the service's thread, so the socket is free for the next one.
    if let Some(s) = serving
        && let Err(e) = s.stop()
    {
        tracing::warn!(error = %e, "the socket service stopped with an error");
    }
}

/// After a backend change the socket serves the new chain. Stopping waits for the old
/// service's thread (a generation under way ends at its next token), so this runs off the
/// main thread and the tray menu never freezes; restarts run one at a time, so a new service
/// binds only once the old one has let go of the socket.
pub fn restart_daemon(app: &AppHandle) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let app = app.clone();
    std::thread::spawn(move || {
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        stop_daemon(&app);
        start_daemon(&app);
    });
}

/// macOS: the .app carries the CLI in `Contents/MacOS`, which is not on PATH. Link it into the
/// first writable PATH folder that has no `caro` yet; an existing `caro` is never replaced.
#[cfg(target_os = "macos")]
fn link_cli() {
    let Some(cli) = std::env::current_exe()
        .ok()
        .map(|e| e.with_file_name("caro"))
        .filter(|c| c.is_file())
    else {
        return;
    };
    let mut dirs = vec![
        std::path::PathBuf::from("/usr/local/bin"),
        std::path::PathBuf::from("/opt/homebrew/bin"),
    ];
    if let Some(home) = dirs::home_dir() {
        dirs.push(home.join(".local").join("bin"));
    }
    for dir in dirs.into_iter().filter(|d| d.is_dir()) {
        let link = dir.join("caro");
        if link.symlink_metadata().is_ok() {
            return;
        }
        if std::os::unix::fs::symlink(&cli, &link).is_ok() {
            tracing::info!(link = %link.display(), "linked the caro CLI onto PATH");
            return;
        }
    }
}

fn state_needs_model(app: &AppHandle) -> bool {
    app.state::<AppState>().model_status().phase == download::Phase::Needed
}

fn history_path() -> std::path::PathBuf {
    dirs::data_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("caro")
        .join("history.json")
}

pub fn run() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CARO_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let result = tauri::Builder::default()
        .plugin(
            tauri_plugin_global_shortcut::Builder::new()
                .with_handler(|app, _shortcut, event| {
                    if event.state() == ShortcutState::Pressed {
                        toggle_popup(app);
                    }
                })
                .build(),
        )
        .manage(DaemonHandle::default())
        .setup(|app| {
            let state = AppState::new(caro_core::settings::config_file_path(), history_path())
                .map_err(|e| format!("{}: {}", e.code, e.message))?;
            let hotkey = state.tray_config().hotkey;
            app.manage(state);
            let handle = app.handle().clone();
            tray::install(&handle)?;
            // Wayland has no global hotkeys: the tray's "Open caro" still works.
            if let Err(e) = app.global_shortcut().register(hotkey.as_str()) {
                tracing::warn!(hotkey = %hotkey, error = %e, "global hotkey unavailable; use the tray menu");
            }
            start_daemon(&handle);
            #[cfg(target_os = "macos")]
            link_cli();
            // First launch: the model is not in the cache yet. Fetch it now and show the
            // popup, which shows the progress and a Cancel button.
            let first_launch = state_needs_model(&handle);
            if first_launch {
                handle.state::<AppState>().download_model();
            }
            if first_launch || std::env::var_os("CARO_TRAY_SHOW").is_some() {
                show_popup(&handle);
            }
            Ok(())
        })
        .on_window_event(|window, event| {
            // Closing the popup only hides it; the app lives in the tray.
            if let tauri::WindowEvent::CloseRequested { api, .. } = event {
                api.prevent_close();
                let _ = window.hide();
            }
        })
        .invoke_handler(tauri::generate_handler![
            commands::generate,
            commands::revise,
            commands::check,
            commands::explain,
            commands::copy,
            commands::execute,
            commands::history,
            commands::forget,
            commands::status,
            commands::hide,
            commands::model_status,
            commands::model_download,
            commands::model_cancel,
            commands::run_dir,
            commands::set_run_dir,
        ])
        .run(tauri::generate_context!());
    if let Err(e) = result {
        tracing::error!(error = %e, "caro tray app failed");
        std::process::exit(1);
    }
}
