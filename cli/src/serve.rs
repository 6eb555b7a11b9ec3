//! `caro serve`: the warm-model daemon without the tray app, for SSH hosts and servers.

use crate::output::{self, BOLD, DIM};
use crate::settings::RunSettings;
use crate::{ServeArgs, backends, exit, model};
use caro_core::daemon::{Daemon, DaemonOptions, Service, socket_path};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub fn run(args: &ServeArgs, settings: &RunSettings) -> ExitCode {
    let res = &settings.resolved;
    if res.backend == caro_core::settings::BackendKind::Embedded
        && let Err(e) = model::ensure_for_run(res, false)
    {
        return model::model_fail(false, &e);
    }
    let config = match res.embedded_config() {
        Ok(c) => c,
        Err(e) => return output::fail(false, e.code(), &e.to_string(), None, exit::USAGE),
    };
    let (generator, embedded, _) = match backends::build(res, config) {
        Ok(b) => b,
        Err(e) => {
            let hint = e.hint();
            return output::fail(
                false,
                e.code(),
                &e.to_string(),
                hint.as_deref(),
                exit::code_for(&e),
            );
        }
    };
    let socket = args.socket.clone().unwrap_or_else(socket_path);
    let idle = (args.idle_unload > 0).then(|| Duration::from_secs(args.idle_unload));
    let opts = DaemonOptions {
        socket: socket.clone(),
        idle_unload: idle,
        allowed_uid: None,
    };
    let backend = generator.backend_info();
    let daemon = match Daemon::bind(
        Service {
            generator,
            embedded,
        },
        opts,
    ) {
        Ok(d) => d,
        Err(e) => {
            return output::fail(false, e.code(), &e.to_string(), e.hint(), exit::UNEXPECTED);
        }
    };
    // Requests from clients that send no deadline of their own (older ones, the tray's) are
    // bounded by this daemon's setting.
    if let Some(t) = res.request_timeout() {
        daemon.set_request_timeout(t);
    }
    // Ctrl-C and SIGTERM (ctrlc's `termination` feature) both stop the accept loop; `run` then
    // cancels the generation under way at its next token instead of waiting for the reply,
    // and dropping the daemon removes the socket and releases the lock file.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    if let Err(e) = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)) {
        tracing::warn!(error = %e, "no Ctrl-C handler; the socket file stays behind on exit");
    }
    let _ = writeln!(
        anstream::stderr(),
        "{BOLD}caro daemon{BOLD:#} serving {} on {}\n{DIM}the model loads on the first request{}; \
         `caro` uses this daemon automatically (--no-daemon to bypass); Ctrl-C stops it{DIM:#}",
        backend.model,
        socket.display(),
        idle.map(|d| format!(" and unloads after {} s idle", d.as_secs()))
            .unwrap_or_default()
    );
    match daemon.run(&stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => output::fail(false, e.code(), &e.to_string(), None, exit::UNEXPECTED),
    }
}
