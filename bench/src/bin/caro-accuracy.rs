//! `caro-accuracy`: how often caro's command is right. Runs the team's dev set through the
//! embedded backend for one or more models, scores each answer (exact, same utilities, same
//! flags, and by executing it in a bubblewrap sandbox against the references), and prints one
//! table with accuracy, load time, p50/p90 latency and peak RSS per model.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use anyhow::{Context, Result, bail};
use caro_bench::devset::{self, Item};
use caro_bench::sandbox::{Outcome, Sandbox};
use caro_bench::score::{self, Static};
use caro_core::{
    CommandGenerator, CommandRequest, EmbeddedConfig, EmbeddedModelBackend, ExecutionContext,
};
use clap::Parser;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(
    about = "Measure caro's command accuracy on the team's dev set",
    long_about = "Measure caro's command accuracy on the team's dev set.\n\n\
        Each request goes through the embedded backend exactly as the CLI sends it. The answer is \
        scored against the item's reference commands by the shell parser (exact, same utilities, \
        same utilities and flags) and, for items marked executable, by running it and the \
        references in a throwaway bubblewrap sandbox: read-only system, no network, a fresh copy \
        of the fixture tree, a time limit.",
    after_help = "Examples:\n  \
        caro-accuracy --model target/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf\n  \
        caro-accuracy --model a.gguf --model b.gguf --results target/accuracy.jsonl\n  \
        caro-accuracy --check-references     # every reference runs and agrees with its siblings"
)]
struct Args {
    /// GGUF model to evaluate; repeat to compare models in one table.
    #[arg(
        long,
        env = "CARO_MODEL_PATH",
        required_unless_present = "check_references"
    )]
    model: Vec<PathBuf>,
    /// The dev set (JSONL of {id, nl, reference_cmds, shell, platform, category, exec}).
    #[arg(long, default_value = devset::DEFAULT_PATH)]
    dev_set: PathBuf,
    /// Only items of this category (files, find, text, archives, processes, disk, networking, git).
    #[arg(long)]
    category: Option<String>,
    /// Only the first N items (after --category).
    #[arg(long)]
    limit: Option<usize>,
    /// Sampling temperature; repeat to compare settings (0 = greedy). Default: caro's default.
    #[arg(long)]
    temperature: Vec<f32>,
    /// Score by parsing only; do not execute anything.
    #[arg(long)]
    no_exec: bool,
    /// Turn off caro's command check (installed programs, `bash -n`) and its retry, to
    /// measure what the check adds.
    #[arg(long)]
    no_check: bool,
    /// Seconds each executed command may run.
    #[arg(long, default_value_t = 10)]
    time_limit: u64,
    /// Write one JSON line per item and model here.
    #[arg(long)]
    results: Option<PathBuf>,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Check the dev set itself: every executable item's references succeed in the sandbox and
    /// agree with each other. No model is loaded.
    #[arg(long)]
    check_references: bool,
}

#[derive(Debug, serde::Serialize)]
struct ItemResult<'a> {
    model: &'a str,
    temperature: f32,
    id: &'a str,
    category: &'a str,
    nl: &'a str,
    candidate: Option<String>,
    error: Option<String>,
    warnings: Vec<String>,
    #[serde(flatten)]
    score: Static,
    /// None when the item is not executed.
    exec_match: Option<bool>,
    candidate_status: Option<i32>,
    ms: f64,
}

#[derive(Debug, Default, serde::Serialize)]
struct Summary {
    model: String,
    temperature: f32,
    items: usize,
    exact: usize,
    utilities: usize,
    flags: usize,
    exec_items: usize,
    exec_match: usize,
    errors: usize,
    load_ms: f64,
    p50_ms: f64,
    p90_ms: f64,
    peak_rss_mb: Option<f64>,
    by_category: std::collections::BTreeMap<String, (usize, usize)>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut items = devset::load(&args.dev_set)?;
    if let Some(c) = &args.category {
        items.retain(|i| &i.category == c);
    }
    if let Some(n) = args.limit {
        items.truncate(n);
    }
    if items.is_empty() {
        bail!("no dev-set items selected (check --category / --limit)");
    }
    let sandbox = if args.no_exec {
        None
    } else {
        let sb = Sandbox::new(
            Path::new(devset::FIXTURE_DIR),
            Some(Path::new(devset::SETUP_SCRIPT)),
            Duration::from_secs(args.time_limit),
        )
        .context(
            "the execution check needs the sandbox; pass --no-exec to score by parsing only",
        )?;
        Some(sb)
    };
    if args.check_references {
        let sandbox = sandbox.context("--check-references needs the sandbox")?;
        return check_references(&items, &sandbox);
    }
    let references = match &sandbox {
        Some(sb) => run_references(&items, sb)?,
        None => vec![Vec::new(); items.len()],
    };
    let mut results_file = match &args.results {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?,
        )),
        None => None,
    };
    let temperatures = if args.temperature.is_empty() {
        vec![EmbeddedConfig::default().temperature]
    } else {
        args.temperature.clone()
    };
    let mut summaries = Vec::new();
    for model in &args.model {
        for &t in &temperatures {
            let s = evaluate(
                model,
                t,
                !args.no_check,
                &items,
                &references,
                sandbox.as_ref(),
                &mut results_file,
            )?;
            summaries.push(s);
        }
    }
    if let Some(f) = &mut results_file {
        f.flush()?;
    }
    let load = caro_bench::sys::loadavg();
    if args.json {
        let v = serde_json::json!({"loadavg": load, "dev_set": args.dev_set, "results": summaries});
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_table(&summaries, &load);
    }
    Ok(())
}

/// Each item's reference outcomes, run once and shared by every model.
fn run_references(items: &[Item], sandbox: &Sandbox) -> Result<Vec<Vec<Outcome>>> {
    items
        .iter()
        .map(|item| {
            if !item.exec {
                return Ok(Vec::new());
            }
            item.reference_cmds
                .iter()
                .map(|r| Ok(sandbox.run(&item.shell, r)?))
                .collect()
        })
        .collect()
}

fn check_references(items: &[Item], sandbox: &Sandbox) -> Result<()> {
    let mut bad = Vec::new();
    let mut variants = Vec::new();
    let mut checked = 0;
    for item in items.iter().filter(|i| i.exec) {
        checked += 1;
        let mut first: Option<Outcome> = None;
        for r in &item.reference_cmds {
            let out = sandbox.run(&item.shell, r)?;
            if !out.succeeded() {
                bad.push(format!(
                    "{}: `{r}` exited {:?}: {}",
                    item.id,
                    out.status,
                    out.stderr.trim()
                ));
                continue;
            }
            // A candidate identical to a reference must score, so a reference has to do the
            // same thing every time it runs.
            let again = sandbox.run(&item.shell, r)?;
            if !score::same_outcome(&out, &again) {
                bad.push(format!(
                    "{}: `{r}` is not deterministic in the sandbox",
                    item.id
                ));
            }
            match &first {
                None => first = Some(out),
                Some(f) if !score::same_outcome(f, &out) => {
                    variants.push(format!(
                        "{}: `{r}` differs from `{}`",
                        item.id, item.reference_cmds[0]
                    ));
                }
                Some(_) => {}
            }
        }
    }
    println!(
        "checked {checked} executable items ({} in the dev set): {} problems",
        items.len(),
        bad.len()
    );
    for b in &bad {
        println!("- {b}");
    }
    if !variants.is_empty() {
        println!(
            "References that answer the same request with different output (each scores on its own):"
        );
        for v in &variants {
            println!("- {v}");
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        bail!("{} reference problems", bad.len())
    }
}

fn evaluate(
    model: &Path,
    temperature: f32,
    check: bool,
    items: &[Item],
    references: &[Vec<Outcome>],
    sandbox: Option<&Sandbox>,
    results: &mut Option<impl Write>,
) -> Result<Summary> {
    anyhow::ensure!(
        model.is_file(),
        "no model at {}: run scripts/fetch-test-models.sh",
        model.display()
    );
    let name = model
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Each model's peak is its own (Linux: resets the high-water mark).
    caro_bench::sys::reset_peak_rss();
    let config = EmbeddedConfig::builder()
        .temperature(temperature)
        .check_commands(check)
        .build()?;
    let backend = EmbeddedModelBackend::new(model, config)?;
    let t = Instant::now();
    backend.load()?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut s = Summary {
        model: name.clone(),
        temperature,
        items: items.len(),
        load_ms,
        ..Summary::default()
    };
    let mut latencies = Vec::new();
    let total = items.len();
    for (n, (item, refs)) in items.iter().zip(references).enumerate() {
        let request = CommandRequest::new(&item.nl, item.shell_type()).with_context(
            ExecutionContext::for_os(
                item.platform.os(),
                Some(caro_bench::sandbox::PROJECT.into()),
            ),
        );
        let t = Instant::now();
        let generated = backend.generate_command(&request);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        latencies.push(ms);
        let (candidate, error, warnings) = match generated {
            Ok(g) => (Some(g.command), None, g.warnings),
            Err(e) => (None, Some(e.to_string()), Vec::new()),
        };
        let cmd = candidate.as_deref().unwrap_or("");
        let st = score::static_match(cmd, &item.reference_cmds, item.shell_type());
        let mut exec_match = None;
        let mut candidate_status = None;
        if let (Some(sb), true, Some(c)) = (sandbox, item.exec, candidate.as_deref()) {
            let out = sb.run(&item.shell, c)?;
            candidate_status = out.status;
            exec_match = Some(refs.iter().any(|r| score::same_outcome(&out, r)));
        } else if item.exec && sandbox.is_some() {
            exec_match = Some(false);
        }
        s.exact += usize::from(st.exact);
        s.utilities += usize::from(st.utilities);
        s.flags += usize::from(st.flags);
        s.errors += usize::from(error.is_some());
        if let Some(m) = exec_match {
            s.exec_items += 1;
            s.exec_match += usize::from(m);
        }
        let cat = s.by_category.entry(item.category.clone()).or_default();
        cat.0 += 1;
        cat.1 += usize::from(exec_match.unwrap_or(st.flags));
        eprint!("\r{name} t={temperature}: {}/{total}", n + 1);
        if let Some(f) = results.as_mut() {
            let r = ItemResult {
                model: &name,
                temperature,
                id: &item.id,
                category: &item.category,
                nl: &item.nl,
                candidate,
                error,
                warnings,
                score: st,
                exec_match,
                candidate_status,
                ms,
            };
            writeln!(f, "{}", serde_json::to_string(&r)?)?;
        }
    }
    eprintln!();
    latencies.sort_by(f64::total_cmp);
    s.p50_ms = caro_bench::sys::percentile(&latencies, 0.5);
    s.p90_ms = caro_bench::sys::percentile(&latencies, 0.9);
    s.peak_rss_mb = caro_bench::sys::peak_rss_mb("self");
    backend.shutdown();
    Ok(s)
}

fn print_table(summaries: &[Summary], load: &str) {
    let pct = |a: usize, b: usize| {
        if b == 0 {
            "n/a".to_owned()
        } else {
            format!("{:.1}%", 100.0 * a as f64 / b as f64)
        }
    };
    let items = summaries.first().map_or(0, |s| s.items);
    println!("caro-accuracy: {items} dev-set items, load average {load}");
    println!();
    println!(
        "| model | temp | exact | same utilities | utilities + flags | execution match | errors | load | p50 | p90 | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for s in summaries {
        println!(
            "| {} | {} | {} | {} | {} | {} ({} items) | {} | {:.0} ms | {:.0} ms | {:.0} ms | {} |",
            s.model,
            s.temperature,
            pct(s.exact, s.items),
            pct(s.utilities, s.items),
            pct(s.flags, s.items),
            pct(s.exec_match, s.exec_items),
            s.exec_items,
            s.errors,
            s.load_ms,
            s.p50_ms,
            s.p90_ms,
            s.peak_rss_mb.map_or("n/a".into(), |m| format!("{m:.0} MB")),
        );
    }
    if let Some(first) = summaries.first() {
        println!();
        println!("By category (executed items: execution match; the rest: utilities + flags):");
        println!();
        let cats: Vec<&String> = first.by_category.keys().collect();
        println!(
            "| model | temp | {} |",
            cats.iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(" | ")
        );
        println!("|---|---|{}", "---|".repeat(cats.len()));
        for s in summaries {
            let cells: Vec<String> = cats
                .iter()
                .map(|c| {
                    let (n, ok) = s.by_category.get(*c).copied().unwrap_or_default();
                    format!("{ok}/{n}")
                })
                .collect();
            println!(
                "| {} | {} | {} |",
                s.model,
                s.temperature,
                cells.join(" | ")
            );
        }
    }
}
