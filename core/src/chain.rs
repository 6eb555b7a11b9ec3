//! Builds the generator a frontend uses from the resolved settings: the embedded model, or a
//! remote backend wrapped in the fallback chain. The CLI, `caro serve` and the tray app share it.

use crate::remote::{FallbackChain, OllamaBackend, RemoteBackend, RemoteConfig, VllmBackend};
use crate::settings::{BackendKind, Resolved, Source};
use crate::{
    CommandGenerator, EmbeddedConfig, EmbeddedModelBackend, GeneratorError, ModelVariant, models,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The embedded model's path: the resolved one, or the cache's default. `Err` says where caro
/// looked, for status displays and errors.
pub fn embedded_path(res: &Resolved) -> Result<PathBuf, GeneratorError> {
    models::resolve_model_path(
        res.config.embedded.model_path.as_deref(),
        res.config.embedded.model.as_deref(),
    )
}

/// The model a run uses: `[embedded] model` / CARO_MODEL, else the default.
pub fn selected_model(res: &Resolved) -> models::ModelManifest {
    res.config
        .embedded
        .model
        .as_deref()
        .and_then(models::manifest::find)
        .or_else(models::manifest::default_model)
        .unwrap_or_else(|| models::manifest::builtin().remove(0))
}

pub fn remote_config(kind: BackendKind, res: &Resolved, embedded: &EmbeddedConfig) -> RemoteConfig {
    let (url, model, timeout) = match kind {
        BackendKind::Ollama => (
            &res.config.ollama.url,
            res.config.ollama.model.clone(),
            res.config.ollama.timeout_secs,
        ),
        _ => (
            &res.config.vllm.url,
            res.config.vllm.model.clone(),
            res.config.vllm.timeout_secs,
        ),
    };
    let mut c = RemoteConfig::new(url.clone(), model);
    c.timeout = Duration::from_secs(timeout.max(1));
    c.temperature = embedded.temperature;
    c.max_tokens = embedded.max_tokens;
    if kind == BackendKind::Vllm {
        c.api_key = res.vllm_api_key.clone();
    }
    c
}

pub fn remote(
    kind: BackendKind,
    res: &Resolved,
    embedded: &EmbeddedConfig,
) -> Box<dyn RemoteBackend> {
    let c = remote_config(kind, res, embedded);
    match kind {
        BackendKind::Ollama => Box::new(OllamaBackend::new(c)),
        _ => Box::new(VllmBackend::new(c)),
    }
}

/// What a run generates with: the chosen generator, the embedded model (for `--explain`), and
/// a fallback reason decided before any request.
pub type Built = (
    Arc<dyn CommandGenerator>,
    Arc<EmbeddedModelBackend>,
    Option<String>,
);

/// The generator for this run, and a fallback reason decided before any request: a remote
/// backend picked by the config file (not by `--backend`) that fails its health probe is
/// skipped for the embedded model at once, instead of costing three attempts.
pub fn build(res: &Resolved, embedded_cfg: EmbeddedConfig) -> Result<Built, GeneratorError> {
    build_inner(res, embedded_cfg, false)
}

/// [`build`] for a frontend that downloads the model itself (the tray app's first launch):
/// a missing cached model is not an error; the embedded backend points at where the download
/// will put it and loads it lazily once it is there.
pub fn build_awaiting_model(
    res: &Resolved,
    embedded_cfg: EmbeddedConfig,
) -> Result<Built, GeneratorError> {
    build_inner(res, embedded_cfg, true)
}

/// The model this run needs downloaded first: the embedded backend is selected, no explicit
/// `model_path` is set, and the selected model is not in the cache whole (the file there has
/// the manifest's size). The one decision: the CLI's first run and the tray's first launch
/// both ask it.
pub fn model_to_fetch(res: &Resolved) -> Option<models::ModelManifest> {
    if res.backend != BackendKind::Embedded || res.config.embedded.model_path.is_some() {
        return None;
    }
    let m = selected_model(res);
    let store = models::ModelStore::from_env().ok()?;
    store.installed(&m).is_none().then_some(m)
}

fn build_inner(
    res: &Resolved,
    embedded_cfg: EmbeddedConfig,
    allow_missing: bool,
) -> Result<Built, GeneratorError> {
    let path = match (res.backend, embedded_path(res)) {
        (_, Ok(p)) => p,
        (BackendKind::Embedded, Err(e)) if !allow_missing || model_to_fetch(res).is_none() => {
            return Err(e);
        }
        // A remote backend can work without the model; the fallback then reports it missing.
        (_, Err(_)) => res.config.embedded.model_path.clone().unwrap_or_else(|| {
            models::cache_dir()
                .unwrap_or_default()
                .join(selected_model(res).file)
        }),
    };
    let embedded = Arc::new(EmbeddedModelBackend::new(path, embedded_cfg.clone())?);
    if res.backend == BackendKind::Embedded {
        return Ok((embedded.clone(), embedded, None));
    }
    let remote = remote(res.backend, res, &embedded_cfg);
    if res.backend_source != Source::Flag
        && let Err(f) = remote.probe()
    {
        let reason = format!(
            "{f} (health check; {} chose this backend)",
            res.backend_source.as_str()
        );
        tracing::info!(reason = %reason, "using the embedded model");
        return Ok((embedded.clone(), embedded, Some(reason)));
    }
    let chain: Arc<dyn CommandGenerator> = Arc::new(FallbackChain::new(remote, embedded.clone()));
    Ok((chain, embedded, None))
}

/// One backend's health, for `caro status`, `caro --list-backends` and the tray's
/// "Check backends": the same probes and the same words in each.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackendHealth {
    pub backend: &'static str,
    pub healthy: bool,
    /// The backend the settings chose.
    pub selected: bool,
    /// A remote backend's address.
    pub url: Option<String>,
    /// The model file (embedded) or the model name asked for (remote).
    pub model: String,
    /// The engine and size when healthy, else what is wrong and what to do.
    pub detail: String,
}

/// The engine the embedded model runs on, in a word.
pub fn engine_name(v: ModelVariant) -> &'static str {
    match v {
        ModelVariant::Mlx => "MLX",
        _ => "CPU",
    }
}

/// Every backend's health: the embedded model's file, then each remote's health probe.
pub fn health(res: &Resolved) -> Vec<BackendHealth> {
    let cfg = EmbeddedConfig::default();
    let (healthy, detail, model) = match embedded_path(res) {
        Ok(p) => {
            let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            (
                true,
                format!(
                    "{}, {}",
                    engine_name(res.variant()),
                    models::human_size(size)
                ),
                p.display().to_string(),
            )
        }
        Err(e) => (
            false,
            format!("model missing: {e}; run `caro model pull`"),
            String::new(),
        ),
    };
    let mut out = vec![BackendHealth {
        backend: "embedded",
        healthy,
        selected: res.backend == BackendKind::Embedded,
        url: None,
        model,
        detail,
    }];
    for kind in [BackendKind::Ollama, BackendKind::Vllm] {
        let rc = remote_config(kind, res, &cfg);
        let (healthy, detail) = match remote(kind, res, &cfg).probe() {
            Ok(()) => (true, "reachable".to_owned()),
            // The probe's message starts with the backend's name, which the list shows already.
            Err(f) => (
                false,
                f.message
                    .split_once(": ")
                    .map(|(_, m)| m.to_owned())
                    .unwrap_or(f.message),
            ),
        };
        out.push(BackendHealth {
            backend: kind.as_str(),
            healthy,
            selected: res.backend == kind,
            url: Some(rc.url),
            model: rc.model,
            detail,
        });
    }
    out
}
