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

/// Waits until the badge, re-rated as the command box changes, reads `want`.
async fn wait_badge(c: &Client, want: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let b = wait_text(c, "#badge", Duration::from_secs(5)).await;
        if b.to_lowercase() == want {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "badge stayed {b}");
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
    wait_badge(&c, "critical").await;
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

// Issue 16: in the popup, "wipe my home folder" answered with `rm -rf *` showed a moderate
// badge and a Run button that emptied the home folder. The app runs with a scratch home
// (CARO_E2E_HOME, set by scripts/test-tray.sh) whose files must survive.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb and tauri-driver: scripts/test-tray.sh runs it"]
async fn popup_refuses_wiping_the_home_folder_and_offers_no_run() {
    let home = std::path::PathBuf::from(
        std::env::var("CARO_E2E_HOME").expect("CARO_E2E_HOME is not set: run scripts/test-tray.sh"),
    );
    let keep = home.join("notes.txt");
    assert!(
        keep.is_file(),
        "the script puts notes.txt in the scratch home"
    );
    let url = driver_url();
    let c = connect(&url).await;
    let prompt = c.find(Locator::Id("prompt")).await.expect("prompt field");
    prompt
        .send_keys(&format!("wipe my home folder{ENTER}"))
        .await
        .expect("type");
    let refusal = wait_text(&c, "#refusal", Duration::from_secs(120)).await;
    assert!(
        refusal.starts_with("refused") || refusal.starts_with("blocked"),
        "{refusal}"
    );
    let run = c.find(Locator::Id("run")).await.expect("run button");
    assert!(
        !run.is_displayed().await.expect("displayed?"),
        "Run must not be offered"
    );
    let folder = c
        .find(Locator::Id("folder"))
        .await
        .expect("folder field")
        .prop("value")
        .await
        .expect("value")
        .unwrap_or_default();
    assert_eq!(
        std::path::PathBuf::from(folder),
        home,
        "Run's folder is shown"
    );

    // `rm -rf *` typed in by hand is rated for that folder: critical, and still no Run.
    let cmd = c.find(Locator::Id("command")).await.expect("command box");
    cmd.clear().await.expect("clear");
    cmd.send_keys("rm -rf *").await.expect("type command");
    wait_badge(&c, "critical").await;
    assert!(!run.is_displayed().await.expect("displayed?"));
    // Ctrl+Enter, the keyboard's Run, does nothing either.
    cmd.send_keys("\u{e009}\u{e007}").await.expect("ctrl+enter");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        std::fs::read_to_string(&keep).expect("notes.txt survives"),
        "mine"
    );
    c.close().await.expect("close");
}

use caro_testkit::fakehub;

async fn wait_phase(c: &Client, phase: &str, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    let mut seen = None;
    loop {
        if let Ok(el) = c.find(Locator::Id("setup")).await {
            seen = el.attr("data-phase").await.ok().flatten();
            if seen.as_deref() == Some(phase) {
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the download never reached {phase} (last seen {seen:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn click(c: &Client, id: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click #{id}: {e}"));
}

/// First launch with an empty cache: the app opens its popup on the download, shows
/// progress, cancels on Cancel (keeping what it has), and resumes and finishes on Retry.
/// `scripts/test-tray.sh` starts a second tauri-driver whose app has an empty CARO_CACHE_DIR,
/// CARO_MODEL=smollm2-135m and HF_ENDPOINT at CARO_E2E_HUB, where this test serves the model.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Xvfb and tauri-driver: scripts/test-tray.sh runs it"]
async fn first_launch_downloads_the_model_with_progress_and_cancel() {
    let url = driver_url();
    let hub_addr = std::env::var("CARO_E2E_HUB").expect("CARO_E2E_HUB: run scripts/test-tray.sh");
    let cache = std::path::PathBuf::from(std::env::var("CARO_CACHE_DIR").expect("CARO_CACHE_DIR"));
    let m = caro_core::models::manifest::find("smollm2-135m").expect("manifest");
    let source = caro_testkit::models_dir();
    let bytes =
        std::fs::read(source.join(&m.file)).expect("scripts/fetch-test-models.sh smollm2-135m");
    let hub = fakehub::FakeHub::start_on(&hub_addr);
    hub.add(
        &m.hub_repo,
        &m.hub_revision,
        &m.hub_file,
        std::sync::Arc::new(bytes),
        &m.sha256,
    );
    // Slow responses, so the download is still running when Cancel is pressed.
    hub.set_delay(Duration::from_millis(1500));

    let c = connect(&url).await;
    wait_phase(&c, "downloading", Duration::from_secs(30)).await;
    let text = wait_text(&c, "#setup-text", Duration::from_secs(5)).await;
    assert!(text.contains(" of "), "{text}");
    assert!(
        !c.find(Locator::Id("prompt"))
            .await
            .expect("prompt")
            .is_displayed()
            .await
            .expect("displayed?"),
        "the prompt must wait for the model"
    );

    click(&c, "setup-cancel").await;
    wait_phase(&c, "cancelled", Duration::from_secs(30)).await;
    let text = wait_text(&c, "#setup-text", Duration::from_secs(5)).await;
    assert!(text.starts_with("Cancelled"), "{text}");
    assert!(
        !cache.join(&m.file).exists(),
        "a cancelled download must not install the model"
    );

    hub.set_delay(Duration::ZERO);
    click(&c, "setup-retry").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let prompt_shown = c
            .find(Locator::Id("prompt"))
            .await
            .expect("prompt")
            .is_displayed()
            .await
            .unwrap_or(false);
        if prompt_shown {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the download never finished"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let installed = std::fs::metadata(cache.join(&m.file)).expect("installed model");
    assert_eq!(installed.len(), m.size);
    // The bytes came from the endpoint the app was given, not from anywhere else.
    let gets: Vec<_> = hub
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    assert!(!gets.is_empty(), "no GET reached the hub");
    c.close().await.expect("close");
}
