//! The prefix cache on disk: the KV state of the system prompt and examples, saved by the
//! first process that computes it and read back by every cold process after it (issue 21).
//!
//! A cold `caro` spent most of its time prefilling the same few hundred prefix tokens. The
//! state depends only on the model file, the engine and its kernels, caro's version and the
//! prefix tokens themselves (which carry the template, shell, OS and tool flavour), so a file
//! is keyed by all of them: a hash of the key names the file, and the file holds the whole
//! key and the token ids, compared in full before anything is used.
//!
//! Layout, little-endian: `MAGIC`, the header's length (u32), the header (JSON), the prefix
//! token ids (u32 each), then per layer its keys and its values (f32, position-major), and
//! last the SHA-256 of everything before it. A missing, stale, truncated or corrupt file is
//! recomputed and replaced, never trusted. Files are written to a temporary name and renamed
//! into place, so a reader never sees half a file; a crash before the rename leaves a
//! temporary file that a later prune removes. The directory is held under a size bound,
//! least recently used files going first.
//!
//! The file is read into memory rather than mapped: the cache's buffers grow as the request's
//! own tokens are appended, so they must be owned, and the copy from a mapping would cost the
//! same as the read (about 20 MB for the 1.5B model).

use caro_engine::{Engine, EngineCache, KvSnapshot};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// First bytes of every cache file; the digit is the layout's version.
const MAGIC: &[u8; 8] = b"CAROKV1\n";
/// Extension of finished cache files.
const EXT: &str = "kv";
/// Prefix of files being written (renamed to `*.kv` when complete).
const TEMP_PREFIX: &str = ".kv-";
/// A header longer than this is not one of ours.
const MAX_HEADER: usize = 64 * 1024;
/// Bounds on the shapes a header may claim, far above any model caro runs: sizes come from
/// the file, and a forged header must not size an allocation or a loop.
const MAX_LAYERS: usize = 1024;
const MAX_ROW: usize = 1 << 16;
/// Temporary files older than this belong to a writer that died.
const STALE_TEMP: Duration = Duration::from_secs(3600);
const DIGEST_LEN: usize = 32;

/// Default bound on the directory's size: about a dozen prefixes of the 1.5B model.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Where prefix caches live, next to the models: `<model cache>/prefix-cache`.
pub fn default_dir() -> Option<PathBuf> {
    crate::models::cache_dir().map(|d| d.join(DIR_NAME))
}

/// The cache directory's name inside the model cache.
pub const DIR_NAME: &str = "prefix-cache";

/// What the cached state depends on, apart from the prefix tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PrefixKey {
    /// The model's file name: the cache files of a model start with it.
    pub model_file: String,
    /// Everything else, in words: caro's version, the model file's identity, the engine.
    pub text: String,
}

impl PrefixKey {
    /// The key for the model at `path`, of `len` bytes modified at `modified` (as it was
    /// when loading began), run by `engine`. `None` when the engine cannot save its cache.
    pub fn new(
        path: &Path,
        len: u64,
        modified: Option<SystemTime>,
        engine: &dyn Engine,
    ) -> Option<Self> {
        let signature = engine.cache_signature()?;
        let modified = modified?
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()?
            .as_nanos();
        // The store writes `<file>.sha256` after checking a download; a model from elsewhere
        // is known by its size and modification time alone (hashing 1 GB per start would
        // cost more than the cache saves).
        let mut sidecar = path.as_os_str().to_owned();
        sidecar.push(".sha256");
        let sha = std::fs::read_to_string(PathBuf::from(sidecar))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        let model_file = path.file_name()?.to_string_lossy().into_owned();
        Some(Self {
            text: format!(
                "caro {} ({}); model {model_file} size {len} mtime {modified} sha256 {sha}; \
                 {signature}",
                env!("CARGO_PKG_VERSION"),
                build_id()
            ),
            model_file,
        })
    }
}

/// The running binary's size and modification time: a rebuilt caro (a developer's, whose
/// version number stays the same while its kernels change) does not trust an old cache.
fn build_id() -> String {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        std::env::current_exe()
            .and_then(std::fs::metadata)
            .map(|m| {
                let t = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                format!("build {} {t}", m.len())
            })
            .unwrap_or_else(|_| "build unknown".to_owned())
    })
    .clone()
}

/// Why a cache file was not used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum Stale {
    #[error("no cache file yet")]
    Missing,
    #[error("cannot read it: {0}")]
    Unreadable(String),
    #[error("it is not a caro prefix cache, or an older layout")]
    Foreign,
    #[error("it is truncated or has extra bytes")]
    Length,
    #[error("its checksum does not match (the file is damaged)")]
    Checksum,
    #[error("it was computed for another model, engine or caro version")]
    OtherKey,
    #[error("it holds another prefix")]
    OtherPrefix,
    #[error("its shape does not fit this model")]
    Shape,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Header {
    key: String,
    tokens: usize,
    layers: usize,
    row: usize,
}

/// A directory of prefix caches with a size bound.
#[derive(Debug, Clone)]
pub(crate) struct PrefixStore {
    dir: PathBuf,
    max_bytes: u64,
}

impl PrefixStore {
    pub fn new(dir: PathBuf, max_bytes: u64) -> Self {
        Self { dir, max_bytes }
    }

    /// The file for `key` and `tokens`.
    pub fn path(&self, key: &PrefixKey, tokens: &[u32]) -> PathBuf {
        let mut h = Sha256::new();
        h.update(key.text.as_bytes());
        for t in tokens {
            h.update(t.to_le_bytes());
        }
        let hash = crate::models::hex(&h.finalize()[..8]);
        self.dir.join(format!("{}.{hash}.{EXT}", key.model_file))
    }

    /// The saved cache for `key` and `tokens`, checked in full, as `engine`'s cache.
    pub fn load(
        &self,
        key: &PrefixKey,
        tokens: &[u32],
        engine: &dyn Engine,
    ) -> Result<EngineCache, Stale> {
        let path = self.path(key, tokens);
        let read = || -> std::io::Result<Result<Vec<u8>, Stale>> {
            // Sized before it is read: a file no cache of ours could be is not loaded whole.
            if std::fs::metadata(&path)?.len() > self.max_bytes {
                return Ok(Err(Stale::Length));
            }
            std::fs::read(&path).map(Ok)
        };
        let bytes = match read() {
            Ok(b) => b?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Stale::Missing),
            Err(e) => return Err(Stale::Unreadable(e.to_string())),
        };
        let snapshot = decode(&bytes, key, tokens)?;
        let cache = engine.import_cache(snapshot).ok_or(Stale::Shape)?;
        // Recently used files are the last to be pruned.
        if let Ok(f) = std::fs::File::options().write(true).open(&path) {
            let _ = f.set_modified(SystemTime::now());
        }
        Ok(cache)
    }

    /// [`load`](Self::load) for a request: the saved cache, or `None` (with why in the log)
    /// when there is no usable one and the prefix must be computed.
    pub fn restore(
        &self,
        key: &PrefixKey,
        tokens: &[u32],
        engine: &dyn Engine,
    ) -> Option<EngineCache> {
        let why = match self.load(key, tokens, engine) {
            Ok(c) => return Some(c),
            Err(why) => why,
        };
        let path = self.path(key, tokens);
        // Not a warning: the file is computed again and replaced, and the user has nothing
        // to do.
        if why == Stale::Missing {
            tracing::debug!(path = %path.display(), "no prefix cache on disk");
        } else {
            tracing::info!(path = %path.display(), "not using the prefix cache on disk: {why}; computing it again");
        }
        None
    }

    /// [`save`](Self::save) for a request: best effort, since a cache that cannot be saved
    /// costs the next process time, not this request its answer.
    pub fn keep(&self, key: &PrefixKey, tokens: &[u32], engine: &dyn Engine, cache: &EngineCache) {
        match self.save(key, tokens, engine, cache) {
            Ok(path) => tracing::debug!(path = %path.display(), "prefix cache saved"),
            // Info, not a warning: a read-only cache would print it on every cold request.
            Err(e) => tracing::info!("cannot save the prefix cache: {e}"),
        }
    }

    /// Saves `cache` for `key` and `tokens`, atomically, then prunes the directory to its
    /// bound. Returns the file written.
    pub fn save(
        &self,
        key: &PrefixKey,
        tokens: &[u32],
        engine: &dyn Engine,
        cache: &EngineCache,
    ) -> std::io::Result<PathBuf> {
        let snapshot = engine
            .export_cache(cache)
            .ok_or_else(|| std::io::Error::other("this engine's cache cannot be saved"))?;
        let bytes = encode(key, tokens, &snapshot)?;
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path(key, tokens);
        let mut tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&self.dir)?;
        tmp.write_all(&bytes)?;
        // No fsync: a file the rename left empty or torn after a power cut fails its
        // checksum and is recomputed, which costs less than syncing on every cold start.
        tmp.persist(&path).map_err(|e| e.error)?;
        self.prune(&path);
        Ok(path)
    }

    /// Deletes the least recently used cache files until the directory fits its bound (never
    /// `keep`, the file just written), and temporary files a dead writer left.
    fn prune(&self, keep: &Path) {
        let Ok(read) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        let mut files = Vec::new();
        for entry in read.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            let name = entry.file_name().to_string_lossy().into_owned();
            // Only names this module writes: the directory is configurable, and anything
            // else in it is not ours to delete.
            if !meta.is_file() {
                continue;
            }
            if name.starts_with(TEMP_PREFIX) {
                if now.duration_since(modified).unwrap_or_default() > STALE_TEMP {
                    let _ = std::fs::remove_file(&path);
                }
            } else if model_of(&name).is_some() {
                files.push((modified, meta.len(), path));
            }
        }
        files.sort_by_key(|f| std::cmp::Reverse(f.0));
        let mut total = 0u64;
        for (_, len, path) in files {
            total += len;
            if total > self.max_bytes && path != keep {
                match std::fs::remove_file(&path) {
                    Ok(()) => tracing::debug!(path = %path.display(), "pruned a prefix cache"),
                    Err(e) => tracing::debug!(path = %path.display(), "cannot prune: {e}"),
                }
            }
        }
    }
}

fn encode(key: &PrefixKey, tokens: &[u32], s: &KvSnapshot) -> std::io::Result<Vec<u8>> {
    if s.len != tokens.len() {
        return Err(std::io::Error::other(format!(
            "the cache holds {} positions for {} tokens",
            s.len,
            tokens.len()
        )));
    }
    let header = serde_json::to_vec(&Header {
        key: key.text.clone(),
        tokens: tokens.len(),
        layers: s.layers.len(),
        row: s.row,
    })
    .map_err(std::io::Error::other)?;
    let floats: usize = s.layers.iter().map(|(k, v)| k.len() + v.len()).sum();
    let mut out =
        Vec::with_capacity(12 + header.len() + 4 * tokens.len() + 4 * floats + DIGEST_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(
        &u32::try_from(header.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&header);
    for t in tokens {
        out.extend_from_slice(&t.to_le_bytes());
    }
    for (k, v) in &s.layers {
        for x in k.iter().chain(v) {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    Ok(out)
}

fn decode(bytes: &[u8], key: &PrefixKey, tokens: &[u32]) -> Result<KvSnapshot, Stale> {
    let rest = bytes.strip_prefix(MAGIC).ok_or(Stale::Foreign)?;
    let (len, rest) = rest.split_first_chunk::<4>().ok_or(Stale::Length)?;
    let header_len = u32::from_le_bytes(*len) as usize;
    if header_len > MAX_HEADER {
        return Err(Stale::Foreign);
    }
    if rest.len() < header_len {
        return Err(Stale::Length);
    }
    let (header, body) = rest.split_at(header_len);
    let header: Header = serde_json::from_slice(header).map_err(|_| Stale::Foreign)?;
    // Sizes come from the file, so they are bounded before they size anything (the checksum
    // proves no intent: anyone can compute one).
    if !(1..=MAX_LAYERS).contains(&header.layers) || !(1..=MAX_ROW).contains(&header.row) {
        return Err(Stale::Shape);
    }
    let floats = header
        .tokens
        .checked_mul(header.row)
        .and_then(|n| n.checked_mul(2))
        .and_then(|n| n.checked_mul(header.layers))
        .ok_or(Stale::Length)?;
    let want = floats
        .checked_add(header.tokens)
        .and_then(|n| n.checked_mul(4))
        .and_then(|n| n.checked_add(DIGEST_LEN))
        .ok_or(Stale::Length)?;
    if body.len() != want {
        return Err(Stale::Length);
    }
    let (signed, digest) = bytes.split_at(bytes.len() - DIGEST_LEN);
    if Sha256::digest(signed).as_slice() != digest {
        return Err(Stale::Checksum);
    }
    if header.key != key.text {
        return Err(Stale::OtherKey);
    }
    let (ids, mut kv) = body.split_at(4 * header.tokens);
    let saved = ids
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    if header.tokens != tokens.len() || saved.ne(tokens.iter().copied()) {
        return Err(Stale::OtherPrefix);
    }
    let per = 4 * header.tokens * header.row;
    // Straight from the bytes, without an intermediate copy of the 20 MB payload.
    let floats = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let mut layers = Vec::with_capacity(header.layers);
    for _ in 0..header.layers {
        let (k, rest) = kv.split_at(per);
        let (v, rest) = rest.split_at(per);
        kv = rest;
        layers.push((floats(k), floats(v)));
    }
    Ok(KvSnapshot {
        len: header.tokens,
        row: header.row,
        layers,
    })
}

/// One cache file, for `caro status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CacheFile {
    pub path: PathBuf,
    /// The model file name it was computed for.
    pub model: String,
    pub bytes: u64,
}

/// The cache files in `dir`, newest first; none when it does not exist.
pub fn list(dir: &Path) -> Vec<CacheFile> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(SystemTime, CacheFile)> = read
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let model = model_of(&name)?.to_owned();
            let meta = e.metadata().ok().filter(std::fs::Metadata::is_file)?;
            Some((
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                CacheFile {
                    path: e.path(),
                    model,
                    bytes: meta.len(),
                },
            ))
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    files.into_iter().map(|(_, f)| f).collect()
}

/// Deletes the cache files computed for the model file named `model_file`; returns them.
pub fn remove_for_model(dir: &Path, model_file: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for f in list(dir).into_iter().filter(|f| f.model == model_file) {
        match std::fs::remove_file(&f.path) {
            Ok(()) => removed.push(f.path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// The model file a cache file's name `<model file>.<16 hex>.kv` names.
fn model_of(name: &str) -> Option<&str> {
    let stem = name.strip_suffix(".kv")?;
    let (model, hash) = stem.rsplit_once('.')?;
    (hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) && !model.is_empty())
        .then_some(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PrefixKey {
        PrefixKey {
            model_file: "m.gguf".into(),
            text: "caro test; model m.gguf".into(),
        }
    }

    fn snapshot(len: usize) -> KvSnapshot {
        let row = 3;
        let layer = |l: usize| {
            let k = (0..len * row).map(|i| (i + l) as f32 * 0.5).collect();
            let v = (0..len * row).map(|i| -((i * l) as f32)).collect();
            (k, v)
        };
        KvSnapshot {
            len,
            row,
            layers: (0..2).map(layer).collect(),
        }
    }

    #[test]
    fn a_saved_snapshot_decodes_to_itself() {
        let s = snapshot(4);
        let bytes = encode(&key(), &[1, 2, 3, 4], &s).expect("encode");
        assert_eq!(decode(&bytes, &key(), &[1, 2, 3, 4]), Ok(s));
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_caught() {
        let tokens = [7, 8, 9];
        let bytes = encode(&key(), &tokens, &snapshot(3)).expect("encode");
        for cut in 0..bytes.len() {
            assert!(
                decode(&bytes[..cut], &key(), &tokens).is_err(),
                "a file cut at {cut} bytes was accepted"
            );
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(
                decode(&bad, &key(), &tokens).is_err(),
                "a flipped byte at {i} was accepted"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer, &key(), &tokens), Err(Stale::Length));
    }

    #[test]
    fn another_key_or_prefix_is_refused() {
        let bytes = encode(&key(), &[1, 2], &snapshot(2)).expect("encode");
        let other = PrefixKey {
            text: "caro 9.9; model m.gguf".into(),
            ..key()
        };
        assert_eq!(decode(&bytes, &other, &[1, 2]), Err(Stale::OtherKey));
        assert_eq!(decode(&bytes, &key(), &[1, 3]), Err(Stale::OtherPrefix));
        assert_eq!(decode(&bytes, &key(), &[1, 2, 3]), Err(Stale::OtherPrefix));
    }

    #[rstest::rstest]
    #[case::empty(b"".to_vec())]
    #[case::text(b"hello, world".to_vec())]
    #[case::magic_only(MAGIC.to_vec())]
    #[case::huge_header([&MAGIC[..], &u32::MAX.to_le_bytes()].concat())]
    #[case::huge_sizes(forged(br#"{"key":"k","tokens":18446744073709551615,"layers":2,"row":3}"#))]
    #[case::zero_row_huge_layers(forged(
        br#"{"key":"k","tokens":1,"layers":9223372036854775807,"row":0}"#
    ))]
    #[case::layers_that_wrap(forged(
        br#"{"key":"k","tokens":1,"layers":9223372036854775809,"row":1}"#
    ))]
    #[case::zero_layers_huge_row(forged(
        br#"{"key":"k","tokens":4611686018427387904,"layers":0,"row":4}"#
    ))]
    fn garbage_is_refused_without_a_panic(#[case] bytes: Vec<u8>) {
        assert!(decode(&bytes, &key(), &[1]).is_err());
    }

    /// A file with `header` and a valid checksum: the checksum is no proof of good faith.
    fn forged(header: &[u8]) -> Vec<u8> {
        let mut b = [
            &MAGIC[..],
            &(header.len() as u32).to_le_bytes(),
            header,
            &[0; 8],
        ]
        .concat();
        let digest = Sha256::digest(&b);
        b.extend_from_slice(&digest);
        b
    }

    #[test]
    fn cache_file_names_name_their_model() {
        assert_eq!(
            model_of("qwen2.5-coder-1.5b.gguf.0123456789abcdef.kv"),
            Some("qwen2.5-coder-1.5b.gguf")
        );
        assert_eq!(model_of("m.gguf.0123.kv"), None);
        assert_eq!(model_of(".kv-abc"), None);
        assert_eq!(model_of("m.gguf.0123456789abcdef.kv.tmp"), None);
    }

    #[test]
    fn the_directory_is_pruned_to_its_bound_oldest_first() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = PrefixStore::new(dir.path().to_path_buf(), 2500);
        let old = SystemTime::now() - Duration::from_secs(7200);
        let mut paths = Vec::new();
        for (i, age) in [300u64, 200, 100].into_iter().enumerate() {
            let p = dir.path().join(format!("m{i}.gguf.0123456789abcdef.kv"));
            std::fs::write(&p, vec![0u8; 1000]).expect("write");
            std::fs::File::options()
                .write(true)
                .open(&p)
                .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(age)))
                .expect("mtime");
            paths.push(p);
        }
        let stale_tmp = dir.path().join(format!("{TEMP_PREFIX}dead"));
        std::fs::write(&stale_tmp, b"x").expect("write");
        std::fs::File::options()
            .write(true)
            .open(&stale_tmp)
            .and_then(|f| f.set_modified(old))
            .expect("mtime");
        let fresh_tmp = dir.path().join(format!("{TEMP_PREFIX}busy"));
        std::fs::write(&fresh_tmp, b"x").expect("write");
        let unrelated = dir.path().join("notes.txt");
        std::fs::write(&unrelated, vec![0u8; 5000]).expect("write");
        let not_ours = dir.path().join("backup.kv");
        std::fs::write(&not_ours, vec![0u8; 5000]).expect("write");

        store.prune(&paths[2]);
        assert!(!paths[0].exists(), "the oldest goes first");
        assert!(paths[1].exists() && paths[2].exists());
        assert!(!stale_tmp.exists(), "a dead writer's file is removed");
        assert!(fresh_tmp.exists(), "a live writer's file is left alone");
        assert!(unrelated.exists(), "only cache files are pruned");
        assert!(
            not_ours.exists(),
            "a .kv file caro did not name is not its own"
        );
    }

    #[test]
    fn the_file_just_written_survives_even_over_the_bound() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = PrefixStore::new(dir.path().to_path_buf(), 10);
        let p = dir.path().join("m.gguf.0123456789abcdef.kv");
        std::fs::write(&p, vec![0u8; 100]).expect("write");
        store.prune(&p);
        assert!(p.exists());
    }

    #[test]
    fn removing_a_models_caches_leaves_the_others() {
        let dir = tempfile::tempdir().expect("tmp");
        let mine = dir.path().join("a.gguf.0123456789abcdef.kv");
        let theirs = dir.path().join("a.gguf2.0123456789abcdef.kv");
        for p in [&mine, &theirs] {
            std::fs::write(p, b"x").expect("write");
        }
        let removed = remove_for_model(dir.path(), "a.gguf").expect("remove");
        assert_eq!(removed, vec![mine.clone()]);
        assert!(!mine.exists() && theirs.exists());
        assert!(
            remove_for_model(&dir.path().join("absent"), "a.gguf")
                .expect("no dir")
                .is_empty()
        );
    }
}
