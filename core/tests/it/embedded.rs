//! Integration tests of the embedded backend on real GGUF models (SmolLM2-135M for speed,
//! Qwen2.5-Coder-1.5B for the tokenizer and template). Models come from
//! `scripts/fetch-test-models.sh`.

use caro_core::embedded::{Architecture, GgufFile, Hyperparams, TextCodec, Transformer};
use caro_core::prompt::build_messages;
use caro_core::{
    CommandGenerator, CommandRequest, EmbeddedConfig, EmbeddedModelBackend, ExecutionContext,
    GeneratedCommand, GeneratorError, ShellType,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caro_testkit::{QWEN_1_5B, SMOL, model};

fn greedy() -> EmbeddedConfig {
    greedy_with(|b| b)
}

/// Greedy, 24 tokens, with one more setting changed.
fn greedy_with(
    f: impl FnOnce(
        caro_core::embedded::EmbeddedConfigBuilder,
    ) -> caro_core::embedded::EmbeddedConfigBuilder,
) -> EmbeddedConfig {
    f(EmbeddedConfig::builder().temperature(0.0).max_tokens(24))
        .build()
        .expect("config")
}

/// What the model said, whether or not it held a usable command. SmolLM2's greedy output
/// differs across CPUs (SIMD width changes float sums), so tests of the runtime's mechanics
/// compare raw text and must not depend on the tiny model writing a valid command.
fn raw(result: Result<GeneratedCommand, GeneratorError>) -> String {
    match result {
        Ok(out) => out.raw_output,
        Err(GeneratorError::NoCommand { raw }) => raw,
        Err(e) => panic!("generation failed: {e}"),
    }
}

fn request(prompt: &str) -> CommandRequest {
    CommandRequest::new(prompt, ShellType::Bash).with_context(ExecutionContext::for_os(
        "linux",
        Some("/home/test/project".into()),
    ))
}

#[test]
fn loads_lazily_on_first_request() {
    let backend = EmbeddedModelBackend::new(model(QWEN_1_5B), greedy()).expect("backend");
    assert!(!backend.is_loaded(), "constructor must not load");
    assert!(!backend.backend_info().loaded);
    let out = backend
        .generate_command(&request("list the files here"))
        .expect("command");
    assert!(backend.is_loaded());
    assert!(!out.command.is_empty());
    assert_eq!(out.backend, "embedded");
    assert_eq!(out.model, QWEN_1_5B);
    assert!(out.timings.load > 0.0, "first request pays the load");
    assert!(out.timings.total >= out.timings.prefill + out.timings.decode);
    assert!(out.tokens.generated > 0 && out.tokens.prompt > 100);

    let again = backend
        .generate_command(&request("show disk usage"))
        .expect("command");
    assert_eq!(again.timings.load, 0.0, "warm model is not reloaded");
    assert!(
        again.tokens.cached > 0,
        "system prompt comes from the prefix cache"
    );
    assert!(again.tokens.cached < again.tokens.prompt);
}

#[test]
fn prefix_cache_gives_the_same_greedy_output() {
    let with = EmbeddedModelBackend::new(model(SMOL), greedy()).expect("backend");
    let without = EmbeddedModelBackend::new(model(SMOL), greedy_with(|b| b.prefix_cache(false)))
        .expect("backend");
    // Warm the cache with another request so the compared one really restores a snapshot.
    raw(with.generate_command(&request("print the date")));
    // One prompt: greedy text is only as stable as the float sums behind it, and SmolLM2's
    // rambling hits near-ties within 24 tokens. `restored_prefix_cache_matches_a_cold_prompt`
    // checks the logits themselves.
    let prompt = "count the lines in main.rs";
    assert_eq!(
        raw(with.generate_command(&request(prompt))),
        raw(without.generate_command(&request(prompt))),
        "prompt {prompt:?}"
    );
}

/// Loads `name` straight through the forward pass, mapped or read into memory.
fn transformer(name: &str, map: bool) -> (Transformer, Vec<u32>) {
    let mut gguf = GgufFile::open(&model(name)).expect("gguf");
    let arch = Architecture::from_gguf_name(&gguf.architecture().expect("arch")).expect("known");
    let params = Hyperparams::from_gguf(&gguf, arch).expect("params");
    let codec = TextCodec::from_gguf(&gguf).expect("codec");
    let text = codec
        .render(
            &build_messages(&request("list the five largest files here")),
            true,
        )
        .expect("template");
    let tokens = codec.encode(&text).expect("tokens");
    let model = Transformer::load(&mut gguf, params, 2048, map).expect("load");
    (model, tokens)
}

/// Largest difference between two logit vectors, relative to the second's largest magnitude.
/// Prompts of different lengths take different candle kernels (quantized activations or
/// not), which moves logits by about 2% of that: a broken cache or kernel moves them far more.
fn logit_gap(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let range = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1.0);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / range
}

fn argmax(l: &[f32]) -> u32 {
    l.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i as u32)
}

/// Issue 20: several sequences decoded as one batch (each matrix read once per step for all
/// of them) give each sequence exactly the logits it gets decoded alone, also when the
/// sequences are at different positions.
#[test]
fn a_batched_decode_step_gives_each_sequence_its_own_logits() {
    for name in [QWEN_1_5B, SMOL] {
        let (model, tokens) = transformer(name, true);
        let mut base = model.new_cache();
        let first = model.forward(&tokens, &mut base).expect("prefill");
        // The four likeliest next tokens; the last sequence one token further on.
        let mut order: Vec<u32> = (0..first.len() as u32).collect();
        order.sort_by(|&a, &b| first[b as usize].total_cmp(&first[a as usize]));
        let mut next = order[..4].to_vec();
        let mut caches = vec![base.clone(); 4];
        let ahead = model.forward(&[next[3]], &mut caches[3]).expect("ahead");
        next[3] = argmax(&ahead);
        let mut alone = caches.clone();
        for step in 0..3 {
            let batch = model.forward_batch(&next, &mut caches).expect("batch");
            assert_eq!(batch.len(), next.len());
            for (s, cache) in alone.iter_mut().enumerate() {
                let want = model.forward(&[next[s]], cache).expect("alone");
                assert!(
                    batch[s] == want,
                    "{name}: step {step}, sequence {s}: gap {}",
                    logit_gap(&batch[s], &want)
                );
            }
            next = batch.iter().map(|l| argmax(l)).collect();
        }
        for (b, a) in caches.iter().zip(&alone) {
            assert_eq!(b.len(), a.len(), "{name}: cache lengths");
        }
        assert_eq!(caches[0].len() + 1, caches[3].len());
        assert!(model.forward_batch(&next[..2], &mut caches).is_err());
    }
}

/// Issue 20: caches that share their prompt's positions instead of copying them (best-of-k's
/// branches) give exactly the logits copies give: prefilling more tokens after the shared
/// ones, decoding alone and batched, and after a second split; and they save the same
/// positions to disk.
#[test]
fn caches_sharing_their_prompt_give_exactly_what_copies_give() {
    use caro_core::embedded::{Engine, EngineCache};
    for name in [QWEN_1_5B, SMOL] {
        let (model, tokens) = transformer(name, true);
        let (head, tail) = tokens.split_at(tokens.len() - 6);
        let mut base = model.new_cache();
        model.forward(head, &mut base).expect("prefill");
        let mut copy = base.clone();
        base.share(&model);
        let mut shared = base.clone();
        let want = model.forward(tail, &mut copy).expect("copy");
        let got = model.forward(tail, &mut shared).expect("shared");
        assert!(got == want, "{name}: prefill after shared positions");
        // Three branches from here, as a best-of-k split: copies, and shares of one cache.
        let mut copies = vec![copy.clone(); 3];
        shared.share(&model);
        let mut shares = vec![shared.clone(); 3];
        let mut order: Vec<u32> = (0..want.len() as u32).collect();
        order.sort_by(|&a, &b| want[b as usize].total_cmp(&want[a as usize]));
        let mut next = order[..3].to_vec();
        for step in 0..3 {
            let want = model.forward_batch(&next, &mut copies).expect("copies");
            let got = if step == 1 {
                shares
                    .iter_mut()
                    .zip(&next)
                    .map(|(c, &t)| model.forward(&[t], c).expect("alone"))
                    .collect()
            } else {
                model.forward_batch(&next, &mut shares).expect("shares")
            };
            assert!(got == want, "{name}: step {step}");
            next = want.iter().map(|l| argmax(l)).collect();
            if step == 0 {
                // The first branch splits again.
                shares[0].share(&model);
                shares[2] = shares[0].clone();
                copies[2] = copies[0].clone();
                next[2] = order[5];
            }
        }
        for (s, c) in shares.iter().zip(&copies) {
            let saved = |c: &caro_core::embedded::KvCache| {
                let snap = model
                    .export_cache(&EngineCache::Candle(c.clone()))
                    .expect("export");
                (snap.len, snap.layers)
            };
            assert!(saved(s) == saved(c), "{name}: the saved positions");
        }
    }
}

/// Issue 20: with several candidates decoded together, the first is still exactly the greedy
/// answer decoded alone, the others are sampled, and each is a parsed command.
#[test]
fn best_of_k_keeps_the_greedy_answer_first_and_samples_the_rest() {
    let alone = EmbeddedModelBackend::new(model(QWEN_1_5B), greedy()).expect("backend");
    let together = EmbeddedModelBackend::new(model(QWEN_1_5B), greedy_with(|b| b.candidates(4)))
        .expect("backend");
    let req = request("show the five largest files in this folder");
    let one = alone.generate_command(&req).expect("alone");
    assert!(
        one.candidates.is_empty(),
        "one candidate lists none: {one:?}"
    );
    let four = together.generate_command(&req).expect("together");
    assert_eq!(four.command, one.command);
    assert_eq!(four.raw_output, one.raw_output);
    assert_eq!(four.candidates.first(), Some(&one.command), "{four:?}");
    assert!(
        (1..=4).contains(&four.candidates.len()),
        "{:?}",
        four.candidates
    );
    assert!(four.candidates.iter().all(|c| !c.trim().is_empty()));
    // The same seed gives the same samples.
    let again = together.generate_command(&req).expect("again");
    assert_eq!(again.candidates, four.candidates);
}

/// Issue 20: sequences that wrote the same tokens share one cache and one forward pass until
/// their samples differ. Each candidate must still be exactly the command its sampler writes
/// decoded alone (same temperature, same seed), whichever branch it travelled in.
#[test]
fn candidates_sharing_their_first_tokens_are_each_what_their_sampler_writes_alone() {
    const K: usize = 8;
    // One disk prefix cache for all the backends: the system prompt is prefilled once.
    let dir = tempfile::tempdir().expect("tmp");
    let unchecked = |b: caro_core::embedded::EmbeddedConfigBuilder| {
        b.check_commands(false)
            .prefix_cache_dir(Some(dir.path().to_path_buf()))
    };
    let together = EmbeddedModelBackend::new(
        model(QWEN_1_5B),
        greedy_with(|b| unchecked(b.candidates(K))),
    )
    .expect("backend");
    let req = request("show the five largest files in this folder");
    let all = together.generate_command(&req).expect("together");
    let defaults = EmbeddedConfig::default();
    let alone: Vec<String> = (0..K)
        .filter_map(|i| {
            let config = greedy_with(|b| {
                let b = unchecked(b).seed(defaults.seed.wrapping_add(i as u64));
                if i == 0 {
                    b
                } else {
                    b.temperature(defaults.candidate_temperature)
                }
            });
            let backend = EmbeddedModelBackend::new(model(QWEN_1_5B), config).expect("backend");
            // A sample with no command in it is left out of the candidates, as here.
            backend.generate_command(&req).ok().map(|g| g.command)
        })
        .collect();
    assert_eq!(all.candidates, alone);
    let distinct: std::collections::HashSet<&String> = alone.iter().collect();
    assert!(
        distinct.len() > 1,
        "the samples never split, so no branch was exercised: {alone:?}"
    );
}

#[test]
fn restored_prefix_cache_matches_a_cold_prompt() {
    let (model, tokens) = transformer(SMOL, true);
    let split = tokens.len() - 12;
    let mut prefix = model.new_cache();
    model
        .forward(&tokens[..split], &mut prefix)
        .expect("prefix");

    let mut warm = prefix.clone();
    let first = model.forward(&tokens[split..], &mut warm).expect("suffix");
    // Another request continuing from the same snapshot must not disturb it.
    let mut other = prefix.clone();
    model.forward(&[1, 2, 3], &mut other).expect("other");
    let mut again = prefix.clone();
    let second = model.forward(&tokens[split..], &mut again).expect("again");
    assert_eq!(first, second, "a snapshot is independent of its clones");

    let mut cold = model.new_cache();
    let mut want = model.forward(&tokens, &mut cold).expect("cold");
    let mut got = first;
    // Then decode one token at a time (the path that attends straight on the cache).
    for step in 0..8 {
        let gap = logit_gap(&got, &want);
        assert!(
            gap < 5e-2,
            "step {step}: logits differ by {gap} of their range"
        );
        let next = argmax(&want);
        want = model.forward(&[next], &mut cold).expect("cold step");
        got = model.forward(&[next], &mut warm).expect("warm step");
    }
    assert_eq!(warm.len(), cold.len());
}

/// The 1.5B model's Q4_K matrices go through caro's own tiles when mapped (on CPUs with
/// AVX-512 VNNI), and its decode steps through the tensor-free path; read into memory, both
/// go through candle. The two must agree.
#[test]
fn q4k_matrices_and_vector_decode_give_the_same_logits_as_candle() {
    let run = |map: bool| {
        let (model, tokens) = transformer(QWEN_1_5B, map);
        let tokens = &tokens[..tokens.len().min(64)];
        let mut cache = model.new_cache();
        let mut logits = vec![model.forward(tokens, &mut cache).expect("prompt")];
        // Fixed tokens, so both runs decode the same sequence.
        for token in [1_u32, 279, 1034] {
            logits.push(model.forward(&[token], &mut cache).expect("step"));
        }
        logits
    };
    let mapped = run(true);
    let read = run(false);
    for (step, (a, b)) in mapped.iter().zip(&read).enumerate() {
        let gap = logit_gap(a, b);
        assert!(
            gap < 5e-2,
            "step {step}: logits differ by {gap} of their range"
        );
        // Arbitrary tokens leave near-ties (0.1 apart at step 1), so the pick need only be
        // among the other's top three.
        let mut order: Vec<usize> = (0..b.len()).collect();
        order.sort_by(|&i, &j| b[j].total_cmp(&b[i]));
        assert!(
            order[..3].contains(&(argmax(a) as usize)),
            "step {step}: {} is not in the top three {:?}",
            argmax(a),
            &order[..3]
        );
    }
}

#[test]
fn mapped_weights_answer_like_weights_read_into_memory() {
    let mapped = EmbeddedModelBackend::new(model(SMOL), greedy()).expect("backend");
    let read =
        EmbeddedModelBackend::new(model(SMOL), greedy_with(|b| b.mmap(false))).expect("backend");
    for prompt in ["list the files here", "show the current git branch"] {
        assert_eq!(
            raw(mapped.generate_command(&request(prompt))),
            raw(read.generate_command(&request(prompt))),
            "prompt {prompt:?}"
        );
    }
}

#[test]
fn eight_concurrent_requests_are_served_in_order_without_loss() {
    let backend = Arc::new(EmbeddedModelBackend::new(model(SMOL), greedy()).expect("backend"));
    let prompts: Vec<String> = (0..8)
        .map(|i| format!("make a directory named build{i}"))
        .collect();
    let finished = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        let (backend, finished, p) = (backend.clone(), finished.clone(), p.clone());
        handles.push(std::thread::spawn(move || {
            let out = backend.generate_command(&request(&p));
            finished.lock().expect("lock").push(i);
            out
        }));
        // Stagger arrivals so their order is known; each request takes far longer than this.
        std::thread::sleep(Duration::from_millis(100));
    }
    let answers: Vec<_> = handles
        .into_iter()
        .map(|h| raw(h.join().expect("no panic")))
        .collect();
    assert_eq!(
        *finished.lock().expect("lock"),
        (0..8).collect::<Vec<_>>(),
        "FIFO order"
    );
    // Concurrency must not leak state between requests: each answer equals a lone run's.
    for (p, a) in prompts.iter().zip(&answers) {
        let alone = raw(backend.generate_command(&request(p)));
        assert_eq!(*a, alone, "prompt {p:?}");
    }
}

#[test]
fn shutdown_frees_the_model_and_a_later_request_reloads_it() {
    let backend = EmbeddedModelBackend::new(model(SMOL), greedy()).expect("backend");
    let first = raw(backend.generate_command(&request("show free memory")));
    assert!(backend.is_loaded());
    backend.shutdown();
    assert!(!backend.is_loaded());
    backend.shutdown(); // idempotent
    let second = raw(backend.generate_command(&request("show free memory")));
    assert!(backend.is_loaded(), "reloaded on demand");
    assert_eq!(first, second);
}

#[test]
fn explain_returns_text() {
    let backend = EmbeddedModelBackend::new(model(SMOL), greedy()).expect("backend");
    let text = backend
        .explain("ls -la", ShellType::Bash)
        .expect("explanation");
    assert!(!text.trim().is_empty());
}

// ---- bad input -------------------------------------------------------------------------

fn expect_err(path: PathBuf, prompt: &str) -> GeneratorError {
    let backend = EmbeddedModelBackend::new(path, greedy()).expect("backend");
    backend
        .generate_command(&request(prompt))
        .expect_err("must fail")
}

#[test]
fn empty_prompt_is_refused_before_loading() {
    let backend = EmbeddedModelBackend::new("/no/such/model.gguf", greedy()).expect("backend");
    for p in ["", "   ", "\n\t"] {
        let err = backend.generate_command(&request(p)).expect_err("empty");
        assert!(matches!(err, GeneratorError::EmptyPrompt), "{err}");
    }
    assert!(!backend.is_loaded());
}

#[test]
fn huge_prompt_is_refused_with_its_length() {
    let err = expect_err("/no/such/model.gguf".into(), &"files ".repeat(2000));
    assert!(
        matches!(
            err,
            GeneratorError::PromptTooLong {
                unit: "characters",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn prompt_longer_than_the_context_is_refused_in_tokens() {
    let backend = EmbeddedModelBackend::new(
        model(SMOL),
        EmbeddedConfig::builder()
            .context_limit(1024)
            .max_tokens(16)
            .build()
            .expect("config"),
    )
    .expect("backend");
    // Under the character limit, over the room the context leaves for the request.
    let err = backend
        .generate_command(&request(&"delete old logs ".repeat(240)))
        .expect_err("too long");
    match err {
        GeneratorError::PromptTooLong {
            length,
            limit,
            unit,
        } => {
            assert_eq!(unit, "tokens");
            assert!(length > limit);
        }
        other => panic!("unexpected {other}"),
    }
}

// Issue 17: a reply budget that filled the context was reported as "the request is too long:
// 11 tokens, the limit is 0", blaming a two-word request.
#[test]
fn reply_budget_filling_the_context_is_blamed_on_the_context() {
    let backend = EmbeddedModelBackend::new(
        model(SMOL),
        EmbeddedConfig::builder()
            .context_limit(512)
            .max_tokens(500)
            .build()
            .expect("config"),
    )
    .expect("backend");
    let err = backend
        .generate_command(&request("list files"))
        .expect_err("no room");
    match &err {
        GeneratorError::ContextTooSmall {
            context,
            prefix,
            request,
            reply,
        } => {
            assert_eq!((*context, *reply), (512, 500), "{err}");
            assert!(*prefix > 0 && *request > 0 && *request < 20, "{err}");
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("context window"), "{err}");
}

#[test]
fn missing_model_file_is_not_found() {
    let err = expect_err("/no/such/dir/model.gguf".into(), "list files");
    assert_eq!(err.code(), "model_not_found");
    assert!(err.to_string().contains("/no/such/dir/model.gguf"));
}

#[test]
fn random_bytes_named_gguf_are_not_a_gguf() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("random.gguf");
    let bytes: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, bytes).expect("write");
    let err = expect_err(path.clone(), "list files");
    assert_eq!(err.code(), "model_not_gguf", "{err}");
    let empty = dir.path().join("empty.gguf");
    std::fs::write(&empty, b"").expect("write");
    assert_eq!(expect_err(empty, "list files").code(), "model_not_gguf");
}

#[test]
fn truncated_gguf_is_reported_as_corrupt() {
    let src = std::fs::read(model(SMOL)).expect("read model");
    let dir = tempfile::tempdir().expect("tmp");
    // Cut inside the tensor data, and inside the header.
    for (name, len) in [("half.gguf", src.len() / 2), ("head.gguf", 200)] {
        let path = dir.path().join(name);
        std::fs::write(&path, &src[..len]).expect("write");
        let err = expect_err(path.clone(), "list files");
        assert_eq!(err.code(), "model_corrupt", "{name}: {err}");
        assert!(err.to_string().contains("download it again"), "{err}");
    }
}

#[test]
fn unsupported_architecture_is_named() {
    use candle_core::quantized::gguf_file::{Value, write};
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("mamba.gguf");
    let mut f = std::fs::File::create(&path).expect("create");
    let arch = Value::String("mamba".into());
    write(&mut f, &[("general.architecture", &arch)], &[]).expect("write gguf");
    drop(f);
    let err = expect_err(path, "list files");
    assert_eq!(err.code(), "model_unsupported_architecture", "{err}");
    assert!(err.to_string().contains("mamba"));
}

// ---- tokenizer and template ---------------------------------------------------------------

fn codec(name: &str) -> TextCodec {
    let gguf = GgufFile::open(&model(name)).expect("open");
    TextCodec::from_gguf(&gguf).expect("codec")
}

#[test]
fn tokenizers_round_trip_and_know_chat_tokens() {
    for name in [QWEN_1_5B, SMOL] {
        let c = codec(name);
        for text in [
            "find . -type f -size +100M",
            "grep -rn 'TODO' src/ | wc -l",
            "  leading spaces\n\ttabs and\r\nCRLF",
            "unicode: café – 日本語 🚀",
            "echo \"$HOME\" && ls ~/'My Documents'",
        ] {
            let ids = c.encode(text).expect("encode");
            assert_eq!(c.decode(&ids).expect("decode"), text, "{name}: {text:?}");
        }
        for special in ["<|im_start|>", "<|im_end|>"] {
            let id = c
                .token_id(special)
                .unwrap_or_else(|| panic!("{name} lacks {special}"));
            assert_eq!(
                c.encode(special).expect("encode"),
                vec![id],
                "{name}: {special} is one token"
            );
        }
        let ids = c.encode("<|im_start|>system").expect("encode");
        assert_eq!(
            c.decode(&ids[1..]).expect("decode"),
            "system",
            "{name}: no space invented after a special token"
        );
        let im_end = c.token_id("<|im_end|>").expect("im_end");
        assert!(
            c.stop_ids.contains(&im_end),
            "{name}: <|im_end|> stops generation"
        );
    }
}

#[test]
fn prompts_use_the_models_own_template() {
    let c = codec(QWEN_1_5B);
    assert!(c.native_template);
    let messages = build_messages(&request("show hidden files"));
    let text = c.render(&messages, true).expect("render");
    assert!(
        text.starts_with("<|im_start|>system\nYou are caro"),
        "{text}"
    );
    assert!(
        text.ends_with("<|im_start|>user\nshow hidden files<|im_end|>\n<|im_start|>assistant\n"),
        "{text}"
    );
    let ids = c.encode(&text).expect("encode");
    let im_start = c.token_id("<|im_start|>").expect("id");
    let turns = ids.iter().filter(|&&t| t == im_start).count();
    assert_eq!(
        turns,
        messages.len() + 1,
        "each message plus the generation prompt"
    );
}

// ---- the model file changing under a loaded model (issue 17) ------------------------------

/// A backend on a private copy of SmolLM2 that the test may truncate, delete or replace.
fn backend_on_a_copy() -> (tempfile::TempDir, PathBuf, EmbeddedModelBackend) {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("model.gguf");
    std::fs::copy(model(SMOL), &path).expect("copy model");
    let backend = EmbeddedModelBackend::new(
        &path,
        greedy_with(|b| b.max_tokens(8).check_commands(false)),
    )
    .expect("backend");
    (dir, path, backend)
}

/// Puts `src`'s bytes at `dst` the way a download does: a temporary file, then a rename.
fn replace_by_rename(src: &Path, dst: &Path) {
    let part = dst.with_extension("gguf.part");
    std::fs::copy(src, &part).expect("copy");
    std::fs::rename(&part, dst).expect("rename");
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open")
        .set_len(len)
        .expect("truncate");
}

fn assert_reports_changed_file(err: &GeneratorError, path: &Path) {
    assert_eq!(err.code(), "model_corrupt", "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("changed on disk"), "{msg}");
    assert!(
        msg.contains("caro model verify") && msg.contains("caro model pull"),
        "{msg}"
    );
}

#[test]
fn a_model_file_truncated_between_requests_is_reloaded_not_faulted() {
    let (_dir, path, backend) = backend_on_a_copy();
    let before = raw(backend.generate_command(&request("list files")));
    assert!(backend.is_loaded());

    // The weights are mapped: touching them now would be SIGBUS (exit 135). The backend must
    // notice the truncation and drop the mapping before it reads a byte of it.
    truncate(&path, 1024);
    let err = backend
        .generate_command(&request("list files"))
        .expect_err("truncated inside the header");
    assert_reports_changed_file(&err, &path);
    assert!(!backend.is_loaded(), "the stale mapping is dropped");
    let err = backend
        .explain("ls -la", ShellType::Bash)
        .expect_err("still truncated");
    assert_eq!(err.code(), "model_corrupt", "{err}");

    // Whole again, the way a download puts it back (temporary file, rename).
    replace_by_rename(&model(SMOL), &path);
    assert_eq!(
        raw(backend.generate_command(&request("list files"))),
        before
    );
    assert!(backend.is_loaded());

    // Cut inside the tensor data this time (the header still parses), under the loaded
    // model, and this time through explain.
    let len = std::fs::metadata(&path).expect("stat").len();
    truncate(&path, len / 2);
    let err = backend
        .explain("ls -la", ShellType::Bash)
        .expect_err("truncated inside the data");
    assert_reports_changed_file(&err, &path);
    assert!(!backend.is_loaded());

    // Rewritten in place (same inode): answers again.
    std::fs::copy(model(SMOL), &path).expect("rewrite in place");
    assert_eq!(
        raw(backend.generate_command(&request("list files"))),
        before
    );

    // An in-place rewrite under a loaded model, to the same size and inode, is seen too (by
    // its modification time) and loaded again rather than trusted.
    std::fs::copy(model(SMOL), &path).expect("rewrite in place");
    assert!(
        backend.load().expect("reload") > 0.0,
        "an in-place rewrite is loaded again"
    );
    assert_eq!(
        backend.load().expect("warm"),
        0.0,
        "an unchanged file is not"
    );
    assert_eq!(
        raw(backend.generate_command(&request("list files"))),
        before
    );
}

#[test]
fn a_model_file_replaced_between_requests_is_reloaded() {
    let (dir, path, backend) = backend_on_a_copy();
    raw(backend.generate_command(&request("list files")));
    assert!(backend.is_loaded());

    // Another valid model (another architecture, even) renamed over it. A hard link spares
    // copying 1.1 GB; nothing below writes to that inode.
    let other = dir.path().join("other.gguf");
    if std::fs::hard_link(model(QWEN_1_5B), &other).is_err() {
        std::fs::copy(model(QWEN_1_5B), &other).expect("copy the other model");
    }
    std::fs::rename(&other, &path).expect("rename over");
    raw(backend.generate_command(&request("list files")));
    assert_eq!(
        backend.load().expect("load"),
        0.0,
        "the request already loaded the file that is there now"
    );

    // And back to SmolLM2, noticed by an explicit load too.
    replace_by_rename(&model(SMOL), &path);
    assert!(
        backend.load().expect("reload") > 0.0,
        "a replaced file is loaded again"
    );
    raw(backend.generate_command(&request("list files")));
}

#[test]
fn a_model_file_deleted_between_requests_is_reported_then_reloaded() {
    let (_dir, path, backend) = backend_on_a_copy();
    raw(backend.generate_command(&request("list files")));
    std::fs::remove_file(&path).expect("delete");
    let err = backend
        .generate_command(&request("list files"))
        .expect_err("deleted");
    assert_eq!(err.code(), "model_not_found", "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(!backend.is_loaded());
    replace_by_rename(&model(SMOL), &path);
    raw(backend.generate_command(&request("list files")));
    assert!(backend.is_loaded());
}

// ---- the prefix cache on disk (issue 21) ---------------------------------------------------

fn disk_cached(dir: &Path) -> EmbeddedConfig {
    greedy_with(|b| b.prefix_cache_dir(Some(dir.to_path_buf())))
}

fn in_dir(prompt: &str, cwd: &str) -> CommandRequest {
    CommandRequest::new(prompt, ShellType::Bash)
        .with_context(ExecutionContext::for_os("linux", Some(cwd.into())))
}

/// A second backend (a new process, in effect) reads the prefix from disk in any directory,
/// and says exactly what a backend that computed everything itself says. SmolLM2 need not
/// write a command, so the file's use shows in its modification time, which a load that
/// accepted it refreshes (the least recently used files are pruned first).
#[test]
fn prefix_cache_on_disk_serves_the_next_process_in_any_directory() {
    let dir = tempfile::tempdir().expect("tmp");
    let prompt = "count the lines in main.rs";
    let first = EmbeddedModelBackend::new(model(SMOL), disk_cached(dir.path())).expect("backend");
    let cold = first
        .generate_command(&in_dir(prompt, "/home/test/project"))
        .map(|o| o.tokens.cached);
    assert!(
        matches!(cold, Ok(0) | Err(GeneratorError::NoCommand { .. })),
        "{cold:?}"
    );
    drop(first);
    let files = caro_core::embedded::prefix_store::list(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].model, SMOL);
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    let age = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .expect("mtime")
    };
    std::fs::File::options()
        .write(true)
        .open(&files[0].path)
        .and_then(|f| f.set_modified(hour_ago))
        .expect("age the file");

    let second = EmbeddedModelBackend::new(model(SMOL), disk_cached(dir.path())).expect("backend");
    let elsewhere = in_dir(prompt, "/srv/elsewhere");
    let restored = raw(second.generate_command(&elsewhere));
    assert!(
        age(&files[0].path) > hour_ago,
        "the second process used the file"
    );
    assert_eq!(caro_core::embedded::prefix_store::list(dir.path()).len(), 1);
    let reference = EmbeddedModelBackend::new(model(SMOL), greedy()).expect("backend");
    assert_eq!(restored, raw(reference.generate_command(&elsewhere)));
}

/// A model file that changed (here, a new modification time) no longer matches its caches:
/// the prefix is computed again and saved under a new key, never taken from the old file.
#[test]
fn a_changed_model_file_does_not_use_its_old_prefix_cache() {
    let (_tmp, path, _) = backend_on_a_copy();
    let dir = tempfile::tempdir().expect("tmp");
    let run = || {
        EmbeddedModelBackend::new(&path, disk_cached(dir.path()))
            .expect("backend")
            .generate_command(&request("print the date"))
    };
    raw(run());
    let later = std::time::SystemTime::now() + Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(later))
        .expect("touch");
    raw(run());
    assert_eq!(
        caro_core::embedded::prefix_store::list(dir.path()).len(),
        2,
        "one cache per state of the model file"
    );
}

/// A cache directory that cannot be written costs the next process its head start, never
/// this request its answer.
#[test]
fn an_unwritable_prefix_cache_never_fails_a_request() {
    let dir = tempfile::tempdir().expect("tmp");
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, b"x").expect("write");
    let backend = EmbeddedModelBackend::new(model(SMOL), disk_cached(&not_a_dir.join("cache")))
        .expect("backend");
    let reference = EmbeddedModelBackend::new(model(SMOL), greedy()).expect("backend");
    let r = request("print the date");
    assert_eq!(
        raw(backend.generate_command(&r)),
        raw(reference.generate_command(&r))
    );
}

// ---- grounding (issue 19, item 4) ------------------------------------------------------------

/// The retrieved pairs and the folder note come after the cached prefix: a grounded request
/// still reuses the prefix's KV state, and its prompt grows by what the levers add. Real
/// model, real folder, every lever on.
#[test]
fn grounding_is_prefilled_after_the_cached_prefix() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(dir.path().join("logs")).expect("mkdir");
    std::fs::write(dir.path().join("logs/server.log"), "a\nb\n").expect("write");
    let cwd = dir.path().to_str().expect("utf-8 path");
    let plain = EmbeddedModelBackend::new(model(QWEN_1_5B), greedy()).expect("backend");
    let grounded = EmbeddedModelBackend::new(
        model(QWEN_1_5B),
        greedy_with(|b| {
            b.retrieved_examples(2)
                .check_options(true)
                .describe_paths(true)
                .list_folder(true)
        }),
    )
    .expect("backend");
    let request = in_dir("count the lines of server.log", cwd);
    let mut answers = Vec::new();
    for backend in [&plain, &grounded] {
        // The first request fills the prefix cache; the second is served from it.
        backend
            .generate_command(&in_dir("list the files here", cwd))
            .expect("warm-up");
        answers.push(backend.generate_command(&request).expect("command"));
    }
    let (a, b) = (&answers[0], &answers[1]);
    assert!(a.tokens.cached > 0, "{:?}", a.tokens);
    assert!(
        b.tokens.cached >= a.tokens.cached,
        "the grounded request reuses the same cached prefix: {:?} vs {:?}",
        b.tokens,
        a.tokens
    );
    assert!(
        b.tokens.prompt > a.tokens.prompt + 20,
        "two pairs and the folder note join the prompt: {:?} vs {:?}",
        b.tokens,
        a.tokens
    );
    let note = caro_core::workdir::look(dir.path(), &request.prompt)
        .note(true, true)
        .expect("a note");
    assert!(note.contains("nearby: `logs/server.log`"), "{note}");
}
