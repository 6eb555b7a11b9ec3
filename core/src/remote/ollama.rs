//! Ollama's native API: `POST /api/chat` with `stream: false`, a JSON schema in `format`, and
//! `GET /api/tags` as the health probe.

use super::policy::{FailureKind, RemoteFailure};
use super::{
    HealthCache, RemoteBackend, RemoteConfig, base_url, blocking_client, classify, status_failure,
};
use crate::error::GeneratorError;
use crate::generator::{
    BackendInfo, CommandGenerator, CommandRequest, GeneratedCommand, Timings, TokenCounts,
};
use crate::{parse, prompt};
use serde::Deserialize;
use std::time::Instant;

#[derive(Debug)]
pub struct OllamaBackend {
    cfg: RemoteConfig,
    base: String,
    client: reqwest::blocking::Client,
    probe_client: reqwest::blocking::Client,
    health: HealthCache,
}

#[derive(Deserialize)]
struct ChatReply {
    message: Option<ReplyMessage>,
    #[serde(default)]
    prompt_eval_count: usize,
    #[serde(default)]
    eval_count: usize,
    #[serde(default)]
    prompt_eval_duration: u64,
    #[serde(default)]
    eval_duration: u64,
    #[serde(default)]
    load_duration: u64,
}

#[derive(Deserialize)]
struct ReplyMessage {
    content: String,
}

impl OllamaBackend {
    pub fn new(cfg: RemoteConfig) -> Self {
        if cfg.plain_http_to_remote_host() {
            tracing::warn!(url = %cfg.url, "ollama is reached over plain http on a non-loopback host; use https");
        }
        let probe_cfg = RemoteConfig {
            timeout: cfg.probe_timeout,
            connect_timeout: cfg.probe_timeout,
            ..cfg.clone()
        };
        Self {
            base: base_url(&cfg.url),
            client: blocking_client(&cfg),
            probe_client: blocking_client(&probe_cfg),
            cfg,
            health: HealthCache::default(),
        }
    }

    /// The probe's result, cached for a few seconds.
    pub fn health(&self) -> Result<(), RemoteFailure> {
        self.health.get_or(|| self.probe())
    }
}

fn shared_answer(
    backend: &'static str,
    model: &str,
    raw: String,
    timings: Timings,
    tokens: TokenCounts,
    warnings: Vec<String>,
) -> Result<GeneratedCommand, RemoteFailure> {
    let command = parse::extract_command(&raw).ok_or_else(|| RemoteFailure {
        kind: FailureKind::NoCommand,
        message: format!("{backend}: the reply held no usable command"),
    })?;
    let mut warnings = warnings;
    if command != raw.trim() {
        warnings.push("the command was extracted from a longer reply".to_owned());
    }
    Ok(GeneratedCommand {
        command,
        explanation: None,
        backend: backend.to_owned(),
        model: model.to_owned(),
        timings,
        tokens,
        warnings,
        raw_output: raw,
        fallback_reason: None,
    })
}

pub(super) fn answer(
    backend: &'static str,
    model: &str,
    raw: String,
    timings: Timings,
    tokens: TokenCounts,
    warnings: Vec<String>,
) -> Result<GeneratedCommand, RemoteFailure> {
    shared_answer(backend, model, raw, timings, tokens, warnings)
}

impl RemoteBackend for OllamaBackend {
    fn name(&self) -> &'static str {
        "ollama"
    }

    fn url(&self) -> &str {
        &self.cfg.url
    }

    fn attempt(&self, request: &CommandRequest) -> Result<GeneratedCommand, RemoteFailure> {
        let messages = prompt::build_messages(request);
        let body = serde_json::json!({
            "model": self.cfg.model,
            "messages": messages,
            "stream": false,
            "format": {
                "type": "object",
                "properties": { "command": { "type": "string" } },
                "required": ["command"]
            },
            "options": {
                "temperature": self.cfg.temperature,
                "num_predict": self.cfg.max_tokens,
            }
        });
        let start = Instant::now();
        let what = format!("ollama at {}", self.cfg.url);
        let resp = self
            .client
            .post(format!("{}/api/chat", self.base))
            .json(&body)
            .send()
            .map_err(|e| classify(&e, &what))?;
        let status = resp.status();
        let text = resp.text().map_err(|e| classify(&e, &what))?;
        if !status.is_success() {
            return Err(status_failure(status, &text, &what));
        }
        let reply: ChatReply = serde_json::from_str(&text).map_err(|e| RemoteFailure {
            kind: FailureKind::Malformed,
            message: format!("{what}: the reply is not Ollama's chat JSON ({e})"),
        })?;
        let Some(message) = reply.message else {
            return Err(RemoteFailure {
                kind: FailureKind::Malformed,
                message: format!("{what}: the reply has no message"),
            });
        };
        let ns = |v: u64| v as f64 / 1e6;
        let timings = Timings {
            load: ns(reply.load_duration),
            prefill: ns(reply.prompt_eval_duration),
            decode: ns(reply.eval_duration),
            total: start.elapsed().as_secs_f64() * 1000.0,
        };
        let tokens = TokenCounts {
            prompt: reply.prompt_eval_count,
            cached: 0,
            generated: reply.eval_count,
        };
        self.health.clear();
        answer(
            "ollama",
            &self.cfg.model,
            message.content,
            timings,
            tokens,
            Vec::new(),
        )
    }

    fn probe(&self) -> Result<(), RemoteFailure> {
        let what = format!("ollama at {}", self.cfg.url);
        let resp = self
            .probe_client
            .get(format!("{}/api/tags", self.base))
            .send()
            .map_err(|e| classify(&e, &what))?;
        let status = resp.status();
        let text = resp.text().map_err(|e| classify(&e, &what))?;
        if !status.is_success() {
            return Err(status_failure(status, &text, &what));
        }
        let tags: serde_json::Value = serde_json::from_str(&text).map_err(|_| RemoteFailure {
            kind: FailureKind::Malformed,
            message: format!("{what}: /api/tags did not return JSON; is this an Ollama server?"),
        })?;
        let models: Vec<&str> = tags["models"]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["name"].as_str()).collect())
            .unwrap_or_default();
        if !self.cfg.model.is_empty()
            && !models.is_empty()
            && !models.iter().any(|m| {
                *m == self.cfg.model || m.split(':').next() == Some(self.cfg.model.as_str())
            })
        {
            return Err(RemoteFailure {
                kind: FailureKind::Client(404),
                message: format!(
                    "{what}: model {:?} is not pulled (run `ollama pull {}`)",
                    self.cfg.model, self.cfg.model
                ),
            });
        }
        Ok(())
    }
}

impl CommandGenerator for OllamaBackend {
    fn generate_command(
        &self,
        request: &CommandRequest,
    ) -> Result<GeneratedCommand, GeneratorError> {
        self.attempt(request).map_err(|f| GeneratorError::Remote {
            backend: "ollama".into(),
            message: f.message,
        })
    }

    fn is_available(&self) -> bool {
        self.health().is_ok()
    }

    fn backend_info(&self) -> BackendInfo {
        BackendInfo {
            name: "ollama".into(),
            model: self.cfg.model.clone(),
            engine: self.cfg.url.clone(),
            loaded: false,
        }
    }

    fn shutdown(&self) {}
}
