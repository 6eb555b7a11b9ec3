//! Opening a GGUF file: header parsing, validation against the file's real size, and
//! typed access to the metadata the model and tokenizer need.

use crate::EngineError;
use candle_core::quantized::gguf_file::{Content, Value};
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};

/// A parsed, size-checked GGUF file with its reader positioned for tensor loads.
#[derive(Debug)]
pub struct GgufFile {
    pub path: PathBuf,
    pub content: Content,
    pub reader: BufReader<File>,
}

const GGUF_MAGIC: &[u8; 4] = b"GGUF";

impl GgufFile {
    /// Opens and validates `path`. Errors distinguish a missing file, a file that is not GGUF
    /// at all, and a GGUF that is truncated or internally inconsistent.
    pub fn open(path: &Path) -> Result<Self, EngineError> {
        let io_err = |source| EngineError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                EngineError::ModelNotFound {
                    path: path.to_path_buf(),
                }
            } else {
                io_err(e)
            }
        })?;
        let file_len = file.metadata().map_err(io_err)?.len();
        let mut magic = [0u8; 4];
        if file_len < 4 || file.read_exact(&mut magic).is_err() || &magic != GGUF_MAGIC {
            return Err(EngineError::NotGguf {
                path: path.to_path_buf(),
                reason: "it does not start with the GGUF magic bytes".to_owned(),
            });
        }
        file.rewind().map_err(io_err)?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| EngineError::CorruptModel {
            path: path.to_path_buf(),
            reason: format!("unreadable header: {e}"),
        })?;
        let needed = data_end(&content);
        if needed > file_len {
            return Err(EngineError::CorruptModel {
                path: path.to_path_buf(),
                reason: format!("the header describes {needed} bytes but the file has {file_len}"),
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            content,
            reader,
        })
    }

    pub fn architecture(&self) -> Result<String, EngineError> {
        self.string("general.architecture")
    }

    pub fn string(&self, key: &str) -> Result<String, EngineError> {
        self.value(key)?
            .to_string()
            .cloned()
            .map_err(|e| self.corrupt(format!("`{key}` is not a string: {e}")))
    }

    pub fn usize(&self, key: &str) -> Result<usize, EngineError> {
        let v = self.value(key)?;
        let n = match v {
            Value::U8(x) => u64::from(*x),
            Value::U16(x) => u64::from(*x),
            Value::U32(x) => u64::from(*x),
            Value::U64(x) => *x,
            Value::I32(x) if *x >= 0 => *x as u64,
            Value::I64(x) if *x >= 0 => *x as u64,
            other => return Err(self.corrupt(format!("`{key}` is not a count: {other:?}"))),
        };
        usize::try_from(n).map_err(|_| self.corrupt(format!("`{key}` is out of range: {n}")))
    }

    pub fn f32(&self, key: &str) -> Result<f32, EngineError> {
        let v = self.value(key)?;
        match v {
            Value::F32(x) => Ok(*x),
            Value::F64(x) => Ok(*x as f32),
            other => Err(self.corrupt(format!("`{key}` is not a number: {other:?}"))),
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.content.metadata.contains_key(key)
    }

    fn value(&self, key: &str) -> Result<&Value, EngineError> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| self.corrupt(format!("metadata key `{key}` is missing")))
    }

    pub fn corrupt(&self, reason: String) -> EngineError {
        EngineError::CorruptModel {
            path: self.path.clone(),
            reason,
        }
    }
}

/// The byte offset just past the last tensor's data.
fn data_end(content: &Content) -> u64 {
    content
        .tensor_infos
        .values()
        .map(|info| {
            let elems = info.shape.elem_count();
            let block = info.ggml_dtype.block_size().max(1);
            let bytes = elems.div_ceil(block) * info.ggml_dtype.type_size();
            content.tensor_data_offset + info.offset + bytes as u64
        })
        .max()
        .unwrap_or(content.tensor_data_offset)
}
