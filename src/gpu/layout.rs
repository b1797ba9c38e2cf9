//! The host side of a GPU read, with no GPU in it: which bytes go to the device in the one
//! upload, where nvCOMP decodes each block, where each chunk's raw bytes land ("staging"),
//! and the descriptors the two kernels of `kernels.cu` take. Tested by running those
//! descriptors through a CPU model of the kernels (`tests` below).

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

#[cfg(test)]
mod tests {
    //! A CPU model of the device: one byte vector holds every buffer at its base, nvCOMP is
    //! the CPU codec without the shuffle, and the kernels are loops with the semantics of
    //! `kernels.cu`. A layout run through it must read exactly what the CPU path reads.

    use super::*;
    use crate::codec::{BlockEncoding, Scratch, decode_block};
    use crate::{ArraySpec, Atlas, Codec, DType, Shuffle, StoreConfig};
    use ndarray::ArrayD;

    fn unshuffle_kernel(mem: &mut [u8], m: &Move) {
        let (src, dst, len, k) = (m.src as usize, m.dst as usize, m.len as usize, (m.elem as usize).max(1));
        let n = len / k;
        let from = mem[src..src + len].to_vec();
        for e in 0..n {
            for j in 0..k {
                mem[dst + e * k + j] = from[j * n + e];
            }
        }
        mem[dst + n * k..dst + len].copy_from_slice(&from[n * k..]);
    }

    fn scatter_kernel(mem: &mut [u8], part: &Part) {
        let ndim = part.ndim as usize;
        let count: u64 = part.shape[..ndim].iter().product();
        let elem = part.elem as usize;
        for flat in 0..count {
            let (mut rem, mut src, mut dst) = (flat, part.src, part.dst);
            for dim in (0..ndim).rev() {
                let idx = rem % part.shape[dim];
                rem /= part.shape[dim];
                src += idx * part.src_stride[dim];
                dst += idx * part.dst_stride[dim];
            }
            let (src, dst) = (src as usize, dst as usize);
            mem.copy_within(src..src + elem, dst);
        }
    }

    /// What to spoil in the model's staging before the checks run.
    #[derive(Clone, Copy)]
    enum Spoil {
        Nothing,
        /// nvCOMP reports this job failed (its staged bytes are garbage).
        Reported(usize),
        /// This job's staged bytes are wrong though nvCOMP said success.
        Silent(usize),
    }

    /// Runs a layout through the CPU model; returns the output bytes and the jobs redone.
    fn run_model(ctx: ArrayCtx<'_>, layout: &Layout<'_>, spoil: Spoil) -> Result<(Vec<u8>, Vec<usize>)> {
        let bases = Bases {
            input: 0,
            decoded: layout.input.len().next_multiple_of(ALIGN) as u64,
            staging: (layout.input.len() + layout.decoded_len).next_multiple_of(ALIGN) as u64 + 64,
        };
        let staging_at = bases.staging as usize;
        let out_base = (staging_at + layout.staging_len).next_multiple_of(ALIGN);
        let mut mem = vec![0u8; out_base + layout.out_len()];
        mem[..layout.input.len()].copy_from_slice(&layout.input);
        for codec in [GpuCodec::Zstd, GpuCodec::Lz4] {
            let (_, ins, outs) = layout.decode_batch(codec);
            let id = if codec == GpuCodec::Zstd { CodecId::Zstd } else { CodecId::Lz4 };
            for (i, o) in ins.iter().zip(outs) {
                let stored = mem[i.clone()].to_vec();
                let at = bases.decoded as usize;
                let target = &mut mem[at + o.start..at + o.end];
                let encoding = BlockEncoding { codec: id, shuffle_elem_bytes: None };
                decode_block(&stored, encoding, None, &mut Scratch::default(), target).unwrap();
            }
        }
        for m in layout.moves(bases) {
            unshuffle_kernel(&mut mem, &m);
        }
        let mut failed = vec![false; layout.jobs.len()];
        let mut staging = mem[staging_at..staging_at + layout.staging_len].to_vec();
        if let Spoil::Reported(job) | Spoil::Silent(job) = spoil {
            staging[layout.jobs[job].staging.clone()].iter_mut().for_each(|b| *b ^= 0x5a);
            failed[job] = matches!(spoil, Spoil::Reported(_));
        }
        let redone = layout.repair(ctx, &mut staging, &failed, true)?;
        mem[staging_at..staging_at + layout.staging_len].copy_from_slice(&staging);
        for p in layout.scatter_parts(bases.staging, out_base as u64).unwrap() {
            scatter_kernel(&mut mem, &p);
        }
        Ok((mem[out_base..].to_vec(), redone))
    }

    /// An array of every codec, shuffle and block kind: zstd+shuffle, LZ4, none+shuffle
    /// committed, one zstd block pending, chunks never written.
    fn mixed_array(dir: &std::path::Path) -> (Atlas, crate::ArrayHandle, ArrayD<u16>) {
        // Row 19 stays unwritten: it reads as the fill value.
        let store = Atlas::create(dir.join("s"), StoreConfig::default()).unwrap();
        let ds = store.create_dataset("d").unwrap();
        let spec = ArraySpec::new(DType::UInt16, [20, 13, 9]).chunk_shape([6, 5, 4]).fill_value(7u16);
        ds.define_array("a", spec).unwrap();
        let data = ArrayD::from_shape_fn(vec![20, 13, 9], |i| (i[0] * 131 + i[1] * 17 + i[2] * 3) as u16);
        let array = ds.array("a").unwrap();
        let codecs = [(Codec::Zstd { level: 3 }, Shuffle::On), (Codec::Lz4, Shuffle::Off), (Codec::None, Shuffle::On)];
        for (i, (codec, shuffle)) in codecs.into_iter().enumerate() {
            array.set_codec(Some(codec)).unwrap();
            array.set_shuffle(Some(shuffle)).unwrap();
            let rows = i * 6..(i + 1) * 6;
            array.write(&[rows.start as u64, 0, 0], data.slice(ndarray::s![rows, .., ..])).unwrap();
        }
        store.flush().unwrap();
        array.set_codec(Some(Codec::Zstd { level: 1 })).unwrap();
        array.write(&[18, 0, 0], data.slice(ndarray::s![18..19, .., ..])).unwrap();
        (store, array, data)
    }

    fn model_read(
        array: &crate::ArrayHandle,
        start: &[u64],
        shape: &[u64],
        spoil: Spoil,
    ) -> Result<(Vec<u16>, Vec<usize>)> {
        array.with_read_ctx(start, shape, (DType::UInt16, |_| true), |ctx, lookup| {
            let layout = Layout::build(ctx, lookup, start, shape, true)?;
            let (bytes, redone) = run_model(ctx, &layout, spoil)?;
            Ok((bytes.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect(), redone))
        })
    }

    #[test]
    fn the_kernel_model_reads_what_the_cpu_reads() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, array, _) = mixed_array(dir.path());
        for (start, shape) in [([0, 0, 0], [20, 13, 9]), ([3, 2, 1], [14, 9, 7]), ([17, 12, 8], [3, 1, 1])] {
            let cpu = array.read::<u16>(&start, &shape).unwrap();
            let (gpu, redone) = model_read(&array, &start, &shape, Spoil::Nothing).unwrap();
            assert!(gpu == cpu.iter().copied().collect::<Vec<_>>(), "box {start:?} {shape:?} reads back wrong");
            assert!(redone.is_empty());
        }
    }

    #[test]
    fn blocks_the_gpu_gets_wrong_are_redone_on_the_cpu() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, array, _) = mixed_array(dir.path());
        let all = [20, 13, 9];
        let cpu: Vec<u16> = array.read::<u16>(&[0, 0, 0], &all).unwrap().iter().copied().collect();
        for spoil in [Spoil::Reported(0), Spoil::Silent(0), Spoil::Silent(7)] {
            let (gpu, redone) = model_read(&array, &[0, 0, 0], &all, spoil).unwrap();
            assert!(gpu == cpu, "a spoiled block was not redone");
            assert_eq!(redone.len(), 1);
        }
    }

    #[test]
    fn dictionary_blocks_are_decoded_on_the_cpu_and_uploaded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Atlas::create(dir.path().join("s"), StoreConfig::default()).unwrap();
        let ds = store.create_dataset("d").unwrap();
        // As in the corruption suite: 16 chunks of a regular pattern train a dictionary.
        let spec = ArraySpec::new(DType::UInt16, [2048]).chunk_shape([128]).zstd_dictionary(true);
        let array = ds.define_array("a", spec).unwrap();
        let data = ArrayD::from_shape_fn(vec![2048], |i| (i[0] % 128 * 3 + i[0] / 128 % 3) as u16);
        array.write(&[0], data.view()).unwrap();
        store.flush().unwrap();
        let (gpu, _) = model_read(&array, &[0], &[2048], Spoil::Nothing).unwrap();
        assert!(gpu == data.iter().copied().collect::<Vec<_>>(), "dictionary blocks read back wrong");
        let uploads = array
            .with_read_ctx(&[0], &[2048], (DType::UInt16, |_| true), |ctx, lookup| {
                let layout = Layout::build(ctx, lookup, &[0], &[2048], true)?;
                Ok(layout.jobs.iter().filter(|j| matches!(j.source, Source::Upload { .. })).count())
            })
            .unwrap();
        assert!(array.meta().unwrap().zstd_dictionary.is_some());
        assert!(uploads > 0, "dictionary blocks travel decoded");
    }
}
