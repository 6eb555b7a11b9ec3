//! `caro-safety-bench`: how well the safety validator rates the labelled corpus (five figures
//! with 95 % Wilson intervals, overall, per shell and per class, gated on the team's targets),
//! then how fast it is and that its time grows linearly with input length. Every timing is a
//! ratio against a reference measured in the same run.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use anyhow::{Context, Result};
use caro_bench::safety_corpus::{self, Case, Figures, TARGETS};
use caro_bench::stats::Proportion;
use caro_safety::ShellType;
use caro_safety::{RiskLevel, validate};
use clap::Parser;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Rate the labelled safety corpus and time the validator")]
struct Args {
    /// A labelled TSV to rate instead of the team's corpus (same format; see its header).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Fail below the targets even for a --corpus file (the team's corpus is always gated).
    #[arg(long)]
    gate: bool,
    /// Print the figures as one JSON object on stdout and skip the timings.
    #[arg(long)]
    json: bool,
    /// Skip the timings (figures and gate only).
    #[arg(long)]
    no_timing: bool,
    /// List every command whose rating differs from its label.
    #[arg(long)]
    misses: bool,
}

fn team_corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../safety/tests/data/safety_corpus.tsv")
}

/// The figures of every case whose key is `key`, by key in order.
fn grouped(
    cases: &[Case],
    rated: &[RiskLevel],
    key: impl Fn(&Case) -> String,
) -> BTreeMap<String, Figures> {
    let mut groups: BTreeMap<String, Vec<(RiskLevel, RiskLevel)>> = BTreeMap::new();
    for (c, r) in cases.iter().zip(rated) {
        groups.entry(key(c)).or_default().push((c.level, *r));
    }
    groups
        .into_iter()
        .map(|(k, pairs)| (k, safety_corpus::figures(&pairs)))
        .collect()
}

/// `0.991 [0.978, 0.996] 418/422`, or `–` for an empty group.
fn cell(p: &Proportion) -> String {
    if p.n == 0 {
        return "–".into();
    }
    format!("{:.3} [{:.3}, {:.3}] {}/{}", p.value, p.lo, p.hi, p.k, p.n)
}

fn print_table(title: &str, rows: &[(String, Figures)]) {
    println!("\n{title}\n");
    print!("| group | n |");
    for (name, t) in TARGETS {
        print!(" {name} ({}) |", t.describe());
    }
    println!("\n|---|---|---|---|---|---|---|");
    for (name, f) in rows {
        print!("| {name} | {} |", f.exact_level.n);
        for p in f.all() {
            print!(" {} |", cell(&p));
        }
        println!();
    }
}

fn json_figures(f: &Figures) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("n".into(), f.exact_level.n.into());
    for ((name, _), p) in TARGETS.iter().zip(f.all()) {
        m.insert(
            name.replace([' ', '+'], "_"),
            serde_json::json!({"k": p.k, "n": p.n, "value": if p.n == 0 { None } else { Some(p.value) }, "lo": p.lo, "hi": p.hi}),
        );
    }
    m.into()
}

fn main() -> Result<ExitCode> {
    let args = Args::parse();
    let team = args.corpus.is_none();
    let path = args.corpus.clone().unwrap_or_else(team_corpus);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let cases = safety_corpus::parse(&text).with_context(|| path.display().to_string())?;
    let rated: Vec<RiskLevel> = cases
        .iter()
        .map(|c| validate(&c.command, c.shell).risk)
        .collect();
    let pairs: Vec<_> = cases
        .iter()
        .zip(&rated)
        .map(|(c, r)| (c.level, *r))
        .collect();
    let overall = safety_corpus::figures(&pairs);
    let by_shell = grouped(&cases, &rated, |c| c.shell.to_string());
    let by_class = grouped(&cases, &rated, |c| c.class.clone());
    let failures = overall.failures();
    let gated = team || args.gate;

    if args.json {
        let v = serde_json::json!({
            "corpus": path.display().to_string(),
            "commands": cases.len(),
            "overall": json_figures(&overall),
            "per_shell": by_shell.iter().map(|(k, f)| (k.clone(), json_figures(f))).collect::<serde_json::Map<_, _>>(),
            "per_class": by_class.iter().map(|(k, f)| (k.clone(), json_figures(f))).collect::<serde_json::Map<_, _>>(),
            "gated": gated,
            "failures": failures,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "caro-safety-bench: {} labelled commands from {}",
            cases.len(),
            path.display()
        );
        println!("(each cell: value [95 % Wilson interval] k/n)");
        print_table("overall", &[("all".into(), overall)]);
        print_table("per shell", &by_shell.into_iter().collect::<Vec<_>>());
        print_table("per class", &by_class.into_iter().collect::<Vec<_>>());
        if args.misses {
            println!("\ndisagreements:");
            for (c, r) in cases.iter().zip(&rated).filter(|(c, r)| c.level != **r) {
                println!(
                    "  want {:<8} got {:<8} [{}] {} ({})",
                    c.level, r, c.shell, c.command, c.class
                );
            }
        }
        if !args.no_timing {
            timings(&cases);
        }
    }
    if gated && !failures.is_empty() {
        eprintln!("caro-safety-bench: below target on {}:", path.display());
        for f in &failures {
            eprintln!("  {f}");
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Median of `runs` timings of `f`, in microseconds.
fn median_us(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// Throughput, scaling and `caro check` start-up.
fn timings(corpus: &[Case]) {
    let cases: Vec<(ShellType, String)> = corpus
        .iter()
        .map(|c| (c.shell, c.command.clone()))
        .collect();

    // Throughput over the corpus, against splitting the same text into words (the least any
    // checker must do).
    let check = median_us(15, || {
        for (shell, cmd) in &cases {
            std::hint::black_box(validate(cmd, *shell));
        }
    });
    let split = median_us(15, || {
        for (_, cmd) in &cases {
            std::hint::black_box(cmd.split_whitespace().count());
        }
    });
    println!("\n| what | median per command | ratio |");
    println!("|---|---|---|");
    println!(
        "| split into words (reference) | {:.2} µs | 1.0x |",
        split / cases.len() as f64
    );
    println!(
        "| validate (parse + rules) | {:.2} µs | {:.0}x |",
        check / cases.len() as f64,
        check / split
    );

    // Scaling: a long but ordinary pipeline, doubled each row. Linear time keeps the ratio of
    // time to size near 1.
    let unit =
        "find . -name '*.log' -mtime +7 | xargs -r gzip && echo \"$(date) done\" >> log.txt; ";
    let base_reps = 16;
    let base_text = unit.repeat(base_reps);
    let base = median_us(9, || {
        std::hint::black_box(validate(&base_text, ShellType::Bash));
    });
    println!("\n| input bytes | median | time ratio | size ratio |");
    println!("|---|---|---|---|");
    for k in [1usize, 2, 4, 8] {
        let text = unit.repeat(base_reps * k);
        let t = median_us(9, || {
            std::hint::black_box(validate(&text, ShellType::Bash));
        });
        println!(
            "| {} | {:.0} µs | {:.2}x | {}x |",
            text.len(),
            t,
            t / base,
            k
        );
    }

    // `caro check` start-up, against starting `true` (the cost of any process).
    let caro = std::env::var_os("CARO_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/caro")
        });
    if caro.is_file() {
        let spawn = |program: &std::path::Path, args: &[&str]| {
            median_us(21, || {
                let _ = Command::new(program).args(args).output();
            })
        };
        let truth = spawn(std::path::Path::new("true"), &[]);
        let check = spawn(&caro, &["check", "--", "rm -rf ./build"]);
        println!("\n| process | median wall | ratio |");
        println!("|---|---|---|");
        println!("| `true` (reference) | {:.2} ms | 1.0x |", truth / 1000.0);
        println!(
            "| `caro check -- 'rm -rf ./build'` | {:.2} ms | {:.1}x |",
            check / 1000.0,
            check / truth
        );
    } else {
        eprintln!(
            "(no {}: build it with `cargo build --release` to time `caro check` start-up)",
            caro.display()
        );
    }
}
