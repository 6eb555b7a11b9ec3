//! The user's config file (`config.toml`): schema, commented defaults, migration from older
//! layouts (upstream caro's included), atomic writes, and the one place where defaults, file,
//! environment and command-line flags are resolved into the settings a run uses.

use crate::embedded::ModelVariant;
use crate::safety::SafetyConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Current layout version, written as `version = 1`.
pub const CONFIG_VERSION: u32 = 1;

/// The commented defaults every config starts from; also what `caro init` writes around the
/// user's answers.
pub const DEFAULT_CONFIG: &str = r#"# caro configuration. Precedence: command-line flags, then CARO_* environment variables,
# then this file, then these defaults.
version = 1

# Backend for requests: "embedded" (the model inside caro), "ollama" or "vllm".
# Remote backends fall back to the embedded model when they fail.
default_backend = "embedded"
# The most one request may take, in seconds, across every backend, retry and fallback (and
# while waiting for the warm daemon); past it caro stops with an error (exit 12) naming the
# backend. 0 = no limit. `--timeout` and CARO_TIMEOUT override it.
timeout_secs = 120

[embedded]
# Engine: "auto" picks MLX on Apple Silicon builds with MLX, else Candle on the CPU; "cpu"
# forces Candle, "mlx" requires the MLX build. `--engine` and CARO_ENGINE override it.
variant = "auto"
# Model by name (`caro model list`): qwen2.5-coder-1.5b (default) or qwen2.5-coder-0.5b.
# model = "qwen2.5-coder-1.5b"
# model_path = "/path/to/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"   # a GGUF of your own
# temperature = 0.0   # greedy: the most accurate on the dev set (README "Accuracy")
# max_tokens = 100
# What else the model is told, on this machine only (never sent to Ollama or vLLM). Each was
# measured on the frozen test split (README "Accuracy", "The grounding levers"):
# examples = 0            # this many of caro's request → command pairs closest to yours
# check_options = false   # ask again when an option is missing from the tool's own --help
# describe_paths = false  # say whether the paths your request names exist in this folder
# list_folder = false     # list the first names in this folder
# Issue 20: decode this many commands together (the greedy one and samples) and pick the one
# most of them agree with by what they do in a sandbox (Linux with bubblewrap), else by their
# structure; candidates that fail in the sandbox rank below all the others. 1 = the greedy
# command alone. `--candidates` overrides it.
# candidates = 1

[ollama]
url = "http://localhost:11434"
model = "qwen2.5-coder:1.5b"
timeout_secs = 30

[vllm]
url = "http://localhost:8000"
# model = ""                    # empty: the first model the server lists
api_key_env = "CARO_VLLM_API_KEY" # name of the environment variable that holds the key
timeout_secs = 30

[safety]
mode = "moderate"               # strict | moderate | permissive

[tray]
hotkey = "CommandOrControl+Shift+Space"  # Ctrl+Shift+Space; Cmd+Shift+Space on macOS
idle_unload_secs = 900                   # unload the warm model after this long idle; 0 = never

[shell_integration]
# The key `caro shell-init` binds: it turns the request on the prompt line into a command.
# alt-<letter or digit> or ctrl-<letter>. CARO_SHELL_KEY and `shell-init --key` override it.
key = "alt-e"
# A command caro runs for you (the CLI's Run, --execute, the popup's Run) is added to your
# shell's history file, if that file exists. false keeps it out; so does CARO_HISTORY=0.
history = true
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Embedded,
    Ollama,
    Vllm,
}

impl BackendKind {
    pub const ALL: [BackendKind; 3] = [Self::Embedded, Self::Ollama, Self::Vllm];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Ollama => "ollama",
            Self::Vllm => "vllm",
        }
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|b| b.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown backend {s:?} (use embedded, ollama or vllm)"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedSection {
    #[serde(default = "auto")]
    pub variant: String,
    /// A model from `models/` by name; `model_path` wins when both are set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    /// Issue 19's grounding levers; see [`crate::EmbeddedConfig`] for each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub examples: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_options: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub describe_paths: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_folder: Option<bool>,
    /// Issue 20: best-of-k; see [`crate::EmbeddedConfig::candidates`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidates: Option<usize>,
}

fn auto() -> String {
    "auto".into()
}

impl Default for EmbeddedSection {
    fn default() -> Self {
        Self {
            variant: auto(),
            model: None,
            model_path: None,
            temperature: None,
            max_tokens: None,
            examples: None,
            check_options: None,
            describe_paths: None,
            list_folder: None,
            candidates: None,
        }
    }
}

/// `caro shell-init`: the key its snippet binds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellIntegrationSection {
    #[serde(default = "default_shell_key")]
    pub key: String,
    /// Whether a command caro runs is appended to the shell's history file.
    #[serde(default = "default_true")]
    pub history: bool,
}

fn default_true() -> bool {
    true
}

fn default_shell_key() -> String {
    crate::shell_init::DEFAULT_KEY.into()
}

impl Default for ShellIntegrationSection {
    fn default() -> Self {
        Self {
            key: default_shell_key(),
            history: true,
        }
    }
}

/// The tray app: its hotkey and how long the warm model may sit idle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraySection {
    #[serde(default = "default_hotkey")]
    pub hotkey: String,
    /// Seconds without a request before the model is unloaded; 0 keeps it loaded.
    #[serde(default = "default_idle_unload")]
    pub idle_unload_secs: u64,
}

fn default_hotkey() -> String {
    "CommandOrControl+Shift+Space".into()
}

fn default_idle_unload() -> u64 {
    900
}

impl Default for TraySection {
    fn default() -> Self {
        Self {
            hotkey: default_hotkey(),
            idle_unload_secs: default_idle_unload(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OllamaSection {
    #[serde(default = "ollama_url")]
    pub url: String,
    #[serde(default = "ollama_model")]
    pub model: String,
    #[serde(default = "timeout")]
    pub timeout_secs: u64,
}

fn ollama_url() -> String {
    "http://localhost:11434".into()
}
fn ollama_model() -> String {
    "qwen2.5-coder:1.5b".into()
}
fn timeout() -> u64 {
    30
}

impl Default for OllamaSection {
    fn default() -> Self {
        Self {
            url: ollama_url(),
            model: ollama_model(),
            timeout_secs: timeout(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VllmSection {
    #[serde(default = "vllm_url")]
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model: String,
    /// Name of the environment variable holding the key; keys stay out of the file.
    #[serde(default = "key_env")]
    pub api_key_env: String,
    /// A key written in clear. Accepted (migrated configs have one), warned about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(default = "timeout")]
    pub timeout_secs: u64,
}

fn vllm_url() -> String {
    "http://localhost:8000".into()
}
fn key_env() -> String {
    "CARO_VLLM_API_KEY".into()
}

impl Default for VllmSection {
    fn default() -> Self {
        Self {
            url: vllm_url(),
            model: String::new(),
            api_key_env: key_env(),
            api_key: None,
            timeout_secs: timeout(),
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaroConfig {
    #[serde(default)]
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_backend: Option<BackendKind>,
    /// The deadline of one request, in seconds, across the whole backend chain; 0 = none.
    #[serde(default = "request_timeout")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub embedded: EmbeddedSection,
    #[serde(default)]
    pub ollama: OllamaSection,
    #[serde(default)]
    pub vllm: VllmSection,
    #[serde(default)]
    pub safety: SafetyConfig,
    #[serde(default)]
    pub tray: TraySection,
    #[serde(default)]
    pub shell_integration: ShellIntegrationSection,
    /// Settings from an older layout that caro has no place for; kept so nothing is lost.
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub unsupported: toml::Table,
}

impl Default for CaroConfig {
    fn default() -> Self {
        toml::from_str(DEFAULT_CONFIG).unwrap_or_else(|_| Self {
            version: CONFIG_VERSION,
            default_backend: Some(BackendKind::Embedded),
            timeout_secs: request_timeout(),
            embedded: EmbeddedSection::default(),
            ollama: OllamaSection::default(),
            vllm: VllmSection::default(),
            safety: SafetyConfig::default(),
            tray: TraySection::default(),
            shell_integration: ShellIntegrationSection::default(),
            unsupported: toml::Table::new(),
        })
    }
}

/// The default deadline of one request: a cold load of the default model and a long reply on
/// a slow CPU fit well inside it; a remote server's three 30 s attempts fit too.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 120;

fn request_timeout() -> u64 {
    DEFAULT_REQUEST_TIMEOUT_SECS
}

/// Largest config file caro reads. A real one is a few KB (a thousand custom rules is about
/// 150 KB); the cap keeps a path to a huge or endless file from eating memory.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// TOML syntax or schema error; toml's message names the line and column.
    #[error("{}: {message}", .path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A device, FIFO, socket or folder: reading one could block forever or never end.
    #[error(
        "{}: is {kind}, not a regular file; point CARO_CONFIG at a config.toml file",
        .path.display()
    )]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error(
        "{}: larger than {} bytes, the limit for a config file (caro's own is a few KB); check that this is the right file",
        .path.display(),
        MAX_CONFIG_BYTES
    )]
    TooLarge { path: PathBuf },
    /// A symlink (the file or a folder above it) that points nowhere. Not "no file": the
    /// user meant to have one, and the defaults could be less strict than what it says.
    #[error(
        "{}: the symbolic link {} points to {}, which does not exist; fix the link, or remove it to use the defaults",
        .path.display(),
        .link.display(),
        .target.display()
    )]
    DanglingLink {
        path: PathBuf,
        link: PathBuf,
        target: PathBuf,
    },
}

/// What loading found.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: CaroConfig,
    /// Where it came from (`None`: no file, defaults only).
    pub path: Option<PathBuf>,
    /// Set when an older layout was migrated: what changed, and where the backup is.
    pub migration: Option<Migration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub from: String,
    pub backup: PathBuf,
    pub notes: Vec<String>,
}

/// Loads `path`. A missing file gives the defaults. A file in an older layout is migrated:
/// the original is kept next to it as `config.toml.bak` (or `.bak.1`, … when that exists),
/// and the new file written atomically. A broken or unreadable file is an error and is
/// never written to.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let Some(text) = read_config(path)? else {
        return Ok(Loaded {
            config: CaroConfig::default(),
            path: None,
            migration: None,
        });
    };
    let invalid = |message: String| ConfigError::Invalid {
        path: path.to_owned(),
        message,
    };
    let table: toml::Table = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let (table, migration) = match detect_layout(&table) {
        Layout::Current => (table, None),
        Layout::Old(name) => {
            let (migrated, notes) = migrate(&table);
            (migrated, Some((name, notes)))
        }
    };
    let config: CaroConfig = table
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
    crate::safety::SafetyValidator::from_config(&config.safety)
        .map_err(|e| invalid(e.to_string()))?;
    if let Some(name) = &config.embedded.model {
        check_model_name(name).map_err(|e| invalid(format!("embedded.model: {e}")))?;
    }
    // Checked here, not only when a run builds its sampling settings, so that the error
    // names the file the bad value is in.
    check_embedded(&config.embedded).map_err(|e| invalid(format!("[embedded] {e}")))?;
    let migration = match migration {
        None => None,
        Some((from, notes)) => {
            let backup = write_backup(path, text.as_bytes())?;
            save(path, &config)?;
            Some(Migration {
                from,
                backup,
                notes,
            })
        }
    };
    Ok(Loaded {
        config,
        path: Some(path.to_owned()),
        migration,
    })
}

/// Reads the config file at `path`; `Ok(None)` when there is none.
///
/// Only a regular file (after following symlinks) of at most [`MAX_CONFIG_BYTES`] is read: a
/// path to `/dev/zero`, a FIFO or a folder would block or never end. Only a path that does not
/// exist gives `None`. A dangling symlink, a symlink loop or a permission error is an error:
/// falling back to the defaults would quietly drop the user's settings, a strict safety mode
/// among them.
pub fn read_config(path: &Path) -> Result<Option<String>, ConfigError> {
    use std::io::Read;
    let io = |source| ConfigError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match dangling_link(path) {
                Some((link, target)) => Err(ConfigError::DanglingLink {
                    path: path.to_owned(),
                    link,
                    target,
                }),
                None => Ok(None),
            };
        }
        Err(e) => return Err(io(e)),
    };
    // Checked before opening: opening a FIFO blocks until someone writes to it.
    check_regular(path, &meta)?;
    let file = std::fs::File::open(path).map_err(io)?;
    // And again on what was opened, in case the path was replaced in between.
    check_regular(path, &file.metadata().map_err(io)?)?;
    let mut bytes = Vec::new();
    // One byte over the cap tells a file that is too large from one exactly at the cap, and
    // bounds a file that grows while it is read.
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
        });
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

fn check_regular(path: &Path, meta: &std::fs::Metadata) -> Result<(), ConfigError> {
    if meta.is_file() {
        return Ok(());
    }
    let t = meta.file_type();
    let kind = if t.is_dir() {
        "a folder"
    } else {
        special_kind(&t).unwrap_or("something else")
    };
    Err(ConfigError::NotAFile {
        path: path.to_owned(),
        kind,
    })
}

#[cfg(unix)]
fn special_kind(t: &std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    [
        (t.is_fifo(), "a named pipe (FIFO)"),
        (t.is_char_device(), "a character device"),
        (t.is_block_device(), "a block device"),
        (t.is_socket(), "a socket"),
    ]
    .into_iter()
    .find_map(|(is, kind)| is.then_some(kind))
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> Option<&'static str> {
    None
}

/// The symlink in `path` (the path itself or a folder above it) that points nowhere, and
/// where it points.
fn dangling_link(path: &Path) -> Option<(PathBuf, PathBuf)> {
    path.ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .find(|a| {
            std::fs::symlink_metadata(a).is_ok_and(|m| m.file_type().is_symlink())
                && std::fs::metadata(a).is_err()
        })
        .map(|link| {
            let target = std::fs::read_link(link).unwrap_or_default();
            (link.to_owned(), target)
        })
}

/// Copies the config file to a backup that did not exist before: `config.toml.bak`, else
/// `config.toml.bak.1`, `.bak.2`, …, so no earlier backup is ever overwritten.
pub fn backup(path: &Path) -> Result<PathBuf, ConfigError> {
    let text = read_config(path)?.ok_or_else(|| ConfigError::Io {
        path: path.to_owned(),
        source: std::io::ErrorKind::NotFound.into(),
    })?;
    write_backup(path, text.as_bytes())
}

fn write_backup(path: &Path, bytes: &[u8]) -> Result<PathBuf, ConfigError> {
    use std::io::Write;
    let first = backup_path(path);
    // A thousand backups is far more than anyone keeps; past that, say so instead of scanning.
    for n in 0u32..1000 {
        let candidate = if n == 0 {
            first.clone()
        } else {
            let mut name = first.clone().into_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        let mut options = std::fs::OpenOptions::new();
        // create_new: an existing backup (or a symlink in its place) is skipped, never written.
        options.write(true).create_new(true);
        // The file may hold an API key: keep the copy as private as `save` keeps the config.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let io = |source| ConfigError::Io {
            path: candidate.clone(),
            source,
        };
        match options.open(&candidate) {
            Ok(mut f) => {
                f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io)?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(e)),
        }
    }
    Err(ConfigError::Io {
        path: first,
        source: std::io::Error::other(
            "1000 backups already exist beside it (.bak to .bak.999); delete the old ones",
        ),
    })
}

fn backup_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".bak");
    path.with_file_name(name)
}

enum Layout {
    Current,
    Old(String),
}

fn detect_layout(t: &toml::Table) -> Layout {
    if t.get("backend").is_some_and(|b| b.is_table())
        || t.contains_key("general")
        || t.contains_key("output")
    {
        return Layout::Old("upstream caro/cmdai ([backend] primary)".into());
    }
    match t.get("version").and_then(|v| v.as_integer()) {
        Some(v) if v >= i64::from(CONFIG_VERSION) => Layout::Current,
        Some(v) => Layout::Old(format!("version {v}")),
        // Only keys of today's schema, just no version: read it as current.
        None => Layout::Current,
    }
}

/// Rewrites an older layout into today's. Every setting lands somewhere: in its new place,
/// or under `[unsupported]` with a note.
pub fn migrate(old: &toml::Table) -> (toml::Table, Vec<String>) {
    use toml::Value;
    let mut notes = Vec::new();
    let mut new = toml::Table::new();
    new.insert("version".into(), Value::Integer(i64::from(CONFIG_VERSION)));
    let mut unsupported = toml::Table::new();
    let mut keep = |key: String, v: &Value, notes: &mut Vec<String>| {
        notes.push(format!(
            "`{key}` has no equivalent; kept under [unsupported]"
        ));
        unsupported.insert(key, v.clone());
    };
    for (k, v) in old {
        match (k.as_str(), v) {
            ("version", _) => {}
            ("backend", Value::Table(b)) => {
                for (bk, bv) in b {
                    match (bk.as_str(), bv) {
                        ("primary", Value::String(p)) => {
                            let name = if p == "mlx" || p == "cpu" { "embedded" } else { p.as_str() };
                            new.insert("default_backend".into(), Value::String(name.into()));
                            notes.push(format!("backend.primary = {p:?} → default_backend = {name:?}"));
                        }
                        ("enable_fallback", Value::Boolean(true)) => notes.push("backend.enable_fallback: remote backends always fall back to the embedded model now".into()),
                        ("ollama" | "vllm", Value::Table(r)) => {
                            let mut sec = toml::Table::new();
                            for (rk, rv) in r {
                                let target = match rk.as_str() {
                                    "base_url" | "url" => "url",
                                    "model_name" | "model" => "model",
                                    "timeout" | "timeout_secs" => "timeout_secs",
                                    "api_key" => "api_key",
                                    "api_key_env" => "api_key_env",
                                    _ => {
                                        keep(format!("backend.{bk}.{rk}"), rv, &mut notes);
                                        continue;
                                    }
                                };
                                if target == "api_key" {
                                    notes.push(format!("backend.{bk}.api_key is stored in clear text; move it to the variable named by api_key_env and delete it from the file"));
                                }
                                sec.insert(target.into(), rv.clone());
                            }
                            new.insert(bk.clone(), Value::Table(sec));
                        }
                        _ => keep(format!("backend.{bk}"), bv, &mut notes),
                    }
                }
            }
            ("safety", Value::Table(s)) => {
                let mut sec = toml::Table::new();
                for (sk, sv) in s {
                    match (sk.as_str(), sv) {
                        ("level" | "mode", Value::String(l)) => {
                            sec.insert("mode".into(), Value::String(l.to_ascii_lowercase()));
                            if sk == "level" {
                                notes.push(format!("safety.level = {l:?} → safety.mode"));
                            }
                        }
                        ("enabled", Value::Boolean(false)) => {
                            sec.insert("mode".into(), Value::String("permissive".into()));
                            notes.push("safety.enabled = false → mode \"permissive\": the check cannot be switched off, but it then blocks nothing".into());
                        }
                        ("enabled", Value::Boolean(true)) => {}
                        ("allow" | "rules", _) => {
                            sec.insert(sk.clone(), sv.clone());
                        }
                        _ => keep(format!("safety.{sk}"), sv, &mut notes),
                    }
                }
                new.insert("safety".into(), Value::Table(sec));
            }
            ("default_backend" | "embedded" | "ollama" | "vllm" | "unsupported", _) => {
                new.insert(k.clone(), v.clone());
            }
            _ => keep(k.clone(), v, &mut notes),
        }
    }
    if !unsupported.is_empty() {
        let mut merged = new
            .get("unsupported")
            .and_then(|u| u.as_table())
            .cloned()
            .unwrap_or_default();
        merged.extend(unsupported);
        new.insert("unsupported".into(), Value::Table(merged));
    }
    (new, notes)
}

/// Writes the config atomically: a temporary file in the same folder, flushed, then renamed
/// over the old one, so a crash leaves either the old file or the new one, never half of one.
pub fn save(path: &Path, config: &CaroConfig) -> Result<(), ConfigError> {
    let body = toml::to_string_pretty(config).map_err(|e| ConfigError::Invalid {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let text = format!(
        "# caro configuration (docs/USER_GUIDE.md). Flags and CARO_* variables override it.\n{body}"
    );
    write_atomic(path, text.as_bytes())
}

/// Writes `bytes` to `path` atomically (see [`save`]). Through a symlink, the file it points
/// at is replaced: renaming over the link itself would turn it into a plain file and cut it
/// off from, say, a dotfiles repository.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    use std::io::Write;
    let target = resolve_link(path)?;
    let path = target.as_path();
    let io = |source| ConfigError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// `path`, or what it points to when it is a symlink.
fn resolve_link(path: &Path) -> Result<PathBuf, ConfigError> {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return Ok(path.to_owned());
    }
    std::fs::canonicalize(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ConfigError::DanglingLink {
                path: path.to_owned(),
                link: path.to_owned(),
                target: std::fs::read_link(path).unwrap_or_default(),
            }
        } else {
            ConfigError::Io {
                path: path.to_owned(),
                source,
            }
        }
    })
}

/// Where a setting's value came from, for `caro status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Flag,
    Env,
    File,
    Default,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Flag => "command-line flag",
            Self::Env => "environment (CARO_BACKEND)",
            Self::File => "config file",
            Self::Default => "default",
        }
    }
}

/// The backend rule, as a pure function: the flag wins, then the environment, then the file,
/// then embedded.
pub fn select_backend(
    flag: Option<BackendKind>,
    env: Option<BackendKind>,
    file: Option<BackendKind>,
) -> (BackendKind, Source) {
    if let Some(b) = flag {
        (b, Source::Flag)
    } else if let Some(b) = env {
        (b, Source::Env)
    } else if let Some(b) = file {
        (b, Source::File)
    } else {
        (BackendKind::Embedded, Source::Default)
    }
}

fn check_model_name(name: &str) -> Result<(), String> {
    match crate::models::manifest::find(name) {
        Some(_) => Ok(()),
        None => Err(format!(
            "unknown model '{name}' (known: {})",
            crate::models::manifest::known_names().join(", ")
        )),
    }
}

/// Checks the `[embedded]` values as a run would, with the defaults for the rest.
fn check_embedded(e: &EmbeddedSection) -> Result<(), String> {
    ModelVariant::parse_choice(&e.variant).map_err(|m| format!("variant: {m}"))?;
    e.config_builder()
        .and_then(crate::embedded::EmbeddedConfigBuilder::build)
        .map(drop)
        .map_err(|err| match err {
            crate::GeneratorError::InvalidConfig(m) => m,
            other => other.to_string(),
        })
}

impl EmbeddedSection {
    /// The embedded backend's settings as every frontend runs it: this section over the
    /// defaults, with the prefix cache kept on disk in caro's cache (so a cold process skips
    /// the prefix's prefill). A frontend applies its own flags over the builder.
    pub fn config_builder(
        &self,
    ) -> Result<crate::embedded::EmbeddedConfigBuilder, crate::GeneratorError> {
        let variant = ModelVariant::parse_choice(&self.variant)
            .map_err(crate::GeneratorError::InvalidConfig)?;
        let mut b = crate::EmbeddedConfig::builder()
            .variant(variant)
            .prefix_cache_dir(crate::embedded::prefix_store::default_dir());
        if let Some(t) = self.temperature {
            b = b.temperature(t);
        }
        if let Some(n) = self.max_tokens {
            b = b.max_tokens(n);
        }
        if let Some(n) = self.examples {
            b = b.retrieved_examples(n);
        }
        if let Some(v) = self.check_options {
            b = b.check_options(v);
        }
        if let Some(v) = self.describe_paths {
            b = b.describe_paths(v);
        }
        if let Some(v) = self.list_folder {
            b = b.list_folder(v);
        }
        if let Some(k) = self.candidates {
            b = b.candidates(k);
        }
        Ok(b)
    }
}

/// Settings for one run after all layers are applied.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub backend: BackendKind,
    pub backend_source: Source,
    pub config: CaroConfig,
    /// The vLLM key, read from the variable `api_key_env` names (or the file, if written there).
    pub vllm_api_key: Option<String>,
    /// The sampling flags, applied over `[embedded]` by [`Resolved::embedded_config`].
    pub sampling: Sampling,
    pub warnings: Vec<String>,
}

impl Resolved {
    /// The embedded model's settings: the flags over the file's `[embedded]` over the defaults.
    pub fn embedded_config(&self) -> Result<crate::EmbeddedConfig, crate::GeneratorError> {
        let mut b = self.config.embedded.config_builder()?;
        let s = self.sampling;
        if let Some(t) = s.temperature {
            b = b.temperature(t);
        }
        if let Some(p) = s.top_p {
            b = b.top_p(p);
        }
        if let Some(n) = s.max_tokens {
            b = b.max_tokens(n);
        }
        if let Some(seed) = s.seed {
            b = b.seed(seed);
        }
        if let Some(k) = s.candidates {
            b = b.candidates(k);
        }
        b.build()
    }

    /// The safety validator for these settings: mode (flag, then env, then file), allowlist and
    /// custom rules. Fails on an allowlist or rule the file gets wrong.
    pub fn validator(
        &self,
    ) -> Result<crate::safety::SafetyValidator, crate::safety::SafetyConfigError> {
        crate::safety::SafetyValidator::from_config(&self.config.safety)
    }

    /// The request's deadline; `None` when it is switched off (`timeout_secs = 0`).
    pub fn request_timeout(&self) -> Option<std::time::Duration> {
        (self.config.timeout_secs > 0)
            .then(|| std::time::Duration::from_secs(self.config.timeout_secs))
    }

    /// The engine the embedded model runs on: the choice made, or the build's default.
    pub fn variant(&self) -> ModelVariant {
        self.variant_choice().unwrap_or_else(ModelVariant::detect)
    }

    /// The engine choice as [`EmbeddedConfig`](crate::EmbeddedConfig) takes it (`None` = auto).
    pub fn variant_choice(&self) -> Option<ModelVariant> {
        ModelVariant::parse_choice(&self.config.embedded.variant)
            .ok()
            .flatten()
    }
}

/// Command-line values that override the rest.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub backend: Option<BackendKind>,
    pub model_path: Option<PathBuf>,
    /// `--engine`: auto, cpu or mlx.
    pub engine: Option<String>,
    pub ollama_url: Option<String>,
    pub vllm_url: Option<String>,
    /// `--timeout`: the request's deadline in seconds (0 = none).
    pub timeout_secs: Option<u64>,
    /// `--mode`: over `CARO_SAFETY_MODE` and the file's `[safety] mode`.
    pub mode: Option<crate::safety::SafetyMode>,
    pub sampling: Sampling,
}

/// Sampling flags (`--temperature`, `--top-p`, `--max-tokens`, `--seed`, `--candidates`),
/// over `[embedded]`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sampling {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub max_tokens: Option<usize>,
    pub seed: Option<u64>,
    pub candidates: Option<usize>,
}

/// Applies environment and flags over the file: the one place precedence is decided.
pub fn resolve(
    file: CaroConfig,
    env: impl Fn(&str) -> Option<String>,
    cli: &Overrides,
) -> Result<Resolved, String> {
    let mut config = file;
    let mut warnings = Vec::new();
    let env_backend = match env("CARO_BACKEND").filter(|v| !v.is_empty()) {
        Some(v) => Some(
            v.parse::<BackendKind>()
                .map_err(|e| format!("CARO_BACKEND: {e}"))?,
        ),
        None => None,
    };
    let (backend, backend_source) =
        select_backend(cli.backend, env_backend, config.default_backend);
    if let Some(u) = env("CARO_OLLAMA_URL").filter(|v| !v.is_empty()) {
        config.ollama.url = u;
    }
    if let Some(m) = env("CARO_OLLAMA_MODEL").filter(|v| !v.is_empty()) {
        config.ollama.model = m;
    }
    if let Some(u) = env("CARO_VLLM_URL").filter(|v| !v.is_empty()) {
        config.vllm.url = u;
    }
    if let Some(m) = env("CARO_VLLM_MODEL").filter(|v| !v.is_empty()) {
        config.vllm.model = m;
    }
    if let Some(m) = env("CARO_SAFETY_MODE").filter(|v| !v.is_empty()) {
        config.safety.mode = Some(m.parse().map_err(|e| format!("CARO_SAFETY_MODE: {e}"))?);
    }
    if let Some(m) = cli.mode {
        config.safety.mode = Some(m);
    }
    // Checked by `caro shell-init` alone: a bad key must not stop any other command, and its
    // `--key` must still be able to override it.
    if let Some(k) = env("CARO_SHELL_KEY").filter(|v| !v.is_empty()) {
        config.shell_integration.key = k;
    }
    if let Some(h) = env("CARO_HISTORY").filter(|v| !v.is_empty()) {
        config.shell_integration.history = match h.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            other => {
                return Err(format!(
                    "CARO_HISTORY: `{other}` is not 1 or 0 (true or false)"
                ));
            }
        };
    }
    if let Some(m) = env("CARO_MODEL").filter(|v| !v.is_empty()) {
        check_model_name(&m).map_err(|e| format!("CARO_MODEL: {e}"))?;
        config.embedded.model = Some(m);
    }
    if let Some(p) = env("CARO_MODEL_PATH").filter(|v| !v.is_empty()) {
        config.embedded.model_path = Some(p.into());
    }
    if let Some(u) = &cli.ollama_url {
        config.ollama.url = u.clone();
    }
    if let Some(u) = &cli.vllm_url {
        config.vllm.url = u.clone();
    }
    if let Some(p) = &cli.model_path {
        config.embedded.model_path = Some(p.clone());
    }
    if let Some(t) = env("CARO_TIMEOUT").filter(|v| !v.is_empty()) {
        config.timeout_secs = t.trim().parse().map_err(|_| {
            format!("CARO_TIMEOUT: {t:?} is not a number of seconds (0 = no limit)")
        })?;
    }
    if let Some(t) = cli.timeout_secs {
        config.timeout_secs = t;
    }
    if let Some(e) = env("CARO_ENGINE").filter(|v| !v.is_empty()) {
        ModelVariant::parse_choice(&e).map_err(|m| format!("CARO_ENGINE: {m}"))?;
        config.embedded.variant = e;
    }
    if let Some(e) = &cli.engine {
        ModelVariant::parse_choice(e).map_err(|m| format!("--engine: {m}"))?;
        config.embedded.variant = e.clone();
    }
    ModelVariant::parse_choice(&config.embedded.variant)
        .map_err(|m| format!("[embedded] variant: {m}"))?;
    let vllm_api_key = env(&config.vllm.api_key_env)
        .filter(|k| !k.is_empty())
        .or_else(|| config.vllm.api_key.clone());
    if config.vllm.api_key.is_some() {
        warnings.push(format!(
            "the vLLM API key is written in the config file in clear text; put it in ${} and remove `api_key`",
            config.vllm.api_key_env
        ));
    }
    Ok(Resolved {
        backend,
        backend_source,
        config,
        vllm_api_key,
        sampling: cli.sampling,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_round_trip() {
        let c = CaroConfig::default();
        assert_eq!(c.version, CONFIG_VERSION);
        assert_eq!(c.default_backend, Some(BackendKind::Embedded));
        assert_eq!(c.ollama.url, "http://localhost:11434");
        let text = toml::to_string_pretty(&c).expect("serialize");
        let back: CaroConfig = toml::from_str(&text).expect("parse");
        assert_eq!(back.ollama, c.ollama);
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        use BackendKind::*;
        assert_eq!(
            select_backend(Some(Vllm), Some(Ollama), Some(Embedded)),
            (Vllm, Source::Flag)
        );
        assert_eq!(
            select_backend(None, Some(Ollama), Some(Vllm)),
            (Ollama, Source::Env)
        );
        assert_eq!(select_backend(None, None, Some(Vllm)), (Vllm, Source::File));
        assert_eq!(
            select_backend(None, None, None),
            (Embedded, Source::Default)
        );
    }

    // Issue 18: the CLI and the tray merged the sampling flags and the mode themselves; both
    // now read them from here.
    #[test]
    fn history_append_comes_from_the_file_then_caro_history() {
        let on = |v: &'static str| move |k: &str| (k == "CARO_HISTORY").then(|| v.to_owned());
        let history = |file: CaroConfig, env: &dyn Fn(&str) -> Option<String>| {
            resolve(file, env, &Overrides::default()).map(|r| r.config.shell_integration.history)
        };
        assert_eq!(history(CaroConfig::default(), &|_| None), Ok(true));
        let mut off = CaroConfig::default();
        off.shell_integration.history = false;
        assert_eq!(history(off.clone(), &|_| None), Ok(false));
        assert_eq!(history(off, &on("1")), Ok(true));
        assert_eq!(history(CaroConfig::default(), &on("off")), Ok(false));
        let err = history(CaroConfig::default(), &on("maybe")).expect_err("bad value");
        assert!(err.contains("CARO_HISTORY"), "{err}");
    }

    #[test]
    fn grounding_levers_in_the_file_reach_the_embedded_backend() {
        let text = DEFAULT_CONFIG.replace(
            "# examples = 0 ",
            "examples = 3\ncheck_options = true\ndescribe_paths = true\nlist_folder = true\n#",
        );
        let file: CaroConfig = toml::from_str(&text).expect("parses");
        let r = resolve(file, |_| None, &Overrides::default()).expect("resolves");
        let c = r.embedded_config().expect("config");
        assert_eq!(c.retrieved_examples, 3);
        assert!(c.check_options && c.describe_paths && c.list_folder);
        let d = resolve(CaroConfig::default(), |_| None, &Overrides::default())
            .expect("defaults")
            .embedded_config()
            .expect("config");
        let defaults = crate::EmbeddedConfig::default();
        assert_eq!(
            (
                d.retrieved_examples,
                d.check_options,
                d.describe_paths,
                d.list_folder
            ),
            (
                defaults.retrieved_examples,
                defaults.check_options,
                defaults.describe_paths,
                defaults.list_folder
            ),
            "the commented defaults say what the code does"
        );
    }

    #[test]
    fn mode_and_sampling_flags_beat_env_and_file() {
        use crate::safety::SafetyMode;
        let mut file = CaroConfig::default();
        file.safety.mode = Some(SafetyMode::Permissive);
        file.embedded.temperature = Some(0.7);
        file.embedded.max_tokens = Some(80);
        let env = |k: &str| (k == "CARO_SAFETY_MODE").then(|| "strict".to_owned());
        let r = resolve(file.clone(), |_| None, &Overrides::default()).expect("file");
        assert_eq!(
            r.validator().expect("validator").mode(),
            SafetyMode::Permissive
        );
        let c = r.embedded_config().expect("config");
        assert_eq!((c.temperature, c.max_tokens), (0.7, 80));
        let r = resolve(file.clone(), env, &Overrides::default()).expect("env");
        assert_eq!(r.validator().expect("validator").mode(), SafetyMode::Strict);
        let flags = Overrides {
            mode: Some(SafetyMode::Moderate),
            sampling: Sampling {
                temperature: Some(0.0),
                top_p: Some(0.5),
                max_tokens: None,
                seed: Some(9),
                candidates: Some(4),
            },
            ..Overrides::default()
        };
        let r = resolve(file, env, &flags).expect("flags");
        assert_eq!(
            r.validator().expect("validator").mode(),
            SafetyMode::Moderate
        );
        let c = r.embedded_config().expect("config");
        assert_eq!(
            (c.temperature, c.top_p, c.max_tokens, c.seed, c.candidates),
            (0.0, 0.5, 80, 9, 4)
        );
    }

    // Issue 17, item 6: one deadline for the whole chain, set in the file, CARO_TIMEOUT or
    // --timeout, in that order of strength; 0 switches it off.
    #[test]
    fn request_timeout_flag_beats_env_beats_file() {
        let mut file = CaroConfig::default();
        let r = resolve(file.clone(), |_| None, &Overrides::default()).expect("default");
        assert_eq!(r.config.timeout_secs, DEFAULT_REQUEST_TIMEOUT_SECS);
        file.timeout_secs = 40;
        let env = |k: &str| (k == "CARO_TIMEOUT").then(|| "7".to_owned());
        let r = resolve(file.clone(), |_| None, &Overrides::default()).expect("file");
        assert_eq!(
            r.request_timeout(),
            Some(std::time::Duration::from_secs(40))
        );
        let r = resolve(file.clone(), env, &Overrides::default()).expect("env");
        assert_eq!(r.config.timeout_secs, 7);
        let off = Overrides {
            timeout_secs: Some(0),
            ..Overrides::default()
        };
        let r = resolve(file.clone(), env, &off).expect("flag");
        assert_eq!(r.request_timeout(), None);
        let bad = resolve(file, |k| (k == "CARO_TIMEOUT").then(|| "soon".into()), &off);
        assert!(bad.is_err_and(|e| e.contains("CARO_TIMEOUT")));
    }

    #[test]
    fn engine_flag_beats_env_beats_file_and_bad_names_are_refused() {
        let mut file = CaroConfig::default();
        file.embedded.variant = "mlx".into();
        let env_cpu = |k: &str| (k == "CARO_ENGINE").then(|| "cpu".to_owned());
        let r = resolve(file.clone(), |_| None, &Overrides::default()).expect("file");
        assert_eq!(r.variant_choice(), Some(ModelVariant::Mlx));
        let r = resolve(file.clone(), env_cpu, &Overrides::default()).expect("env");
        assert_eq!(r.variant_choice(), Some(ModelVariant::Cpu));
        let flag = Overrides {
            engine: Some("auto".into()),
            ..Overrides::default()
        };
        let r = resolve(file.clone(), env_cpu, &flag).expect("flag");
        assert_eq!(r.variant_choice(), None);
        assert_eq!(r.variant(), ModelVariant::detect());
        let bad = resolve(
            file.clone(),
            |k| (k == "CARO_ENGINE").then(|| "gpu".into()),
            &Overrides::default(),
        );
        assert!(bad.is_err_and(|e| e.contains("CARO_ENGINE") && e.contains("auto, cpu or mlx")));
        file.embedded.variant = "metal".into();
        let bad = resolve(file, |_| None, &Overrides::default());
        assert!(bad.is_err_and(|e| e.contains("[embedded] variant")));
    }

    #[test]
    fn env_overrides_file_for_safety_mode_and_urls() {
        let r = resolve(
            CaroConfig::default(),
            |k| match k {
                "CARO_SAFETY_MODE" => Some("strict".into()),
                "CARO_OLLAMA_URL" => Some("http://box:11434".into()),
                _ => None,
            },
            &Overrides::default(),
        )
        .expect("resolve");
        assert_eq!(
            r.config.safety.mode,
            Some(crate::safety::SafetyMode::Strict)
        );
        assert_eq!(r.config.ollama.url, "http://box:11434");
        let bad = resolve(
            CaroConfig::default(),
            |k| (k == "CARO_SAFETY_MODE").then(|| "lax".into()),
            &Overrides::default(),
        );
        assert!(bad.is_err_and(|e| e.contains("CARO_SAFETY_MODE")));
    }

    #[test]
    fn api_key_comes_from_the_named_variable() {
        let mut file = CaroConfig::default();
        file.vllm.api_key_env = "MY_KEY".into();
        let r = resolve(
            file,
            |k| (k == "MY_KEY").then(|| "s3cret".into()),
            &Overrides::default(),
        )
        .expect("resolve");
        assert_eq!(r.vllm_api_key.as_deref(), Some("s3cret"));
        assert!(r.warnings.is_empty());
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;

    /// The layout upstream caro documents for its users.
    const UPSTREAM: &str = r#"
[backend]
primary = "ollama"
enable_fallback = true

[backend.ollama]
base_url = "http://gpu-box:11434"
model_name = "codellama:7b"

[backend.vllm]
base_url = "https://vllm.internal"
model_name = "codellama/CodeLlama-7b-hf"
api_key = "sk-old"

[safety]
enabled = true
level = "strict"

[output]
format = "plain"
verbose = false
"#;

    #[test]
    fn upstream_layout_is_migrated_with_a_backup_and_nothing_lost() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, UPSTREAM).expect("write");
        let loaded = load(&path).expect("load");
        let c = &loaded.config;
        assert_eq!(c.default_backend, Some(BackendKind::Ollama));
        assert_eq!(c.ollama.url, "http://gpu-box:11434");
        assert_eq!(c.ollama.model, "codellama:7b");
        assert_eq!(c.vllm.url, "https://vllm.internal");
        assert_eq!(c.vllm.api_key.as_deref(), Some("sk-old"));
        assert_eq!(c.safety.mode, Some(crate::safety::SafetyMode::Strict));
        assert_eq!(c.unsupported["output"]["format"].as_str(), Some("plain"));
        let m = loaded.migration.expect("migrated");
        assert_eq!(
            std::fs::read_to_string(&m.backup).expect("backup"),
            UPSTREAM
        );
        assert!(
            m.notes.iter().any(|n| n.contains("clear text")),
            "{:?}",
            m.notes
        );
        // The new file is today's layout and loads without another migration.
        let again = load(&path).expect("reload");
        assert!(again.migration.is_none());
        assert_eq!(again.config.ollama.url, "http://gpu-box:11434");
    }

    #[test]
    fn broken_file_is_an_error_with_line_and_column_and_stays_unchanged() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.toml");
        let text = "version = 1\n[ollama]\nurl = \"http://x\n";
        std::fs::write(&path, text).expect("write");
        let err = load(&path).expect_err("broken");
        let msg = err.to_string();
        assert!(msg.contains("line 3") && msg.contains("column"), "{msg}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), text);
        assert!(!dir.path().join("config.toml.bak").exists());
    }

    #[test]
    fn unknown_keys_are_rejected_not_dropped() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "version = 1\n[ollama]\nurll = \"x\"\n").expect("write");
        let msg = load(&path).expect_err("typo").to_string();
        assert!(msg.contains("urll"), "{msg}");
    }

    #[test]
    fn save_is_atomic_and_round_trips() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("sub").join("config.toml");
        let mut c = CaroConfig {
            default_backend: Some(BackendKind::Vllm),
            ..CaroConfig::default()
        };
        c.vllm.url = "https://gpu.example".into();
        save(&path, &c).expect("save");
        let back = load(&path).expect("load");
        assert_eq!(back.config.default_backend, Some(BackendKind::Vllm));
        assert_eq!(back.config.vllm.url, "https://gpu.example");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("ls")
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left behind");
    }

    // ---- issue 17: reading the config file reliably -----------------------------------------
    // Only a missing file means "defaults"; anything caro cannot read is an error that names
    // the file; reads are bounded; custom rules validate in linear time; writes go through
    // symlinks; backups are never overwritten.

    #[cfg(unix)]
    #[test]
    fn config_path_to_dev_zero_is_refused_not_read() {
        for dev in ["/dev/zero", "/dev/urandom"] {
            let err = load(Path::new(dev)).expect_err("a device is not a config file");
            assert!(matches!(err, ConfigError::NotAFile { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(
                msg.contains(dev) && msg.contains("character device"),
                "{msg}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn config_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tmp");
        let fifo = dir.path().join("config.toml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        // Opening a FIFO with no writer blocks: load in a thread, so a regression fails the
        // test instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(load(&path).map(|_| ()).map_err(|e| e.to_string()));
        });
        let msg = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("load returned instead of blocking on the FIFO")
            .expect_err("a FIFO is not a config file");
        assert!(
            msg.contains("config.toml") && msg.contains("named pipe"),
            "{msg}"
        );
    }

    #[test]
    fn config_path_to_a_folder_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let msg = load(dir.path()).expect_err("folder").to_string();
        assert!(msg.contains("a folder, not a regular file"), "{msg}");
    }

    #[test]
    fn config_over_the_size_cap_is_refused_and_one_at_the_cap_loads() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.toml");
        let cap = usize::try_from(MAX_CONFIG_BYTES).expect("fits");
        // Comment lines: valid TOML of any length, so only the size decides.
        let mut text = "version = 1\n".to_owned();
        while text.len() < cap {
            let room = cap - text.len();
            text.push_str(&format!(
                "#{}\n",
                "x".repeat(room.min(80).saturating_sub(2))
            ));
        }
        text.truncate(cap);
        std::fs::write(&path, &text).expect("write");
        load(&path).expect("a file exactly at the cap loads");
        text.push('\n');
        std::fs::write(&path, &text).expect("write");
        let err = load(&path).expect_err("one byte over");
        assert!(matches!(err, ConfigError::TooLarge { .. }), "{err:?}");
        assert!(err.to_string().contains("config.toml"), "{err}");
    }

    #[test]
    fn missing_config_gives_the_defaults() {
        let dir = tempfile::tempdir().expect("tmp");
        let loaded = load(&dir.path().join("nowhere").join("config.toml")).expect("defaults");
        assert!(loaded.path.is_none());
    }

    #[cfg(unix)]
    #[test]
    fn dangling_config_symlink_is_an_error_not_defaults() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.toml");
        std::os::unix::fs::symlink(dir.path().join("dotfiles/caro.toml"), &path).expect("ln");
        let err = load(&path).expect_err("dangling link");
        assert!(matches!(err, ConfigError::DanglingLink { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("config.toml") && msg.contains("dotfiles/caro.toml"),
            "{msg}"
        );
        // The same for a dangling link to the folder the file is in.
        let folder = dir.path().join("caro");
        std::os::unix::fs::symlink(dir.path().join("gone"), &folder).expect("ln");
        let err = load(&folder.join("config.toml")).expect_err("dangling folder link");
        assert!(matches!(err, ConfigError::DanglingLink { .. }), "{err:?}");
    }

    #[cfg(unix)]
    #[test]
    fn config_symlink_loop_is_an_error_not_defaults() {
        let dir = tempfile::tempdir().expect("tmp");
        let (a, b) = (
            dir.path().join("config.toml"),
            dir.path().join("other.toml"),
        );
        std::os::unix::fs::symlink(&b, &a).expect("ln");
        std::os::unix::fs::symlink(&a, &b).expect("ln");
        let msg = load(&a).expect_err("loop").to_string();
        assert!(msg.contains("config.toml"), "{msg}");
    }

    #[cfg(unix)]
    #[test]
    fn unreadable_config_is_an_error_not_defaults() {
        // A path through a file (ENOTDIR) cannot be read, for root too (a chmod 000 file is
        // readable by root, so that case would test nothing where CI runs).
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, "x").expect("write");
        let path = file.join("config.toml");
        let err = load(&path).expect_err("not a directory");
        assert!(matches!(err, ConfigError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("config.toml"), "{err}");
    }

    #[test]
    fn out_of_range_config_value_names_the_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.toml");
        for (text, needle) in [
            ("[embedded]\ntemperature = 99.0\n", "temperature"),
            ("[embedded]\nmax_tokens = 0\n", "max_tokens"),
            ("[embedded]\nvariant = \"gpu\"\n", "variant"),
        ] {
            std::fs::write(&path, text).expect("write");
            let err = load(&path).expect_err("out of range");
            assert!(matches!(err, ConfigError::Invalid { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains("config.toml") && msg.contains(needle), "{msg}");
        }
    }

    fn rule(id: &str) -> crate::safety::CustomRule {
        let mut r: crate::safety::CustomRule =
            toml::from_str("id = \"x\"\nlevel = \"high\"\nmessage = \"m\"\nprogram = \"psql\"\n")
                .expect("rule");
        r.id = id.to_owned();
        r
    }

    fn many_rules(n: usize) -> SafetyConfig {
        SafetyConfig {
            rules: (0..n).map(|i| rule(&format!("team.rule-{i}"))).collect(),
            // Allow entries naming custom rules were checked with a scan of the rules, too.
            allow: (0..n)
                .map(|i| crate::safety::AllowEntry {
                    rule: Some(format!("team.rule-{i}")),
                    ..Default::default()
                })
                .collect(),
            ..SafetyConfig::default()
        }
    }

    #[test]
    fn fifty_thousand_custom_rules_validate_in_linear_time() {
        // With the old Vec scans, these ids took about 10 s to check in release (32,000 rules
        // took 8.7 s through `caro`); with sets, milliseconds. The bound is generous for slow
        // machines and debug builds.
        let config = many_rules(50_000);
        let start = std::time::Instant::now();
        crate::safety::SafetyValidator::from_config(&config).expect("valid");
        let took = start.elapsed();
        assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    }

    #[test]
    fn duplicate_custom_rule_ids_are_still_rejected_among_many() {
        let n = 10_000;
        let mut config = many_rules(n);
        config.rules.push(rule("team.rule-0"));
        let msg = crate::safety::SafetyValidator::from_config(&config)
            .expect_err("duplicate")
            .to_string();
        assert!(
            msg.contains(&format!("rules[{n}].id")) && msg.contains("already taken"),
            "{msg}"
        );
        let mut config = many_rules(n);
        config.rules.push(rule("fs.delete_root"));
        let msg = crate::safety::SafetyValidator::from_config(&config)
            .expect_err("built-in id")
            .to_string();
        assert!(msg.contains("already taken"), "{msg}");
        let mut config = many_rules(n);
        config.allow.push(crate::safety::AllowEntry {
            rule: Some(format!("team.rule-{n}")),
            ..Default::default()
        });
        let msg = crate::safety::SafetyValidator::from_config(&config)
            .expect_err("unknown id")
            .to_string();
        assert!(msg.contains("no rule is called"), "{msg}");
    }

    #[test]
    fn a_config_with_thousands_of_rules_fits_under_the_size_cap() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.toml");
        let mut text = "version = 1\n[safety]\nmode = \"strict\"\n".to_owned();
        for i in 0..3_000 {
            text.push_str(&format!(
                "\n[[safety.rules]]\nid = \"team.rule-{i}\"\nlevel = \"high\"\nmessage = \"connects to production database {i}\"\nprogram = \"psql\"\nargs_any = [\"*prod-{i}*\"]\n"
            ));
        }
        assert!(
            text.len() as u64 <= MAX_CONFIG_BYTES,
            "{} bytes",
            text.len()
        );
        std::fs::write(&path, &text).expect("write");
        let loaded = load(&path).expect("load");
        assert_eq!(loaded.config.safety.rules.len(), 3_000);
    }

    #[test]
    fn backups_never_overwrite_earlier_ones() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.toml");
        let mut made = Vec::new();
        for i in 0..3 {
            std::fs::write(&path, format!("# version {i}\n")).expect("write");
            made.push(backup(&path).expect("backup"));
        }
        let names: Vec<_> = made
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["config.toml.bak", "config.toml.bak.1", "config.toml.bak.2"]
        );
        for (i, p) in made.iter().enumerate() {
            assert_eq!(
                std::fs::read_to_string(p).expect("read"),
                format!("# version {i}\n")
            );
        }
    }

    #[test]
    fn migration_keeps_an_existing_backup() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.toml");
        let older = dir.path().join("config.toml.bak");
        std::fs::write(&older, "# the user's own backup\n").expect("write");
        std::fs::write(&path, UPSTREAM).expect("write");
        let m = load(&path).expect("load").migration.expect("migrated");
        assert_eq!(m.backup, dir.path().join("config.toml.bak.1"));
        assert_eq!(std::fs::read_to_string(&m.backup).expect("read"), UPSTREAM);
        assert_eq!(
            std::fs::read_to_string(&older).expect("read"),
            "# the user's own backup\n"
        );
    }

    #[cfg(unix)]
    #[test]
    fn save_through_a_symlink_writes_the_target_and_keeps_the_link() {
        let dir = tempfile::tempdir().expect("tmp");
        let target = dir.path().join("dotfiles").join("caro.toml");
        std::fs::create_dir_all(target.parent().expect("dir")).expect("mkdir");
        std::fs::write(&target, "version = 1\n").expect("write");
        let link = dir.path().join("config.toml");
        std::os::unix::fs::symlink(&target, &link).expect("ln");
        let c = CaroConfig {
            default_backend: Some(BackendKind::Ollama),
            ..CaroConfig::default()
        };
        save(&link, &c).expect("save");
        assert!(
            std::fs::symlink_metadata(&link)
                .expect("stat")
                .file_type()
                .is_symlink(),
            "the link is still a link"
        );
        assert!(
            std::fs::read_to_string(&target)
                .expect("read")
                .contains("default_backend = \"ollama\"")
        );
        assert_eq!(
            load(&link).expect("load").config.default_backend,
            Some(BackendKind::Ollama)
        );
    }
}

/// Where caro's config file lives: `$CARO_CONFIG`, else `$XDG_CONFIG_HOME/caro/config.toml`,
/// else `~/.config/caro/config.toml` (on Windows, the roaming AppData folder).
pub fn config_file_path() -> Option<std::path::PathBuf> {
    config_file_path_from(
        |k| std::env::var_os(k),
        dirs::home_dir(),
        dirs::config_dir(),
    )
}

/// Pure form of [`config_file_path`], so the precedence can be tested anywhere.
pub fn config_file_path_from(
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
    home: Option<std::path::PathBuf>,
    platform_config: Option<std::path::PathBuf>,
) -> Option<std::path::PathBuf> {
    if let Some(p) = env("CARO_CONFIG").filter(|p| !p.is_empty()) {
        return Some(p.into());
    }
    if let Some(x) = env("XDG_CONFIG_HOME").filter(|p| !p.is_empty()) {
        return Some(std::path::PathBuf::from(x).join("caro").join("config.toml"));
    }
    if cfg!(windows) {
        return platform_config.map(|d| d.join("caro").join("config.toml"));
    }
    home.map(|h| h.join(".config").join("caro").join("config.toml"))
}

#[cfg(test)]
mod path_tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn caro_config_wins_then_xdg_then_home() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).into())
            }
        };
        let home = Some(PathBuf::from("/home/u"));
        assert_eq!(
            config_file_path_from(
                env(&[("CARO_CONFIG", "/x.toml"), ("XDG_CONFIG_HOME", "/xdg")]),
                home.clone(),
                None
            ),
            Some(PathBuf::from("/x.toml"))
        );
        if !cfg!(windows) {
            assert_eq!(
                config_file_path_from(env(&[("XDG_CONFIG_HOME", "/xdg")]), home.clone(), None),
                Some(PathBuf::from("/xdg/caro/config.toml"))
            );
            assert_eq!(
                config_file_path_from(env(&[]), home, None),
                Some(PathBuf::from("/home/u/.config/caro/config.toml"))
            );
        }
    }
}
