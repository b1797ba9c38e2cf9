//! The host side of a GPU read, with no GPU in it: which bytes go to the device in the one
//! upload, where nvCOMP decodes each block, where each chunk's raw bytes land ("staging"),
//! and the descriptors the kernels of `kernels.cu` take. Everything lies in one device
//! buffer, the "work" buffer: the upload first, then the decode targets and staging slots.
//! Tested by running those descriptors through a CPU model of the kernels
//! (`store/gpu_model.rs`, which needs a store).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ops::{Range, RangeInclusive};

use bytemuck::{Pod, Zeroable};
use rayon::prelude::*;

use crate::codec::{CodecId, is_one_plain_zstd_frame_of};
use crate::engine::{
    ArrayCtx, BlockRef, BoxCopy, ChunkOp, Place, Slot, Worker, box_copy, check_raw_len, corrupt_chunk, decode_chunk,
    outside, plan, run_on_pool, stored_bytes,
};
use crate::error::{Error, GpuUnavailable, Result};
use crate::io::checksum;
use crate::meta::ArrayMeta;

/// A chunk's job, before [`Layout::block_job`] adds it: what can be made of its block on
/// any core.
enum Prepared {
    /// Its zstd frame check (`None` when not made: not zstd, or not mapped).
    Frame(Option<bool>),
    /// Its raw chunk, decoded on the CPU: the device has no kernel for either delta, and
    /// nvCOMP takes no dictionary.
    Decoded(Result<Vec<u8>>),
}

impl Prepared {
    fn of(ctx: ArrayCtx<'_>, block: BlockRef<'_>, worker: &mut Worker, verify: bool) -> Self {
        let encoding = block.entry().encoding;
        let delta = encoding.filter.byte_delta() || encoding.filter.elem_delta();
        if delta || encoding.codec == CodecId::ZstdDict {
            Self::Decoded(Self::decode(ctx, block, worker, verify))
        } else {
            Self::Frame(sound_zstd_frame(block, chunk_len(ctx)))
        }
    }

    fn decode(ctx: ArrayCtx<'_>, block: BlockRef<'_>, worker: &mut Worker, verify: bool) -> Result<Vec<u8>> {
        let mut raw = vec![0; chunk_len(ctx)];
        decode_chunk(ctx, block, worker, &mut raw, verify)?;
        Ok(raw)
    }
}

/// What tells the jobs of a read apart: an array (by its schema's address, which every
/// slot of one array shares) and a chunk coordinate.
fn job_key(ctx: &ArrayCtx<'_>, coord: &[u64]) -> (*const ArrayMeta, Vec<u64>) {
    (std::ptr::from_ref(ctx.meta), coord.to_vec())
}

/// Alignment of every chunk inside the device buffers: over nvCOMP's input alignments (zstd
/// 8, LZ4 4) and the largest unit the kernels load (16: the scatter's widened rows;
/// `atlas_xxh3` loads aligned 8-byte words, the unshuffle 4-byte ones).
pub(crate) const ALIGN: usize = 16;

/// Dimensions of one kernel part (`MAX_DIMS` in `kernels.cu`); a box with more after
/// merging is split over its outer ones.
pub(crate) const MAX_DIMS: usize = 8;

/// A codec nvCOMP decodes for Atlas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GpuCodec {
    Zstd,
    Lz4,
}

/// How one chunk's raw (possibly shuffled) bytes reach the device; offsets in the work buffer.
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
    /// Where the raw chunk is once staged, in the work buffer: where it was decoded or
    /// uploaded when it is not shuffled, else a slot of its own that the unshuffle kernel
    /// fills (set by [`Layout::place`]).
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

/// `Part` of `kernels.cu`: a box copied unit by unit (an element, or up to 16 bytes of
/// contiguous elements: `elem`), with byte strides.
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

/// Bytes bound for the upload, at `at` in it: borrowed from a fragment's map or a staged
/// chunk, owned when they had to be read or made (a pending block, a fill element, a chunk
/// decoded on the CPU).
#[derive(Debug)]
struct Upload<'a> {
    at: usize,
    bytes: Cow<'a, [u8]>,
}

/// `Hashed` of `kernels.cu`: a staged chunk for `atlas_xxh3` to hash.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub(crate) struct Hashed {
    pub src: u64,
    pub len: u64,
}

/// Chunks of these lengths are hashed on the device: XXH3's long form starts past 240 bytes,
/// and the kernel implements only that; one thread block walks a chunk 16 KiB at a time,
/// so a chunk of hundreds of MiB is hashed sooner on the host's cores after a copy back.
pub(crate) const DEVICE_HASH_BYTES: RangeInclusive<usize> = 241..=64 << 20;

/// Jobs the host hashes, neighbours in the work buffer, and the bytes they span.
pub(crate) type HostRun = (Vec<usize>, Range<usize>);

/// The layout of one read: `slot_count` C-order buffers ("slots") of `slot_shape`, one after
/// the other, as `engine::read_slots` fills them on the CPU (one slot for a box of one
/// array; one per dataset for a read across datasets).
#[derive(Debug)]
pub(crate) struct Layout<'r, 'a> {
    /// Bytes of the upload (the start of the work buffer), alignment gaps included.
    pub input_len: usize,
    /// What the upload holds, in order; [`Layout::gather`] copies it out.
    uploads: Vec<Upload<'a>>,
    /// Bytes of the work buffer: the upload, then the decode targets and staging slots.
    pub work_len: usize,
    pub jobs: Vec<Job<'a>>,
    /// The arrays read, with what decoding needs of them (a job names its array).
    pub arrays: Vec<ArrayCtx<'r>>,
    /// Every output element belongs to exactly one piece of exactly one slot.
    pub pieces: Vec<(usize, Piece)>,
    pub slot_shape: Vec<u64>,
    pub slot_count: usize,
    elem_bytes: usize,
}

fn reserve(len: &mut usize, n: usize) -> Range<usize> {
    let start = len.next_multiple_of(ALIGN);
    *len = start + n;
    start..start + n
}

impl<'r, 'a> Layout<'r, 'a> {
    /// Lays out a read of `slots` (as `engine::read_slots` takes them). Blocks the device
    /// cannot decode (byte or element delta, zstd with a dictionary) are decoded here on the CPU's
    /// cores (verified when `verify`), their raw bytes uploaded.
    ///
    /// # Errors
    /// [`Error::GpuUnavailable`] for string arrays; [`Error::Corrupt`] for a block whose
    /// lengths do not match its chunk; what reading a pending block or a CPU decode returns.
    pub(crate) fn build(slots: &[Slot<'r, 'a>], slot_shape: &[u64], elem_bytes: usize, verify: bool) -> Result<Self> {
        if elem_bytes == 0 {
            return Err(Error::GpuUnavailable(GpuUnavailable::Unsupported("string arrays".into())));
        }
        let mut layout = Layout {
            input_len: 0,
            uploads: Vec::new(),
            work_len: 0,
            jobs: Vec::new(),
            arrays: Vec::new(),
            pieces: Vec::new(),
            slot_shape: slot_shape.to_vec(),
            slot_count: slots.len(),
            elem_bytes,
        };
        let mut touches = Vec::new();
        for (index, slot) in slots.iter().enumerate() {
            let read = match slot {
                Slot::Fill(fill) => {
                    let element = layout.upload(Cow::Owned(fill.to_vec()));
                    let region = slot_shape.to_vec();
                    layout.pieces.push((index, Piece::Fill { element, start: vec![0; region.len()], region }));
                    continue;
                }
                Slot::Read(read) => read,
            };
            let array = layout.arrays.len();
            layout.arrays.push(read.ctx);
            let fill = layout.upload(Cow::Owned(read.ctx.meta.fill_bytes()));
            for mut op in plan(&read.ctx.meta.chunk_shape, read.start, read.shape) {
                op.in_selection.iter_mut().zip(read.at).for_each(|(i, a)| *i += a);
                let block = (read.lookup)(&op.coord);
                if let Some(block) = block {
                    // As on the CPU: a fill entry of the wrong length is damage too.
                    check_raw_len(read.ctx, block, chunk_len(read.ctx))?;
                }
                let block = block.filter(|b| !b.entry().is_fill);
                touches.push(Touch { slot: index, array, fill: fill.clone(), op, block });
            }
            for (start, region) in outside(slot_shape, read.at, read.shape) {
                layout.pieces.push((index, Piece::Fill { element: fill.clone(), start, region }));
            }
        }
        // One job per chunk of an array, however many slots touch it (`read_boxes` with
        // boxes that share chunks): the array by its schema's address, which every slot
        // of one array shares. `None` for a touch of a chunk an earlier touch has.
        let mut seen = HashSet::new();
        let firsts: Vec<Option<BlockRef<'a>>> = touches
            .iter()
            .map(|t| t.block.filter(|_| seen.insert(job_key(&layout.arrays[t.array], &t.op.coord))))
            .collect();
        // Each chunk's work before its job, on all cores: the zstd frame check of a mapped
        // block (headers spread over it, a cache miss or more apiece: milliseconds for 512
        // blocks on one core), or the whole decode of a block the device cannot decode.
        let arrays = &layout.arrays;
        let prepared: Vec<Option<Prepared>> = run_on_pool(|| {
            touches
                .par_iter()
                .zip(firsts)
                .map_init(Worker::default, |worker, (t, first)| {
                    first.map(|block| Prepared::of(arrays[t.array], block, worker, verify))
                })
                .collect()
        });
        let mut jobs: HashMap<(*const ArrayMeta, Vec<u64>), usize> = HashMap::new();
        let mut worker = Worker::default();
        for (touch, prepared) in touches.into_iter().zip(prepared) {
            let Touch { slot, array, fill, op, block } = touch;
            let piece = match (block, prepared) {
                (Some(block), Some(prepared)) => {
                    let job = layout.block_job(array, block, prepared, &mut worker, verify)?;
                    jobs.insert(job_key(&layout.arrays[array], &op.coord), job);
                    Piece::Chunk { job, op }
                }
                (Some(_), None) => Piece::Chunk { job: jobs[&job_key(&layout.arrays[array], &op.coord)], op },
                (None, _) => Piece::Fill { element: fill, start: op.in_selection, region: op.region },
            };
            layout.pieces.push((slot, piece));
        }
        layout.place();
        Ok(layout)
    }

    /// Where the decode targets and staging slots start in the work buffer: past the upload.
    pub(crate) fn placed_start(&self) -> usize {
        self.input_len.next_multiple_of(ALIGN)
    }

    /// Places each job's decode target and staging slot after the upload. A chunk that is
    /// not shuffled is staged where nvCOMP decodes it or where it was uploaded, so it is
    /// never moved; a shuffled one is unshuffled into a slot of its own.
    fn place(&mut self) {
        let mut end = self.placed_start();
        for job in &mut self.jobs {
            let len = chunk_len(self.arrays[job.array]);
            let unmoved = match &mut job.source {
                Source::Decode { decoded, .. } => {
                    *decoded = reserve(&mut end, len);
                    decoded.clone()
                }
                Source::Upload { input } => input.clone(),
            };
            job.staging = if job.shuffle > 1 { reserve(&mut end, len) } else { unmoved };
        }
        self.work_len = end;
    }

    /// Appends `bytes` to the upload; returns where they will be.
    fn upload(&mut self, bytes: Cow<'a, [u8]>) -> Range<usize> {
        let range = reserve(&mut self.input_len, bytes.len());
        self.uploads.push(Upload { at: range.start, bytes });
        range
    }

    /// Copies the bytes at `window` of the upload into `dst` (as long as the window), on
    /// the engine pool; alignment gaps are zeroed.
    pub(crate) fn gather(&self, window: Range<usize>, dst: &mut [u8]) {
        debug_assert_eq!(window.len(), dst.len());
        let first = self.uploads.partition_point(|u| u.at + u.bytes.len() <= window.start);
        let (mut rest, mut pos) = (dst, window.start);
        let mut copies = Vec::new();
        for upload in self.uploads[first..].iter().take_while(|u| u.at < window.end) {
            let (from, to) = (upload.at.max(window.start), (upload.at + upload.bytes.len()).min(window.end));
            let (gap, tail) = rest.split_at_mut(from - pos);
            gap.fill(0);
            let (part, tail) = tail.split_at_mut(to - from);
            copies.push((part, &upload.bytes[from - upload.at..to - upload.at]));
            (rest, pos) = (tail, to);
        }
        rest.fill(0);
        copy_in_parallel(copies);
    }

    /// Adds the job of `block`, with what [`Prepared::of`] made of it.
    fn block_job(
        &mut self,
        array: usize,
        block: BlockRef<'a>,
        prepared: Prepared,
        worker: &mut Worker,
        verify: bool,
    ) -> Result<usize> {
        let ctx = self.arrays[array];
        let chunk_len = chunk_len(ctx);
        let entry = block.entry();
        let sound = match prepared {
            Prepared::Decoded(raw) => return Ok(self.uploaded_raw_job(array, block, raw?)),
            Prepared::Frame(sound) => sound,
        };
        let shuffle = entry.encoding.filter.shuffle_elem_bytes().unwrap_or(1);
        let staging = 0..0; // placed last
        let stored: Cow<'a, [u8]> = match block.in_memory() {
            Some(mapped) => Cow::Borrowed(mapped),
            None => Cow::Owned(stored_bytes(block, &mut worker.stored)?.to_vec()),
        };
        let codec = match entry.encoding.codec {
            // nvCOMP does not validate its input: a zstd block whose frame does not match the
            // index (damaged) never goes to the GPU; the CPU decode reports it.
            CodecId::Zstd if sound.unwrap_or_else(|| is_one_plain_zstd_frame_of(&stored, chunk_len)) => {
                Some(GpuCodec::Zstd)
            }
            CodecId::Lz4 => Some(GpuCodec::Lz4),
            CodecId::None => None,
            CodecId::Zstd | CodecId::ZstdDict => {
                let raw = Prepared::decode(ctx, block, worker, verify)?;
                return Ok(self.uploaded_raw_job(array, block, raw));
            }
        };
        let stored_len = stored.len();
        let input = self.upload(stored);
        let source = match codec {
            Some(codec) => Source::Decode { codec, input, decoded: 0..0 }, // placed last
            None if stored_len == chunk_len => Source::Upload { input },
            None => {
                let detail = format!("none block of {stored_len} bytes, the chunk has {chunk_len}");
                return Err(corrupt_chunk(ctx, block, &detail));
            }
        };
        self.jobs.push(Job { block, array, source, shuffle, staging, check: block.has_checksum() });
        Ok(self.jobs.len() - 1)
    }

    /// Adds the job of `block`, decoded (and verified) on the CPU into `raw`: uploaded as is.
    fn uploaded_raw_job(&mut self, array: usize, block: BlockRef<'a>, raw: Vec<u8>) -> usize {
        let source = Source::Upload { input: self.upload(Cow::Owned(raw)) };
        self.jobs.push(Job { block, array, source, shuffle: 1, staging: 0..0, check: false });
        self.jobs.len() - 1
    }

    /// The jobs nvCOMP decodes with `codec`: their indices, input ranges (in the upload),
    /// output ranges (in the work buffer, at or past [`Layout::placed_start`]).
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

    /// One move per shuffled job, from its decoded or uploaded bytes into its staging slot,
    /// with the work buffer at `base`.
    pub(crate) fn moves(&self, base: u64) -> Vec<Move> {
        self.jobs
            .iter()
            .filter(|job| job.shuffle > 1)
            .map(|job| {
                let (Source::Decode { decoded: from, .. } | Source::Upload { input: from }) = &job.source;
                let (src, dst) = (base + from.start as u64, base + job.staging.start as u64);
                Move { src, dst, len: job.staging.len() as u64, elem: job.shuffle as u64 }
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

    /// Calls `visit(from, copy)` for every piece: `from` is where its source starts in the
    /// work buffer (a chunk's staging, or a fill element, read with all source strides 0)
    /// and `copy` the box, its source offset relative to `from` and its destination offset
    /// in the whole output.
    fn each_piece(&self, mut visit: impl FnMut(usize, &BoxCopy)) {
        let slot_bytes = self.slot_bytes();
        for (slot, piece) in &self.pieces {
            let (src, copy) = match piece {
                Piece::Chunk { job, op } => {
                    let job = &self.jobs[*job];
                    let src = op.in_chunk_of(&self.arrays[job.array].meta.chunk_shape);
                    let dst = op.in_selection_of(&self.slot_shape);
                    let Some(copy) = box_copy(src, dst, &op.region, self.elem_bytes) else { continue };
                    (job.staging.start, copy)
                }
                Piece::Fill { element, start, region } => {
                    let dst = Place { shape: &self.slot_shape, start };
                    let Some(mut copy) = box_copy(dst, dst, region, self.elem_bytes) else { continue };
                    copy.src_offset = 0;
                    copy.src_strides.iter_mut().for_each(|s| *s = 0);
                    (element.start, copy)
                }
            };
            let copy = BoxCopy { dst_offset: slot * slot_bytes + copy.dst_offset, ..copy };
            visit(src, &copy);
        }
    }

    /// The kernel parts of every piece: from staging (or the uploaded fill element) in the
    /// work buffer at `base` to the output at `out_base`. A box that keeps more than
    /// [`MAX_DIMS`] dimensions after merging is one part per index of its outer dimensions.
    pub(crate) fn scatter_parts(&self, base: u64, out_base: u64) -> Vec<Part> {
        let mut parts = Vec::with_capacity(self.pieces.len());
        self.each_piece(|from, copy| {
            let src = base + from as u64;
            let outer = copy.extents.len().saturating_sub(MAX_DIMS);
            let (src, dst) = (src + copy.src_offset as u64, out_base + copy.dst_offset as u64);
            let mut part =
                Part { ndim: (copy.extents.len() - outer) as u32, elem: self.elem_bytes as u32, ..Part::zeroed() };
            for d in outer..copy.extents.len() {
                part.shape[d - outer] = copy.extents[d] as u64;
                part.src_stride[d - outer] = copy.src_strides[d] as u64;
                part.dst_stride[d - outer] = copy.dst_strides[d] as u64;
            }
            // Each index of the outer dimensions, in C order, with its byte offsets.
            let mut index = vec![0usize; outer];
            loop {
                let at = |strides: &[usize]| index.iter().zip(strides).map(|(&i, &s)| (i * s) as u64).sum::<u64>();
                let mut one = Part { src: src + at(&copy.src_strides), dst: dst + at(&copy.dst_strides), ..part };
                widen(&mut one);
                parts.push(one);
                let Some(d) = (0..outer).rev().find(|&d| index[d] + 1 < copy.extents[d]) else { break };
                index[d] += 1;
                index[d + 1..].iter_mut().for_each(|i| *i = 0);
            }
        });
        parts
    }

    /// The jobs whose staged bytes are compared with their checksum (none decoded on the
    /// CPU, which verified them): those the device hashes (of [`DEVICE_HASH_BYTES`]) and
    /// those the host hashes, the latter in runs of neighbours in the work buffer (one copy
    /// back a run): each run's jobs and the bytes they span.
    pub(crate) fn checks(&self) -> (Vec<usize>, Vec<HostRun>) {
        let (on_device, mut on_host): (Vec<usize>, Vec<usize>) = (0..self.jobs.len())
            .filter(|&i| self.jobs[i].check)
            .partition(|&i| DEVICE_HASH_BYTES.contains(&self.jobs[i].staging.len()));
        // In the order of the work buffer, not of the jobs: a chunk staged in the upload
        // lies before every decode target, whatever its job's place.
        on_host.sort_unstable_by_key(|&i| self.jobs[i].staging.start);
        let mut runs: Vec<HostRun> = Vec::new();
        for job in on_host {
            let staging = &self.jobs[job].staging;
            match runs.last_mut() {
                Some((jobs, span)) if staging.start <= span.end.next_multiple_of(ALIGN) => {
                    jobs.push(job);
                    span.end = span.end.max(staging.end);
                }
                _ => runs.push((vec![job], staging.clone())),
            }
        }
        (on_device, runs)
    }

    /// Of a run of jobs from [`Layout::checks`], those whose bytes in `staged` (the run's
    /// span, from byte `base` of the work buffer) do not match their checksum; on the engine pool.
    pub(crate) fn mismatched_on_host(&self, jobs: &[usize], staged: &[u8], base: usize) -> Vec<usize> {
        run_on_pool(|| {
            jobs.par_iter()
                .copied()
                .filter(|&job| {
                    let range = &self.jobs[job].staging;
                    self.mismatches(job, checksum(&staged[range.start - base..range.end - base]))
                })
                .collect()
        })
    }

    /// The `Hashed` descriptors of `jobs` for `atlas_xxh3`, the work buffer at `base`.
    pub(crate) fn hashed(&self, jobs: &[usize], base: u64) -> Vec<Hashed> {
        let hashed = |job: &Job<'_>| Hashed { src: base + job.staging.start as u64, len: job.staging.len() as u64 };
        jobs.iter().map(|&i| hashed(&self.jobs[i])).collect()
    }

    /// Whether `hash` of job `job`'s staged bytes is not its checksum.
    pub(crate) fn mismatches(&self, job: usize, hash: u64) -> bool {
        hash != self.jobs[job].block.entry().checksum
    }

    /// Decodes on the CPU, verified, every job that `failed` on the GPU or is `mismatched`,
    /// and hands each chunk's raw bytes to `put`. Returns the jobs redone, in order.
    ///
    /// # Errors
    /// What the CPU decode returns for a block that is bad on disk too
    /// ([`Error::ChecksumMismatch`], [`Error::Corrupt`]); what `put` returns.
    pub(crate) fn repair(
        &self,
        failed: &[bool],
        mismatched: Vec<usize>,
        mut put: impl FnMut(usize, Vec<u8>) -> Result<()>,
    ) -> Result<Vec<usize>> {
        let mut suspects = mismatched;
        suspects.extend((0..failed.len()).filter(|&i| failed[i]));
        suspects.sort_unstable();
        suspects.dedup();
        let mut worker = Worker::default();
        for &i in &suspects {
            let job = &self.jobs[i];
            let ctx = self.arrays[job.array];
            let coord = &job.block.entry().coord;
            log::warn!("atlas: GPU decode of {} chunk {coord:?} failed or mismatched; decoding on the CPU", ctx.label);
            let mut raw = vec![0; job.staging.len()];
            decode_chunk(ctx, job.block, &mut worker, &mut raw, true)?;
            put(i, raw)?;
        }
        Ok(suspects)
    }
}

/// Runs every copy of `copies` (destination, source of equal length) on the engine pool, in
/// pieces of at most a MiB so that one large copy is shared out too.
pub(crate) fn copy_in_parallel(copies: Vec<(&mut [u8], &[u8])>) {
    const PIECE: usize = 1 << 20;
    let pieces: Vec<(&mut [u8], &[u8])> =
        copies.into_iter().flat_map(|(dst, src)| dst.chunks_mut(PIECE).zip(src.chunks(PIECE))).collect();
    run_on_pool(|| pieces.into_par_iter().for_each(|(dst, src)| dst.copy_from_slice(src)));
}

/// Copies `part`'s rows in the widest unit (up to 16 bytes) that their length, both start
/// addresses and every stride are multiples of, when the rows are contiguous on both sides:
/// the scatter kernel then moves 16 bytes per thread where it would move one element.
fn widen(part: &mut Part) {
    let Some(last) = (part.ndim as usize).checked_sub(1) else { return };
    let elem = u64::from(part.elem);
    if part.src_stride[last] != elem || part.dst_stride[last] != elem {
        return; // a fill element (source stride 0), or rows with gaps
    }
    let row = part.shape[last] * elem;
    let outer = (0..last).flat_map(|d| [part.src_stride[d], part.dst_stride[d]]);
    // The largest power of two up to 16 dividing `n` (0 is a multiple of every unit).
    let unit_of = |n: u64| 1u64 << n.trailing_zeros().min(4);
    let common = [row, part.src, part.dst].into_iter().chain(outer).map(unit_of).min().unwrap_or(16);
    if common > elem {
        part.shape[last] = row / common;
        part.src_stride[last] = common;
        part.dst_stride[last] = common;
        part.elem = common as u32;
    }
}

/// One chunk a slot's read touches, as the first pass of [`Layout::build`] finds it: the
/// slot, the array (index into [`Layout::arrays`]) and its uploaded fill element, the part
/// of the chunk, and its block (none: fill).
struct Touch<'a> {
    slot: usize,
    array: usize,
    fill: Range<usize>,
    op: ChunkOp,
    block: Option<BlockRef<'a>>,
}

/// Whether a zstd block whose bytes are in memory is one plain frame of `chunk_len` bytes
/// (see `block_job`); `None` for other codecs and pending blocks, read later.
fn sound_zstd_frame(block: BlockRef<'_>, chunk_len: usize) -> Option<bool> {
    (block.entry().encoding.codec == CodecId::Zstd)
        .then(|| block.in_memory())
        .flatten()
        .map(|stored| is_one_plain_zstd_frame_of(stored, chunk_len))
}

/// Bytes of one raw chunk of the array.
fn chunk_len(ctx: ArrayCtx<'_>) -> usize {
    usize::try_from(ctx.meta.chunk_bytes()).expect("a chunk fits in memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2-d part of `rows` rows of `cols` u16 elements, contiguous in each row.
    fn part(src: u64, dst: u64, rows: u64, cols: u64, src_row: u64, dst_row: u64) -> Part {
        let mut p = Part { src, dst, ndim: 2, elem: 2, ..Part::zeroed() };
        (p.shape[0], p.shape[1]) = (rows, cols);
        (p.src_stride[0], p.src_stride[1]) = (src_row, 2);
        (p.dst_stride[0], p.dst_stride[1]) = (dst_row, 2);
        p
    }

    #[test]
    fn rows_are_copied_in_the_widest_unit_they_allow() {
        let mut p = part(4096, 256, 64, 64, 128, 1024);
        widen(&mut p);
        assert_eq!((p.elem, p.shape[1], p.src_stride[1], p.dst_stride[1]), (16, 8, 16, 16));
        assert_eq!((p.shape[0], p.src_stride[0], p.dst_stride[0]), (64, 128, 1024), "outer dims stay");
        // A destination at 8 bytes past alignment: 8-byte units.
        let mut p = part(4096, 264, 64, 64, 128, 1024);
        widen(&mut p);
        assert_eq!((p.elem, p.shape[1]), (8, 16));
        // Rows of 3 elements: 6 bytes, copied by element.
        let mut p = part(4096, 256, 64, 3, 6, 1024);
        widen(&mut p);
        assert_eq!((p.elem, p.shape[1]), (2, 3));
    }

    #[test]
    fn fill_parts_and_rows_with_gaps_stay_element_by_element() {
        let mut fill = part(64, 256, 4, 64, 0, 128);
        fill.src_stride[1] = 0;
        let mut gaps = part(64, 256, 4, 64, 512, 512);
        gaps.dst_stride[1] = 4;
        for p in [fill, gaps] {
            let mut widened = p;
            widen(&mut widened);
            assert_eq!(widened, p);
        }
    }
}
