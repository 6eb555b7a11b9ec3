//! The one error shape the popup gets: a stable code, a message for people, and what to do
//! next, from core's hint for the code (gitbutler's `{code, message}`, with the hint).

use caro_core::pipeline::{RequestError, RunError};
use serde::Serialize;

/// An error as the UI gets it: a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: String,
    pub message: String,
    /// What to do next, from core's hint for the code.
    pub hint: Option<String>,
}

impl ApiError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            hint: None,
        }
    }
}

impl From<caro_core::GeneratorError> for ApiError {
    fn from(e: caro_core::GeneratorError) -> Self {
        Self {
            hint: e.hint(),
            ..Self::new(e.code(), e.to_string())
        }
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        Self {
            hint: e.hint(),
            ..Self::new(e.code(), e.to_string())
        }
    }
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        Self {
            hint: e.hint(),
            ..Self::new(e.code(), e.to_string())
        }
    }
}
