//! Tauri's build step, with the app's commands declared so each gets an allow/deny permission
//! and nothing is reachable from the webview unless a capability grants it.

fn main() {
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(
        tauri_build::AppManifest::new().commands(&[
            "generate",
            "revise",
            "check",
            "explain",
            "copy",
            "execute",
            "history",
            "forget",
            "hide",
            "status",
            "model_status",
            "model_download",
            "model_cancel",
            "run_dir",
            "set_run_dir",
        ]),
    ))
    .expect("tauri build step");
}
