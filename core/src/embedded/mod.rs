//! The embedded backend: a GGUF model run in-process on Candle (CPU), loaded lazily on the
//! first request, shared safely between threads, and unloadable.

mod options;
pub mod prefix_store;

// The engine (GGUF, the forward pass, the kernels) is its own crate, where all of caro's
// `unsafe` lives; these paths keep working for the CLI, bench and tests.
pub use caro_engine::{
    Architecture, Engine, EngineCache, GgufFile, Hyperparams, KvCache, KvSnapshot, MLX_MISSING,
    ModelVariant, SUPPORTED_ARCHITECTURES, TextCodec, Transformer, cpu, mlx_compiled,
};

use crate::cancel::Cancel;
use crate::error::GeneratorError;
use crate::generator::{
    BackendInfo, CommandGenerator, CommandRequest, GeneratedCommand, Timings, TokenCounts,
};
use crate::preflight;
use crate::prompt::{self, ChatMessage};
use crate::reply;
use crate::shell::ShellType;
use caro_engine::{Choice, Sampler};
pub use options::{EmbeddedConfig, EmbeddedConfigBuilder};
use prefix_store::{PrefixKey, PrefixStore};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

/// A model in memory, with the KV state of the last system prompt it saw.
#[derive(Debug)]
struct Loaded {
    model: Box<dyn Engine>,
    codec: TextCodec,
    prefix: Option<(Vec<u32>, EngineCache)>,
    /// The file the weights were read (or mapped) from, as it was when loading began.
    file: FileIdentity,
    /// What the prefix's KV state depends on besides its tokens, for the disk cache; `None`
    /// when the engine cannot save its cache.
    disk_key: Option<PrefixKey>,
}

/// What tells one state of the model file from another: its size and modification time, and
/// on Unix the inode (a file renamed over it) and change time (rewritten in place, even to
/// the same size within one mtime tick, or with its mtime set back).
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileIdentity {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
    #[cfg(unix)]
    changed: (i64, i64),
}

impl FileIdentity {
    /// The identity of the file `path` names now (following symlinks, as opening it does).
    fn of(path: &Path) -> std::io::Result<Self> {
        std::fs::metadata(path).map(|m| Self::from_metadata(&m))
    }

    fn from_metadata(m: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Self {
            len: m.len(),
            modified: m.modified().ok(),
            #[cfg(unix)]
            inode: (m.dev(), m.ino()),
            #[cfg(unix)]
            changed: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// How the file went from `self` to `now`, in words for the log and the error.
    fn change_to(&self, now: &Self) -> String {
        let mut what = Vec::new();
        #[cfg(unix)]
        if self.inode != now.inode {
            what.push("another file was put in its place".to_owned());
        }
        if self.len != now.len {
            what.push(format!(
                "its size went from {} to {} bytes",
                self.len, now.len
            ));
        }
        if what.is_empty() {
            what.push("it was modified in place".to_owned());
        }
        what.join(", ")
    }
}

/// The embedded model backend.
///
/// Construction does no I/O; the first request loads the model. Requests from many threads
/// are served one at a time, in arrival order.
#[derive(Debug)]
pub struct EmbeddedModelBackend {
    model_path: PathBuf,
    config: EmbeddedConfig,
    variant: ModelVariant,
    /// The prefix cache on disk, when the config names a directory for it.
    disk: Option<PrefixStore>,
    queue: FifoLock,
    state: Mutex<Option<Loaded>>,
}

/// Options for one run of the model over a chat.
#[derive(Debug, Clone, Copy)]
struct RunOptions {
    /// Number of leading messages whose KV state may be cached across requests.
    cacheable_messages: usize,
    /// Stop as soon as the reply holds a whole command.
    stop_when_complete: bool,
    /// Replies to decode together (issue 20): the configured number for a command, one for
    /// an explanation or a second attempt.
    candidates: usize,
}

/// What one run produced.
#[derive(Debug)]
struct RunOutput {
    text: String,
    /// The other candidates' replies (issue 20), in the order they were sampled.
    alternatives: Vec<String>,
    timings: Timings,
    tokens: TokenCounts,
}

impl EmbeddedModelBackend {
    /// Creates the backend. Validates `config`; touches no file.
    pub fn new(
        model_path: impl Into<PathBuf>,
        config: EmbeddedConfig,
    ) -> Result<Self, GeneratorError> {
        config.validate()?;
        let variant = config.variant.unwrap_or_else(ModelVariant::detect);
        if variant == ModelVariant::Mlx && !mlx_compiled() {
            return Err(GeneratorError::InvalidConfig(MLX_MISSING.to_owned()));
        }
        let disk = config
            .prefix_cache_dir
            .clone()
            .filter(|_| config.prefix_cache)
            .map(|dir| PrefixStore::new(dir, prefix_store::DEFAULT_MAX_BYTES));
        Ok(Self {
            model_path: model_path.into(),
            config,
            variant,
            disk,
            queue: FifoLock::default(),
            state: Mutex::new(None),
        })
    }

    pub fn model_path(&self) -> &Path {
        &self.model_path
    }

    /// What this backend's settings add to the prompt for `request`; the folder is read here
    /// only when the frontend did not look already.
    fn grounding(&self, request: &CommandRequest, words: &str) -> prompt::Grounding {
        let c = &self.config;
        let folder_note = if c.describe_paths || c.list_folder {
            request
                .surroundings
                .clone()
                .or_else(|| {
                    let dir = request.context.cwd.as_deref().filter(|d| d.is_dir())?;
                    Some(crate::workdir::look(dir, words))
                })
                .and_then(|s| s.note(c.describe_paths, c.list_folder))
        } else {
            None
        };
        prompt::Grounding {
            retrieved: c.retrieved_examples,
            folder_note,
        }
    }

    pub fn config(&self) -> &EmbeddedConfig {
        &self.config
    }

    /// Whether the weights are in memory. Never waits: a request holding the state has
    /// loaded the model (or is loading it), so `caro status` answers during a generation.
    pub fn is_loaded(&self) -> bool {
        match self.state.try_lock() {
            Ok(state) => state.is_some(),
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner().is_some(),
            Err(std::sync::TryLockError::WouldBlock) => true,
        }
    }

    /// How long since any request (the daemon's, the popup's, a load) last used the model;
    /// `None` while one runs or waits. The idle unloader reads this, so it never unloads the
    /// model under a user of the popup.
    pub fn idle_for(&self) -> Option<std::time::Duration> {
        self.queue.idle_for()
    }

    /// Loads the model now instead of on the first request. Returns the load time in ms
    /// (zero when it was already loaded).
    pub fn load(&self) -> Result<f64, GeneratorError> {
        let _turn = self.queue.acquire();
        let mut state = self.lock_state();
        self.ensure_loaded(&mut state)
    }

    /// A one- or two-sentence explanation of `command`, from a separate model call.
    pub fn explain(&self, command: &str, shell: ShellType) -> Result<String, GeneratorError> {
        self.explain_with(command, shell, &Cancel::never())
    }

    /// [`explain`](Self::explain) that stops when `cancel` says so, between tokens.
    pub fn explain_with(
        &self,
        command: &str,
        shell: ShellType,
        cancel: &Cancel,
    ) -> Result<String, GeneratorError> {
        let messages = prompt::explain_messages(command, shell);
        let out = self.run(
            &messages,
            RunOptions {
                cacheable_messages: 0,
                stop_when_complete: false,
                candidates: 1,
            },
            cancel,
        )?;
        Ok(out.text.trim().to_owned())
    }

    fn lock_state(&self) -> MutexGuard<'_, Option<Loaded>> {
        // A panic mid-request leaves the model itself intact (it is immutable), so the state
        // stays usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `state` hold the model as the file is now: loads it if it is not in memory, and
    /// loads it again if the file changed since it was loaded. Every request that uses the
    /// model comes through here, holding its turn of the queue and the state.
    fn ensure_loaded(&self, state: &mut Option<Loaded>) -> Result<f64, GeneratorError> {
        let mut change = None;
        if let Some(loaded) = state.as_ref() {
            match self.file_change(&loaded.file) {
                None => return Ok(0.0),
                Some(what) => {
                    tracing::warn!(
                        path = %self.model_path.display(),
                        change = %what,
                        "the model file changed on disk since it was loaded; unloading it and \
                         loading it again"
                    );
                    change = Some(what);
                }
            }
        }
        // Issue 17: the weights may be memory-mapped, and reading a mapped page past the end
        // of a truncated file is SIGBUS, which kills the process (the warm daemon with it)
        // without a word. So a changed file's model is dropped here, before anything reads
        // it; dropping only unmaps, which reads nothing. This check closes the window
        // *between* requests: a file truncated while a request is running can still fault.
        // caro's own model store replaces files by rename, which never does that.
        if change.is_some() {
            *state = None;
        }
        match self.load_from_file() {
            Ok((loaded, ms)) => {
                *state = Some(loaded);
                Ok(ms)
            }
            Err(e) => Err(match change {
                Some(what) => self.changed_file_error(&what, e),
                None => e,
            }),
        }
    }

    /// Why the model file is no longer the one `was` describes; `None` if it still is.
    fn file_change(&self, was: &FileIdentity) -> Option<String> {
        match FileIdentity::of(&self.model_path) {
            Ok(now) if now == *was => None,
            Ok(now) => Some(was.change_to(&now)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Some("it was deleted or moved away".to_owned())
            }
            Err(e) => Some(format!("it can no longer be examined ({e})")),
        }
    }

    /// The error for a model file that changed under the loaded model and cannot be loaded
    /// as it is now. A missing file and an unsupported model keep their own errors (and
    /// codes); anything else means the file is damaged or half-written: `model_corrupt`,
    /// naming the file and what to do.
    fn changed_file_error(&self, what: &str, err: GeneratorError) -> GeneratorError {
        let why = match err {
            GeneratorError::ModelNotFound { .. }
            | GeneratorError::UnsupportedArchitecture { .. }
            | GeneratorError::InvalidConfig(_) => return err,
            GeneratorError::CorruptModel { reason, .. }
            | GeneratorError::NotGguf { reason, .. } => reason,
            GeneratorError::Io { source, .. } => source.to_string(),
            other => other.to_string(),
        };
        GeneratorError::CorruptModel {
            path: self.model_path.clone(),
            reason: format!(
                "it changed on disk while caro had it loaded ({what}) and cannot be loaded as \
                 it is now: {why}. Run `caro model verify` to check it, or `caro model pull` \
                 to download it again"
            ),
        }
    }

    /// Reads the model from the file as it is now.
    fn load_from_file(&self) -> Result<(Loaded, f64), GeneratorError> {
        let start = Instant::now();
        let span = tracing::info_span!("load", path = %self.model_path.display());
        let _enter = span.enter();
        // The identity is taken before the file is opened, so any change after this point,
        // even one racing the load itself, differs from it and is caught by the next request.
        let file = FileIdentity::of(&self.model_path);
        let mut gguf = GgufFile::open(&self.model_path)?;
        let file = match file {
            Ok(file) => file,
            // Appeared between the two calls: the open handle says what was opened.
            Err(_) => gguf
                .reader
                .get_ref()
                .metadata()
                .map(|m| FileIdentity::from_metadata(&m))
                .map_err(|source| GeneratorError::Io {
                    path: self.model_path.clone(),
                    source,
                })?,
        };
        let arch_name = gguf.architecture()?;
        let arch = Architecture::from_gguf_name(&arch_name).ok_or_else(|| {
            GeneratorError::UnsupportedArchitecture {
                path: self.model_path.clone(),
                arch: arch_name.clone(),
            }
        })?;
        let params = Hyperparams::from_gguf(&gguf, arch)?;
        let codec = TextCodec::from_gguf(&gguf)?;
        let model = caro_engine::load(
            self.variant,
            &mut gguf,
            params,
            self.config.context_limit,
            self.config.mmap,
        )?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        tracing::info!(
            arch = arch.name(),
            engine = model.variant().engine_name(),
            ms,
            "model loaded"
        );
        // The key describes the file as it was before it was opened. If it changed while
        // loading, the weights may be either file's, so nothing is saved or trusted.
        let unchanged = FileIdentity::of(&self.model_path).is_ok_and(|now| now == file);
        let disk_key = self.disk.as_ref().filter(|_| unchanged).and_then(|_| {
            PrefixKey::new(&self.model_path, file.len, file.modified, model.as_ref())
        });
        Ok((
            Loaded {
                model,
                codec,
                prefix: None,
                file,
                disk_key,
            },
            ms,
        ))
    }

    fn run(
        &self,
        messages: &[ChatMessage],
        opts: RunOptions,
        cancel: &Cancel,
    ) -> Result<RunOutput, GeneratorError> {
        let started = Instant::now();
        let stop = |s| GeneratorError::stopped(s, "embedded", cancel);
        let _turn = self.queue.acquire();
        // Issue 17: a request whose client left while it waited in the queue is dropped
        // here, at its turn, so it costs the requests behind it nothing.
        cancel.check().map_err(stop)?;
        let mut state = self.lock_state();
        let load_ms = self.ensure_loaded(&mut state)?;
        let loaded = state
            .as_mut()
            .ok_or_else(|| GeneratorError::Inference("model not loaded".into()))?;
        let mut out = generate(
            loaded,
            &self.config,
            self.disk.as_ref(),
            messages,
            opts,
            cancel,
        )?;
        out.timings.load = load_ms;
        out.timings.total = started.elapsed().as_secs_f64() * 1e3;
        Ok(out)
    }
}

/// Fewer tokens than this left for the request (a short paragraph) means the context window
/// is too small for the instructions and the reply budget, not that the request is too long.
const MIN_REQUEST_ROOM: usize = 128;

/// Tokenises the chat, reuses or builds the prefix KV cache (from memory, else from `disk`,
/// else by prefilling it and saving it there), and decodes the reply. `cancel` is polled
/// between the model's forward passes, so a stop takes effect within one token.
fn generate(
    loaded: &mut Loaded,
    config: &EmbeddedConfig,
    disk: Option<&PrefixStore>,
    messages: &[ChatMessage],
    opts: RunOptions,
    cancel: &Cancel,
) -> Result<RunOutput, GeneratorError> {
    let stop = |s| GeneratorError::stopped(s, "embedded", cancel);
    cancel.check().map_err(stop)?;
    let codec = &loaded.codec;
    let full = codec.render(messages, true)?;
    // The prefix is tokenised on its own. That matches tokenising the whole text because it
    // ends right before a special token (`<|im_start|>`), where BPE never merges across.
    let (prefix_ids, rest_ids) = match opts.cacheable_messages {
        0 => (Vec::new(), codec.encode(&full)?),
        n => {
            let prefix_text = codec.render(&messages[..n.min(messages.len())], false)?;
            match full.strip_prefix(&prefix_text) {
                Some(rest) => (codec.encode(&prefix_text)?, codec.encode(rest)?),
                None => (Vec::new(), codec.encode(&full)?),
            }
        }
    };
    let prompt_len = prefix_ids.len() + rest_ids.len();
    let limit = loaded.model.max_positions();
    if prompt_len + config.max_tokens > limit {
        let room = limit.saturating_sub(prefix_ids.len() + config.max_tokens);
        // Issue 17: with the reply budget filling the window, "11 tokens, the limit is 0"
        // blamed the request. When less room is left than a short paragraph, the window is
        // the problem, and the error says so with every part's size.
        if room < MIN_REQUEST_ROOM {
            return Err(GeneratorError::ContextTooSmall {
                context: limit,
                prefix: prefix_ids.len(),
                request: rest_ids.len(),
                reply: config.max_tokens,
            });
        }
        return Err(GeneratorError::PromptTooLong {
            length: rest_ids.len(),
            limit: room,
            unit: "tokens",
        });
    }

    let prefill_start = Instant::now();
    let span = tracing::info_span!("prefill", tokens = prompt_len);
    let prefill_guard = span.enter();
    let mut cached = 0;
    let (mut cache, to_prefill): (EngineCache, Vec<u32>) =
        if config.prefix_cache && !prefix_ids.is_empty() {
            let hit = matches!(&loaded.prefix, Some((ids, _)) if *ids == prefix_ids);
            if !hit {
                let disk = disk.zip(loaded.disk_key.as_ref());
                let model = loaded.model.as_ref();
                let restored = disk.and_then(|(store, key)| store.restore(key, &prefix_ids, model));
                let c = match restored {
                    Some(c) => {
                        cached = prefix_ids.len();
                        c
                    }
                    None => {
                        let mut c = model.new_cache();
                        prefill(model, &prefix_ids, &mut c, cancel)?;
                        if let Some((store, key)) = disk {
                            store.keep(key, &prefix_ids, model, &c);
                        }
                        c
                    }
                };
                loaded.prefix = Some((prefix_ids.clone(), c));
            } else {
                cached = prefix_ids.len();
            }
            let cache = match &loaded.prefix {
                Some((_, c)) => c.clone(),
                None => loaded.model.new_cache(),
            };
            (cache, rest_ids)
        } else {
            (loaded.model.new_cache(), [prefix_ids, rest_ids].concat())
        };
    let model = &loaded.model;
    let logits = prefill(model.as_ref(), &to_prefill, &mut cache, cancel)?;
    drop(prefill_guard);
    let prefill_ms = prefill_start.elapsed().as_secs_f64() * 1e3;
    tracing::debug!(tokens = prompt_len, cached, ms = prefill_ms, "prefill done");

    let decode_start = Instant::now();
    let span = tracing::info_span!("decode", candidates = opts.candidates);
    let _decode_guard = span.enter();
    let mut replies = decode(model.as_ref(), codec, config, opts, logits, cache, cancel)?;
    let decode_ms = decode_start.elapsed().as_secs_f64() * 1e3;
    let first = replies.remove(0);
    tracing::debug!(tokens = first.tokens, ms = decode_ms, "decode done");
    Ok(RunOutput {
        text: first.text,
        alternatives: replies.into_iter().map(|r| r.text).collect(),
        timings: Timings {
            load: 0.0,
            prefill: prefill_ms,
            decode: decode_ms,
            total: 0.0,
        },
        tokens: TokenCounts {
            prompt: prompt_len,
            cached,
            generated: first.tokens,
        },
    })
}

/// One decoded reply.
#[derive(Debug)]
struct Reply {
    text: String,
    tokens: usize,
}

/// One sequence being decoded.
#[derive(Debug)]
struct Sequence {
    sampler: Sampler,
    generated: Vec<u32>,
    text: String,
}

impl Sequence {
    /// Takes `next` as the sequence's token at `step`; true when the sequence goes on, false
    /// when it ended there (a stop token, a stop string, a complete reply or the last step).
    fn take(
        &mut self,
        next: u32,
        step: usize,
        codec: &TextCodec,
        config: &EmbeddedConfig,
        opts: &RunOptions,
    ) -> Result<bool, GeneratorError> {
        if codec.stop_ids.contains(&next) {
            return Ok(false);
        }
        self.generated.push(next);
        self.text = codec.decode(&self.generated)?;
        if let Some(cut) = config
            .stop
            .iter()
            .filter_map(|s| self.text.find(s.as_str()))
            .min()
        {
            self.text.truncate(cut);
            return Ok(false);
        }
        Ok(
            !((opts.stop_when_complete && reply::is_complete(&self.text))
                || step + 1 == config.max_tokens),
        )
    }
}

/// Decodes `opts.candidates` replies from the same prompt: the first with the configured
/// sampling (greedy by default), the others sampled at `candidate_temperature`, each with its
/// own seed. Issue 20: the sequences advance together through [`Engine::forward_batch`], so
/// each weight tile is read once per step for all of them; a finished one drops out.
///
/// Sequences that have written the same tokens so far share one cache and one forward pass
/// (a branch): their logits would be the same bits anyway, since a sequence's logits depend
/// only on its tokens, batched or not. A branch splits when its sequences sample different
/// tokens, the new branches each taking a copy of its cache. A 1.5B model's samples mostly
/// agree on a short command's confident tokens, so a step decodes far fewer rows than there
/// are candidates, and the replies are exactly those of one row per sequence.
fn decode(
    model: &dyn Engine,
    codec: &TextCodec,
    config: &EmbeddedConfig,
    opts: RunOptions,
    logits: Vec<f32>,
    cache: EngineCache,
    cancel: &Cancel,
) -> Result<Vec<Reply>, GeneratorError> {
    let stop = |s| GeneratorError::stopped(s, "embedded", cancel);
    let k = opts.candidates.max(1);
    let mut seqs: Vec<Sequence> = (0..k)
        .map(|i| Sequence {
            sampler: if i == 0 {
                Sampler::new(config.temperature, config.top_p, config.seed)
            } else {
                Sampler::new(
                    config.candidate_temperature,
                    config.top_p,
                    config.seed.wrapping_add(i as u64),
                )
            },
            generated: Vec::new(),
            text: String::new(),
        })
        .collect();
    // The branches, as three parallel lists: the sequences in each, its cache, its logits.
    let mut members: Vec<Vec<usize>> = vec![(0..k).collect()];
    let mut caches: Vec<EngineCache> = vec![cache];
    let mut logits: Vec<Vec<f32>> = vec![logits];
    let mut rows = 0;
    for step in 0..config.max_tokens {
        let mut next_members = Vec::with_capacity(k);
        let mut next_caches = Vec::with_capacity(k);
        let mut next_tokens = Vec::with_capacity(k);
        // The distribution over the vocabulary is the costly part of a draw, and the same for
        // every sampler of a branch that has the same temperature and top-p (the sampled
        // candidates): made once per branch and kind of sampler, each then draws from it with
        // its own seed. All the branches' choices are made together, on every thread.
        // Per branch: its representatives, and for each member the index of its own.
        let kinds: Vec<(Vec<usize>, Vec<usize>)> = members
            .iter()
            .map(|branch| {
                let mut reps: Vec<usize> = Vec::new();
                let which = branch
                    .iter()
                    .map(|&i| {
                        match reps
                            .iter()
                            .position(|&j| seqs[j].sampler.draws_like(&seqs[i].sampler))
                        {
                            Some(r) => r,
                            None => {
                                reps.push(i);
                                reps.len() - 1
                            }
                        }
                    })
                    .collect();
                (reps, which)
            })
            .collect();
        let jobs: Vec<(&Sampler, &[f32])> = kinds
            .iter()
            .zip(&logits)
            .flat_map(|((reps, _), l)| reps.iter().map(|&i| (&seqs[i].sampler, l.as_slice())))
            .collect();
        let mut made = caro_engine::choices(&jobs).into_iter();
        let made: Vec<(Vec<Choice>, Vec<usize>)> = kinds
            .into_iter()
            .map(|(reps, which)| (made.by_ref().take(reps.len()).collect(), which))
            .collect();
        for ((branch, cache), (choices, which)) in members.into_iter().zip(caches).zip(&made) {
            let mut split: Vec<(u32, Vec<usize>)> = Vec::new();
            for (i, &r) in branch.into_iter().zip(which) {
                let Some(choice) = choices.get(r) else {
                    return Err(GeneratorError::Inference(
                        "a sequence's branch made no choice for it".into(),
                    ));
                };
                let seq = &mut seqs[i];
                let next = seq.sampler.draw(choice);
                if !seq.take(next, step, codec, config, &opts)? {
                    continue;
                }
                match split.iter_mut().find(|(t, _)| *t == next) {
                    Some((_, same)) => same.push(i),
                    None => split.push((next, vec![i])),
                }
            }
            // The last new branch takes the cache itself; the others a copy each, which
            // shares the positions so far rather than copying them.
            let mut cache = cache;
            if split.len() > 1 {
                model.share_cache(&mut cache);
            }
            if let Some((token, same)) = split.pop() {
                for (token, same) in split {
                    next_tokens.push(token);
                    next_members.push(same);
                    next_caches.push(cache.clone());
                }
                next_tokens.push(token);
                next_members.push(same);
                next_caches.push(cache);
            }
        }
        members = next_members;
        caches = next_caches;
        if caches.is_empty() {
            break;
        }
        cancel.check().map_err(stop)?;
        rows += caches.len();
        logits = match &mut caches[..] {
            // One branch left: the plain pass, exactly as a one-candidate request decodes.
            [c] => vec![model.forward(&next_tokens, c)?],
            batch => model.forward_batch(&next_tokens, batch)?,
        };
        // The zip above would silently drop the sequences of branches given no logits.
        if logits.len() != caches.len() {
            return Err(GeneratorError::Inference(format!(
                "{} logits for {} branches",
                logits.len(),
                caches.len()
            )));
        }
    }
    tracing::debug!(candidates = k, rows, "decoded");
    Ok(seqs
        .into_iter()
        .map(|s| Reply {
            tokens: s.generated.len(),
            text: s.text,
        })
        .collect())
}

/// Prompt tokens per forward pass when a request can be stopped: small enough that a stop
/// lands within a fraction of a second even on a busy CPU, large enough to keep prefill batched.
const PREFILL_CHUNK: usize = 32;

/// Runs the prompt `tokens` through the model and returns the last token's logits. A request
/// that can be stopped is fed in chunks with `cancel` checked between them: a long prompt's
/// prefill took over 30 s on a loaded 2-core machine, far past any deadline, with no check.
/// Each chunk attends to all the cache before it, so the result is the same as in one pass.
fn prefill(
    model: &dyn Engine,
    tokens: &[u32],
    cache: &mut EngineCache,
    cancel: &Cancel,
) -> Result<Vec<f32>, GeneratorError> {
    if !cancel.can_stop() || tokens.len() <= PREFILL_CHUNK {
        return Ok(model.forward(tokens, cache)?);
    }
    let mut logits = Vec::new();
    for chunk in tokens.chunks(PREFILL_CHUNK) {
        cancel
            .check()
            .map_err(|s| GeneratorError::stopped(s, "embedded", cancel))?;
        logits = model.forward(chunk, cache)?;
    }
    Ok(logits)
}

impl CommandGenerator for EmbeddedModelBackend {
    fn generate_command(
        &self,
        request: &CommandRequest,
    ) -> Result<GeneratedCommand, GeneratorError> {
        self.generate_command_with(request, &Cancel::never())
    }

    fn generate_command_with(
        &self,
        request: &CommandRequest,
        cancel: &Cancel,
    ) -> Result<GeneratedCommand, GeneratorError> {
        let words = request.prompt.trim();
        if words.is_empty() {
            return Err(GeneratorError::EmptyPrompt);
        }
        let chars = words.chars().count();
        if chars > prompt::MAX_PROMPT_CHARS {
            return Err(GeneratorError::PromptTooLong {
                length: chars,
                limit: prompt::MAX_PROMPT_CHARS,
                unit: "characters",
            });
        }
        let messages = prompt::build_messages_with(request, &self.grounding(request, words));
        let cacheable_messages = prompt::prefix_len(request);
        let out = self.run(
            &messages,
            RunOptions {
                cacheable_messages,
                stop_when_complete: true,
                candidates: self.config.candidates,
            },
            cancel,
        )?;
        let mut warnings = Vec::new();
        if out.tokens.generated >= self.config.max_tokens && !reply::is_complete(&out.text) {
            warnings.push(format!(
                "the reply hit the {}-token limit and may be cut short",
                self.config.max_tokens
            ));
        }
        let mut command =
            reply::extract_command(&out.text).ok_or_else(|| GeneratorError::NoCommand {
                raw: out.text.clone(),
            })?;
        if command != out.text.trim() {
            warnings.push("the command was extracted from a longer reply".to_owned());
        }
        let mut timings = out.timings;
        let mut tokens = out.tokens;
        // The checks probe this machine, so they only mean something for a command meant
        // to run here.
        if self.config.check_commands && request.context.os == std::env::consts::OS {
            let probe = preflight::HostProbe;
            let checks = preflight::Checks {
                options: self.config.check_options,
                request: words,
            };
            if let Some(problem) = preflight::find_problem(&command, request.shell, &probe, checks)
            {
                let mut again = messages.clone();
                again.push(ChatMessage::new("assistant", command.clone()));
                again.push(ChatMessage::new("user", problem.feedback()));
                // A failed second attempt must not cost the user the first answer.
                let second = self
                    .run(
                        &again,
                        RunOptions {
                            cacheable_messages,
                            stop_when_complete: true,
                            candidates: 1,
                        },
                        cancel,
                    )
                    .ok();
                if let Some(second) = &second {
                    timings.prefill += second.timings.prefill;
                    timings.decode += second.timings.decode;
                    timings.total += second.timings.total;
                    tokens.generated += second.tokens.generated;
                }
                match second.and_then(|s| reply::extract_command(&s.text)) {
                    Some(fixed)
                        if preflight::find_problem(&fixed, request.shell, &probe, checks)
                            .is_none() =>
                    {
                        warnings.push(format!("asked the model again: {}", problem.warning()));
                        command = fixed;
                    }
                    _ => warnings.push(problem.warning()),
                }
            }
        }
        // Issue 20: the other candidates, parsed, and those the command check finds fault
        // with left out (the first is kept whatever the check said: it is the answer when
        // nothing else survives).
        let mut candidates = Vec::new();
        if !out.alternatives.is_empty() {
            candidates.push(command.clone());
            let check = self.config.check_commands && request.context.os == std::env::consts::OS;
            let checks = preflight::Checks {
                options: self.config.check_options,
                request: words,
            };
            candidates.extend(
                out.alternatives
                    .iter()
                    .filter_map(|text| reply::extract_command(text))
                    .filter(|c| {
                        !check
                            || preflight::find_problem(
                                c,
                                request.shell,
                                &preflight::HostProbe,
                                checks,
                            )
                            .is_none()
                    }),
            );
        }
        Ok(GeneratedCommand {
            candidates,
            command,
            explanation: None,
            backend: "embedded".to_owned(),
            model: self.model_name(),
            timings,
            tokens,
            warnings,
            raw_output: out.text,
            fallback_reason: None,
        })
    }

    fn is_available(&self) -> bool {
        // No I/O here: a missing or broken file is reported by the first request, with detail.
        true
    }

    fn backend_info(&self) -> BackendInfo {
        BackendInfo {
            name: "embedded".to_owned(),
            model: self.model_name(),
            engine: self.variant.engine_name().to_owned(),
            loaded: self.is_loaded(),
        }
    }

    fn shutdown(&self) {
        let _turn = self.queue.acquire();
        let dropped = self.lock_state().take();
        if dropped.is_some() {
            tracing::info!("model unloaded");
        }
    }
}

impl EmbeddedModelBackend {
    fn model_name(&self) -> String {
        self.model_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.model_path.display().to_string())
    }
}

/// A ticket lock: waiters are admitted strictly in arrival order, which `Mutex` does not
/// promise. A request that arrived first is answered first.
#[derive(Debug, Default)]
struct FifoLock {
    next_ticket: AtomicU64,
    serving: Mutex<u64>,
    turn: Condvar,
    /// When the last holder let go: how long the model has gone unused, whoever used it.
    last_release: Mutex<Option<Instant>>,
}

#[derive(Debug)]
struct FifoGuard<'a> {
    lock: &'a FifoLock,
}

impl FifoLock {
    fn acquire(&self) -> FifoGuard<'_> {
        let ticket = self.next_ticket.fetch_add(1, Ordering::SeqCst);
        let mut serving = self.serving.lock().unwrap_or_else(|e| e.into_inner());
        while *serving != ticket {
            serving = self.turn.wait(serving).unwrap_or_else(|e| e.into_inner());
        }
        FifoGuard { lock: self }
    }

    /// How long nobody has held or waited for the lock; `None` while someone does.
    fn idle_for(&self) -> Option<std::time::Duration> {
        let serving = *self.serving.lock().unwrap_or_else(|e| e.into_inner());
        if self.next_ticket.load(Ordering::SeqCst) != serving {
            return None;
        }
        let last = *self.last_release.lock().unwrap_or_else(|e| e.into_inner());
        Some(last.map_or(std::time::Duration::MAX, |t| t.elapsed()))
    }
}

impl Drop for FifoGuard<'_> {
    fn drop(&mut self) {
        *self
            .lock
            .last_release
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        let mut serving = self.lock.serving.lock().unwrap_or_else(|e| e.into_inner());
        *serving += 1;
        self.lock.turn.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn mlx_is_refused_where_it_is_not_built() {
        let cfg = EmbeddedConfig::builder()
            .variant(Some(ModelVariant::Mlx))
            .build()
            .expect("config");
        let made = EmbeddedModelBackend::new("/nonexistent/model.gguf", cfg);
        if mlx_compiled() {
            assert_eq!(made.expect("mlx build").backend_info().engine, "mlx");
        } else {
            let err = made.expect_err("no MLX in this build");
            assert!(err.to_string().contains("--engine cpu"), "{err}");
        }
    }

    #[test]
    fn constructor_does_no_io() {
        let b = EmbeddedModelBackend::new("/nonexistent/model.gguf", EmbeddedConfig::default())
            .expect("no I/O, so no error");
        assert!(b.is_available());
        assert!(!b.is_loaded());
        assert_eq!(b.backend_info().model, "model.gguf");
    }

    #[test]
    fn fifo_lock_admits_in_arrival_order() {
        let lock = Arc::new(FifoLock::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = lock.acquire();
        let mut handles = Vec::new();
        for i in 0..8u64 {
            // Take tickets in a known order before anyone can run.
            let ticket_taken = Arc::new((Mutex::new(false), Condvar::new()));
            let (lock, order, taken) = (lock.clone(), order.clone(), ticket_taken.clone());
            handles.push(std::thread::spawn(move || {
                let ticket = lock.next_ticket.fetch_add(1, Ordering::SeqCst);
                {
                    let (m, cv) = &*taken;
                    *m.lock().unwrap_or_else(|e| e.into_inner()) = true;
                    cv.notify_all();
                }
                let mut serving = lock.serving.lock().unwrap_or_else(|e| e.into_inner());
                while *serving != ticket {
                    serving = lock.turn.wait(serving).unwrap_or_else(|e| e.into_inner());
                }
                drop(serving);
                let _g = FifoGuard { lock: &lock };
                order.lock().unwrap_or_else(|e| e.into_inner()).push(i);
            }));
            let (m, cv) = &*ticket_taken;
            let mut done = m.lock().unwrap_or_else(|e| e.into_inner());
            while !*done {
                done = cv.wait(done).unwrap_or_else(|e| e.into_inner());
            }
        }
        drop(first);
        for h in handles {
            h.join().expect("thread");
        }
        assert_eq!(
            *order.lock().unwrap_or_else(|e| e.into_inner()),
            (0..8).collect::<Vec<_>>()
        );
    }
}
