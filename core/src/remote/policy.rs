//! Retry and fallback policy for remote backends, as a pure function of the failure and the
//! number of retries already made. No I/O, so every branch is tested without a network.

use std::time::Duration;

/// Retries after the first attempt, for failures that may pass (connection, timeout, 5xx).
pub const MAX_RETRIES: u32 = 2;

/// Why a remote attempt failed, reduced to what the policy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// Nothing listening, DNS failure, TLS handshake failure.
    Connect,
    Timeout,
    /// 5xx.
    Server(u16),
    /// 401 or 403: the key was rejected.
    Auth(u16),
    /// Any other 4xx (unknown model, bad request).
    Client(u16),
    /// The body was not the protocol's JSON.
    Malformed,
    /// The model answered, but with no usable command.
    NoCommand,
    /// The reply body was over [`crate::remote::MAX_REPLY_BYTES`]: no Ollama or vLLM answer is
    /// that large, so the URL likely points at another kind of server.
    ReplyTooLarge,
}

impl FailureKind {
    /// Stable identifier for scripts and UIs, carried into [`crate::GeneratorError::code`]:
    /// `reply_too_large` for an oversized reply, `remote_failed` for everything else.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ReplyTooLarge => "reply_too_large",
            _ => "remote_failed",
        }
    }
}

/// One failed attempt, with a message for logs and `fallback_reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFailure {
    pub kind: FailureKind,
    pub message: String,
}

impl std::fmt::Display for RemoteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl RemoteFailure {
    /// The failure's stable code; see [`FailureKind::code`].
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Retry { after: Duration },
    FallBack,
}

/// Backoff before retry number `n` (0-based): 250 ms, then 500 ms.
pub fn backoff(n: u32) -> Duration {
    Duration::from_millis(250u64 << n.min(4))
}

/// The policy: transient failures are retried up to [`MAX_RETRIES`] times with backoff; a
/// rejected key, a client error, a malformed or oversized reply or a reply without a command
/// fall back at once, because asking again would get the same answer.
pub fn next_step(kind: &FailureKind, retries_done: u32) -> NextStep {
    let transient = matches!(
        kind,
        FailureKind::Connect | FailureKind::Timeout | FailureKind::Server(_)
    );
    if transient && retries_done < MAX_RETRIES {
        NextStep::Retry {
            after: backoff(retries_done),
        }
    } else {
        NextStep::FallBack
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::connect(FailureKind::Connect)]
    #[case::timeout(FailureKind::Timeout)]
    #[case::server_500(FailureKind::Server(500))]
    #[case::server_503(FailureKind::Server(503))]
    fn transient_failures_retry_twice_then_fall_back(#[case] kind: FailureKind) {
        assert_eq!(
            next_step(&kind, 0),
            NextStep::Retry {
                after: Duration::from_millis(250)
            }
        );
        assert_eq!(
            next_step(&kind, 1),
            NextStep::Retry {
                after: Duration::from_millis(500)
            }
        );
        assert_eq!(next_step(&kind, 2), NextStep::FallBack);
    }

    #[rstest]
    #[case::unauthorized(FailureKind::Auth(401))]
    #[case::forbidden(FailureKind::Auth(403))]
    #[case::not_found(FailureKind::Client(404))]
    #[case::malformed(FailureKind::Malformed)]
    #[case::no_command(FailureKind::NoCommand)]
    #[case::reply_too_large(FailureKind::ReplyTooLarge)]
    fn permanent_failures_fall_back_at_once(#[case] kind: FailureKind) {
        assert_eq!(next_step(&kind, 0), NextStep::FallBack);
    }
}
