//! Ollama's native API: `POST /api/chat` with `stream: false`, a JSON schema in `format`, and
//! `GET /api/tags` as the health probe.

use super::policy::{FailureKind, RemoteFailure};
use super::{Http, RemoteBackend, RemoteConfig, answer};
use crate::error::GeneratorError;
use crate::generator::{
    BackendInfo, CommandGenerator, CommandRequest, GeneratedCommand, Timings, TokenCounts,
};
use crate::prompt;
use serde::Deserialize;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct OllamaBackend {
    http: Http,
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
        Self {
            http: Http::new(cfg, "ollama"),
        }
    }

    /// The probe's result, cached for a few seconds.
    pub fn health(&self) -> Result<(), RemoteFailure> {
        self.http.health.get_or(|| self.probe())
    }
}

impl RemoteBackend for OllamaBackend {
    fn name(&self) -> &'static str {
        "ollama"
    }

    fn url(&self) -> &str {
        &self.http.cfg.url
    }

    fn attempt(&self, request: &CommandRequest) -> Result<GeneratedCommand, RemoteFailure> {
        self.attempt_within(request, self.http.cfg.timeout)
    }

    fn attempt_within(
        &self,
        request: &CommandRequest,
        limit: Duration,
    ) -> Result<GeneratedCommand, RemoteFailure> {
        // The request's deadline may leave less than the backend's own timeout.
        let limit = limit.min(self.http.cfg.timeout);
        let messages = prompt::build_messages(request);
        let body = serde_json::json!({
            "model": self.http.cfg.model,
            "messages": messages,
            "stream": false,
            "format": {
                "type": "object",
                "properties": { "command": { "type": "string" } },
                "required": ["command"]
            },
            "options": {
                "temperature": self.http.cfg.temperature,
                "num_predict": self.http.cfg.max_tokens,
            }
        });
        let start = Instant::now();
        let what = format!("ollama at {}", self.http.cfg.url);
        let text = self.http.fetch(
            self.http
                .client
                .post(format!("{}/api/chat", self.http.base))
                .timeout(limit)
                .json(&body),
            &what,
            limit,
        )?;
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
        self.http.health.clear();
        answer(
            "ollama",
            &self.http.cfg.model,
            message.content,
            timings,
            tokens,
            Vec::new(),
        )
    }

    fn probe(&self) -> Result<(), RemoteFailure> {
        let what = format!("ollama at {}", self.http.cfg.url);
        let text = self.http.fetch(
            self.http
                .probe_client
                .get(format!("{}/api/tags", self.http.base)),
            &what,
            self.http.cfg.probe_timeout,
        )?;
        let tags: serde_json::Value = serde_json::from_str(&text).map_err(|_| RemoteFailure {
            kind: FailureKind::Malformed,
            message: format!("{what}: /api/tags did not return JSON; is this an Ollama server?"),
        })?;
        let models: Vec<&str> = tags["models"]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["name"].as_str()).collect())
            .unwrap_or_default();
        if !self.http.cfg.model.is_empty()
            && !models.is_empty()
            && !models.iter().any(|m| {
                *m == self.http.cfg.model
                    || m.split(':').next() == Some(self.http.cfg.model.as_str())
            })
        {
            return Err(RemoteFailure {
                kind: FailureKind::Client(404),
                message: format!(
                    "{what}: model {:?} is not pulled (run `ollama pull {}`)",
                    self.http.cfg.model, self.http.cfg.model
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
            code: f.code(),
            message: f.message,
        })
    }

    fn is_available(&self) -> bool {
        self.health().is_ok()
    }

    fn backend_info(&self) -> BackendInfo {
        BackendInfo {
            name: "ollama".into(),
            model: self.http.cfg.model.clone(),
            engine: self.http.cfg.url.clone(),
            loaded: false,
        }
    }

    fn shutdown(&self) {}
}
