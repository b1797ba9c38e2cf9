//! The host side of a GPU read, with no GPU in it: which bytes go to the device in the one
//! upload, where nvCOMP decodes each block, where each chunk's raw bytes land ("staging"),
//! and the descriptors the two kernels of `kernels.cu` take. Tested by running those
//! descriptors through a CPU model of the kernels (`store/gpu_model.rs`, which needs a store).

use std::ops::Range;

use bytemuck::{Pod, Zeroable};
use rayon::prelude::*;

use crate::codec::CodecId;
use crate::engine::{ArrayCtx, BlockRef, ChunkOp, Lookup, Place, Worker, box_copy, decode_chunk, plan, run_on_pool};
use crate::error::{Error, GpuUnavailable, Result};
use crate::fragment::checksum;

/// Alignment of every chunk inside the device buffers: over nvCOMP's input alignments (zstd
/// 8, LZ4 4) and the largest element the scatter kernel loads (8).
pub(crate) const ALIGN: usize = 16;

/// Dimensions a box may have after merging (`MAX_DIMS` in `kernels.cu`).
pub(crate) const MAX_DIMS: usize = 8;

/// A codec nvCOMP decodes for Atlas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GpuCodec {
    Zstd,
    Lz4,
}

/// How one chunk's raw (possibly shuffled) bytes reach the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// Stored bytes at `input`, decoded by nvCOMP into `decoded` (the raw length).
    Decode { codec: GpuCodec, input: Range<usize>, decoded: Range<usize> },
    /// Bytes uploaded as they are: a `none` block, a block decoded on the CPU, the fill chunk.
    Upload { input: Range<usize> },
}

/// One chunk of the read.
#[derive(Debug)]
pub(crate) struct Job<'a> {
    /// The block, or `None` for the chunk of fill values.
    pub block: Option<BlockRef<'a>>,
    pub source: Source,
    /// Element size to unshuffle with; 1 copies.
    pub shuffle: usize,
    /// Where the raw chunk lands on the device.
    pub staging: Range<usize>,
    /// Whether the staged bytes still need their checksum compared (false for the fill
    /// chunk and for blocks the CPU decoded, which verified them).
    pub check: bool,
}

/// `Move` of `kernels.cu`: a chunk moved (unshuffled when `elem` > 1) between device buffers.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub(crate) struct Move {
    pub src: u64,
    pub dst: u64,
    pub len: u64,
    pub elem: u64,
}

/// `Part` of `kernels.cu`: a box copied element by element, with byte strides.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub(crate) struct Part {
    pub src: u64,
    pub dst: u64,
    pub shape: [u64; MAX_DIMS],
    pub src_stride: [u64; MAX_DIMS],
    pub dst_stride: [u64; MAX_DIMS],
    pub ndim: u32,
    pub elem: u32,
}

/// Device addresses of the buffers a layout refers to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bases {
    pub input: u64,
    pub decoded: u64,
    pub staging: u64,
}

/// The layout of one read of the box `start .. start + shape` of one array.
#[derive(Debug)]
pub(crate) struct Layout<'a> {
    /// Everything uploaded, in one transfer.
    pub input: Vec<u8>,
    pub decoded_len: usize,
    pub staging_len: usize,
    pub jobs: Vec<Job<'a>>,
    /// Per chunk op of the read: the job holding its chunk.
    pub parts: Vec<(usize, ChunkOp)>,
    pub shape: Vec<u64>,
    elem_bytes: usize,
    chunk_shape: Vec<u64>,
}

fn push_aligned(buf: &mut Vec<u8>, len: usize) -> Range<usize> {
    let start = buf.len().next_multiple_of(ALIGN);
    buf.resize(start + len, 0);
    start..start + len
}

fn reserve(len: &mut usize, n: usize) -> Range<usize> {
    let start = len.next_multiple_of(ALIGN);
    *len = start + n;
    start..start + n
}

impl<'a> Layout<'a> {
    /// Lays out the read. Blocks nvCOMP cannot decode (zstd with a dictionary) are decoded
    /// here on the CPU (verified when `verify`), their raw bytes uploaded.
    ///
    /// # Errors
    /// [`Error::GpuUnavailable`] for string arrays; [`Error::Corrupt`] for a block whose
    /// lengths do not match the chunk; what reading a pending block or a CPU decode returns.
    pub(crate) fn build(
        ctx: ArrayCtx<'_>,
        lookup: &Lookup<'_, 'a>,
        start: &[u64],
        shape: &[u64],
        verify: bool,
    ) -> Result<Self> {
        let meta = ctx.meta;
        let elem_bytes = meta.dtype.size_bytes();
        if elem_bytes == 0 {
            return Err(Error::GpuUnavailable(GpuUnavailable::Unsupported("string arrays".into())));
        }
        let chunk_len = usize::try_from(meta.chunk_bytes()).expect("a chunk fits in memory");
        let mut layout = Layout {
            input: Vec::new(),
            decoded_len: 0,
            staging_len: 0,
            jobs: Vec::new(),
            parts: Vec::new(),
            shape: shape.to_vec(),
            elem_bytes,
            chunk_shape: meta.chunk_shape.clone(),
        };
        let mut fill_job = None;
        let mut worker = Worker::default();
        for op in plan(&meta.chunk_shape, start, shape) {
            let block = lookup(&op.coord).filter(|b| !b.entry().is_fill);
            let job = match block {
                Some(block) => layout.block_job(ctx, block, chunk_len, &mut worker, verify)?,
                None => *fill_job.get_or_insert_with(|| layout.fill_job(&meta.fill_bytes(), chunk_len)),
            };
            layout.parts.push((job, op));
        }
        Ok(layout)
    }

    /// A job for the chunk of fill values, shared by every unwritten or fill chunk.
    fn fill_job(&mut self, element: &[u8], chunk_len: usize) -> usize {
        let input = push_aligned(&mut self.input, chunk_len);
        crate::engine::fill_with(&mut self.input[input.clone()], element);
        let staging = reserve(&mut self.staging_len, chunk_len);
        self.jobs.push(Job { block: None, source: Source::Upload { input }, shuffle: 1, staging, check: false });
        self.jobs.len() - 1
    }

    fn block_job(
        &mut self,
        ctx: ArrayCtx<'_>,
        block: BlockRef<'a>,
        chunk_len: usize,
        worker: &mut Worker,
        verify: bool,
    ) -> Result<usize> {
        let entry = block.entry();
        let corrupt = |detail: String| crate::engine::corrupt_chunk(ctx, block, &detail);
        if entry.raw_len_bytes != chunk_len as u64 {
            return Err(corrupt(format!("block holds {} raw bytes, the chunk has {chunk_len}", entry.raw_len_bytes)));
        }
        let shuffle = entry.encoding.shuffle_elem_bytes.unwrap_or(1);
        let staging = reserve(&mut self.staging_len, chunk_len);
        let codec = match entry.encoding.codec {
            CodecId::Zstd => Some(GpuCodec::Zstd),
            CodecId::Lz4 => Some(GpuCodec::Lz4),
            CodecId::None => None,
            CodecId::ZstdDict => {
                // nvCOMP takes no dictionary: decode (and verify) here, upload the raw chunk.
                let input = push_aligned(&mut self.input, chunk_len);
                decode_chunk(ctx, block, worker, &mut self.input[input.clone()], verify)?;
                let source = Source::Upload { input };
                self.jobs.push(Job { block: Some(block), source, shuffle: 1, staging, check: false });
                return Ok(self.jobs.len() - 1);
            }
        };
        let stored = match block {
            BlockRef::Committed { reader, entry } => reader.block_bytes(entry),
            BlockRef::Pending { reader, entry } => {
                reader.read_block(entry, &mut worker.stored)?;
                &worker.stored
            }
        };
        let input = push_aligned(&mut self.input, stored.len());
        self.input[input.clone()].copy_from_slice(stored);
        let source = match codec {
            Some(codec) => Source::Decode { codec, input, decoded: reserve(&mut self.decoded_len, chunk_len) },
            None if stored.len() == chunk_len => Source::Upload { input },
            None => return Err(corrupt(format!("none block of {} bytes, the chunk has {chunk_len}", stored.len()))),
        };
        self.jobs.push(Job { block: Some(block), source, shuffle, staging, check: true });
        Ok(self.jobs.len() - 1)
    }

    /// The jobs nvCOMP decodes with `codec`: their indices, input ranges, output ranges.
    pub(crate) fn decode_batch(&self, codec: GpuCodec) -> (Vec<usize>, Vec<Range<usize>>, Vec<Range<usize>>) {
        let mut batch = (Vec::new(), Vec::new(), Vec::new());
        for (i, job) in self.jobs.iter().enumerate() {
            if let Source::Decode { codec: c, input, decoded } = &job.source
                && *c == codec
            {
                batch.0.push(i);
                batch.1.push(input.clone());
                batch.2.push(decoded.clone());
            }
        }
        batch
    }

    /// One move per job, from its decoded or uploaded bytes into its staging slot.
    pub(crate) fn moves(&self, bases: Bases) -> Vec<Move> {
        self.jobs
            .iter()
            .map(|job| {
                let src = match &job.source {
                    Source::Decode { decoded, .. } => bases.decoded + decoded.start as u64,
                    Source::Upload { input } => bases.input + input.start as u64,
                };
                let len = job.staging.len() as u64;
                Move { src, dst: bases.staging + job.staging.start as u64, len, elem: job.shuffle as u64 }
            })
            .collect()
    }

    /// Bytes of the result: the box, C order.
    pub(crate) fn out_len(&self) -> usize {
        self.shape.iter().map(|&n| usize::try_from(n).expect("checked by the caller")).product::<usize>()
            * self.elem_bytes
    }

    /// One part per chunk op: its box from the staging slot to the output at `out_base`.
    ///
    /// # Errors
    /// [`Error::GpuUnavailable`] when a box keeps more than [`MAX_DIMS`] dimensions after
    /// merging.
    pub(crate) fn scatter_parts(&self, staging_base: u64, out_base: u64) -> Result<Vec<Part>> {
        let mut parts = Vec::with_capacity(self.parts.len());
        for (job, op) in &self.parts {
            let src = Place { shape: &self.chunk_shape, start: &op.in_chunk };
            let dst = Place { shape: &self.shape, start: &op.in_selection };
            let Some(copy) = box_copy(src, dst, &op.region, self.elem_bytes) else { continue };
            let ndim = copy.extents.len();
            if ndim > MAX_DIMS {
                let why = format!("a box of {ndim} dimensions after merging (at most {MAX_DIMS})");
                return Err(Error::GpuUnavailable(GpuUnavailable::Unsupported(why)));
            }
            let mut part = Part {
                src: staging_base + (self.jobs[*job].staging.start + copy.src_offset) as u64,
                dst: out_base + copy.dst_offset as u64,
                ndim: ndim as u32,
                elem: self.elem_bytes as u32,
                ..Part::zeroed()
            };
            for d in 0..ndim {
                part.shape[d] = copy.extents[d] as u64;
                part.src_stride[d] = copy.src_strides[d] as u64;
                part.dst_stride[d] = copy.dst_strides[d] as u64;
            }
            parts.push(part);
        }
        Ok(parts)
    }

    /// Compares the staged chunks' checksums (when `verify`) and decodes on the CPU every
    /// chunk that failed on the GPU (`failed`, by job) or does not match, in place in
    /// `staging` (the staging buffer copied to the host). Returns the jobs redone.
    ///
    /// # Errors
    /// What the CPU decode returns for a block that is bad on disk too
    /// ([`Error::ChecksumMismatch`], [`Error::Corrupt`]).
    pub(crate) fn repair(
        &self,
        ctx: ArrayCtx<'_>,
        staging: &mut [u8],
        failed: &[bool],
        verify: bool,
    ) -> Result<Vec<usize>> {
        let staged = &*staging;
        let suspects: Vec<usize> = run_on_pool(|| {
            self.jobs
                .par_iter()
                .enumerate()
                .filter(|(i, job)| {
                    job.block.is_some_and(|block| {
                        failed[*i]
                            || (verify && job.check && checksum(&staged[job.staging.clone()]) != block.entry().checksum)
                    })
                })
                .map(|(i, _)| i)
                .collect()
        });
        let mut worker = Worker::default();
        for &i in &suspects {
            let job = &self.jobs[i];
            let block = job.block.expect("suspects have blocks");
            let coord = &block.entry().coord;
            log::warn!("atlas: GPU decode of {} chunk {coord:?} failed or mismatched; decoding on the CPU", ctx.label);
            decode_chunk(ctx, block, &mut worker, &mut staging[job.staging.clone()], true)?;
        }
        Ok(suspects)
    }
}
