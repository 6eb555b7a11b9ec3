//! `caro-bench`: measures the embedded backend on one GGUF and prints a table.
//!
//! Everything is measured in one process run, so the ratios (prefix cache on vs off) compare
//! like with like on a shared, noisy machine.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use anyhow::{Context, Result};
use caro_core::embedded::Architecture;
use caro_core::embedded::{GgufFile, Hyperparams, TextCodec, Transformer};
use caro_core::prompt::build_messages;
use caro_core::{
    CommandGenerator, CommandRequest, EmbeddedConfig, EmbeddedModelBackend, ExecutionContext,
    ShellType,
};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Fixed requests for the end-to-end timings; written by the caro team.
const REQUESTS: [&str; 10] = [
    "find all files larger than 100MB in the current directory",
    "count how many lines each markdown file has",
    "show which processes use the most memory",
    "delete every .tmp file under build",
    "print my public ssh key",
    "list git branches sorted by last commit date",
    "extract release.tar.gz into /opt/app",
    "show the size of my home directory",
    "replace foo with bar in config.yaml",
    "follow the last 50 lines of /var/log/syslog",
];

#[derive(Debug, Parser)]
#[command(about = "Benchmark caro's embedded backend on a GGUF model")]
struct Args {
    /// GGUF model to measure.
    #[arg(long, env = "CARO_MODEL_PATH")]
    model: PathBuf,
    /// How many of the fixed requests to time end to end (1-10).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=10))]
    requests: u16,
    /// Tokens to decode when measuring decode speed; also the end-to-end cap.
    #[arg(long, default_value_t = 32)]
    max_tokens: usize,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Peak resident set size in MB, from the kernel's high-water mark.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn request(prompt: &str) -> CommandRequest {
    CommandRequest::new(prompt, ShellType::Bash).with_context(ExecutionContext::for_os(
        "linux",
        Some("/home/user/project".into()),
    ))
}

struct Raw {
    load_ms: f64,
    prefill_tokens: usize,
    prefill_ms: f64,
    decode_tokens: usize,
    decode_ms: f64,
}

/// Prefill and decode speed straight on the forward pass: the whole first prompt, cold, then
/// `decode` forced steps that ignore end-of-turn.
fn raw_speed(path: &Path, decode: usize) -> Result<Raw> {
    let t = Instant::now();
    let mut gguf = GgufFile::open(path)?;
    let arch =
        Architecture::from_gguf_name(&gguf.architecture()?).context("unsupported architecture")?;
    let params = Hyperparams::from_gguf(&gguf, arch)?;
    let codec = TextCodec::from_gguf(&gguf)?;
    let model = Transformer::load(&mut gguf, params, 4096)?;
    let load_ms = ms(t);
    let text = codec.render(&build_messages(&request(REQUESTS[0])), true)?;
    let tokens = codec.encode(&text)?;
    // One short warm-up so one-time weight repacking is not counted as prefill.
    let mut warm = model.new_cache();
    model.forward(&tokens[..8.min(tokens.len())], &mut warm)?;
    model.forward(&tokens[8..9.min(tokens.len())], &mut warm)?;
    let mut cache = model.new_cache();
    let t = Instant::now();
    let mut logits = model.forward(&tokens, &mut cache)?;
    let prefill_ms = ms(t);
    let t = Instant::now();
    for _ in 0..decode {
        let next = logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i as u32)
            .unwrap_or(0);
        logits = model.forward(&[next], &mut cache)?;
    }
    Ok(Raw {
        load_ms,
        prefill_tokens: tokens.len(),
        prefill_ms,
        decode_tokens: decode,
        decode_ms: ms(t),
    })
}

struct EndToEnd {
    p50: f64,
    p90: f64,
    ttft_ms: f64,
    cached_tokens: usize,
}

fn end_to_end(path: &Path, prefix_cache: bool, n: usize, max_tokens: usize) -> Result<EndToEnd> {
    let config = EmbeddedConfig::builder()
        .prefix_cache(prefix_cache)
        .max_tokens(max_tokens)
        .build()?;
    let backend = EmbeddedModelBackend::new(path, config)?;
    backend.load()?;
    // Warm-up: fills the prefix cache (when on) and repacks weights, as a warm app would be.
    backend.generate_command(&request("show the current date"))?;
    let mut totals = Vec::new();
    let mut ttft = Vec::new();
    let mut cached = 0;
    for prompt in REQUESTS.iter().take(n) {
        let out = backend.generate_command(&request(prompt))?;
        totals.push(out.timings.total);
        // First token comes out of the prefill's logits, plus one sampling step.
        ttft.push(out.timings.prefill);
        cached = out.tokens.cached;
    }
    totals.sort_by(f64::total_cmp);
    ttft.sort_by(f64::total_cmp);
    Ok(EndToEnd {
        p50: percentile(&totals, 0.5),
        p90: percentile(&totals, 0.9),
        ttft_ms: percentile(&ttft, 0.5),
        cached_tokens: cached,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.model.is_file(),
        "no model at {}: run scripts/fetch-test-models.sh",
        args.model.display()
    );
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");

    let raw = raw_speed(&args.model, args.max_tokens)?;
    let n = usize::from(args.requests);
    let on = end_to_end(&args.model, true, n, args.max_tokens)?;
    let off = end_to_end(&args.model, false, n, args.max_tokens)?;
    let rss = peak_rss_mb();
    let prefill_tps = raw.prefill_tokens as f64 / (raw.prefill_ms / 1e3);
    let decode_tps = raw.decode_tokens as f64 / (raw.decode_ms / 1e3);
    let name = args
        .model
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();

    if args.json {
        let v = serde_json::json!({
            "model": name, "threads": threads, "loadavg": load,
            "load_ms": raw.load_ms,
            "prefill_tokens": raw.prefill_tokens, "prefill_tok_s": prefill_tps,
            "decode_tokens": raw.decode_tokens, "decode_tok_s": decode_tps,
            "prefix_cache_on": {"ttft_ms": on.ttft_ms, "p50_ms": on.p50, "p90_ms": on.p90, "cached_tokens": on.cached_tokens},
            "prefix_cache_off": {"ttft_ms": off.ttft_ms, "p50_ms": off.p50, "p90_ms": off.p90},
            "p50_ratio_off_over_on": off.p50 / on.p50,
            "peak_rss_mb": rss,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("caro-bench: {name}, {threads} threads, load average {load}, {n} requests");
    println!();
    println!("| metric | prefix cache on | prefix cache off | off / on |");
    println!("|---|---|---|---|");
    println!("| load | {:.0} ms | | |", raw.load_ms);
    println!(
        "| prefill ({} tokens, cold) | {prefill_tps:.1} tok/s | | |",
        raw.prefill_tokens
    );
    println!(
        "| decode ({} tokens) | {decode_tps:.1} tok/s | | |",
        raw.decode_tokens
    );
    println!(
        "| time to first token (p50) | {:.0} ms | {:.0} ms | {:.2}x |",
        on.ttft_ms,
        off.ttft_ms,
        off.ttft_ms / on.ttft_ms
    );
    println!(
        "| end-to-end p50 | {:.0} ms | {:.0} ms | {:.2}x |",
        on.p50,
        off.p50,
        off.p50 / on.p50
    );
    println!(
        "| end-to-end p90 | {:.0} ms | {:.0} ms | {:.2}x |",
        on.p90,
        off.p90,
        off.p90 / on.p90
    );
    println!(
        "| prompt tokens served from cache | {} | 0 | |",
        on.cached_tokens
    );
    match rss {
        Some(mb) => println!("| peak RSS (whole run) | {mb:.0} MB | | |"),
        None => println!("| peak RSS | n/a on this OS | | |"),
    }
    Ok(())
}
