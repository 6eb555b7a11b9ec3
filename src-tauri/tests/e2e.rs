//! End-to-end in a real webview: the built app under Xvfb, driven through tauri-driver and
//! WebKitWebDriver. Run by `scripts/test-tray.sh`, which starts the display, D-Bus and the driver
//! and sets CARO_E2E_WEBDRIVER. Ignored in a plain `cargo test`; the script runs them with
//! `--ignored`.

use fantoccini::{Client, ClientBuilder, Locator};
use std::time::Duration;

/// WebDriver's Enter key; a typed "\n" does not submit a form in WebKitWebDriver.
const ENTER: char = '\u{e007}';

fn driver_url() -> String {
    std::env::var("CARO_E2E_WEBDRIVER")
        .ok()
        .filter(|s| !s.is_empty())
        .expect("CARO_E2E_WEBDRIVER is not set: run scripts/test-tray.sh")
}

fn app_path() -> String {
    std::env::var("CARO_E2E_APP").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/caro-tray").to_owned()
    })
}

async fn connect(url: &str) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "tauri:options".into(),
        serde_json::json!({ "application": app_path() }),
    );
    caps.insert("browserName".into(), serde_json::json!("wry"));
    ClientBuilder::rustls()
        .expect("tls")
        .capabilities(caps)
        .connect(url)
        .await
        .expect("connect to tauri-driver")
}

async fn wait_text(c: &Client, css: &str, timeout: Duration) -> String {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Ok(el) = c.find(Locator::Css(css)).await
            && el.is_displayed().await.unwrap_or(false)
            && let Ok(t) = el.text().await
            && !t.trim().is_empty()
        {
            return t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{css} never showed text"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn command_text(c: &Client) -> String {
    c.find(Locator::Id("command"))
        .await
        .expect("command box")
        .prop("value")
        .await
        .expect("value")
        .unwrap_or_default()
}

fn clipboard() -> String {
    let out = std::process::Command::new("xclip")
        .args(["-selection", "clipboard", "-o"])
        .output()
        .expect("xclip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb and tauri-driver: scripts/test-tray.sh runs it"]
async fn popup_generates_rates_copies_and_revises() {
    let url = driver_url();
    let c = connect(&url).await;
    let prompt = c.find(Locator::Id("prompt")).await.expect("prompt field");
    prompt
        .send_keys(&format!(
            "find all files larger than 100MB in the current directory{ENTER}"
        ))
        .await
        .expect("type");
    let badge = wait_text(&c, "#badge", Duration::from_secs(120)).await;
    assert_eq!(badge.to_lowercase(), "safe");
    let first = command_text(&c).await;
    assert!(first.starts_with("find "), "{first}");

    // Copy: the exact command, read back by another process.
    c.find(Locator::Id("copy"))
        .await
        .expect("copy")
        .click()
        .await
        .expect("click copy");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(clipboard(), first);

    // Revise changes the command.
    let revise = c.find(Locator::Id("revise")).await.expect("revise field");
    revise
        .send_keys(&format!("search only in /var/log{ENTER}"))
        .await
        .expect("type revise");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let revised = loop {
        let t = command_text(&c).await;
        if t != first && !t.is_empty() {
            break t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "revise never changed the command"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(revised.contains("/var/log"), "{revised}");

    // A critical command (edited in) is rated again, and Run is disabled.
    let cmd = c.find(Locator::Id("command")).await.expect("command box");
    cmd.clear().await.expect("clear");
    cmd.send_keys("rm -rf /").await.expect("type command");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let b = wait_text(&c, "#badge", Duration::from_secs(5)).await;
        if b.to_lowercase() == "critical" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "badge stayed {b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let run = c.find(Locator::Id("run")).await.expect("run button");
    assert!(
        !run.is_enabled().await.expect("enabled?"),
        "Run must be disabled"
    );

    // Leave the popup showing a generated command for the screenshot.
    cmd.clear().await.expect("clear");
    cmd.send_keys(&first).await.expect("restore");
    tokio::time::sleep(Duration::from_millis(600)).await;
    if let Ok(path) = std::env::var("CARO_E2E_READY") {
        let _ = std::fs::write(path, b"ready");
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    c.close().await.expect("close");
}
