//! `caro init`: asks which backend to use (or takes it from flags), tests the connection, and
//! writes the config file atomically (through a symlink, to the file it points at), keeping
//! every earlier version as a numbered backup.

use crate::output::{self, DIM, ERR};
use crate::{InitArgs, exit, settings};
use caro_core::EmbeddedConfig;
use caro_core::settings::{self as core_settings, BackendKind, Overrides};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

pub fn run(args: &InitArgs) -> ExitCode {
    let json = false;
    let Some(path) = settings::path() else {
        return output::fail(
            json,
            "no_config_dir",
            "no home folder to put the config in",
            Some("set CARO_CONFIG to a file path"),
            exit::USAGE,
        );
    };
    let interactive =
        !args.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if !interactive && !args.yes {
        return output::fail(
            json,
            "usage",
            "caro init asks questions on a terminal, and there is none",
            Some(
                "pass --yes with --backend (and --url, --model, --api-key-env for a server) to run without questions",
            ),
            exit::USAGE,
        );
    }
    let (mut config, existed) = match core_settings::load(&path) {
        Ok(l) => (l.config, l.path.is_some()),
        Err(e) => {
            return output::fail(
                json,
                "config_invalid",
                &format!("config file {e}"),
                Some(settings::CONFIG_HINT),
                exit::CONFIG_INVALID,
            );
        }
    };
    let theme = dialoguer::theme::SimpleTheme;
    let backend = match args.backend {
        Some(b) => b.into(),
        None if interactive => {
            let items = [
                "embedded (the model inside caro; no server)",
                "ollama",
                "vllm (OpenAI-compatible server)",
            ];
            match dialoguer::Select::with_theme(&theme)
                .with_prompt("Which backend should caro use?")
                .items(items)
                .default(0)
                .interact()
            {
                Ok(i) => BackendKind::ALL[i],
                Err(e) => {
                    return output::fail(
                        json,
                        "aborted",
                        &e.to_string(),
                        None,
                        exit::NOT_CONFIRMED,
                    );
                }
            }
        }
        None => BackendKind::Embedded,
    };
    let ask = |label: &str, flag: &Option<String>, default: &str| -> Result<String, String> {
        match flag {
            Some(v) => Ok(v.clone()),
            None if interactive => dialoguer::Input::<String>::with_theme(&theme)
                .with_prompt(label)
                .default(default.to_owned())
                .interact_text()
                .map_err(|e| e.to_string()),
            None => Ok(default.to_owned()),
        }
    };
    let answers = (|| -> Result<(), String> {
        match backend {
            BackendKind::Ollama => {
                config.ollama.url = ask("Ollama URL", &args.url, &config.ollama.url)?;
                config.ollama.model = ask("Model", &args.model, &config.ollama.model)?;
            }
            BackendKind::Vllm => {
                config.vllm.url = ask("vLLM URL", &args.url, &config.vllm.url)?;
                config.vllm.model = ask(
                    "Model (empty: the first one the server lists)",
                    &args.model,
                    &config.vllm.model,
                )?;
                config.vllm.api_key_env = ask(
                    "Environment variable holding the API key",
                    &args.api_key_env,
                    &config.vllm.api_key_env,
                )?;
            }
            BackendKind::Embedded => {}
        }
        Ok(())
    })();
    if let Err(e) = answers {
        return output::fail(json, "aborted", &e, None, exit::NOT_CONFIRMED);
    }
    config.default_backend = Some(backend);
    config.version = core_settings::CONFIG_VERSION;

    let mut err = anstream::stderr().lock();
    if backend != BackendKind::Embedded {
        let resolved = match core_settings::resolve(
            config.clone(),
            |k| std::env::var(k).ok(),
            &Overrides::default(),
        ) {
            Ok(r) => r,
            Err(e) => return output::fail(json, "config_invalid", &e, None, exit::CONFIG_INVALID),
        };
        let remote = crate::backends::remote(backend, &resolved, &EmbeddedConfig::default());
        let _ = write!(err, "testing {} at {} … ", backend.as_str(), remote.url());
        match remote.probe() {
            Ok(()) => {
                let _ = writeln!(err, "ok");
            }
            Err(f) => {
                let _ = writeln!(err, "{ERR}failed{ERR:#}: {f}");
                let save = interactive
                    && dialoguer::Confirm::with_theme(&theme)
                        .with_prompt(
                            "Save anyway? caro falls back to the embedded model while it is down",
                        )
                        .default(false)
                        .interact()
                        .unwrap_or(false);
                if interactive && !save {
                    let _ = writeln!(err, "{DIM}nothing written{DIM:#}");
                    return ExitCode::from(exit::NOT_CONFIRMED);
                }
                if !interactive {
                    let _ = writeln!(
                        err,
                        "saving anyway (--yes); caro will fall back to the embedded model while it is down"
                    );
                }
            }
        }
    }
    // A fresh backup name each time (config.toml.bak, .bak.1, …): a second init must not
    // overwrite the only copy of the file the user had before the first.
    let backup = if existed {
        match core_settings::backup(&path) {
            Ok(b) => Some(b),
            Err(e) => {
                return output::fail(
                    json,
                    "io",
                    &format!("could not back up the config file: {e}"),
                    None,
                    exit::UNEXPECTED,
                );
            }
        }
    } else {
        None
    };
    // Through a symlink, save writes the file it points to and leaves the link in place.
    if let Err(e) = core_settings::save(&path, &config) {
        return output::fail(json, "io", &e.to_string(), None, exit::UNEXPECTED);
    }
    let _ = writeln!(
        err,
        "wrote {} (default_backend = {:?})",
        path.display(),
        backend.as_str()
    );
    if let Some(b) = backup {
        let _ = writeln!(
            err,
            "{DIM}the previous file is kept as {}{DIM:#}",
            b.display()
        );
    }
    ExitCode::SUCCESS
}
