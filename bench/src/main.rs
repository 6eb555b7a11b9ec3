//! `caro-bench`: measures the embedded backend on one GGUF and prints a table.
//!
//! Everything is measured in one process run, so the ratios (prefix cache on vs off) compare
//! like with like on a shared, noisy machine.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use anyhow::{Context, Result};
use caro_bench::sys::{loadavg, peak_rss_mb, percentile, reset_peak_rss};
use caro_core::embedded::Architecture;
use caro_core::embedded::{Engine, EngineCache, GgufFile, Hyperparams, TextCodec, Transformer};
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
    /// llama.cpp's `llama-server` binary: when given, the same prompt is run through it in
    /// this run as the speed and memory reference (scripts/build-llama-server.sh builds one).
    #[arg(long, env = "CARO_BENCH_LLAMA_SERVER")]
    llama_server: Option<PathBuf>,
    /// llama.cpp's `llama-bench` binary: when given, it measures prefill of the same number of
    /// prompt tokens and decode at the same context depth, on the same file and threads, in
    /// this run (`scripts/build-llama-server.sh --bench` builds one).
    #[arg(long, env = "CARO_BENCH_LLAMA_BENCH")]
    llama_bench: Option<PathBuf>,
    /// llama.cpp's `llama-batched-bench` binary: when given, it decodes 1, 2, 4 and 8
    /// sequences together after the same shared prompt length, on the same file and threads,
    /// in this run, beside caro's own batched sweep (`scripts/build-llama-server.sh
    /// --batched-bench` builds one).
    #[arg(long, env = "CARO_BENCH_LLAMA_BATCHED_BENCH")]
    llama_batched_bench: Option<PathBuf>,
    /// The `caro` binary: when given, it is also measured from outside as separate processes
    /// on the same model and request, cold without and with the prefix cache on disk and as a
    /// client of a warm `caro serve`, each in a scratch home and cache (issue 21).
    #[arg(long, env = "CARO_BENCH_CARO")]
    caro: Option<PathBuf>,
    /// Processes per cold-start variant (the medians are reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=20))]
    cold_runs: u16,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

fn request(prompt: &str) -> CommandRequest {
    CommandRequest::new(prompt, ShellType::Bash).with_context(ExecutionContext::for_os(
        "linux",
        Some("/home/user/project".into()),
    ))
}

/// Decode runs averaged for the decode figure.
const DECODE_REPS: usize = 3;

struct Raw {
    peak_rss_mb: Option<f64>,
    load_ms: f64,
    prefill_tokens: usize,
    prefill_ms: f64,
    decode_tokens: usize,
    decode_ms: f64,
    /// The same decode steps through `dyn Engine`.
    seam_decode_ms: f64,
    /// Batched decode (issue 20): `(k, ms)` for `decode_tokens` steps of k sequences at once,
    /// continuing from the same prompt.
    batched: Vec<(usize, f64)>,
}

/// Sequences per step in the batched-decode sweep (k = 1 is the plain decode figure).
const BATCH_SIZES: [usize; 3] = [2, 4, 8];

/// Prefill and decode speed straight on the forward pass: the whole first prompt, cold, then
/// `decode` forced steps that ignore end-of-turn.
fn raw_speed(path: &Path, decode: usize, mmap: bool) -> Result<Raw> {
    reset_peak_rss();
    let t = Instant::now();
    let mut gguf = GgufFile::open(path)?;
    let arch =
        Architecture::from_gguf_name(&gguf.architecture()?).context("unsupported architecture")?;
    let params = Hyperparams::from_gguf(&gguf, arch)?;
    let codec = TextCodec::from_gguf(&gguf)?;
    let model = Transformer::load(&mut gguf, params, 4096, mmap)?;
    let load_ms = ms(t);
    let text = codec.render(&build_messages(&request(REQUESTS[0])), true)?;
    let tokens = codec.encode(&text)?;
    // One short warm-up so one-time weight repacking is not counted as prefill.
    let mut warm = model.new_cache();
    model.forward(&tokens[..8.min(tokens.len())], &mut warm)?;
    model.forward(&tokens[8..9.min(tokens.len())], &mut warm)?;
    let mut cache = model.new_cache();
    let t = Instant::now();
    let logits = model.forward(&tokens, &mut cache)?;
    let prefill_ms = ms(t);
    let argmax = |l: &[f32]| {
        l.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i as u32)
    };
    let after_prefill = (logits, cache);
    // Mean of several runs from the same context, as llama-bench reports: one 32-token run
    // moved by ±10% between runs on a shared machine.
    let mut decode_ms = 0.0;
    for _ in 0..DECODE_REPS {
        let (mut logits, mut cache) = after_prefill.clone();
        let t = Instant::now();
        for _ in 0..decode {
            logits = model.forward(&[argmax(&logits)], &mut cache)?;
        }
        decode_ms += ms(t) / DECODE_REPS as f64;
    }
    // The same steps through the engine seam the backend uses (`dyn Engine`).
    let (mut logits, cache) = after_prefill.clone();
    let engine: &dyn Engine = &model;
    let mut cache = EngineCache::Candle(cache);
    let t = Instant::now();
    for _ in 0..decode {
        logits = engine.forward(&[argmax(&logits)], &mut cache)?;
    }
    let seam_decode_ms = ms(t);
    // k sequences decoded as one batch: each continues the prompt with a different one of the
    // k likeliest first tokens, so they diverge as candidates do.
    let mut batched = Vec::new();
    let mut order: Vec<u32> = (0..after_prefill.0.len() as u32).collect();
    order.sort_by(|&a, &b| after_prefill.0[b as usize].total_cmp(&after_prefill.0[a as usize]));
    for k in BATCH_SIZES {
        let mut caches = vec![after_prefill.1.clone(); k];
        let mut next = order[..k].to_vec();
        let t = Instant::now();
        for _ in 0..decode {
            let logits = model.forward_batch(&next, &mut caches)?;
            next = logits.iter().map(|l| argmax(l)).collect();
        }
        batched.push((k, ms(t)));
    }
    Ok(Raw {
        peak_rss_mb: peak_rss_mb("self"),
        load_ms,
        prefill_tokens: tokens.len(),
        prefill_ms,
        decode_tokens: decode,
        decode_ms,
        seam_decode_ms,
        batched,
    })
}

struct EndToEnd {
    peak_rss_mb: Option<f64>,
    p50: f64,
    p90: f64,
    ttft_ms: f64,
    cached_tokens: usize,
}

fn end_to_end(path: &Path, prefix_cache: bool, n: usize, max_tokens: usize) -> Result<EndToEnd> {
    reset_peak_rss();
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
        peak_rss_mb: peak_rss_mb("self"),
        p50: percentile(&totals, 0.5),
        p90: percentile(&totals, 0.9),
        ttft_ms: percentile(&ttft, 0.5),
        cached_tokens: cached,
    })
}

/// llama.cpp on the same file, prompt and thread count: the reference for prefill and decode.
struct Llama {
    prefill_tps: f64,
    decode_tps: f64,
    peak_rss_mb: Option<f64>,
}

fn llama_cpp(server: &Path, model: &Path, threads: usize, decode: usize) -> Result<Llama> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = std::process::Command::new(server)
        .args(["-m", &model.to_string_lossy(), "-t", &threads.to_string()])
        .args([
            "-c",
            "2048",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", server.display()))?;
    let result = (|| -> Result<Llama> {
        let http = reqwest::blocking::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + std::time::Duration::from_secs(120);
        while !http
            .get(format!("{base}/health"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "llama-server did not become ready"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let codec = {
            let gguf = GgufFile::open(model)?;
            TextCodec::from_gguf(&gguf)?
        };
        let text = codec.render(&build_messages(&request(REQUESTS[0])), true)?;
        let body = serde_json::json!({
            "prompt": text, "n_predict": decode, "temperature": 0.0,
            "cache_prompt": false, "ignore_eos": true,
        });
        let mut timings = serde_json::Value::Null;
        // The first call warms llama.cpp up the way caro's own warm-up does.
        for _ in 0..2 {
            let reply: serde_json::Value = http
                .post(format!("{base}/completion"))
                .json(&body)
                .send()?
                .error_for_status()?
                .json()?;
            timings = reply["timings"].clone();
        }
        let num = |k: &str| {
            timings[k]
                .as_f64()
                .context("llama-server reply has no timings")
        };
        Ok(Llama {
            prefill_tps: num("prompt_per_second")?,
            decode_tps: num("predicted_per_second")?,
            peak_rss_mb: peak_rss_mb(&child.id().to_string()),
        })
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Runs one of llama.cpp's tools (`name`, built by `scripts/build-llama-server.sh flag`) with
/// no input; its output once it exited 0, else an error with the last line it printed.
fn run_llama_tool(
    mut cmd: std::process::Command,
    name: &str,
    flag: &str,
) -> Result<std::process::Output> {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| {
            format!(
                "cannot start {}: build it with scripts/build-llama-server.sh {flag}",
                cmd.get_program().to_string_lossy()
            )
        })?;
    anyhow::ensure!(
        out.status.success(),
        "{name} failed ({}); run it by hand with -m MODEL to see why: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("")
    );
    Ok(out)
}

/// One llama-bench test's mean throughput, in tokens per second.
fn llama_bench_tps(bin: &Path, model: &Path, threads: usize, test: &[&str]) -> Result<f64> {
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["-m", &model.to_string_lossy(), "-t", &threads.to_string()])
        .args(["-r", "3", "-o", "json"])
        .args(test);
    let out = run_llama_tool(cmd, "llama-bench", "--bench")?;
    let runs: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("llama-bench printed no JSON")?;
    runs.get(0)
        .and_then(|r| r["avg_ts"].as_f64())
        .context("llama-bench's JSON has no avg_ts")
}

/// llama.cpp's `llama-bench` on the same file and threads: prefill of `prompt` tokens, and
/// `decode` tokens generated after a `prompt`-token context, as caro's own figures are.
fn llama_bench(
    bin: &Path,
    model: &Path,
    threads: usize,
    prompt: usize,
    decode: usize,
) -> Result<(f64, f64)> {
    let (p, n) = (prompt.to_string(), decode.to_string());
    let prefill = llama_bench_tps(bin, model, threads, &["-p", &p, "-n", "0"])?;
    let decode = llama_bench_tps(bin, model, threads, &["-p", "0", "-n", &n, "-d", &p])?;
    Ok((prefill, decode))
}

/// llama.cpp's `llama-batched-bench` on the same file and threads: `decode` steps of k
/// sequences together (k = 1 and [`BATCH_SIZES`]) after one shared `prompt`-token prefill, as
/// caro's sweep decodes them. Returns (k, milliseconds for the steps) in k's order.
fn llama_batched_bench(
    bin: &Path,
    model: &Path,
    threads: usize,
    prompt: usize,
    decode: usize,
) -> Result<Vec<(usize, f64)>> {
    let ks: Vec<String> = std::iter::once(1)
        .chain(BATCH_SIZES)
        .map(|k| k.to_string())
        .collect();
    let k_max = BATCH_SIZES.iter().copied().max().unwrap_or(1);
    // A shared prompt (-pps) in one unified cache (-kvu), as caro's sequences share their
    // prefix: the prompt once plus every sequence's own tokens. Without -kvu each sequence
    // gets 1/k of the context and the prompt does not fit.
    let ctx = (prompt + k_max * (decode + 1)).next_multiple_of(256);
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["-m", &model.to_string_lossy(), "-t", &threads.to_string()])
        .args([
            "-c",
            &ctx.to_string(),
            "-b",
            "2048",
            "-ub",
            "512",
            "-pps",
            "-kvu",
        ])
        .args(["-npp", &prompt.to_string(), "-ntg", &decode.to_string()])
        .args(["-npl", &ks.join(","), "--output-format", "jsonl"]);
    let out = run_llama_tool(cmd, "llama-batched-bench", "--batched-bench")?;
    // One JSON object per line for each k, on stdout or stderr depending on the build's log
    // settings; everything else is its log.
    let text = [out.stdout, out.stderr].concat();
    let rows: Vec<(usize, f64)> = String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
        .filter_map(|v| Some((v["pl"].as_u64()? as usize, v["t_tg"].as_f64()? * 1e3)))
        .collect();
    anyhow::ensure!(
        rows.len() == ks.len(),
        "llama-batched-bench printed {} of the {} results asked for",
        rows.len(),
        ks.len()
    );
    Ok(rows)
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
    let load = loadavg();

    // Cold processes first, while this process is small: a child's peak memory as `wait4`
    // reports it includes the moment between fork and exec, when it still shares this
    // process's pages.
    #[cfg(unix)]
    let cold = match &args.caro {
        Some(caro) => Some(caro_bench::cold::measure(
            caro,
            &args.model,
            REQUESTS[0],
            usize::from(args.cold_runs),
        )?),
        None => None,
    };
    #[cfg(not(unix))]
    let cold: Option<()> = {
        anyhow::ensure!(args.caro.is_none(), "--caro is measured on Unix only");
        None
    };
    // Mapped runs first: memory a heap-loaded model frees is not always returned to the OS,
    // and it would count towards a later phase's peak.
    let mapped = raw_speed(&args.model, args.max_tokens, true)?;
    let n = usize::from(args.requests);
    let on = end_to_end(&args.model, true, n, args.max_tokens)?;
    let off = end_to_end(&args.model, false, n, args.max_tokens)?;
    let heap = raw_speed(&args.model, args.max_tokens, false)?;
    let llama = match &args.llama_server {
        Some(server) => Some(llama_cpp(server, &args.model, threads, args.max_tokens)?),
        None => None,
    };
    let (prompt, steps) = (mapped.prefill_tokens, mapped.decode_tokens);
    let bench = (args.llama_bench.as_deref())
        .map(|bin| llama_bench(bin, &args.model, threads, prompt, steps))
        .transpose()?;
    let batched_ref = (args.llama_batched_bench.as_deref())
        .map(|bin| llama_batched_bench(bin, &args.model, threads, prompt, steps))
        .transpose()?;
    // llama.cpp's time for k sequences over its own time for one, beside caro's.
    let llama_over_one = |k: usize| {
        let rows = batched_ref.as_ref()?;
        let one = rows.iter().find(|r| r.0 == 1)?.1;
        rows.iter().find(|r| r.0 == k).map(|r| (r.1, r.1 / one))
    };
    let tps = |r: &Raw| {
        (
            r.prefill_tokens as f64 / (r.prefill_ms / 1e3),
            r.decode_tokens as f64 / (r.decode_ms / 1e3),
        )
    };
    let (prefill_tps, decode_tps) = tps(&mapped);
    let (heap_prefill_tps, heap_decode_tps) = tps(&heap);
    let name = args
        .model
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();

    if args.json {
        let v = serde_json::json!({
            "model": name, "threads": threads, "loadavg": load,
            "prefill_tokens": mapped.prefill_tokens, "decode_tokens": mapped.decode_tokens,
            "mapped": {"load_ms": mapped.load_ms, "prefill_tok_s": prefill_tps, "decode_tok_s": decode_tps, "peak_rss_mb": mapped.peak_rss_mb,
                       "seam_decode_tok_s": mapped.decode_tokens as f64 / (mapped.seam_decode_ms / 1e3)},
            "batched_decode": mapped.batched.iter().map(|&(k, ms)| serde_json::json!({
                "k": k, "ms": ms, "over_one_sequence": ms / mapped.decode_ms,
                "over_k_sequential": ms / (k as f64 * mapped.decode_ms),
                "llama_batched_bench": llama_over_one(k).map(|(ms, over)| serde_json::json!({
                    "ms": ms, "over_one_sequence": over,
                })),
            })).collect::<Vec<_>>(),
            "llama_batched_bench_one_sequence_ms": llama_over_one(1).map(|(ms, _)| ms),
            "heap": {"load_ms": heap.load_ms, "prefill_tok_s": heap_prefill_tps, "decode_tok_s": heap_decode_tps, "peak_rss_mb": heap.peak_rss_mb},
            "prefix_cache_on": {"ttft_ms": on.ttft_ms, "p50_ms": on.p50, "p90_ms": on.p90, "cached_tokens": on.cached_tokens, "peak_rss_mb": on.peak_rss_mb},
            "prefix_cache_off": {"ttft_ms": off.ttft_ms, "p50_ms": off.p50, "p90_ms": off.p90, "peak_rss_mb": off.peak_rss_mb},
            "p50_ratio_off_over_on": off.p50 / on.p50,
            "llama_cpp": llama.as_ref().map(|l| serde_json::json!({
                "prefill_tok_s": l.prefill_tps, "decode_tok_s": l.decode_tps, "peak_rss_mb": l.peak_rss_mb,
                "decode_ratio_caro_over_llama": decode_tps / l.decode_tps,
            })),
            "cold_start": cold.as_ref().map(cold_json),
            "llama_bench": bench.map(|(p, d)| serde_json::json!({
                "prefill_tok_s": p, "decode_tok_s": d,
                "prefill_ratio_caro_over_llama": prefill_tps / p,
                "decode_ratio_caro_over_llama": decode_tps / d,
            })),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let mb = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.0} MB"));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}x", a / b),
        _ => String::new(),
    };
    println!("caro-bench: {name}, {threads} threads, load average {load}, {n} requests");
    println!();
    println!("Weights: memory-mapped (caro's default) against read into memory.");
    println!();
    println!("| metric | mapped | read into memory | mapped / read |");
    println!("|---|---|---|---|");
    println!(
        "| load | {:.0} ms | {:.0} ms | {:.2}x |",
        mapped.load_ms,
        heap.load_ms,
        mapped.load_ms / heap.load_ms
    );
    println!(
        "| prefill ({} tokens, cold) | {prefill_tps:.1} tok/s | {heap_prefill_tps:.1} tok/s | {:.2}x |",
        mapped.prefill_tokens,
        prefill_tps / heap_prefill_tps
    );
    println!(
        "| decode ({} tokens, mean of {DECODE_REPS}) | {decode_tps:.1} tok/s | {heap_decode_tps:.1} tok/s | {:.2}x |",
        mapped.decode_tokens,
        decode_tps / heap_decode_tps
    );
    println!(
        "| peak RSS | {} | {} | {} |",
        mb(mapped.peak_rss_mb),
        mb(heap.peak_rss_mb),
        ratio(mapped.peak_rss_mb, heap.peak_rss_mb)
    );
    let seam_tps = mapped.decode_tokens as f64 / (mapped.seam_decode_ms / 1e3);
    println!(
        "| decode through the engine seam (`dyn Engine`) | {seam_tps:.1} tok/s | | {:.2}x of direct |",
        seam_tps / decode_tps
    );
    println!();
    println!(
        "Batched decode (issue 20): {} steps of k sequences in one batch, against one sequence \
         (the decode row above) and against k sequences decoded one after another (k times it).",
        mapped.decode_tokens
    );
    println!();
    if batched_ref.is_some() {
        println!(
            "llama.cpp: llama-batched-bench on the same file and threads, in this run (-pps -kvu: \
             the prompt prefilled once and shared; its own random tokens)."
        );
        println!();
    }
    let llama_cells = |k: usize| match (&batched_ref, llama_over_one(k)) {
        (None, _) => String::new(),
        (Some(_), Some((ms, over))) => format!(" {ms:.0} ms | {over:.2}x |"),
        (Some(_), None) => " n/a | n/a |".to_owned(),
    };
    let (llama_head, llama_rule) = match batched_ref {
        Some(_) => (" llama.cpp batch | llama.cpp batch / one |", "---|---|"),
        None => ("", ""),
    };
    println!(
        "| k | batch | tok/s (all sequences) | batch / one sequence | batch / k sequential |{llama_head}"
    );
    println!("|---|---|---|---|---|{llama_rule}");
    println!(
        "| 1 | {:.0} ms | {decode_tps:.1} | 1.00x | 1.00x |{}",
        mapped.decode_ms,
        llama_cells(1)
    );
    for &(k, ms) in &mapped.batched {
        println!(
            "| {k} | {ms:.0} ms | {:.1} | {:.2}x | {:.2}x |{}",
            (k * mapped.decode_tokens) as f64 / (ms / 1e3),
            ms / mapped.decode_ms,
            ms / (k as f64 * mapped.decode_ms),
            llama_cells(k)
        );
    }
    println!();
    println!("End to end through the backend (mapped weights), prefix cache on and off.");
    println!();
    println!("| metric | prefix cache on | prefix cache off | off / on |");
    println!("|---|---|---|---|");
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
    println!(
        "| peak RSS | {} | {} | |",
        mb(on.peak_rss_mb),
        mb(off.peak_rss_mb)
    );
    if let Some(l) = llama {
        println!();
        println!(
            "llama.cpp (llama-server) on the same file, prompt and threads, in this run (one \
             request; caro's decode is the mean of {DECODE_REPS})."
        );
        println!();
        println!("| metric | caro (mapped) | llama.cpp | caro / llama.cpp |");
        println!("|---|---|---|---|");
        println!(
            "| prefill ({} tokens) | {prefill_tps:.1} tok/s | {:.1} tok/s | {:.2}x |",
            mapped.prefill_tokens,
            l.prefill_tps,
            prefill_tps / l.prefill_tps
        );
        println!(
            "| decode ({} tokens) | {decode_tps:.1} tok/s | {:.1} tok/s | {:.2}x |",
            mapped.decode_tokens,
            l.decode_tps,
            decode_tps / l.decode_tps
        );
        println!(
            "| peak RSS | {} | {} | {} |",
            mb(mapped.peak_rss_mb),
            mb(l.peak_rss_mb),
            ratio(mapped.peak_rss_mb, l.peak_rss_mb)
        );
    }
    #[cfg(unix)]
    if let Some(c) = &cold {
        print_cold(c, &mb);
    }
    if let Some((p, d)) = bench {
        println!();
        println!(
            "llama.cpp's llama-bench on the same file and threads, in this run (mean of 3; decode \
             after a {}-token context, as caro's).",
            mapped.prefill_tokens
        );
        println!();
        println!("| metric | caro (mapped) | llama-bench | caro / llama-bench |");
        println!("|---|---|---|---|");
        println!(
            "| prefill ({} tokens) | {prefill_tps:.1} tok/s | {p:.1} tok/s | {:.2}x |",
            mapped.prefill_tokens,
            prefill_tps / p
        );
        println!(
            "| decode ({} tokens, mean of {DECODE_REPS}) | {decode_tps:.1} tok/s | {d:.1} tok/s | {:.2}x |",
            mapped.decode_tokens,
            decode_tps / d
        );
    }
    Ok(())
}

#[cfg(unix)]
fn cold_json(c: &caro_bench::cold::ColdStart) -> serde_json::Value {
    serde_json::json!({
        "detail": c,
        "cached_over_load_plus_warm": c.cached_over_load_plus_warm(),
        "cached_over_warm": c.cached_over_warm(),
        "uncached_over_cached": c.uncached_over_cached(),
    })
}

/// Cold starts are measured on Unix only (`wait4`): nothing to report elsewhere.
#[cfg(not(unix))]
fn cold_json(_: &()) -> serde_json::Value {
    serde_json::Value::Null
}

#[cfg(unix)]
fn print_cold(c: &caro_bench::cold::ColdStart, mb: &dyn Fn(Option<f64>) -> String) {
    let (u, k, w) = (&c.cold_uncached, &c.cold_cached, &c.warm_daemon);
    println!();
    println!(
        "Cold start: the `caro` binary as separate processes, {} each (medians), request {:?}. \
         Wall time is spawn to exit, as the user waits.",
        k.runs, c.request
    );
    println!();
    println!(
        "| metric | cold, no cache file | cold, prefix cache on disk | warm daemon (client) |"
    );
    println!("|---|---|---|---|");
    let all = [u, k, w];
    let row = |metric: &str, cell: &dyn Fn(&caro_bench::cold::Summary) -> String| {
        let cells: Vec<String> = all.iter().map(|s| cell(s)).collect();
        println!("| {metric} | {} |", cells.join(" | "));
    };
    let millis = |v: f64| format!("{v:.0} ms");
    row("wall time", &|s| millis(s.wall_ms));
    row("load", &|s| millis(s.load_ms));
    row("prefill", &|s| millis(s.prefill_ms));
    row("decode", &|s| millis(s.decode_ms));
    row("prompt tokens from cache", &|s| s.cached_tokens.to_string());
    row("peak RSS (the warm column: the daemon's)", &|s| {
        mb(s.peak_rss_mb)
    });
    println!();
    println!(
        "cold with cache / (its load + warm answer) = {:.2}x (goal <= 1.5); cold with cache / \
         warm = {:.2}x; no cache file / cache = {:.2}x",
        c.cached_over_load_plus_warm(),
        c.cached_over_warm(),
        c.uncached_over_cached()
    );
}
