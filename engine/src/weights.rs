//! Memory-mapped GGUF weights: quantized tensors borrow the file's pages instead of heap
//! copies, so the kernel can drop the pages candle no longer reads.
//!
//! candle's x86 kernels repack Q4_K/Q8_0 matrices into tiles on first use and never read the
//! original blocks again, but `QStorage::from_data` copies every tensor onto the heap, so
//! the weights used to live in memory twice (2.3 GB peak for a 1.1 GB file). Here the
//! originals are file-backed pages: [`MappedGguf::release`] tells the kernel they are not
//! needed, and a later read (another kernel path, a reload) simply faults them back in from
//! the page cache. Releasing is therefore always safe; it only trades memory for a re-read.
//!
//! The file must not be truncated in place while it is mapped; caro's model store replaces
//! files by rename, which leaves the mapped inode intact.
#![allow(unsafe_code)]

use crate::kernels::{FastQ4_1, FastQ6K};
use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::k_quants::{
    self, BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K,
    BlockQ6K, BlockQ8_0, BlockQ8_1, BlockQ8K, GgmlType,
};
use candle_core::quantized::{GgmlDType, QStorage, QTensor, QuantizedType};
use candle_core::{CpuStorage, Result};
use half::f16;
use memmap2::Mmap;
use std::fs::File;
use std::marker::PhantomData;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// A read-only mapping of a GGUF file, shared by every tensor that borrows from it.
#[derive(Debug, Clone)]
pub struct MappedGguf {
    map: Arc<Mmap>,
}

impl MappedGguf {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = File::open(path)?;
        // SAFETY: the mapping is read-only and caro never writes model files in place (the
        // store writes a temporary file and renames it). Another process truncating the file
        // while it is mapped would fault on access; that is the same contract llama.cpp has.
        let map = unsafe { Mmap::map(&file)? };
        Ok(Self { map: Arc::new(map) })
    }

    /// The byte range in the file of tensor `name`'s data.
    pub fn range(content: &Content, name: &str) -> Option<Range<usize>> {
        let info = content.tensor_infos.get(name)?;
        let elems = info.shape.elem_count();
        let block = info.ggml_dtype.block_size().max(1);
        let bytes = elems.div_ceil(block) * info.ggml_dtype.type_size();
        let start = usize::try_from(content.tensor_data_offset + info.offset).ok()?;
        Some(start..start.checked_add(bytes)?)
    }

    /// A quantized tensor whose blocks are the mapped bytes, or `None` for dtypes that are
    /// better copied (f32/f16 norms and biases are tiny) or a range the file does not hold.
    pub fn qtensor(&self, content: &Content, name: &str) -> Option<Result<QTensor>> {
        let info = content.tensor_infos.get(name)?;
        let range = Self::range(content, name)?;
        let storage: Box<dyn QuantizedType> = match info.ggml_dtype {
            GgmlDType::Q4_0 => self.blocks::<BlockQ4_0>(range)?,
            GgmlDType::Q4_1 => self.blocks::<BlockQ4_1>(range)?,
            GgmlDType::Q5_0 => self.blocks::<BlockQ5_0>(range)?,
            GgmlDType::Q5_1 => self.blocks::<BlockQ5_1>(range)?,
            GgmlDType::Q8_0 => self.blocks::<BlockQ8_0>(range)?,
            GgmlDType::Q8_1 => self.blocks::<BlockQ8_1>(range)?,
            GgmlDType::Q2K => self.blocks::<BlockQ2K>(range)?,
            GgmlDType::Q3K => self.blocks::<BlockQ3K>(range)?,
            GgmlDType::Q4K => self.blocks::<BlockQ4K>(range)?,
            GgmlDType::Q5K => self.blocks::<BlockQ5K>(range)?,
            GgmlDType::Q6K => self.blocks::<BlockQ6K>(range)?,
            GgmlDType::Q8K => self.blocks::<BlockQ8K>(range)?,
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => return None,
        };
        Some(QTensor::new(QStorage::Cpu(storage), info.shape.clone()))
    }

    /// The same blocks as a bare [`QuantizedType`], for matrices caro multiplies itself
    /// (Q6_K and Q4_1 through caro's own dot products, see `kernels.rs`).
    pub fn raw(&self, content: &Content, name: &str) -> Option<Box<dyn QuantizedType>> {
        let info = content.tensor_infos.get(name)?;
        let range = Self::range(content, name)?;
        match info.ggml_dtype {
            GgmlDType::Q6K => self.blocks::<FastQ6K>(range),
            GgmlDType::Q4_1 => self.blocks::<FastQ4_1>(range),
            GgmlDType::Q5K => self.blocks::<BlockQ5K>(range),
            GgmlDType::Q3K => self.blocks::<BlockQ3K>(range),
            _ => None,
        }
    }

    /// The file's bytes in `range`, or `None` if the mapping does not hold them.
    pub fn bytes(&self, range: Range<usize>) -> Option<&[u8]> {
        self.map.get(range)
    }

    fn blocks<T: GgmlType + 'static>(&self, range: Range<usize>) -> Option<Box<dyn QuantizedType>> {
        let bytes = range.len();
        let size = std::mem::size_of::<T>();
        let aligned =
            (self.map.as_ptr() as usize + range.start).is_multiple_of(std::mem::align_of::<T>());
        if range.end > self.map.len() || size == 0 || !bytes.is_multiple_of(size) || !aligned {
            return None;
        }
        Some(Box::new(MappedBlocks::<T> {
            map: self.map.clone(),
            offset: range.start,
            len: bytes / size,
            _block: PhantomData,
        }))
    }

    /// Tells the kernel the pages of `range` are not needed now. They stay valid: the next
    /// read faults them back in from the file.
    pub fn release(&self, range: Range<usize>) {
        #[cfg(unix)]
        {
            if range.end > self.map.len() || range.is_empty() {
                return;
            }
            // SAFETY: the mapping is a read-only, file-backed map, so MADV_DONTNEED discards
            // clean pages only; later reads see the file's bytes again, never zeros.
            let r = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    range.start,
                    range.len(),
                )
            };
            if let Err(e) = r {
                tracing::debug!("madvise(DONTNEED) failed: {e}");
            }
        }
        // Elsewhere the pages stay: no advice to give.
        #[cfg(not(unix))]
        let _ = range;
    }
}

/// `len` blocks of type `T` at `offset` in the mapping.
struct MappedBlocks<T> {
    map: Arc<Mmap>,
    offset: usize,
    len: usize,
    _block: PhantomData<fn() -> T>,
}

/// Q4_1 blocks copied from `bytes` (a tensor read into memory) as caro's [`FastQ4_1`], so a
/// model whose weights are not mapped multiplies them with the same kernel, and answers the
/// same, as one whose weights are. `None` unless `bytes` is whole blocks.
pub fn heap_q4_1(bytes: &[u8]) -> Option<Box<dyn QuantizedType>> {
    let size = std::mem::size_of::<FastQ4_1>();
    if bytes.is_empty() || !bytes.len().is_multiple_of(size) {
        return None;
    }
    let mut blocks = vec![FastQ4_1::zeros(); bytes.len() / size];
    // SAFETY: FastQ4_1 is a plain 20-byte ggml block (two f16 and 16 bytes, no padding, every
    // bit pattern valid), and `blocks` holds exactly bytes.len() bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            blocks.as_mut_ptr().cast::<u8>(),
            bytes.len(),
        );
    }
    Some(Box::new(blocks))
}

impl<T: GgmlType> MappedBlocks<T> {
    fn slice(&self) -> &[T] {
        // SAFETY: `blocks()` checked that offset..offset + len * size_of::<T>() lies in the
        // mapping and is aligned for T. GGML block types are plain integer and f16 arrays, for
        // which every bit pattern is valid, and the mapping lives as long as `self.map`.
        unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().add(self.offset) as *const T, self.len)
        }
    }
}

impl<T: GgmlType + 'static> QuantizedType for MappedBlocks<T> {
    fn dtype(&self) -> GgmlDType {
        T::DTYPE
    }

    fn matmul_t(&self, mkn: (usize, usize, usize), lhs: &[f32], dst: &mut [f32]) -> Result<()> {
        k_quants::matmul(mkn, lhs, self.slice(), dst)
    }

    fn matmul_t_f16(&self, mkn: (usize, usize, usize), lhs: &[f16], dst: &mut [f16]) -> Result<()> {
        k_quants::matmul_f16(mkn, lhs, self.slice(), dst)
    }

    fn embedding(&self, ids: &[u32], rows: usize, hidden: usize) -> Result<CpuStorage> {
        if !hidden.is_multiple_of(T::BLCK_SIZE) {
            candle_core::bail!(
                "embedding width {hidden} is not a multiple of {}",
                T::BLCK_SIZE
            )
        }
        let row_blocks = hidden / T::BLCK_SIZE;
        if self.len != rows * row_blocks {
            candle_core::bail!(
                "embedding has {} blocks, expected {}",
                self.len,
                rows * row_blocks
            )
        }
        let blocks = self.slice();
        let mut out = vec![0f32; ids.len() * hidden];
        for (i, &id) in ids.iter().enumerate() {
            let row = id as usize;
            if row >= rows {
                candle_core::bail!("token id {row} is out of range for {rows} rows")
            }
            T::to_float(
                &blocks[row * row_blocks..(row + 1) * row_blocks],
                &mut out[i * hidden..(i + 1) * hidden],
            );
        }
        Ok(CpuStorage::F32(out))
    }

    fn dequantize(&self, elem_count: usize) -> Result<CpuStorage> {
        let mut ys = vec![0f32; elem_count];
        T::to_float(self.slice(), &mut ys);
        Ok(CpuStorage::F32(ys))
    }

    fn storage_size_in_bytes(&self) -> usize {
        self.len * std::mem::size_of::<T>()
    }

    fn as_ptr(&self) -> *const u8 {
        self.slice().as_ptr() as *const u8
    }

    fn block_size(&self) -> usize {
        T::BLCK_SIZE
    }

    // candle only quantizes into storage it allocated itself (`QTensor::quantize`), never
    // into an existing tensor, so these are unreachable for read-only weights.
    fn from_float(&mut self, _xs: &[f32]) {
        tracing::error!("refusing to overwrite memory-mapped model weights");
    }

    fn from_float_imatrix(&mut self, _xs: &[f32], _imatrix: &[f32], _n_per_row: usize) {
        tracing::error!("refusing to overwrite memory-mapped model weights");
    }

    fn size(&self) -> usize {
        self.storage_size_in_bytes()
    }
}
