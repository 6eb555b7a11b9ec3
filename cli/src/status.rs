//! `caro --list-backends` and `caro status`: which backend runs, why, and whether each is healthy.

use crate::backends;
use crate::output::{BOLD, DIM, ERR, WARN};
use crate::settings::RunSettings;
use anstyle::{AnsiColor, Style};
use caro_core::chain::{BackendHealth, engine_name};
use caro_core::embedded::prefix_store;
use caro_core::models::human_size;
use caro_core::settings::BackendKind;
use caro_core::{ModelVariant, models, stats};
use std::io::Write;

const OK: Style = AnsiColor::Green.on_default().bold();

/// Every backend's health, from core's probes.
pub fn check_all(s: &RunSettings) -> Vec<BackendHealth> {
    caro_core::chain::health(&s.resolved)
}

pub fn list_backends(s: &RunSettings, json: bool) {
    let all = check_all(s);
    if json {
        crate::output::print_json(&all);
        return;
    }
    let mut out = anstream::stdout().lock();
    for h in &all {
        let mark = if h.healthy {
            format!("{OK}✓{OK:#}")
        } else {
            format!("{ERR}✗{ERR:#}")
        };
        let mut what = Vec::new();
        if h.selected {
            what.push("selected".to_owned());
        }
        if let Some(u) = &h.url {
            what.push(u.clone());
        }
        if h.backend == "embedded" {
            what = vec![if h.selected {
                "selected".into()
            } else {
                "fallback".into()
            }];
            what.push(if h.healthy {
                engine_name(s.resolved.variant()).to_owned()
            } else {
                h.detail.clone()
            });
        } else {
            what.push(if h.healthy {
                h.detail.clone()
            } else {
                format!("unreachable: {}", h.detail)
            });
        }
        let _ = writeln!(out, "{mark} {} ({})", h.backend, what.join(", "));
    }
}

pub fn status(s: &RunSettings, json: bool) {
    let res = &s.resolved;
    let all = check_all(s);
    let st = stats::read();
    let socket = caro_core::daemon::socket_path();
    let daemon = caro_core::daemon::DaemonClient::new(&socket).ping();
    // A daemon too busy to answer in time still holds its lock: it is running.
    let busy = daemon.is_err() && caro_core::daemon::lock_held(&socket);
    let prefix_dir = prefix_store::default_dir();
    let prefix_files = prefix_dir
        .as_deref()
        .map(prefix_store::list)
        .unwrap_or_default();
    let prefix_bytes: u64 = prefix_files.iter().map(|f| f.bytes).sum();
    if json {
        let daemon_json = match &daemon {
            Ok(d) => serde_json::json!({
                "running": true, "socket": socket, "pid": d.pid, "model": d.backend.model,
                "model_loaded": d.model_loaded, "requests_served": d.requests_served,
                "uptime_secs": d.uptime_secs, "idle_unload_secs": d.idle_unload_secs,
            }),
            Err(e) => serde_json::json!({
                "running": busy, "busy": busy, "socket": socket, "error": e.to_string(),
            }),
        };
        crate::output::print_json(&serde_json::json!({
            "backend": res.backend.as_str(),
            "backend_source": res.backend_source,
            "config_file": s.path,
            "embedded": {
                "variant": res.variant(),
                "engine": res.variant().engine_name(),
                "mlx_compiled": caro_core::embedded::mlx_compiled(),
                "model_path": backends::embedded_path(res).ok(),
                "loaded": daemon.as_ref().is_ok_and(|d| d.model_loaded),
                "prefix_cache": {
                    "dir": prefix_dir,
                    "bytes": prefix_bytes,
                    "max_bytes": prefix_store::DEFAULT_MAX_BYTES,
                    "files": prefix_files,
                },
            },
            "daemon": daemon_json,
            "backends": all,
            "stats": st,
        }));
        return;
    }
    let mut out = anstream::stdout().lock();
    let _ = writeln!(
        out,
        "{BOLD}backend{BOLD:#}   {} {DIM}(from the {}){DIM:#}",
        res.backend.as_str(),
        res.backend_source.as_str()
    );
    let _ = writeln!(
        out,
        "{BOLD}config{BOLD:#}    {}",
        s.path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "none (defaults); `caro init` writes one".into())
    );
    let variant = match res.variant() {
        ModelVariant::Mlx => "mlx (Apple Silicon GPU)",
        _ if caro_core::embedded::mlx_compiled() => "cpu (Candle; --engine cpu)",
        _ => "cpu (Candle)",
    };
    let _ = writeln!(out, "{BOLD}embedded{BOLD:#}  variant {variant}");
    match backends::embedded_path(res) {
        Ok(p) => {
            let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            let _ = writeln!(
                out,
                "          model {} ({}), cached on disk; loaded per request by the CLI",
                p.display(),
                human_size(size)
            );
        }
        Err(_) => {
            let _ = writeln!(
                out,
                "          {ERR}model missing{ERR:#} (looked in {}); run `caro model pull`",
                models::cache_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default()
            );
        }
    }
    match (&prefix_dir, prefix_files.len()) {
        (None, _) => {}
        (Some(dir), 0) => {
            let _ = writeln!(
                out,
                "          prefix cache empty {DIM}({}; {}){DIM:#}",
                dir.display(),
                if res.backend == BackendKind::Embedded && res.variant() == ModelVariant::Cpu {
                    "the next request fills it"
                } else {
                    "only the embedded model on the CPU engine uses it"
                }
            );
        }
        (Some(dir), n) => {
            let models: std::collections::BTreeSet<&str> =
                prefix_files.iter().map(|f| f.model.as_str()).collect();
            let _ = writeln!(
                out,
                "          prefix cache {n} file{} for {}, {} of {} {DIM}({}){DIM:#}",
                if n == 1 { "" } else { "s" },
                models.into_iter().collect::<Vec<_>>().join(", "),
                human_size(prefix_bytes),
                human_size(prefix_store::DEFAULT_MAX_BYTES),
                dir.display()
            );
        }
    }
    match &daemon {
        Ok(d) => {
            let _ = writeln!(
                out,
                "{BOLD}daemon{BOLD:#}    {OK}running{OK:#} (pid {}) on {}: {}, model {}, {} requests served",
                d.pid,
                socket.display(),
                d.backend.model,
                if d.model_loaded {
                    "loaded"
                } else {
                    "not loaded"
                },
                d.requests_served
            );
        }
        Err(e) if busy => {
            let _ = writeln!(
                out,
                "{BOLD}daemon{BOLD:#}    {OK}running{OK:#} on {}, busy: it did not answer in time ({e})",
                socket.display()
            );
        }
        Err(e) => {
            let _ = writeln!(
                out,
                "{BOLD}daemon{BOLD:#}    {DIM}not running ({e}); `caro serve` or the tray app keeps the model warm{DIM:#}"
            );
        }
    }
    for h in all.iter().filter(|h| h.backend != "embedded") {
        let (style, word) = if h.healthy {
            (OK, "healthy")
        } else if h.selected {
            (ERR, "unreachable")
        } else {
            (WARN, "unreachable")
        };
        let _ = writeln!(
            out,
            "{BOLD}{:<9}{BOLD:#} {style}{word}{style:#} {} {DIM}({}){DIM:#}",
            h.backend,
            h.url.as_deref().unwrap_or(""),
            h.detail
        );
    }
    match st {
        Some(st) if st.count > 0 => {
            let _ = writeln!(
                out,
                "{BOLD}inference{BOLD:#} last {:.0} ms via {}, average {:.0} ms over {} requests",
                st.last_ms,
                st.last_backend,
                st.total_ms / st.count as f64,
                st.count
            );
        }
        _ => {
            let _ = writeln!(out, "{BOLD}inference{BOLD:#} no requests recorded yet");
        }
    }
}
