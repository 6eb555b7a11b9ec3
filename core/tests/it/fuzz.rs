//! Fuzzing with proptest (issue 17): the daemon's protocol decoder, the model-reply parser, the
//! config loader and the safety validator's shell parsers get generated and mutated input, and
//! each must answer, never panic, within [`PER_INPUT`] per input.
//!
//! Seed corpora live in `tests/data/fuzz/<target>/`, one input per file, and always run whole;
//! the generated cases mutate them and splice in each target's dictionary of tokens.
//! `CARO_FUZZ_CASES` sets the generated cases per target, times the target's weight (default
//! [`DEFAULT_CASES`], so an ordinary test run stays fast); `.ci/run` runs many more. A failure
//! prints the input: keep it in the target's corpus, with a test named after the bug.
//! `PROPTEST_RNG_SEED` replays a run.

use caro_core::ShellType;
use caro_core::daemon::protocol::{self, MAX_MESSAGE_BYTES, Response};
use caro_core::reply;
use caro_core::safety::settings::SafetyConfig;
use caro_core::safety::{
    Action, MAX_COMMAND_BYTES, RiskLevel, SafetyMode, SafetyValidator, simple_commands,
};
use caro_core::settings;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::TestCaseError;
use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

/// Generated cases per property in an ordinary test run (times the target's weight).
const DEFAULT_CASES: u32 = 64;

/// The most one input may take. Every target answers a real input in well under a
/// millisecond, or tens of milliseconds for a 16 KB command; a shell input runs four checks
/// (three validators and the parser), each of which stops a pathological parse at 250 ms, so
/// five seconds leaves room for a loaded CI machine while still catching a super-linear
/// blow-up or an endless loop.
const PER_INPUT: Duration = Duration::from_secs(5);

/// The runner's settings for a target whose input costs `1 / weight` of a shell command's:
/// cheaper targets get proportionally more cases, so each gets a similar share of the budget.
fn runner_config(weight: u32) -> ProptestConfig {
    let cases: u32 = std::env::var("CARO_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_CASES);
    ProptestConfig {
        cases: cases.saturating_mul(weight),
        // Failures are kept by hand in the seed corpus, named, not in a regressions file.
        failure_persistence: None,
        // An input that overruns PER_INPUT costs that much per shrink step: cap the search.
        max_shrink_time: 60_000,
        ..ProptestConfig::default()
    }
}

/// Runs `f` on its own thread and waits at most [`PER_INPUT`]: a panic fails the case with its
/// message, and an endless loop fails it instead of hanging the suite.
fn bounded<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, TestCaseError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let started = Instant::now();
    let worker = std::thread::Builder::new()
        .name(format!("fuzz-{what}"))
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| TestCaseError::fail(format!("{what}: no thread: {e}")))?;
    match rx.recv_timeout(PER_INPUT) {
        Ok(v) => {
            let _ = worker.join();
            Ok(v)
        }
        Err(RecvTimeoutError::Timeout) => {
            let saved = save_slow_input(what);
            // Wait (boundedly) for the slow call to end: left running, it would starve the
            // next cases, and shrinking would blame inputs that are only its bystanders.
            let done = rx.recv_timeout(PER_INPUT * 15).is_ok();
            Err(TestCaseError::fail(format!(
                "{what}: no answer within {PER_INPUT:?} ({}; input saved to {saved})",
                if done {
                    format!("it took {:?}", started.elapsed())
                } else {
                    "still running".to_owned()
                }
            )))
        }
        Err(RecvTimeoutError::Disconnected) => {
            let why = match worker.join() {
                Err(payload) => payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string payload".to_owned()),
                Ok(()) => "nothing".to_owned(),
            };
            Err(TestCaseError::fail(format!(
                "{what} panicked after {:?}: {why}",
                started.elapsed()
            )))
        }
    }
}

thread_local! {
    /// The input being checked on this thread, saved when it turns out to be slow.
    static CURRENT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Notes the input about to be checked, also on disk (`target/tmp/fuzz-current-<thread>.bin`)
/// when `CARO_FUZZ_KEEP_CURRENT` is set: a crash (a segfault in C code) then leaves it behind.
fn checking(bytes: &[u8]) {
    CURRENT.with(|c| *c.borrow_mut() = bytes.to_vec());
    if std::env::var_os("CARO_FUZZ_KEEP_CURRENT").is_some() {
        let thread = std::thread::current();
        let name: String = thread
            .name()
            .unwrap_or("main")
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-current-{name}.bin"));
        let _ = std::fs::write(path, bytes);
    }
}

/// Writes the current input to `target/tmp/fuzz-slow-<what>-<n>.bin`: proptest reports the
/// shrunk input, which for a time-out may not be the one that was slow.
fn save_slow_input(what: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name: String = what.chars().filter(char::is_ascii_alphanumeric).collect();
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-slow-{name}-{n}.bin"));
    CURRENT.with(|c| match std::fs::write(&path, &*c.borrow()) {
        Ok(()) => path.display().to_string(),
        Err(e) => format!("nowhere ({e})"),
    })
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(target)
}

/// A target's seed inputs, by file name, sorted.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("corpus entry").path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, std::fs::read(&path).expect("corpus file"))
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "{}: empty corpus", dir.display());
    seeds
}

fn seed_bytes(target: &str) -> Vec<Vec<u8>> {
    corpus(target).into_iter().map(|(_, b)| b).collect()
}

/// Runs every seed of `target` through `check`, naming the seed that fails.
fn run_corpus(target: &str, check: impl Fn(Vec<u8>) -> Result<(), TestCaseError>) {
    for (name, bytes) in corpus(target) {
        if let Err(e) = check(bytes) {
            panic!("{target}/{name}: {e}");
        }
    }
}

// ---- mutation ------------------------------------------------------------------------------------

/// One edit of a seed. Byte-level, so text targets also see split UTF-8 sequences (read back
/// lossily) and truncated structures.
#[derive(Debug, Clone)]
enum Edit {
    Flip(Index, u8),
    Insert(Index, Vec<u8>),
    Token(Index, Index),
    Delete(Index, u8),
    Repeat(Index, u8, u8),
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Splicing in a token of the target's grammar finds more than random bytes do.
    prop_oneof![
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        1 => (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Edit::Token(i, t)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, n)| Edit::Delete(i, n)),
        1 => (any::<Index>(), any::<u8>(), 1u8..64).prop_map(|(i, n, k)| Edit::Repeat(i, n, k)),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit], dict: &[&str]) -> Vec<u8> {
    for e in edits {
        let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len + 1) };
        match e {
            Edit::Flip(i, b) if !bytes.is_empty() => {
                let i = i.index(bytes.len());
                bytes[i] ^= b | 1;
            }
            Edit::Flip(..) => {}
            Edit::Insert(i, more) => {
                let i = at(i, bytes.len());
                bytes.splice(i..i, more.iter().copied());
            }
            Edit::Token(i, t) => {
                let i = at(i, bytes.len());
                bytes.splice(i..i, t.get(dict).bytes());
            }
            Edit::Delete(i, n) => {
                let i = at(i, bytes.len());
                let end = (i + usize::from(*n)).min(bytes.len());
                bytes.drain(i..end);
            }
            Edit::Repeat(i, n, k) => {
                let i = at(i, bytes.len());
                let end = (i + usize::from(*n).max(1)).min(bytes.len());
                let chunk = bytes[i..end].to_vec();
                for _ in 0..*k {
                    bytes.splice(end..end, chunk.iter().copied());
                }
            }
            Edit::Truncate(i) => {
                let i = at(i, bytes.len());
                bytes.truncate(i);
            }
        }
    }
    bytes
}

/// Seeds with a few edits, token soups, and raw bytes, in that proportion.
fn inputs(
    seeds: Vec<Vec<u8>>,
    dict: &'static [&'static str],
    max_tokens: usize,
) -> impl Strategy<Value = Vec<u8>> {
    let mutated = (select(seeds), proptest::collection::vec(edit(), 0..8))
        .prop_map(move |(seed, edits)| apply(seed, &edits, dict));
    let soup = proptest::collection::vec((select(dict), select(SEPARATORS)), 0..max_tokens)
        .prop_map(|parts| {
            parts
                .into_iter()
                .flat_map(|(t, sep)| [t, sep])
                .collect::<String>()
                .into_bytes()
        });
    prop_oneof![
        5 => mutated,
        3 => soup,
        1 => proptest::collection::vec(any::<u8>(), 0..512),
        1 => any::<String>().prop_map(String::into_bytes),
    ]
}

/// What goes between a soup's tokens.
const SEPARATORS: &[&str] = &[" ", "", "\n", "  "];

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---- the daemon protocol -------------------------------------------------------------------------

const PROTOCOL_DICT: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\"v\":1",
    "\"v\":0",
    "\"v\":99",
    "\"v\":-1",
    "\"v\":1.0",
    "\"v\":\"1\"",
    "\"id\":",
    "\"id\":0",
    "\"id\":18446744073709551615",
    "\"id\":18446744073709551616",
    "\"id\":-5",
    "\"id\":1e3",
    "\"op\":\"generate\"",
    "\"op\":\"explain\"",
    "\"op\":\"status\"",
    "\"op\":\"shutdown\"",
    "\"op\":null",
    "\"request\":",
    "\"prompt\":\"list files\"",
    "\"prompt\":\"\"",
    "\"shell\":\"bash\"",
    "\"shell\":\"powershell\"",
    "\"shell\":\"tcsh\"",
    "\"command\":\"ls\"",
    "\"context\":{\"os\":\"linux\",\"tool_flavor\":\"gnu\",\"cwd\":null}",
    "\"tool_flavor\":\"bsd\"",
    "\"cwd\":\"/tmp\"",
    "\"os\":\"\"",
    "null",
    "true",
    "1e999",
    "-0",
    "\"\\ud800\"",
    "\"\\u0000\"",
    "\"\\\"\"",
    "é",
    "🦀",
    "\u{0}",
    "\n",
    "[[[[[[[[",
    "]]]]]]]]",
    "{\"a\":{\"a\":{\"a\":",
    "\"extra\":1",
];

/// The client's side: a reply line from the daemon.
fn decode_response(bytes: &[u8]) -> Result<Response, serde_json::Error> {
    serde_json::from_slice(bytes)
}

fn check_protocol(bytes: Vec<u8>) -> Result<(), TestCaseError> {
    checking(&bytes);
    let len = bytes.len();
    let (parsed, reply) = bounded("parse_request", move || {
        (
            protocol::parse_request(&bytes),
            decode_response(&bytes).ok(),
        )
    })?;
    match parsed {
        Ok(req) => {
            // What the daemon accepted, it can also say back: encoding and parsing again
            // gives the same request (nothing is lost or reinterpreted on the way).
            let line = protocol::encode(&req);
            prop_assert_eq!(line.last(), Some(&b'\n'));
            let again = bounded("parse_request(encode)", move || {
                protocol::parse_request(&line[..line.len() - 1])
            })?;
            prop_assert_eq!(
                again.as_ref().ok(),
                Some(&req),
                "{:?}",
                again.as_ref().err()
            );
        }
        Err((_, err)) => {
            prop_assert!(
                ["message_too_large", "bad_request", "unsupported_version"]
                    .contains(&err.code.as_str()),
                "unknown code {}",
                err.code
            );
            prop_assert!(!err.message.is_empty());
            prop_assert_eq!(
                err.code == "message_too_large",
                len >= MAX_MESSAGE_BYTES,
                "{}",
                err.message
            );
        }
    }
    if let Some(resp) = reply {
        let line = protocol::encode(&resp);
        let back = decode_response(&line[..line.len() - 1]);
        prop_assert!(back.is_ok(), "{resp:?}: {:?}", back.err());
    }
    Ok(())
}

#[test]
fn protocol_seed_corpus() {
    run_corpus("protocol", check_protocol);
}

/// A request of the largest size the daemon takes is decoded within the bound; one byte more
/// is refused before parsing.
#[test]
fn protocol_largest_message_is_bounded() {
    let head = br#"{"v":1,"id":1,"op":"explain","shell":"bash","command":""#;
    let tail = br#""}"#;
    let fill = MAX_MESSAGE_BYTES - 1 - head.len() - tail.len();
    let line = [&head[..], &vec![b'a'; fill], &tail[..]].concat();
    assert_eq!(line.len(), MAX_MESSAGE_BYTES - 1);
    check_protocol(line.clone()).expect("largest message");
    let mut over = line;
    over.insert(head.len(), b'a');
    let (_, err) = protocol::parse_request(&over).expect_err("over the cap");
    assert_eq!(err.code, "message_too_large");
}

// ---- the model-reply parser ----------------------------------------------------------------------

const REPLY_DICT: &[&str] = &[
    "```",
    "```bash\n",
    "```sh\n",
    "```json\n",
    "\n```",
    "`",
    "``",
    "{",
    "}",
    "{\"command\": \"",
    "\"}",
    "\"cmd\":",
    "\"shell_command\":",
    "\"command\":null",
    "\"command\":[]",
    "<|im_end|>",
    "<|endoftext|>",
    "<|im_start|>",
    "</s>",
    "<|eot_id|>",
    "\\",
    "\\\n",
    "\n",
    "\r\n",
    "\t",
    "ls -la",
    "find . -name '*.log'",
    "echo \"hi\"",
    "Here is the command:",
    "Command:",
    "$ ",
    "# ",
    "é",
    "🦀",
    "\u{200b}",
    "\u{0}",
    "  ",
];

fn check_reply(bytes: Vec<u8>) -> Result<(), TestCaseError> {
    checking(&bytes);
    let reply = text(&bytes);
    let (command, complete) = bounded("extract_command", move || {
        // Streaming: is_complete sees every prefix as the tokens arrive. Every char boundary
        // of a short reply, evenly spaced ones of a long reply.
        let bounds: Vec<usize> = reply
            .char_indices()
            .map(|(i, _)| i)
            .chain([reply.len()])
            .collect();
        let step = (bounds.len() / 256).max(1);
        let complete: Vec<bool> = bounds
            .iter()
            .step_by(step)
            .map(|&i| reply::is_complete(&reply[..i]))
            .collect();
        (reply::extract_command(&reply), complete)
    })?;
    prop_assert!(!complete.is_empty());
    if let Some(c) = command {
        prop_assert!(!c.is_empty());
        prop_assert_eq!(c.trim(), c.as_str(), "the command is trimmed");
    }
    Ok(())
}

#[test]
fn reply_seed_corpus() {
    run_corpus("reply", check_reply);
}

// ---- the config loader ---------------------------------------------------------------------------

const CONFIG_DICT: &[&str] = &[
    "\n",
    "[embedded]\n",
    "[ollama]\n",
    "[vllm]\n",
    "[safety]\n",
    "[[safety.allow]]\n",
    "[[safety.rules]]\n",
    "[tray]\n",
    "[backend]\n",
    "[backend.vllm]\n",
    "[backend.ollama]\n",
    "[output]\n",
    "[general]\n",
    "[unsupported]\n",
    "[embedded.x]\n",
    "version = ",
    "default_backend = ",
    "timeout_secs = ",
    "variant = ",
    "model = ",
    "model_path = ",
    "temperature = ",
    "max_tokens = ",
    "url = ",
    "api_key_env = ",
    "api_key = ",
    "mode = ",
    "rule = ",
    "command = ",
    "reason = ",
    "id = ",
    "level = ",
    "program = ",
    "args_any = ",
    "flags_all = ",
    "shells = ",
    "message = ",
    "alternative = ",
    "hotkey = ",
    "idle_unload_secs = ",
    "primary = ",
    "enable_fallback = ",
    "base_url = ",
    "model_name = ",
    "verbose = ",
    "\"embedded\"",
    "\"ollama\"",
    "\"vllm\"",
    "\"strict\"",
    "\"lax\"",
    "\"critical\"",
    "\"auto\"",
    "\"cpu\"",
    "\"mlx\"",
    "0",
    "-1",
    "1",
    "2",
    "4096",
    "4097",
    "131073",
    "9223372036854775807",
    "99999999999999999999",
    "0.5",
    "nan",
    "inf",
    "-0.0",
    "1e309",
    "true",
    "false",
    "\"\"",
    "\"[\"",
    "\"**\"",
    "\"*prod*\"",
    "[\"a\", \"[\"]",
    "[]",
    "{}",
    "{ a = 1 }",
    "\"../../etc/passwd\"",
    "\"/dev/zero\"",
    "\"http://127.0.0.1:9\"",
    "\"\\u0000\"",
    "\"é🦀\"",
    "'''",
    "\"\"\"",
    "#",
    "=",
    ".",
    "\"team.x\"",
    "\"vcs.reset_hard\"",
    "[\"bash\", \"fish\"]",
    "[\"tcsh\"]",
    "\"qwen2.5-coder-1.5b\"",
    "\"no-such-model\"",
];

/// What a loaded config is, to compare two loads (the config has no `PartialEq`).
fn fingerprint(c: &settings::CaroConfig) -> String {
    toml::to_string(c).unwrap_or_else(|e| format!("unserialisable: {e}"))
}

fn check_config(bytes: Vec<u8>) -> Result<(), TestCaseError> {
    checking(&bytes);
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let path = dir.path().join("config.toml");
    std::fs::write(&path, &bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let p = path.clone();
    let first = bounded("settings::load", move || settings::load(&p))?;
    match first {
        Err(e) => {
            // Every error names the file, so the user knows which one to fix.
            let msg = e.to_string();
            prop_assert!(msg.contains(&*path.to_string_lossy()), "{msg}");
            // A file caro cannot read is never written to.
            prop_assert_eq!(std::fs::read(&path).ok(), Some(bytes));
        }
        Ok(loaded) => {
            if let Some(m) = &loaded.migration {
                // The original is kept byte for byte.
                prop_assert_eq!(std::fs::read(&m.backup).ok(), Some(bytes));
            }
            // What was loaded (and, after a migration, written) loads again the same: a
            // migration never leaves a file that fails or migrates again.
            let p = path.clone();
            let second = bounded("settings::load again", move || settings::load(&p))?;
            match second {
                Ok(again) => {
                    prop_assert!(again.migration.is_none(), "migrated twice");
                    prop_assert_eq!(fingerprint(&again.config), fingerprint(&loaded.config));
                }
                Err(e) => {
                    let now = std::fs::read_to_string(&path).unwrap_or_default();
                    return Err(TestCaseError::fail(format!(
                        "loaded once, then not: {e}\nthe file now:\n{now}"
                    )));
                }
            }
        }
    }
    Ok(())
}

#[test]
fn config_seed_corpus() {
    run_corpus("config", check_config);
}

// ---- the safety validator's shell parsers --------------------------------------------------------

const SHELL_DICT: &[&str] = &[
    "rm",
    "-rf",
    "/",
    "*",
    "~",
    "..",
    ".",
    "$(",
    ")",
    "`",
    "'",
    "\"",
    "|",
    "||",
    "&&",
    "&",
    ";",
    ";;",
    "{",
    "}",
    "(",
    "((",
    "))",
    "[[",
    "]]",
    "<",
    ">",
    ">>",
    "2>&1",
    "<<EOF\n",
    "EOF\n",
    "<<<",
    "<(",
    ">(",
    "${X:-/}",
    "${#X}",
    "${X//a/b}",
    "$HOME",
    "X=/",
    "export X=1",
    "sh -c",
    "bash -c",
    "eval",
    "exec",
    "source",
    "xargs",
    "find",
    "-exec",
    "-delete",
    "\\;",
    "{}",
    "base64 -d",
    "curl http://x",
    "| sh",
    "sudo",
    "doas",
    "env",
    "nohup",
    "timeout 5",
    "for d in /; do",
    "done",
    "while :; do",
    "if true; then",
    "fi",
    "case x in",
    "esac",
    "function f",
    ":(){ :|:& };:",
    "python3 -c",
    "perl -e",
    "dd if=/dev/zero of=/dev/sda",
    "mkfs.ext4",
    "chmod -R 777",
    "git reset --hard",
    "git push --force",
    "cmd /c",
    "%0",
    "%PATH%",
    "^",
    "^&",
    "del /s /q",
    "rd /s",
    "format c:",
    "iex",
    "Invoke-Expression",
    "Remove-Item -Recurse -Force",
    "C:\\",
    "$env:USERPROFILE",
    "@(",
    "-EncodedCommand",
    "[Convert]::FromBase64String",
    "#",
    "\\",
    "\\\n",
    "\n",
    "\t",
    "é",
    "🦀",
    "\u{0}",
    "\u{202e}",
    "\r",
];

/// A configured validator: an allowlist and custom rules, so their matching is fuzzed too.
fn configured() -> SafetyValidator {
    let text = "[safety]\nmode = \"strict\"\n\
        [[safety.allow]]\nrule = \"vcs.reset_hard\"\n\
        [[safety.allow]]\ncommand = \"rm -rf ./dist*\"\n\
        [[safety.rules]]\nid = \"team.prod_db\"\nlevel = \"high\"\nprogram = \"psql\"\n\
        args_any = [\"*prod*\"]\nmessage = \"connects to the production database\"\n";
    let config = SafetyConfig::from_toml(text).expect("fuzz safety config");
    SafetyValidator::from_config(&config).expect("fuzz validator")
}

fn check_shell(bytes: Vec<u8>) -> Result<(), TestCaseError> {
    checking(&bytes);
    let command = text(&bytes);
    let validators = [
        SafetyValidator::new(SafetyMode::Moderate),
        SafetyValidator::new(SafetyMode::Permissive),
        configured(),
    ];
    for shell in ShellType::ALL {
        let (cmd, vs) = (command.clone(), validators.clone());
        let verdicts = bounded("validate", move || {
            let _ = simple_commands(&cmd, shell);
            vs.iter()
                .map(|v| v.validate(&cmd, shell))
                .collect::<Vec<_>>()
        })?;
        for v in verdicts {
            // A verdict for every input, consistent with itself and its mode.
            let top = v.findings.iter().map(|f| f.level).max();
            prop_assert_eq!(v.risk, top.unwrap_or(RiskLevel::Safe), "{:?}", v);
            prop_assert_eq!(v.action, v.mode.action(v.risk));
            prop_assert_eq!(v.blocked, v.action == Action::Block);
            prop_assert_eq!(v.needs_confirmation, v.action == Action::Confirm);
            if command.len() > MAX_COMMAND_BYTES {
                prop_assert_eq!(v.risk, RiskLevel::Critical, "over the limit: {:?}", v);
            }
        }
    }
    Ok(())
}

#[test]
fn shell_seed_corpus() {
    run_corpus("shell", check_shell);
}

/// Input past the validator's limits (size, nesting) is rated critical, never lower.
#[test]
fn shell_input_over_the_limits_is_critical() {
    let v = SafetyValidator::default();
    let big = "ls ".repeat(MAX_COMMAND_BYTES / 3 + 1);
    for shell in ShellType::ALL {
        assert_eq!(
            v.validate(&big, shell).risk,
            RiskLevel::Critical,
            "{shell:?}"
        );
    }
    let nested = format!("{}echo hi", "eval ".repeat(20));
    assert_eq!(
        v.validate(&nested, ShellType::Bash).risk,
        RiskLevel::Critical
    );
}

// ---- the generated cases -------------------------------------------------------------------------

/// Shell soup long enough to cross [`MAX_COMMAND_BYTES`], built from a short soup.
fn over_the_limit() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(select(SHELL_DICT), 1..16),
        0usize..4096,
    )
        .prop_map(|(parts, extra)| {
            let unit = parts.join(" ");
            let unit = if unit.is_empty() {
                "x".to_owned()
            } else {
                unit
            };
            let mut s = String::new();
            while s.len() <= MAX_COMMAND_BYTES + extra {
                s.push_str(&unit);
                s.push(' ');
            }
            s.into_bytes()
        })
}

// Weights from measured cost per input (release build): a protocol line takes about 1/100 of
// a shell command (which is parsed six times, by three validators), a reply 1/50, a config
// file (written, loaded, loaded again) 1/8.
proptest! {
    #![proptest_config(runner_config(20))]
    #[test]
    fn fuzz_protocol(bytes in inputs(seed_bytes("protocol"), PROTOCOL_DICT, 64)) {
        check_protocol(bytes)?;
    }
}

proptest! {
    #![proptest_config(runner_config(10))]
    #[test]
    fn fuzz_reply(bytes in inputs(seed_bytes("reply"), REPLY_DICT, 64)) {
        check_reply(bytes)?;
    }
}

proptest! {
    #![proptest_config(runner_config(4))]
    #[test]
    fn fuzz_config(bytes in inputs(seed_bytes("config"), CONFIG_DICT, 96)) {
        check_config(bytes)?;
    }
}

proptest! {
    #![proptest_config(runner_config(1))]
    #[test]
    fn fuzz_shell(bytes in prop_oneof![
        9 => inputs(seed_bytes("shell"), SHELL_DICT, 96),
        1 => over_the_limit(),
    ]) {
        check_shell(bytes)?;
    }
}

/// Found by fuzzing: tree-sitter-bash's scanner is quadratic on unbalanced parentheses
/// (16 KB of `)` took 1.9 s per check here, 11 KB of mixed ones 0.5 s). The parse stops at its
/// budget and the input is rated critical as unanalysable; nothing of the kind is ever safe.
#[test]
fn unbalanced_parentheses_cost_a_bounded_parse() {
    let v = SafetyValidator::default();
    for input in [
        ")".repeat(16_000),
        format!("{}cut /{}", "(".repeat(1000), ")".repeat(15_000)),
    ] {
        let started = Instant::now();
        let verdict = v.validate(&input, ShellType::Bash);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "took {took:?}");
        assert!(verdict.risk >= RiskLevel::Moderate, "{verdict:?}");
        if verdict
            .findings
            .iter()
            .any(|f| f.rule_id == "input.too_complex")
        {
            assert_eq!(verdict.risk, RiskLevel::Critical);
        }
    }
}

/// Found by review after the fuzzer lost a crashing input: PowerShell's `('a'+'b')` folding
/// called the parser again for each round, and an input that exposes one new group per round
/// (2,600 of them fit in 16 KB) overflowed the stack. Folding is now a loop with a cap, and an
/// input that does not settle within it is unanalysable, so critical. The check runs on a
/// 512 KiB stack so that a recursion would show here, not only on a busy daemon thread.
#[test]
fn powershell_concatenation_thousands_deep_does_not_overflow_the_stack() {
    let k = 2600;
    let input = format!("{}('{}", "('".repeat(k), "+'')".repeat(k));
    assert!(input.len() <= MAX_COMMAND_BYTES, "{}", input.len());
    let verdict = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || SafetyValidator::default().validate(&input, ShellType::PowerShell))
        .expect("thread")
        .join()
        .expect("no panic");
    assert_eq!(verdict.risk, RiskLevel::Critical, "{verdict:?}");
    assert!(
        verdict
            .findings
            .iter()
            .any(|f| f.rule_id == "input.too_complex"),
        "{verdict:?}"
    );
}

/// Found in review: each pipeline stage kept a copy of every stage before it, so 2,000 `a|`
/// took 450 MB and 1.6 s, and 16 KB of them several GB. Past 64 stages the chain is cut and
/// the input rated unanalysable.
#[test]
fn a_pipeline_of_thousands_of_stages_costs_bounded_memory_and_time() {
    let v = SafetyValidator::default();
    for shell in [ShellType::Bash, ShellType::PowerShell, ShellType::Cmd] {
        let input = format!("{}a", "a|".repeat(8000));
        let started = Instant::now();
        let verdict = v.validate(&input, shell);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "{shell:?} took {took:?}");
        assert_eq!(verdict.risk, RiskLevel::Critical, "{shell:?}: {verdict:?}");
    }
}

/// Found in review: a loop body is walked once per value, so ten nested `for` loops of eight
/// values asked for 8^10 walks and never answered. The walk is capped and the input rated
/// unanalysable.
#[test]
fn nested_for_loops_cost_a_bounded_walk() {
    let input = format!(
        "{}:{}",
        "for a in 1 2 3 4 5 6 7 8; do ".repeat(10),
        "; done".repeat(10)
    );
    let started = Instant::now();
    let verdict = SafetyValidator::default().validate(&input, ShellType::Bash);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(verdict.risk, RiskLevel::Critical, "{verdict:?}");
}
