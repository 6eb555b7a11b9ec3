//! The commands the popup may call (each granted in capabilities/default.json). Thin: they move
//! blocking work off the UI thread and hand it to [`AppState`].

use crate::download::DownloadStatus;
use crate::error::ApiError;
use crate::history::Entry;
use crate::state::{Answer, AppState, RunOutput, Status};
use tauri::{AppHandle, Manager, State};

async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(AppState) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let s = state.clone();
    tauri::async_runtime::spawn_blocking(move || f(s))
        .await
        .map_err(|e| ApiError::new("internal", e.to_string()))?
}

#[tauri::command]
pub async fn generate(state: State<'_, AppState>, prompt: String) -> Result<Answer, ApiError> {
    blocking(&state, move |s| s.generate(&prompt)).await
}

#[tauri::command]
pub async fn revise(state: State<'_, AppState>, instruction: String) -> Result<Answer, ApiError> {
    blocking(&state, move |s| s.revise(&instruction)).await
}

#[tauri::command]
pub fn check(state: State<'_, AppState>, command: String) -> Answer {
    state.check(&command)
}

#[tauri::command]
pub async fn explain(state: State<'_, AppState>, command: String) -> Result<String, ApiError> {
    blocking(&state, move |s| s.explain(&command)).await
}

#[tauri::command]
pub fn copy(state: State<'_, AppState>, text: String) -> Result<(), ApiError> {
    state.copy(&text)
}

#[tauri::command]
pub async fn execute(
    state: State<'_, AppState>,
    command: String,
    confirmed: bool,
) -> Result<RunOutput, ApiError> {
    blocking(&state, move |s| s.execute(&command, confirmed)).await
}

/// The folder Run runs in (and verdicts are for).
#[tauri::command]
pub fn run_dir(state: State<'_, AppState>) -> String {
    state.run_dir().to_string_lossy().into_owned()
}

/// Picks the folder Run runs in; answers the folder as caro will use it.
#[tauri::command]
pub fn set_run_dir(state: State<'_, AppState>, dir: String) -> Result<String, ApiError> {
    state
        .set_run_dir(&dir)
        .map(|p| p.to_string_lossy().into_owned())
}

#[tauri::command]
pub fn history(state: State<'_, AppState>) -> Vec<Entry> {
    state.history()
}

#[tauri::command]
pub fn forget(state: State<'_, AppState>) -> Result<(), ApiError> {
    state.forget()
}

#[tauri::command]
pub fn status(state: State<'_, AppState>) -> Status {
    state.status()
}

#[tauri::command]
pub fn hide(app: AppHandle) -> Result<(), ApiError> {
    if let Some(w) = app.get_webview_window(crate::POPUP) {
        w.hide()
            .map_err(|e| ApiError::new("window", e.to_string()))?;
    }
    Ok(())
}

#[tauri::command]
pub fn model_status(state: State<'_, AppState>) -> DownloadStatus {
    state.model_status()
}

#[tauri::command]
pub fn model_download(state: State<'_, AppState>) -> DownloadStatus {
    state.download_model();
    state.model_status()
}

#[tauri::command]
pub fn model_cancel(state: State<'_, AppState>) -> DownloadStatus {
    state.cancel_download();
    state.model_status()
}
