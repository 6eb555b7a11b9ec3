//! `caro-accuracy`: how often caro's command is right. Runs the team's dev and test splits through the
//! embedded backend for one or more models, scores each answer (exact, same utilities, same
//! flags, and by executing it in a bubblewrap sandbox against the references), and prints one
//! table with accuracy, load time, p50/p90 latency and peak RSS per model.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use anyhow::{Context, Result, bail};
use caro_bench::devset::{self, Item, Order, Split};
use caro_bench::sandbox::{Outcome, Sandbox};
use caro_bench::score::{self, Static};
use caro_bench::stats::Proportion;
use caro_core::{
    CommandGenerator, CommandRequest, EmbeddedConfig, EmbeddedModelBackend, ExecutionContext,
};
use clap::Parser;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(
    about = "Measure caro's command accuracy on the team's dev and test splits",
    long_about = "Measure caro's command accuracy on the team's dev and test splits.\n\n\
        Each request goes through the embedded backend exactly as the CLI sends it. The answer is \
        scored against the item's reference commands by the shell parser (exact, same utilities, \
        same utilities and flags) and, for items marked executable, by running it and the \
        references in a throwaway bubblewrap sandbox: read-only system, no network, a fresh copy \
        of the fixture tree, a time limit. Line order counts unless the item says \
        \"order\": \"any\".\n\n\
        The latency (p50, p90) is the whole answer as the CLI gives it: the backend's answer, \
        then the choice among candidates and the preview of the chosen command's effects in the \
        sandbox, which the CLI makes for one candidate too. `--results` splits each item's time \
        into prefill, decode and select.\n\n\
        Tune on dev. The test split is frozen: report it, never choose a prompt, an example or \
        a parameter by it.",
    after_help = "Examples:\n  \
        caro-accuracy --model target/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf   # both splits\n  \
        caro-accuracy --model a.gguf --split dev --results target/accuracy.jsonl\n  \
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
    /// Which split to run; repeat for both (the default).
    #[arg(long, value_enum)]
    split: Vec<Split>,
    /// A JSONL file of items of your own ({id, nl, reference_cmds, shell, platform, category,
    /// exec, order}) instead of the splits.
    #[arg(long, alias = "dev-set", conflicts_with = "split")]
    items: Option<PathBuf>,
    /// Only items of this category (files, find, text, archives, processes, disk, networking,
    /// git; the test split adds system, users, dates, packages and containers).
    #[arg(long)]
    category: Option<String>,
    /// Only the first N items of each split (after --category).
    #[arg(long)]
    limit: Option<usize>,
    /// Sampling temperature; repeat to compare settings (0 = greedy). Default: caro's default.
    #[arg(long)]
    temperature: Vec<f32>,
    /// Which grounding levers are on, comma-separated: `examples=N` (the N bank pairs closest
    /// to the request), `candidates=K` (best-of-k, issue 20: K candidates decoded together and
    /// chosen among in the sandbox, as the CLI chooses; `candidates=K@T` samples the others at
    /// temperature T instead of caro's default), `options` (check options against the
    /// local --help), `paths` (say
    /// whether the request's paths exist in its folder), `listing` (the folder's first names),
    /// or `none`. Repeat to compare settings in one run. Default: caro's defaults.
    #[arg(long, value_parser = parse_levers)]
    levers: Vec<Levers>,
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
    /// Write one JSON line per item, split and model here.
    #[arg(long)]
    results: Option<PathBuf>,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Check the items themselves: every executable item's references succeed in the sandbox
    /// and agree with each other. No model is loaded.
    #[arg(long)]
    check_references: bool,
}

/// One set of items under its name, with each item's reference outcomes once they ran.
struct SplitItems {
    name: String,
    path: PathBuf,
    items: Vec<Item>,
    references: Vec<Vec<Outcome>>,
}

#[derive(Debug, serde::Serialize)]
struct ItemResult<'a> {
    model: &'a str,
    temperature: f32,
    levers: String,
    split: &'a str,
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
    /// Where `ms` went: the backend's prefill and decode (both tries when the command check
    /// asked again), and the choice among candidates with the preview in the sandbox (for one
    /// candidate too, as the CLI makes it); None when there was no answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    split_ms: Option<SplitMs>,
    /// Issue 20: with best-of-k, every candidate the model offered (its order, the first the
    /// greedy one), each scored as the answer would be: what selection rules could have
    /// chosen, studied offline on the split that tunes them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    offered: Vec<Offered>,
}

/// An answer's time, by stage.
#[derive(Debug, serde::Serialize)]
struct SplitMs {
    prefill: f64,
    decode: f64,
    select: f64,
}

/// One best-of-k candidate, scored.
#[derive(Debug, serde::Serialize)]
struct Offered {
    command: String,
    /// Safe, moderate, high or critical at the fixture's folder; caro runs only the first two.
    risk: String,
    exec_match: bool,
    /// Exit status 0 in the scoring sandbox.
    succeeded: bool,
    /// The index of the first candidate with the same outcome (exit, output, folder), as the
    /// harness compares outcomes.
    group: usize,
}

/// A category's figures: execution match over its executed items, and utilities + flags
/// over all of them.
#[derive(Debug, serde::Serialize)]
struct CategoryScore {
    items: usize,
    exec_match: Proportion,
    flags: Proportion,
}

#[derive(Debug, serde::Serialize)]
struct Summary {
    model: String,
    temperature: f32,
    levers: String,
    split: String,
    items: usize,
    exact: Proportion,
    utilities: Proportion,
    flags: Proportion,
    exec_match: Proportion,
    errors: usize,
    load_ms: f64,
    p50_ms: f64,
    p90_ms: f64,
    peak_rss_mb: Option<f64>,
    by_category: BTreeMap<String, CategoryScore>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let sources: Vec<(String, PathBuf)> = match &args.items {
        Some(p) => vec![(
            p.file_stem()
                .map_or("items".into(), |s| s.to_string_lossy().into_owned()),
            p.clone(),
        )],
        None => {
            let splits = if args.split.is_empty() {
                vec![Split::Dev, Split::Test]
            } else {
                args.split.clone()
            };
            splits
                .iter()
                .map(|s| (s.name().to_owned(), PathBuf::from(s.path())))
                .collect()
        }
    };
    let mut splits = Vec::new();
    for (name, path) in sources {
        let mut items = devset::load(&path)?;
        if let Some(c) = &args.category {
            items.retain(|i| &i.category == c);
        }
        if let Some(n) = args.limit {
            items.truncate(n);
        }
        if !items.is_empty() {
            splits.push(SplitItems {
                name,
                path,
                items,
                references: Vec::new(),
            });
        }
    }
    if splits.is_empty() {
        bail!("no items selected (check --category / --limit)");
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
        let mut problems = 0;
        for split in &splits {
            problems += check_references(split, &sandbox)?;
        }
        if problems > 0 {
            bail!("{problems} reference problems");
        }
        return Ok(());
    }
    for split in &mut splits {
        split.references = match &sandbox {
            Some(sb) => run_references(&split.items, sb)?,
            None => vec![Vec::new(); split.items.len()],
        };
    }
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
    let levers = if args.levers.is_empty() {
        vec![Levers::defaults()]
    } else {
        args.levers.clone()
    };
    let mut summaries = Vec::new();
    for model in &args.model {
        for (&t, l) in temperatures
            .iter()
            .flat_map(|t| levers.iter().map(move |l| (t, l)))
        {
            summaries.extend(evaluate(
                model,
                Setting {
                    temperature: t,
                    levers: l.clone(),
                },
                !args.no_check,
                &splits,
                sandbox.as_ref(),
                &mut results_file,
            )?);
        }
    }
    if let Some(f) = &mut results_file {
        f.flush()?;
    }
    let load = caro_bench::sys::loadavg();
    if args.json {
        let names: Vec<_> = splits
            .iter()
            .map(|s| serde_json::json!({"name": s.name, "path": s.path, "items": s.items.len()}))
            .collect();
        let v = serde_json::json!({"loadavg": load, "splits": names, "results": summaries});
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

/// Checks one split's references; returns how many problems it found (printed).
fn check_references(split: &SplitItems, sandbox: &Sandbox) -> Result<usize> {
    let mut bad = Vec::new();
    let mut variants = Vec::new();
    let mut checked = 0;
    for item in split.items.iter().filter(|i| i.exec) {
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
            if !score::same_outcome(&out, &again, item.order) {
                bad.push(format!(
                    "{}: `{r}` is not deterministic in the sandbox",
                    item.id
                ));
            }
            match &first {
                None => first = Some(out),
                Some(f) if !score::same_outcome(f, &out, item.order) => {
                    let hint = if score::same_outcome(f, &out, Order::Any) {
                        " (only in line order: say \"order\": \"any\" if order is not the answer)"
                    } else {
                        ""
                    };
                    variants.push(format!(
                        "{}: `{r}` differs from `{}`{hint}",
                        item.id, item.reference_cmds[0]
                    ));
                }
                Some(_) => {}
            }
        }
    }
    println!(
        "{}: checked {checked} executable items ({} in the split): {} problems",
        split.name,
        split.items.len(),
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
    Ok(bad.len())
}

/// What is varied between runs of one model.
#[derive(Debug, Clone)]
struct Setting {
    temperature: f32,
    levers: Levers,
}

/// Issue 19's grounding levers, as `--levers` names them.
#[derive(Debug, Clone, PartialEq)]
struct Levers {
    examples: usize,
    options: bool,
    paths: bool,
    listing: bool,
    /// Issue 20: best-of-k; 1 is off.
    candidates: usize,
    /// Issue 20: the samples' temperature; None is caro's default.
    candidate_temperature: Option<f32>,
}

impl Levers {
    fn defaults() -> Self {
        let c = EmbeddedConfig::default();
        Self {
            examples: c.retrieved_examples,
            options: c.check_options,
            paths: c.describe_paths,
            listing: c.list_folder,
            candidates: c.candidates,
            candidate_temperature: None,
        }
    }

    fn label(&self) -> String {
        let mut on = Vec::new();
        if self.examples > 0 {
            on.push(format!("examples={}", self.examples));
        }
        match (self.candidates, self.candidate_temperature) {
            (1, _) => {}
            (k, None) => on.push(format!("candidates={k}")),
            // `{t:?}`: 1.0 reads as 1.0, as it was asked for, not as 1.
            (k, Some(t)) => on.push(format!("candidates={k}@{t:?}")),
        }
        for (set, name) in [
            (self.options, "options"),
            (self.paths, "paths"),
            (self.listing, "listing"),
        ] {
            if set {
                on.push(name.to_owned());
            }
        }
        if on.is_empty() {
            "none".to_owned()
        } else {
            on.join(",")
        }
    }
}

fn parse_levers(s: &str) -> Result<Levers, String> {
    let mut l = Levers {
        examples: 0,
        options: false,
        paths: false,
        listing: false,
        candidates: 1,
        candidate_temperature: None,
    };
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "none" => {}
            "options" => l.options = true,
            "paths" => l.paths = true,
            "listing" => l.listing = true,
            _ => match (
                part.strip_prefix("examples=").map(str::parse),
                part.strip_prefix("candidates=").map(str::parse),
            ) {
                (Some(Ok(n)), _) => l.examples = n,
                (_, Some(Ok(k))) => l.candidates = k,
                (_, Some(Err(_))) if part.contains('@') => {
                    let (k, t) = part["candidates=".len()..]
                        .split_once('@')
                        .unwrap_or_default();
                    match (k.parse(), t.parse()) {
                        (Ok(k), Ok(t)) => {
                            l.candidates = k;
                            l.candidate_temperature = Some(t);
                        }
                        _ => return Err(format!("`{part}`: use candidates=K or candidates=K@T")),
                    }
                }
                _ => {
                    return Err(format!(
                        "unknown lever `{part}`: use examples=N, candidates=K, options, paths, listing or none"
                    ));
                }
            },
        }
    }
    Ok(l)
}

/// Loads `model` once and runs every split through it: one summary per split.
fn evaluate(
    model: &Path,
    Setting {
        temperature,
        levers,
    }: Setting,
    check: bool,
    splits: &[SplitItems],
    sandbox: Option<&Sandbox>,
    results: &mut Option<impl Write>,
) -> Result<Vec<Summary>> {
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
        .retrieved_examples(levers.examples)
        .check_options(levers.options)
        .describe_paths(levers.paths)
        .list_folder(levers.listing)
        .candidates(levers.candidates)
        .check_commands(check);
    let config = match levers.candidate_temperature {
        Some(t) => config.candidate_temperature(t),
        None => config,
    }
    .build()?;
    let validator =
        caro_core::safety::SafetyValidator::new(caro_core::safety::SafetyMode::Moderate);
    let at = caro_core::safety::Location::new(
        caro_bench::sandbox::PROJECT,
        Some(Path::new("/home/user")),
    );
    let backend = EmbeddedModelBackend::new(model, config)?;
    let label = levers.label();
    let t = Instant::now();
    backend.load()?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut summaries = Vec::new();
    for split in splits {
        let mut tally = Tally::default();
        let mut latencies = Vec::new();
        let total = split.items.len();
        for (n, (item, refs)) in split.items.iter().zip(&split.references).enumerate() {
            let t = Instant::now();
            let mut request = CommandRequest::new(&item.nl, item.shell_type()).with_context(
                ExecutionContext::for_os(
                    item.platform.os(),
                    Some(caro_bench::sandbox::PROJECT.into()),
                ),
            );
            // The request's folder is the sandbox's; the backend would read the harness's own.
            // Looked at inside the timed part, as the CLI's backend does.
            if let (Some(sb), true) = (sandbox, levers.paths || levers.listing) {
                request =
                    request.with_surroundings(caro_core::workdir::look(sb.golden(), &item.nl));
            }
            let mut generated = backend.generate_command(&request);
            let offered_commands = match &generated {
                Ok(g) => g.candidates.clone(),
                Err(_) => Vec::new(),
            };
            // Issue 20: the choice among candidates and the preview of the chosen command's
            // effects, timed with the answer: the CLI makes both before it shows any answer,
            // one candidate or several. The preview runs on a copy of the fixture (mounted at
            // the copy's own path, not PROJECT: a command naming PROJECT's absolute path fails
            // there).
            let select_start = Instant::now();
            if let Ok(g) = &mut generated {
                caro_core::select::settle(
                    g,
                    item.shell_type(),
                    &validator,
                    Some(&at),
                    sandbox.map(Sandbox::golden),
                );
            }
            let select_ms = select_start.elapsed().as_secs_f64() * 1e3;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            latencies.push(ms);
            let split_ms = generated.as_ref().ok().map(|g| SplitMs {
                prefill: g.timings.prefill,
                decode: g.timings.decode,
                select: select_ms,
            });
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
                exec_match = Some(
                    refs.iter()
                        .any(|r| score::same_outcome(&out, r, item.order)),
                );
            } else if item.exec && sandbox.is_some() {
                exec_match = Some(false);
            }
            // Scored outside the timed part: the product never runs these against a reference.
            let mut offered = Vec::new();
            if let (Some(sb), true) = (sandbox, item.exec) {
                let mut outcomes: Vec<Outcome> = Vec::new();
                for c in &offered_commands {
                    let out = sb.run(&item.shell, c)?;
                    let group = outcomes
                        .iter()
                        .position(|o| score::same_outcome(o, &out, item.order))
                        .unwrap_or(outcomes.len());
                    offered.push(Offered {
                        command: c.clone(),
                        risk: validator
                            .verdict(c, item.shell_type(), Some(&at))
                            .risk
                            .to_string(),
                        exec_match: refs
                            .iter()
                            .any(|r| score::same_outcome(&out, r, item.order)),
                        succeeded: out.succeeded(),
                        group,
                    });
                    outcomes.push(out);
                }
            }
            tally.add(&item.category, st, exec_match, error.is_some());
            eprint!(
                "\r{name} t={temperature} levers={label} {}: {}/{total}",
                split.name,
                n + 1
            );
            if let Some(f) = results.as_mut() {
                let r = ItemResult {
                    model: &name,
                    temperature,
                    levers: label.clone(),
                    split: &split.name,
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
                    split_ms,
                    offered,
                };
                writeln!(f, "{}", serde_json::to_string(&r)?)?;
                // An item takes seconds: flushing each keeps every finished one on disk
                // when a long run is stopped.
                f.flush()?;
            }
        }
        eprintln!();
        latencies.sort_by(f64::total_cmp);
        summaries.push(tally.summary(
            &name,
            (temperature, &label),
            &split.name,
            load_ms,
            caro_bench::sys::percentile(&latencies, 0.5),
            caro_bench::sys::percentile(&latencies, 0.9),
        ));
    }
    let peak = caro_bench::sys::peak_rss_mb("self");
    for s in &mut summaries {
        s.peak_rss_mb = peak;
    }
    backend.shutdown();
    Ok(summaries)
}

/// Counts for one split, overall and per category.
#[derive(Default)]
struct Tally {
    items: usize,
    exact: usize,
    utilities: usize,
    flags: usize,
    exec_items: usize,
    exec_match: usize,
    errors: usize,
    /// category → (items, executed, matched, flags)
    by_category: BTreeMap<String, [usize; 4]>,
}

impl Tally {
    fn add(&mut self, category: &str, st: Static, exec_match: Option<bool>, error: bool) {
        self.items += 1;
        self.exact += usize::from(st.exact);
        self.utilities += usize::from(st.utilities);
        self.flags += usize::from(st.flags);
        self.errors += usize::from(error);
        let cat = self.by_category.entry(category.to_owned()).or_default();
        cat[0] += 1;
        cat[3] += usize::from(st.flags);
        if let Some(m) = exec_match {
            self.exec_items += 1;
            self.exec_match += usize::from(m);
            cat[1] += 1;
            cat[2] += usize::from(m);
        }
    }

    fn summary(
        self,
        model: &str,
        (temperature, levers): (f32, &str),
        split: &str,
        load_ms: f64,
        p50_ms: f64,
        p90_ms: f64,
    ) -> Summary {
        Summary {
            model: model.to_owned(),
            temperature,
            levers: levers.to_owned(),
            split: split.to_owned(),
            items: self.items,
            exact: Proportion::new(self.exact, self.items),
            utilities: Proportion::new(self.utilities, self.items),
            flags: Proportion::new(self.flags, self.items),
            exec_match: Proportion::new(self.exec_match, self.exec_items),
            errors: self.errors,
            load_ms,
            p50_ms,
            p90_ms,
            peak_rss_mb: None,
            by_category: self
                .by_category
                .into_iter()
                .map(|(c, [n, executed, matched, flags])| {
                    (
                        c,
                        CategoryScore {
                            items: n,
                            exec_match: Proportion::new(matched, executed),
                            flags: Proportion::new(flags, n),
                        },
                    )
                })
                .collect(),
        }
    }
}

/// `k/n = p% (lo–hi)`, or `n/a` for an empty sample.
fn show(p: &Proportion) -> String {
    if p.n == 0 {
        "n/a".to_owned()
    } else {
        format!(
            "{}/{} = {:.1}% ({:.1}–{:.1})",
            p.k,
            p.n,
            100.0 * p.value,
            100.0 * p.lo,
            100.0 * p.hi
        )
    }
}

fn print_table(summaries: &[Summary], load: &str) {
    println!("caro-accuracy: load average {load}; execution match with its 95% Wilson interval");
    println!();
    println!(
        "| split | model | temp | levers | exact | same utilities | utilities + flags | execution match | errors | load | p50 | p90 | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for s in summaries {
        let pct = |p: &Proportion| format!("{:.1}%", 100.0 * p.value);
        println!(
            "| {} ({} items) | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {} |",
            s.split,
            s.items,
            s.model,
            s.temperature,
            s.levers,
            pct(&s.exact),
            pct(&s.utilities),
            pct(&s.flags),
            show(&s.exec_match),
            s.errors,
            s.load_ms,
            s.p50_ms,
            s.p90_ms,
            s.peak_rss_mb.map_or("n/a".into(), |m| format!("{m:.0} MB")),
        );
    }
    for s in summaries {
        println!();
        println!(
            "By category: {} split, {} at temperature {}, levers {}",
            s.split, s.model, s.temperature, s.levers
        );
        println!();
        println!("| category | items | execution match | utilities + flags |");
        println!("|---|---|---|---|");
        for (c, cs) in &s.by_category {
            println!(
                "| {c} | {} | {} | {} |",
                cs.items,
                show(&cs.exec_match),
                show(&cs.flags)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::greedy("none", "none")]
    #[case::best_of_k("candidates=8", "candidates=8")]
    #[case::sampled_at_a_whole_temperature("candidates=8@1.0", "candidates=8@1.0")]
    #[case::sampled_at_a_fraction("candidates=4@0.7", "candidates=4@0.7")]
    #[case::several(
        "examples=3, candidates=2@0.5,options",
        "examples=3,candidates=2@0.5,options"
    )]
    fn levers_are_labelled_as_they_were_asked_for(#[case] asked: &str, #[case] label: &str) {
        let levers = parse_levers(asked).expect("valid levers");
        assert_eq!(levers.label(), label);
        assert_eq!(parse_levers(&levers.label()), Ok(levers));
    }

    #[rstest]
    #[case::no_temperature("candidates=8@")]
    #[case::no_count("candidates=@1.0")]
    #[case::unknown("candidates")]
    fn malformed_levers_are_refused(#[case] asked: &str) {
        assert!(parse_levers(asked).is_err(), "{asked}");
    }
}
