//! `caro-safety-bench`: how fast the safety validator is, and that its time grows linearly with
//! input length. Every figure is a ratio against a reference measured in the same run.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use anyhow::{Context, Result};
use caro_core::ShellType;
use caro_core::safety::validate;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

fn corpus() -> Result<Vec<(ShellType, String)>> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/data/safety_corpus.tsv");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            Some((cols.get(1)?.parse().ok()?, cols.get(2)?.replace('⏎', "\n")))
        })
        .collect())
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

fn main() -> Result<()> {
    let cases = corpus()?;
    println!("caro-safety-bench: {} corpus commands", cases.len());

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
    Ok(())
}
