//! The daemon's wire protocol: one JSON object per line each way, versioned, size-capped, and
//! parsed without trusting the peer.

use crate::generator::{BackendInfo, CommandRequest, GeneratedCommand};
use crate::shell::ShellType;
use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change; a peer with another version gets `unsupported_version`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest message either side accepts, newline included. Prompts are capped far below this.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Generate a command, as `CommandGenerator::generate_command` would.
    Generate {
        request: CommandRequest,
        /// The client's deadline for this request, in ms; the daemon stops generating past it.
        /// Absent: the daemon's own limit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Explain a command in plain words.
    Explain {
        command: String,
        shell: ShellType,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// What the daemon runs and how it is doing.
    Status,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub v: u32,
    pub id: u64,
    #[serde(flatten)]
    pub op: Op,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub version: String,
    pub pid: u32,
    pub backend: BackendInfo,
    pub model_loaded: bool,
    pub uptime_secs: u64,
    pub requests_served: u64,
    /// Requests dropped because their client left (before or during generation) or the
    /// daemon was stopping.
    #[serde(default)]
    pub requests_cancelled: u64,
    /// Idle time after which the model is unloaded; `None` keeps it loaded.
    pub idle_unload_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    Generated { command: GeneratedCommand },
    Explanation { text: String },
    Status { status: DaemonStatus },
}

/// An error as it crosses the socket: a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    pub code: String,
    pub message: String,
}

impl WireError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub v: u32,
    /// The request's id; 0 when the request could not be read far enough to know it.
    pub id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<Reply>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
}

impl Response {
    pub fn ok(id: u64, reply: Reply) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            id,
            ok: Some(reply),
            error: None,
        }
    }

    pub fn err(id: u64, error: WireError) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            id,
            ok: None,
            error: Some(error),
        }
    }
}

/// Parses one request line (without its newline). Every failure is a [`WireError`] to send
/// back, with the request id when it could be read.
pub fn parse_request(line: &[u8]) -> Result<Request, (u64, WireError)> {
    if line.len() >= MAX_MESSAGE_BYTES {
        return Err((
            0,
            WireError::new(
                "message_too_large",
                format!("a message may hold at most {MAX_MESSAGE_BYTES} bytes"),
            ),
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(line).map_err(|e| {
        (
            0,
            WireError::new("bad_request", format!("not a JSON object: {e}")),
        )
    })?;
    let id = value
        .get("id")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    match value.get("v").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(PROTOCOL_VERSION) => {}
        Some(v) => {
            return Err((
                id,
                WireError::new(
                    "unsupported_version",
                    format!(
                        "protocol version {v} is not supported (this daemon speaks {PROTOCOL_VERSION})"
                    ),
                ),
            ));
        }
        None => {
            return Err((
                id,
                WireError::new("bad_request", "missing protocol version `v`"),
            ));
        }
    }
    serde_json::from_value(value).map_err(|e| {
        (
            id,
            WireError::new("bad_request", format!("invalid request: {e}")),
        )
    })
}

/// One message as a line, ready to write.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut line = serde_json::to_vec(msg).unwrap_or_else(|_| b"{}".to_vec());
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn a_generate_request_round_trips() {
        let req = Request {
            v: PROTOCOL_VERSION,
            id: 7,
            op: Op::Generate {
                request: CommandRequest::new("list files", ShellType::Bash),
                timeout_ms: Some(1500),
            },
        };
        let line = encode(&req);
        assert_eq!(line.last(), Some(&b'\n'));
        let parsed = parse_request(&line[..line.len() - 1]).expect("parses");
        assert_eq!(parsed, req);
    }

    #[rstest]
    #[case::not_json(b"hello".as_slice(), "bad_request", 0)]
    #[case::not_an_object(b"[1,2]".as_slice(), "bad_request", 0)]
    #[case::no_version(br#"{"id":3,"op":"status"}"#.as_slice(), "bad_request", 3)]
    #[case::future_version(br#"{"v":99,"id":4,"op":"status"}"#.as_slice(), "unsupported_version", 4)]
    #[case::unknown_op(br#"{"v":1,"id":5,"op":"rm_rf"}"#.as_slice(), "bad_request", 5)]
    #[case::missing_field(br#"{"v":1,"id":6,"op":"explain"}"#.as_slice(), "bad_request", 6)]
    #[case::bad_shell(br#"{"v":1,"id":8,"op":"explain","command":"ls","shell":"tcsh"}"#.as_slice(), "bad_request", 8)]
    fn malformed_requests_get_a_coded_error(
        #[case] line: &[u8],
        #[case] code: &str,
        #[case] id: u64,
    ) {
        let (got_id, err) = parse_request(line).expect_err("rejected");
        assert_eq!(err.code, code, "{}", err.message);
        assert_eq!(got_id, id);
    }

    #[test]
    fn oversized_messages_are_refused_before_parsing() {
        let line = vec![b'x'; MAX_MESSAGE_BYTES];
        let (_, err) = parse_request(&line).expect_err("too large");
        assert_eq!(err.code, "message_too_large");
    }

    #[test]
    fn status_request_parses() {
        let r = parse_request(br#"{"v":1,"id":2,"op":"status"}"#).expect("ok");
        assert_eq!(r.op, Op::Status);
    }
}
