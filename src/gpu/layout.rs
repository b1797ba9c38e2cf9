//! The host side of a GPU read, with no GPU in it: which bytes go to the device in the one
//! upload, where nvCOMP decodes each block, where each chunk's raw bytes land ("staging"),
//! and the descriptors the two kernels of `kernels.cu` take. Tested by running those
//! descriptors through a CPU model of the kernels (`store/gpu_model.rs`, which needs a store).

use std::ops::Range;

use bytemuck::{Pod, Zeroable};
use rayon::prelude::*;

use crate::codec::{CodecId, is_one_plain_zstd_frame_of};
use crate::engine::{
    ArrayCtx, BlockRef, BoxCopy, ChunkOp, Place, Slot, Worker, box_copy, check_raw_len, corrupt_chunk, decode_chunk,
    fill_with, outside, plan, run_on_pool, stored_bytes,
};
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
    /// Bytes uploaded as they are: a `none` block, or a block decoded on the CPU.
    Upload { input: Range<usize> },
}

/// One chunk of the read: a block to bring to its staging slot.
#[derive(Debug)]
pub(crate) struct Job<'a> {
    pub block: BlockRef<'a>,
    /// The array it belongs to, as an index into [`Layout::arrays`].
    pub array: usize,
    pub source: Source,
    /// Element size to unshuffle with; 1 copies.
    pub shuffle: usize,
    /// Where the raw chunk lands on the device.
    pub staging: Range<usize>,
    /// Whether the staged bytes still need their checksum compared (false for blocks the
    /// CPU decoded, which verified them).
    pub check: bool,
}

/// Where the elements of one box of the output come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// The part `op` of the chunk of job `job`.
    Chunk { job: usize, op: ChunkOp },
    /// One element, repeated: the fill value, uploaded at `element` of the input.
    Fill { element: Range<usize>, start: Vec<u64>, region: Vec<u64> },
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

/// The layout of one read: `slot_count` C-order buffers ("slots") of `slot_shape`, one after
/// the other, as `engine::read_slots` fills them on the CPU (one slot for a box of one
/// array; one per dataset for a read across datasets).
#[derive(Debug)]
pub(crate) struct Layout<'r, 'a> {
    /// Everything uploaded, in one transfer.
    pub input: Vec<u8>,
    pub decoded_len: usize,
    pub staging_len: usize,
    pub jobs: Vec<Job<'a>>,
    /// The arrays read, with what decoding needs of them (a job names its array).
    pub arrays: Vec<ArrayCtx<'r>>,
    /// Every output element belongs to exactly one piece of exactly one slot.
    pub pieces: Vec<(usize, Piece)>,
    pub slot_shape: Vec<u64>,
    pub slot_count: usize,
    elem_bytes: usize,
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

impl<'r, 'a> Layout<'r, 'a> {
    /// Lays out a read of `slots` (as `engine::read_slots` takes them). Blocks nvCOMP cannot
    /// decode (zstd with a dictionary) are decoded here on the CPU (verified when `verify`),
    /// their raw bytes uploaded.
    ///
    /// # Errors
    /// [`Error::GpuUnavailable`] for string arrays; [`Error::Corrupt`] for a block whose
    /// lengths do not match its chunk; what reading a pending block or a CPU decode returns.
    pub(crate) fn build(slots: &[Slot<'r, 'a>], slot_shape: &[u64], elem_bytes: usize, verify: bool) -> Result<Self> {
        if elem_bytes == 0 {
            return Err(Error::GpuUnavailable(GpuUnavailable::Unsupported("string arrays".into())));
        }
        let mut layout = Layout {
            input: Vec::new(),
            decoded_len: 0,
            staging_len: 0,
            jobs: Vec::new(),
            arrays: Vec::new(),
            pieces: Vec::new(),
            slot_shape: slot_shape.to_vec(),
            slot_count: slots.len(),
            elem_bytes,
        };
        let mut worker = Worker::default();
        for (index, slot) in slots.iter().enumerate() {
            let read = match slot {
                Slot::Fill(fill) => {
                    let element = layout.upload(fill);
                    let region = slot_shape.to_vec();
                    layout.pieces.push((index, Piece::Fill { element, start: vec![0; region.len()], region }));
                    continue;
                }
                Slot::Read(read) => read,
            };
            let array = layout.arrays.len();
            layout.arrays.push(read.ctx);
            let element = layout.upload(&read.ctx.meta.fill_bytes());
            let fill = |start: Vec<u64>, region: Vec<u64>| Piece::Fill { element: element.clone(), start, region };
            for mut op in plan(&read.ctx.meta.chunk_shape, read.start, read.shape) {
                op.in_selection.iter_mut().zip(read.at).for_each(|(i, a)| *i += a);
                let block = (read.lookup)(&op.coord);
                if let Some(block) = block {
                    // As on the CPU: a fill entry of the wrong length is damage too.
                    check_raw_len(read.ctx, block, chunk_len(read.ctx))?;
                }
                let piece = match block.filter(|b| !b.entry().is_fill) {
                    Some(block) => Piece::Chunk { job: layout.block_job(array, block, &mut worker, verify)?, op },
                    None => fill(op.in_selection, op.region),
                };
                layout.pieces.push((index, piece));
            }
            for (start, region) in outside(slot_shape, read.at, read.shape) {
                layout.pieces.push((index, fill(start, region)));
            }
        }
        Ok(layout)
    }

    /// Appends `bytes` to the upload; returns where they are.
    fn upload(&mut self, bytes: &[u8]) -> Range<usize> {
        let range = push_aligned(&mut self.input, bytes.len());
        self.input[range.clone()].copy_from_slice(bytes);
        range
    }

    fn block_job(&mut self, array: usize, block: BlockRef<'a>, worker: &mut Worker, verify: bool) -> Result<usize> {
        let ctx = self.arrays[array];
        let chunk_len = chunk_len(ctx);
        let entry = block.entry();
        let shuffle = entry.encoding.shuffle_elem_bytes.unwrap_or(1);
        let staging = reserve(&mut self.staging_len, chunk_len);
        let stored = stored_bytes(block, &mut worker.stored)?;
        let codec = match entry.encoding.codec {
            // nvCOMP does not validate its input: a zstd block whose frame does not match the
            // index (damaged) never goes to the GPU; the CPU decode below reports it.
            CodecId::Zstd if is_one_plain_zstd_frame_of(stored, chunk_len) => Some(GpuCodec::Zstd),
            CodecId::Lz4 => Some(GpuCodec::Lz4),
            CodecId::None => None,
            CodecId::Zstd | CodecId::ZstdDict => {
                // nvCOMP takes no dictionary: decode (and verify) here, upload the raw chunk.
                let input = push_aligned(&mut self.input, chunk_len);
                decode_chunk(ctx, block, worker, &mut self.input[input.clone()], verify)?;
                let source = Source::Upload { input };
                self.jobs.push(Job { block, array, source, shuffle: 1, staging, check: false });
                return Ok(self.jobs.len() - 1);
            }
        };
        let input = self.upload(stored);
        let source = match codec {
            Some(codec) => Source::Decode { codec, input, decoded: reserve(&mut self.decoded_len, chunk_len) },
            None if stored.len() == chunk_len => Source::Upload { input },
            None => {
                let detail = format!("none block of {} bytes, the chunk has {chunk_len}", stored.len());
                return Err(corrupt_chunk(ctx, block, &detail));
            }
        };
        self.jobs.push(Job { block, array, source, shuffle, staging, check: block.has_checksum() });
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

    fn slot_bytes(&self) -> usize {
        self.slot_shape.iter().map(|&n| usize::try_from(n).expect("checked by the caller")).product::<usize>()
            * self.elem_bytes
    }

    /// Bytes of the result: every slot, C order.
    pub(crate) fn out_len(&self) -> usize {
        self.slot_bytes() * self.slot_count
    }

    /// Calls `visit(base, copy)` for every piece: `base` is where its source starts
    /// (`Ok(byte in staging)`: a chunk's slot; `Err(byte in input)`: a fill element, read with
    /// all source strides 0) and `copy` the box, its source offset relative to `base` and its
    /// destination offset in the whole output.
    fn each_piece(&self, mut visit: impl FnMut(std::result::Result<usize, usize>, &BoxCopy)) {
        let slot_bytes = self.slot_bytes();
        for (slot, piece) in &self.pieces {
            let (src, copy) = match piece {
                Piece::Chunk { job, op } => {
                    let job = &self.jobs[*job];
                    let src = Place { shape: &self.arrays[job.array].meta.chunk_shape, start: &op.in_chunk };
                    let dst = Place { shape: &self.slot_shape, start: &op.in_selection };
                    let Some(copy) = box_copy(src, dst, &op.region, self.elem_bytes) else { continue };
                    (Ok(job.staging.start), copy)
                }
                Piece::Fill { element, start, region } => {
                    let dst = Place { shape: &self.slot_shape, start };
                    let Some(mut copy) = box_copy(dst, dst, region, self.elem_bytes) else { continue };
                    copy.src_offset = 0;
                    copy.src_strides.iter_mut().for_each(|s| *s = 0);
                    (Err(element.start), copy)
                }
            };
            let copy = BoxCopy { dst_offset: slot * slot_bytes + copy.dst_offset, ..copy };
            visit(src, &copy);
        }
    }

    /// One kernel part per piece: from staging (or the uploaded fill element) to the output
    /// at `out_base`.
    ///
    /// # Errors
    /// [`Error::GpuUnavailable`] when a box keeps more than [`MAX_DIMS`] dimensions after
    /// merging.
    pub(crate) fn scatter_parts(&self, bases: Bases, out_base: u64) -> Result<Vec<Part>> {
        let mut parts = Vec::with_capacity(self.pieces.len());
        let mut too_deep = None;
        self.each_piece(|src, copy| {
            let ndim = copy.extents.len();
            if ndim > MAX_DIMS {
                too_deep = Some(ndim);
                return;
            }
            let src = match src {
                Ok(staged) => bases.staging + staged as u64,
                Err(uploaded) => bases.input + uploaded as u64,
            };
            let mut part = Part {
                src: src + copy.src_offset as u64,
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
        });
        if let Some(ndim) = too_deep {
            let why = format!("a box of {ndim} dimensions after merging (at most {MAX_DIMS})");
            return Err(Error::GpuUnavailable(GpuUnavailable::Unsupported(why)));
        }
        Ok(parts)
    }

    /// Fills `out` (host memory) from `staging` (the staging buffer copied to the host).
    pub(crate) fn scatter_on_host(&self, staging: &[u8], out: &mut [u8]) {
        self.each_piece(|base, copy| match base {
            Ok(slot) => copy.rows(|s, d, n| out[d..d + n].copy_from_slice(&staging[slot + s..slot + s + n])),
            Err(at) => {
                let element = &self.input[at..at + self.elem_bytes];
                copy.rows(|_, d, n| fill_with(&mut out[d..d + n], element));
            }
        });
    }

    /// Compares the staged chunks' checksums (when `verify`) and decodes on the CPU every
    /// chunk that failed on the GPU (`failed`, by job) or does not match, in place in
    /// `staging` (the staging buffer copied to the host). Returns the jobs redone.
    ///
    /// # Errors
    /// What the CPU decode returns for a block that is bad on disk too
    /// ([`Error::ChecksumMismatch`], [`Error::Corrupt`]).
    pub(crate) fn repair(&self, staging: &mut [u8], failed: &[bool], verify: bool) -> Result<Vec<usize>> {
        let staged = &*staging;
        let suspects: Vec<usize> = run_on_pool(|| {
            self.jobs
                .par_iter()
                .enumerate()
                .filter(|(i, job)| {
                    failed[*i]
                        || (verify && job.check && checksum(&staged[job.staging.clone()]) != job.block.entry().checksum)
                })
                .map(|(i, _)| i)
                .collect()
        });
        let mut worker = Worker::default();
        for &i in &suspects {
            let job = &self.jobs[i];
            let ctx = self.arrays[job.array];
            let coord = &job.block.entry().coord;
            log::warn!("atlas: GPU decode of {} chunk {coord:?} failed or mismatched; decoding on the CPU", ctx.label);
            decode_chunk(ctx, job.block, &mut worker, &mut staging[job.staging.clone()], true)?;
        }
        Ok(suspects)
    }
}

/// Bytes of one raw chunk of the array.
fn chunk_len(ctx: ArrayCtx<'_>) -> usize {
    usize::try_from(ctx.meta.chunk_bytes()).expect("a chunk fits in memory")
}
