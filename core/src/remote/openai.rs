//! vLLM through its OpenAI-compatible API: `POST /v1/chat/completions` with a Bearer key, and
//! `GET /v1/models` as the health probe. llama.cpp's llama-server speaks the same API.

use super::policy::{FailureKind, RemoteFailure};
use super::{Http, RemoteBackend, RemoteConfig, answer};
use crate::error::GeneratorError;
use crate::generator::{
    BackendInfo, CommandGenerator, CommandRequest, GeneratedCommand, Timings, TokenCounts,
};
use crate::prompt;
use serde::Deserialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct VllmBackend {
    http: Http,
    /// The model `/v1/models` reported, when none was configured.
    discovered: Mutex<Option<String>>,
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: usize,
    #[serde(default)]
    completion_tokens: usize,
}

impl VllmBackend {
    pub fn new(cfg: RemoteConfig) -> Self {
        Self {
            http: Http::new(cfg, "vllm"),
            discovered: Mutex::new(None),
        }
    }

    pub fn health(&self) -> Result<(), RemoteFailure> {
        self.http.health.get_or(|| self.probe())
    }

    fn model(&self) -> String {
        if !self.http.cfg.model.is_empty() {
            return self.http.cfg.model.clone();
        }
        self.discovered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default()
    }

    fn with_key(&self, rb: reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder {
        match &self.http.cfg.api_key {
            Some(k) if !k.is_empty() => rb.bearer_auth(k),
            _ => rb,
        }
    }

    fn what(&self) -> String {
        format!("vllm at {}", self.http.cfg.url)
    }
}

impl RemoteBackend for VllmBackend {
    fn name(&self) -> &'static str {
        "vllm"
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
        if self.http.cfg.model.is_empty() && self.model().is_empty() {
            self.probe()?;
        }
        let model = self.model();
        let messages = prompt::build_messages(request);
        let body = serde_json::json!({
            "model": model,
            "messages": messages,
            "temperature": self.http.cfg.temperature,
            "max_tokens": self.http.cfg.max_tokens,
            "stream": false,
        });
        let what = self.what();
        let start = Instant::now();
        let post = self
            .http
            .client
            .post(format!("{}/v1/chat/completions", self.http.base))
            .timeout(limit);
        let text = self
            .http
            .fetch(self.with_key(post).json(&body), &what, limit)?;
        let reply: Completion = serde_json::from_str(&text).map_err(|e| RemoteFailure {
            kind: FailureKind::Malformed,
            message: format!("{what}: the reply is not OpenAI chat-completion JSON ({e})"),
        })?;
        let content = reply
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .ok_or_else(|| RemoteFailure {
                kind: FailureKind::Malformed,
                message: format!("{what}: the reply has no choices"),
            })?;
        let total = start.elapsed().as_secs_f64() * 1000.0;
        let usage = reply.usage.unwrap_or(Usage {
            prompt_tokens: 0,
            completion_tokens: 0,
        });
        let mut warnings = Vec::new();
        if self.http.cfg.plain_http_to_remote_host() {
            warnings.push(format!(
                "{} is plain http to another machine: use https",
                self.http.cfg.url
            ));
        }
        self.http.health.clear();
        answer(
            "vllm",
            &model,
            content,
            Timings {
                load: 0.0,
                prefill: 0.0,
                decode: 0.0,
                total,
            },
            TokenCounts {
                prompt: usage.prompt_tokens,
                cached: 0,
                generated: usage.completion_tokens,
            },
            warnings,
        )
    }

    fn probe(&self) -> Result<(), RemoteFailure> {
        let what = self.what();
        let text = self.http.fetch(
            self.with_key(
                self.http
                    .probe_client
                    .get(format!("{}/v1/models", self.http.base)),
            ),
            &what,
            self.http.cfg.probe_timeout,
        )?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| RemoteFailure {
            kind: FailureKind::Malformed,
            message: format!(
                "{what}: /v1/models did not return JSON; is this an OpenAI-compatible server?"
            ),
        })?;
        let ids: Vec<String> = v["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if self.http.cfg.model.is_empty() {
            let first = ids.first().cloned().ok_or_else(|| RemoteFailure {
                kind: FailureKind::Client(404),
                message: format!("{what}: the server lists no models"),
            })?;
            *self.discovered.lock().unwrap_or_else(|p| p.into_inner()) = Some(first);
        } else if !ids.is_empty() && !ids.contains(&self.http.cfg.model) {
            return Err(RemoteFailure {
                kind: FailureKind::Client(404),
                message: format!(
                    "{what}: model {:?} is not served (it serves: {})",
                    self.http.cfg.model,
                    ids.join(", ")
                ),
            });
        }
        Ok(())
    }
}

impl CommandGenerator for VllmBackend {
    fn generate_command(
        &self,
        request: &CommandRequest,
    ) -> Result<GeneratedCommand, GeneratorError> {
        self.attempt(request).map_err(|f| GeneratorError::Remote {
            backend: "vllm".into(),
            code: f.code(),
            message: f.message,
        })
    }

    fn is_available(&self) -> bool {
        self.health().is_ok()
    }

    fn backend_info(&self) -> BackendInfo {
        BackendInfo {
            name: "vllm".into(),
            model: self.model(),
            engine: self.http.cfg.url.clone(),
            loaded: false,
        }
    }

    fn shutdown(&self) {}
}
