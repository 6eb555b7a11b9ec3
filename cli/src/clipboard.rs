//! Copy: the command onto the system clipboard, still there after caro exits.

#[cfg(all(unix, not(target_os = "macos")))]
use std::io::Write;
use std::process::ExitCode;

/// Puts `text` on the clipboard.
///
/// On Linux and the BSDs (X11, and Wayland through XWayland) the clipboard's contents live in the process
/// that set them and vanish when it exits, so a copy of caro started as `caro hold-clipboard`
/// outlives this one and serves them until something else is copied, as xclip does. It says
/// `ok` on stdout once the clipboard is its own, or why not.
#[cfg(all(unix, not(target_os = "macos")))]
pub fn copy(text: &str) -> Result<(), String> {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().map_err(|e| format!("cannot find caro's binary: {e}"))?;
    let mut child = Command::new(exe)
        .arg("hold-clipboard")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // It may outlive caro for hours: it must not keep this folder busy (umount).
        .current_dir("/")
        // Its own process group: Ctrl-C in this terminal after caro exits must not take the
        // clipboard with it.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the clipboard helper: {e}"))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    // A dead forwarded display can stall the helper's connection: wait a few seconds, not
    // forever, then take it down.
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = text.to_owned();
    std::thread::spawn(move || {
        let mut line = String::new();
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(owned.as_bytes());
        }
        if let Some(out) = stdout {
            let _ = std::io::BufReader::new(out).read_line(&mut line);
        }
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(HELPER_ANSWER).ok();
    let outcome = match line.as_deref().map(str::trim) {
        Some("ok") => return Ok(()),
        None => Err(format!(
            "the clipboard did not answer within {} s",
            HELPER_ANSWER.as_secs()
        )),
        Some("") => Err("the clipboard helper stopped without a word".to_owned()),
        Some(why) => Err(why.to_owned()),
    };
    // Reaped either way: no zombie left behind while the loop goes on.
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

#[cfg(all(unix, not(target_os = "macos")))]
const HELPER_ANSWER: std::time::Duration = std::time::Duration::from_secs(5);

#[cfg(not(all(unix, not(target_os = "macos"))))]
pub fn copy(text: &str) -> Result<(), String> {
    // macOS and Windows keep the clipboard's contents after the process that set them exits.
    arboard::Clipboard::new()
        .and_then(|mut c| c.set_text(text))
        .map_err(|e| format!("the clipboard is not available: {e}"))
}

/// `caro hold-clipboard` (hidden): reads text on stdin, puts it on the clipboard, says `ok`,
/// and keeps serving it while the clipboard still holds it and the display is there.
#[cfg(all(unix, not(target_os = "macos")))]
pub fn hold() -> ExitCode {
    use std::io::Read;
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        return say_and_fail(&format!("cannot read the text to copy: {e}"));
    }
    let mut clipboard = match arboard::Clipboard::new() {
        Ok(c) => c,
        Err(e) => return say_and_fail(&format!("the clipboard is not available: {e}")),
    };
    if let Err(e) = clipboard.set_text(text.clone()) {
        return say_and_fail(&format!("the clipboard refused the text: {e}"));
    }
    let mut out = std::io::stdout();
    let _ = writeln!(out, "ok");
    let _ = out.flush();
    // Not arboard's `wait()`: it waits on a condition the X connection's end never signals, so
    // a helper outlived its display (seen under Xvfb). Reading the clipboard back fails once
    // the display is gone and differs once something else was copied; either ends the helper.
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        match clipboard.get_text() {
            Ok(now) if now == text => {}
            _ => return ExitCode::SUCCESS,
        }
    }
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
pub fn hold() -> ExitCode {
    ExitCode::SUCCESS
}

#[cfg(all(unix, not(target_os = "macos")))]
fn say_and_fail(why: &str) -> ExitCode {
    let _ = writeln!(std::io::stdout(), "{why}");
    ExitCode::FAILURE
}
