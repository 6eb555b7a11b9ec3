//! The tray icon and its menu: status line, open, backend and safety-mode choices (written to the
//! config file the CLI reads), settings, backend check, quit.

use crate::state::AppState;
use caro_core::safety::SafetyMode;
use caro_core::settings::BackendKind;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Wry};

const MODES: [SafetyMode; 3] = [
    SafetyMode::Strict,
    SafetyMode::Moderate,
    SafetyMode::Permissive,
];

fn status_text(state: &AppState) -> String {
    let s = state.status();
    format!(
        "{} · backend {} · {} mode",
        if s.model_loaded {
            "model loaded"
        } else {
            "model not loaded"
        },
        s.backend.as_str(),
        s.mode
    )
}

/// Builds the menu from the current state; rebuilt after every change so radio marks and the
/// status line stay true.
/// A submenu of check items `{prefix}:{label}`, with the current choice checked.
fn radio_submenu(
    app: &AppHandle,
    title: &str,
    prefix: &str,
    choices: impl Iterator<Item = (String, bool)>,
) -> tauri::Result<Submenu<Wry>> {
    let items: Vec<CheckMenuItem<Wry>> = choices
        .map(|(label, checked)| {
            CheckMenuItem::with_id(
                app,
                format!("{prefix}:{label}"),
                &label,
                true,
                checked,
                None::<&str>,
            )
        })
        .collect::<tauri::Result<_>>()?;
    let refs: Vec<&dyn tauri::menu::IsMenuItem<Wry>> = items
        .iter()
        .map(|i| i as &dyn tauri::menu::IsMenuItem<Wry>)
        .collect();
    Submenu::with_items(app, title, true, &refs)
}

pub fn menu(app: &AppHandle, state: &AppState, note: Option<&str>) -> tauri::Result<Menu<Wry>> {
    let s = state.status();
    let status = MenuItem::with_id(app, "status", status_text(state), false, None::<&str>)?;
    let open = MenuItem::with_id(app, "open", "Open caro", true, Some(s.hotkey.as_str()))?;
    let backend_menu = radio_submenu(
        app,
        "Backend",
        "backend",
        BackendKind::ALL
            .iter()
            .map(|b| (b.as_str().to_owned(), *b == s.backend)),
    )?;
    let mode_menu = radio_submenu(
        app,
        "Safety mode",
        "mode",
        MODES.iter().map(|m| (m.to_string(), *m == s.mode)),
    )?;
    let settings = MenuItem::with_id(app, "settings", "Settings…", true, None::<&str>)?;
    let check = MenuItem::with_id(app, "check", "Check backends", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit caro", true, None::<&str>)?;
    let sep = PredefinedMenuItem::separator(app)?;
    let sep2 = PredefinedMenuItem::separator(app)?;
    let menu = Menu::with_items(
        app,
        &[
            &status,
            &open,
            &sep,
            &backend_menu,
            &mode_menu,
            &settings,
            &check,
            &sep2,
            &quit,
        ],
    )?;
    if let Some(n) = note {
        let item = MenuItem::with_id(app, "note", n, false, None::<&str>)?;
        menu.insert(&item, 1)?;
    }
    Ok(menu)
}

fn refresh(app: &AppHandle, note: Option<&str>) {
    let state = app.state::<AppState>();
    if let (Some(tray), Ok(menu)) = (app.tray_by_id("caro"), menu(app, &state, note)) {
        let _ = tray.set_menu(Some(menu));
        let _ = tray.set_tooltip(Some(format!("caro: {}", status_text(&state))));
    }
}

fn on_menu(app: &AppHandle, id: &str) {
    let state = app.state::<AppState>().inner().clone();
    let mut note: Option<String> = None;
    match id {
        "open" => crate::show_popup(app),
        "quit" => {
            crate::stop_daemon(app);
            state.shutdown();
            app.exit(0);
            return;
        }
        "settings" => {
            if let Some(p) = caro_core::settings::config_file_path() {
                if !p.exists() {
                    let _ = state.update_config(|_| {});
                }
                let opener = if cfg!(target_os = "macos") {
                    "open"
                } else if cfg!(windows) {
                    "notepad"
                } else {
                    "xdg-open"
                };
                if let Err(e) = std::process::Command::new(opener).arg(&p).spawn() {
                    note = Some(format!("could not open {}: {e}", p.display()));
                }
            }
        }
        "check" => {
            // The remote probes can take their whole timeout: off the main thread, so the
            // menu and the popup stay responsive, with the result shown when it comes.
            let app = app.clone();
            std::thread::spawn(move || {
                let found = state.check_backends().join("; ");
                let main = app.clone();
                let _ = app.run_on_main_thread(move || refresh(&main, Some(&found)));
            });
            note = Some("checking the backends…".to_owned());
        }
        other => {
            let result = if let Some(b) = other.strip_prefix("backend:") {
                b.parse::<BackendKind>()
                    .map_err(|e| e.to_string())
                    .and_then(|k| state.set_backend(k).map_err(|e| e.message))
            } else if let Some(m) = other.strip_prefix("mode:") {
                m.parse::<SafetyMode>()
                    .map_err(|e| e.to_string())
                    .and_then(|m| state.set_mode(m).map_err(|e| e.message))
            } else {
                Ok(())
            };
            if let Err(e) = result {
                note = Some(e);
            } else {
                crate::restart_daemon(app);
            }
        }
    }
    refresh(app, note.as_deref());
}

pub fn install(app: &AppHandle) -> tauri::Result<()> {
    let state = app.state::<AppState>();
    let menu = menu(app, &state, None)?;
    let mut builder = TrayIconBuilder::with_id("caro")
        .menu(&menu)
        .tooltip(format!("caro: {}", status_text(&state)))
        .on_menu_event(|app, event| on_menu(app, event.id().as_ref()));
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    builder.build(app)?;
    Ok(())
}
