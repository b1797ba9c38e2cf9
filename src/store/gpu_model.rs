//! Tests of the GPU read layout (`gpu/layout.rs`) against a CPU model of the device: one
//! byte vector holds the work buffer and the output, nvCOMP is the CPU codec without the shuffle,
//! and the kernels are loops with the semantics of `gpu/kernels.cu`. A layout run through
//! it must read exactly what the CPU path reads. Here rather than in `gpu/` because it
//! needs a store to make blocks.

use ndarray::ArrayD;

use super::{ArrayHandle, ArraySpec, Atlas, StoreConfig};
use crate::codec::{BlockEncoding, CodecId, Filter, Scratch, decode_block};
use crate::engine::{BlockRef, Slot, SlotRead};
use crate::error::{Error, Result};
use crate::fragment::BlockEntry;
use crate::gpu::layout::{ALIGN, GpuCodec, Layout, Move, Part, Source};
use crate::gpu::rounds::in_rounds;
use crate::io::checksum;
use crate::meta::{Codec, DType, Shuffle};

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
    // The kernel loads and stores units aligned to their size (`widen` must keep them so).
    let unit = u64::from(part.elem);
    assert!(part.src.is_multiple_of(unit) && part.dst.is_multiple_of(unit), "{part:?}");
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

/// What a layout run through the model gives: the output as the scatter kernel makes it,
/// and the jobs redone on the CPU.
struct Run {
    device: Vec<u8>,
    redone: Vec<usize>,
}

/// Runs a layout through the CPU model.
fn run_model(layout: &Layout<'_, '_>, spoil: Spoil) -> Result<Run> {
    // The work buffer at 0; the output past it and a gap.
    let out_base = layout.work_len.next_multiple_of(ALIGN) + 64;
    let mut mem = vec![0u8; out_base + layout.out_len()];
    // Gathered in windows that cut through blocks, as the upload's pieces do.
    for start in (0..layout.input_len).step_by(100) {
        let window = start..(start + 100).min(layout.input_len);
        layout.gather(window.clone(), &mut mem[window]);
    }
    for codec in [GpuCodec::Zstd, GpuCodec::Lz4] {
        let (_, ins, outs) = layout.decode_batch(codec);
        let id = if codec == GpuCodec::Zstd { CodecId::Zstd } else { CodecId::Lz4 };
        for (i, o) in ins.iter().zip(outs) {
            assert!(i.end <= layout.input_len && o.start >= layout.placed_start(), "decoded in place");
            let stored = mem[i.clone()].to_vec();
            let target = &mut mem[o];
            let encoding = BlockEncoding { codec: id, filter: Filter::None };
            decode_block(&stored, encoding, None, &mut Scratch::default(), target).unwrap();
        }
    }
    for m in layout.moves(0) {
        assert!(m.src + m.len <= m.dst || m.dst + m.len <= m.src, "a move within its own bytes: {m:?}");
        unshuffle_kernel(&mut mem, &m);
    }
    let mut failed = vec![false; layout.jobs.len()];
    if let Spoil::Reported(job) | Spoil::Silent(job) = spoil {
        mem[layout.jobs[job].staging.clone()].iter_mut().for_each(|b| *b ^= 0x5a);
        failed[job] = matches!(spoil, Spoil::Reported(_));
    }
    // As `Target::check`, with `atlas_xxh3` modelled by the host's hash.
    let (on_device, on_host) = layout.checks();
    assert!(
        on_device.iter().all(|&job| layout.jobs[job].staging.start.is_multiple_of(8)),
        "the hash kernel loads words"
    );
    for (jobs, span) in &on_host {
        let inside =
            |job: &usize| span.start <= layout.jobs[*job].staging.start && layout.jobs[*job].staging.end <= span.end;
        assert!(span.start <= span.end && jobs.iter().all(inside), "a host run's span holds its jobs");
    }
    let hashed = |job: usize| checksum(&mem[layout.jobs[job].staging.clone()]);
    let mut mismatched: Vec<usize> = on_device.into_iter().filter(|&job| layout.mismatches(job, hashed(job))).collect();
    for (jobs, span) in on_host {
        mismatched.extend(layout.mismatched_on_host(&jobs, &mem[span.clone()], span.start));
    }
    let redone = layout.repair(&failed, mismatched, |job, raw| {
        mem[layout.jobs[job].staging.clone()].copy_from_slice(&raw);
        Ok(())
    })?;
    for p in layout.scatter_parts(0, out_base as u64) {
        scatter_kernel(&mut mem, &p);
    }
    Ok(Run { device: mem[out_base..].to_vec(), redone })
}

fn u16s(bytes: &[u8]) -> Vec<u16> {
    bytes.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect()
}

/// An array of every codec, shuffle and block kind: zstd+shuffle, LZ4, none+shuffle
/// committed, one zstd+bytedelta block row pending, chunks never written.
fn mixed_array(dir: &std::path::Path) -> (Atlas, ArrayHandle, ArrayD<u16>) {
    // Row 19 stays unwritten: it reads as the fill value.
    let store = Atlas::create(dir.join("s"), StoreConfig::default()).unwrap();
    let ds = store.create_dataset("d").unwrap();
    let spec = ArraySpec::new(DType::UInt16, [20, 13, 9]).chunk_shape([6, 5, 4]).fill_value(7u16);
    ds.define_array("a", spec).unwrap();
    // Equal along each chunk row (4 values), so that LZ4 makes unshuffled chunks smaller
    // and LZ4 blocks are on disk.
    let data = ArrayD::from_shape_fn(vec![20, 13, 9], |i| (i[0] * 131 + i[1] * 17 + i[2] / 4 * 3) as u16);
    let array = ds.array("a").unwrap();
    let codecs = [(Codec::Zstd { level: 3 }, Shuffle::On), (Codec::Lz4, Shuffle::Off), (Codec::None, Shuffle::On)];
    for (i, (codec, shuffle)) in codecs.into_iter().enumerate() {
        array.set_codec(Some(codec)).unwrap();
        array.set_shuffle(Some(shuffle)).unwrap();
        let rows = i * 6..(i + 1) * 6;
        array.write(&[rows.start as u64, 0, 0], data.slice(ndarray::s![rows, .., ..])).unwrap();
    }
    store.flush().unwrap();
    let codecs: std::collections::BTreeSet<String> =
        store.array_blocks("d", "a").unwrap().iter().filter(|b| !b.is_fill).map(|b| format!("{:?}", b.codec)).collect();
    assert_eq!(codecs, ["Lz4", "None", "Zstd"].map(String::from).into(), "every codec is on disk");
    // The last chunk row byte-delta coded: decoded on the CPU, its raw chunks uploaded.
    array.set_codec(Some(Codec::Zstd { level: 1 })).unwrap();
    array.set_shuffle(Some(Shuffle::ByteDelta)).unwrap();
    array.write(&[18, 0, 0], data.slice(ndarray::s![18..19, .., ..])).unwrap();
    (store, array, data)
}

/// Reads a box of a uint16 array through the model: (output, redone).
fn model_read(array: &ArrayHandle, start: &[u64], shape: &[u64], spoil: Spoil) -> Result<(Vec<u16>, Vec<usize>)> {
    array.with_read_slot(start, shape, (DType::UInt16, |_| true), |slots, _| {
        let run = run_model(&Layout::build(slots, shape, 2, true)?, spoil)?;
        Ok((u16s(&run.device), run.redone))
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

/// A box that keeps 10 dimensions after merging (every axis cut) is scattered in parts
/// of the kernel's 8 dimensions, one per index of the outer two.
#[test]
fn boxes_deeper_than_the_kernel_are_split_over_their_outer_dimensions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Atlas::create(dir.path().join("s"), StoreConfig::default()).unwrap();
    let shape = [3u64, 3, 3, 3, 3, 3, 3, 3, 3, 4];
    let spec = ArraySpec::new(DType::UInt16, shape).chunk_shape([2; 10]).codec(Codec::Lz4);
    let array = store.create_dataset("d").unwrap().define_array("deep", spec).unwrap();
    let dims: Vec<usize> = shape.iter().map(|&n| n as usize).collect();
    let data =
        ArrayD::from_shape_fn(dims, |i| (0..10).fold(0u16, |acc, d| acc.wrapping_mul(5).wrapping_add(i[d] as u16)));
    array.write(&[0; 10], data.view()).unwrap();
    store.flush().unwrap();
    // Chunk (0, .., 0) is 2 wide on every axis of a result 3 (or 4) wide: nothing merges.
    let cpu = array.read::<u16>(&[0; 10], &shape).unwrap();
    let (gpu, _) = model_read(&array, &[0; 10], &shape, Spoil::Nothing).unwrap();
    assert!(gpu == cpu.iter().copied().collect::<Vec<_>>(), "a 10-d box reads back wrong");
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
fn dictionary_and_element_delta_blocks_are_decoded_on_the_cpu_and_uploaded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Atlas::create(dir.path().join("s"), StoreConfig::default()).unwrap();
    let ds = store.create_dataset("d").unwrap();
    // As in the corruption suite: 16 chunks of a regular pattern train a dictionary.
    let spec = ArraySpec::new(DType::UInt16, [2048]).chunk_shape([128]);
    let data = ArrayD::from_shape_fn(vec![2048], |i| (i[0] % 128 * 3 + i[0] / 128 % 3) as u16);
    for (name, spec) in [("dict", spec.clone().zstd_dictionary(true)), ("delta", spec.shuffle(Shuffle::Delta))] {
        let array = ds.define_array(name, spec).unwrap();
        array.write(&[0], data.view()).unwrap();
        store.flush().unwrap();
        let (gpu, _) = model_read(&array, &[0], &[2048], Spoil::Nothing).unwrap();
        assert!(gpu == data.iter().copied().collect::<Vec<_>>(), "{name} blocks read back wrong");
        let uploads = array
            .with_read_slot(&[0], &[2048], (DType::UInt16, |_| true), |slots, _| {
                let layout = Layout::build(slots, &[2048], 2, true)?;
                Ok(layout.jobs.iter().filter(|j| matches!(j.source, Source::Upload { .. })).count())
            })
            .unwrap();
        assert_eq!(uploads, 16, "{name} blocks travel decoded");
    }
    assert!(ds.array("dict").unwrap().meta().unwrap().zstd_dictionary.is_some());
}

#[test]
fn reads_across_datasets_lay_out_every_slot() {
    let dir = tempfile::tempdir().unwrap();
    let store = Atlas::create(dir.path().join("s"), StoreConfig::default()).unwrap();
    // Three datasets: a long array, a short one with another fill value and chunk shape,
    // and one without the array; plus one whose array is only partly written.
    let long = ArrayD::from_shape_fn(vec![40], |i| i[0] as u16 * 3);
    for (name, len, chunk, fill, codec) in
        [("a", 40u64, 8u64, 1u16, Codec::Lz4), ("b", 13, 5, 9, Codec::Zstd { level: 1 }), ("d", 40, 16, 4, Codec::None)]
    {
        let ds = store.create_dataset(name).unwrap();
        let spec = ArraySpec::new(DType::UInt16, [len]).chunk_shape([chunk]).fill_value(fill).codec(codec);
        let array = ds.define_array("v", spec).unwrap();
        let part = if name == "d" { 10..20 } else { 0..len as usize };
        array.write(&[part.start as u64], long.slice(ndarray::s![part])).unwrap();
    }
    store.create_dataset("c").unwrap();
    store.flush().unwrap();
    let datasets = ["a", "b", "c", "d"];
    for (start, shape) in [([0u64], [40u64]), ([6], [11]), ([30], [10])] {
        let cpu: Vec<u16> =
            store.read_array_across_stacked::<u16>("v", &datasets, &start, &shape).unwrap().into_iter().collect();
        let device = store
            .with_across_slots("v", &datasets, (&start, &shape), (DType::UInt16, |_| true), |slots, _| {
                let run = run_model(&Layout::build(slots, &shape, 2, true)?, Spoil::Nothing)?;
                Ok(u16s(&run.device))
            })
            .unwrap();
        assert!(device == cpu, "across {start:?} {shape:?}: the scatter differs");
    }
}

#[test]
fn a_fill_entry_of_the_wrong_raw_length_is_damage_as_on_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, array, _) = mixed_array(dir.path());
    let shape = [6, 5, 4];
    let built = array.with_read_slot(&[0, 0, 0], &shape, (DType::UInt16, |_| true), |slots, _| {
        let [Slot::Read(read)] = slots else { panic!("one box, one slot") };
        let Some(BlockRef::Committed { reader, entry }) = (read.lookup)(&[0, 0, 0]) else { panic!("committed") };
        let bad = BlockEntry { is_fill: true, raw_len_bytes: entry.raw_len_bytes + 2, ..entry.clone() };
        let lookup = |coord: &[u64]| match coord {
            [0, 0, 0] => Some(BlockRef::Committed { reader, entry: &bad }),
            _ => (read.lookup)(coord),
        };
        let slot = Slot::Read(SlotRead { lookup: &lookup, ..*read });
        Layout::build(&[slot], &shape, 2, true).map(|_| ())
    });
    assert!(matches!(built, Err(Error::Corrupt { .. })), "{built:?}");
}

/// A chunk that is not shuffled stays where nvCOMP decodes it or where it was uploaded; a
/// shuffled one gets a slot of its own, apart from every source, and is the only kind moved.
#[test]
fn only_shuffled_chunks_are_moved_into_staging() {
    let dir = tempfile::tempdir().unwrap();
    let (store, array, _) = mixed_array(dir.path());
    let raw = ArraySpec::new(DType::UInt16, [8]).chunk_shape([4]).codec(Codec::None).shuffle(Shuffle::Off);
    let plain = store.open_dataset("d").unwrap().define_array("plain", raw).unwrap();
    plain.write(&[0], ndarray::arr1(&[1u16, 2, 3, 4, 5, 6, 7, 8]).view()).unwrap();
    store.flush().unwrap();
    let (read, _) = model_read(&plain, &[0], &[8], Spoil::Silent(1)).unwrap();
    assert_eq!(read, [1, 2, 3, 4, 5, 6, 7, 8], "chunks staged in the upload are checked and redone too");
    for (array, shape) in [(&array, vec![20, 13, 9]), (&plain, vec![8])] {
        let start = vec![0; shape.len()];
        array
            .with_read_slot(&start, &shape, (DType::UInt16, |_| true), |slots, _| {
                let layout = Layout::build(slots, &shape, 2, true)?;
                let sources: Vec<_> = layout
                    .jobs
                    .iter()
                    .map(|job| match &job.source {
                        Source::Decode { decoded, .. } => decoded.clone(),
                        Source::Upload { input } => input.clone(),
                    })
                    .collect();
                for (job, source) in layout.jobs.iter().zip(&sources) {
                    if job.shuffle > 1 {
                        assert!(sources.iter().all(|s| s.end <= job.staging.start || job.staging.end <= s.start));
                    } else {
                        assert_eq!(&job.staging, source, "an unshuffled chunk is staged where it is");
                    }
                    assert!(job.staging.end <= layout.work_len);
                }
                let shuffled = layout.jobs.iter().filter(|job| job.shuffle > 1).count();
                assert_eq!(layout.moves(0).len(), shuffled);
                let kinds = |shuffled: bool| layout.jobs.iter().filter(|job| (job.shuffle > 1) == shuffled).count();
                assert!(shape.len() == 1 || (kinds(true) > 0 && kinds(false) > 0), "both kinds in the mixed array");
                Ok(())
            })
            .unwrap();
    }
}

/// Runs a read of `slots` through the model in rounds under `budget` bytes of device
/// memory (the work buffer and the output): the output, the rounds, and the jobs decoded
/// in all.
fn model_in_rounds(slots: &[Slot<'_, '_>], shape: &[u64], budget: usize) -> Result<(Vec<u16>, usize, usize)> {
    let whole = Layout::build(slots, shape, 2, true)?.out_len();
    let (mut out, mut jobs) = (vec![0u8; whole], 0);
    let fits = |layout: &Layout<'_, '_>| layout.work_len + layout.out_len() <= budget;
    let rounds = in_rounds(slots, shape, (2, true), &fits, &mut |layout, bytes| {
        jobs += layout.jobs.len();
        out[bytes].copy_from_slice(&run_model(layout, Spoil::Nothing)?.device);
        Ok(())
    })?;
    Ok((u16s(&out), rounds, jobs))
}

/// A read over its budget is cut across its first axis at chunk boundaries (no chunk
/// decoded twice) until each round fits, or down to single chunk rows (cutting those would
/// decode their chunks again in each part); the rounds together read
/// what one read does.
#[test]
fn a_read_over_its_budget_runs_in_rounds_that_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, array, _) = mixed_array(dir.path());
    for (start, shape) in [([0, 0, 0], [20, 13, 9]), ([3, 2, 1], [14, 9, 7])] {
        let cpu: Vec<u16> = array.read::<u16>(&start, &shape).unwrap().iter().copied().collect();
        let (needed, jobs) = array
            .with_read_slot(&start, &shape, (DType::UInt16, |_| true), |slots, _| {
                let layout = Layout::build(slots, &shape, 2, true)?;
                Ok((layout.work_len + layout.out_len(), layout.jobs.len()))
            })
            .unwrap();
        let read = |budget| {
            array
                .with_read_slot(&start, &shape, (DType::UInt16, |_| true), |slots, _| {
                    model_in_rounds(slots, &shape, budget)
                })
                .unwrap()
        };
        assert_eq!(read(needed), (cpu.clone(), 1, jobs), "a read that fits runs once");
        let (half, rounds, decoded) = read(needed * 2 / 3);
        assert!(half == cpu && rounds > 1, "{start:?} {shape:?}: {rounds} rounds");
        assert_eq!(decoded, jobs, "cut at chunk boundaries: each chunk decoded once");
        let (rows, rounds, decoded) = read(1);
        let chunk_rows = (start[0] + shape[0] - 1) / 6 - start[0] / 6 + 1;
        assert!(rows == cpu && rounds == chunk_rows as usize, "down to chunk rows: {rounds}");
        assert_eq!(decoded, jobs);
    }
}

/// A read across datasets is cut between its slots first; slots without the array and
/// rows outside a shorter array's box read as fill.
#[test]
fn reads_across_datasets_run_in_rounds_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = Atlas::create(dir.path().join("s"), StoreConfig::default()).unwrap();
    for (name, len, fill) in [("a", 40u64, 1u16), ("b", 13, 9)] {
        let spec = ArraySpec::new(DType::UInt16, [len]).chunk_shape([5]).fill_value(fill).codec(Codec::Lz4);
        let array = store.create_dataset(name).unwrap().define_array("v", spec).unwrap();
        array.write(&[0], ndarray::Array1::from_shape_fn(len as usize, |i| i as u16 * 3).view()).unwrap();
    }
    store.create_dataset("c").unwrap();
    store.flush().unwrap();
    let datasets = ["a", "b", "c"];
    let (start, shape) = ([2u64], [30u64]);
    let cpu: Vec<u16> =
        store.read_array_across_stacked::<u16>("v", &datasets, &start, &shape).unwrap().into_iter().collect();
    let read = |budget: Option<usize>| {
        store
            .with_across_slots("v", &datasets, (&start, &shape), (DType::UInt16, |_| true), |slots, _| {
                let layout = Layout::build(slots, &shape, 2, true)?;
                let needed = layout.work_len + layout.out_len();
                model_in_rounds(slots, &shape, budget.unwrap_or(needed / 2))
            })
            .unwrap()
    };
    for budget in [None, Some(1)] {
        let (read, rounds, _) = read(budget);
        assert!(read == cpu && rounds > 1, "budget {budget:?}: {rounds} rounds");
    }
}

/// On a GPU (skipped without one unless `ATLAS_REQUIRE_GPU` is set): reads to host and to
/// device under a small budget run in rounds and read what the CPU reads.
#[test]
fn gpu_reads_over_their_budget_run_in_rounds() {
    let target = match crate::gpu::Target::open(0, false) {
        Ok(target) => target,
        Err(Error::GpuUnavailable(why)) => {
            assert!(std::env::var_os("ATLAS_REQUIRE_GPU").is_none(), "ATLAS_REQUIRE_GPU is set but: {why}");
            return eprintln!("SKIP (no GPU here): {why}");
        }
        Err(other) => panic!("{other}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let (_store, array, _) = mixed_array(dir.path());
    let shape = [20, 13, 9];
    let cpu: Vec<u16> = array.read::<u16>(&[0, 0, 0], &shape).unwrap().iter().copied().collect();
    let (to_host, to_device) = array
        .with_read_slot(&[0, 0, 0], &shape, (DType::UInt16, |_| true), |slots, _| {
            let mut out = vec![0u8; cpu.len() * 2];
            let rounds = target.read_to_host_within(4096, slots, &shape, (2, true), &mut out)?;
            let (device, device_rounds) = target.read_to_device_within(
                8192 + out.len() as u64,
                slots,
                &shape,
                (shape.to_vec(), DType::UInt16),
                true,
            )?;
            Ok(((u16s(&out), rounds), (u16s(&device.to_host_bytes()?), device_rounds)))
        })
        .unwrap();
    for (read, rounds) in [to_host, to_device] {
        assert!(read == cpu && rounds > 1, "{rounds} rounds");
    }
}

/// Small chunks are hashed on the host, in runs of neighbours in the work buffer: a chunk
/// staged in the upload (a `none` block) lies before the decode targets of the jobs ahead of
/// it, and must not stretch their run backwards.
#[test]
fn host_hashed_runs_follow_the_work_buffer_not_the_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Atlas::create(dir.path().join("s"), StoreConfig::default()).unwrap();
    let spec = ArraySpec::new(DType::UInt16, [256]).chunk_shape([64]).codec(Codec::Lz4).shuffle(Shuffle::Off);
    let array = store.create_dataset("d").unwrap().define_array("a", spec).unwrap();
    let data = ndarray::Array1::from_shape_fn(256, |i| (i % 4) as u16 + 1);
    array.write(&[0], data.slice(ndarray::s![..128])).unwrap();
    array.set_codec(Some(Codec::None)).unwrap();
    array.write(&[128], data.slice(ndarray::s![128..])).unwrap();
    store.flush().unwrap();
    let codecs: Vec<String> = store.array_blocks("d", "a").unwrap().iter().map(|b| format!("{:?}", b.codec)).collect();
    assert_eq!(codecs, ["Lz4", "Lz4", "None", "None"], "decoded chunks first, then chunks staged in the upload");
    let (read, _) = model_read(&array, &[0], &[256], Spoil::Silent(2)).unwrap();
    assert!(read == data.to_vec(), "read back wrong");
}

/// Boxes that share chunks (`read_boxes`) decode each chunk once: one job per chunk of the
/// array, however many boxes take parts of it, byte-delta chunks (decoded on the CPU) too.
#[test]
fn boxes_sharing_chunks_decode_each_chunk_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, array, _) = mixed_array(dir.path());
    let shape = [4u64, 4, 3];
    let starts: [[u64; 3]; 5] = [[0, 0, 0], [2, 1, 1], [3, 3, 2], [15, 8, 5], [16, 9, 5]];
    let cpu: Vec<u16> = array.read_boxes::<u16, _>(&starts, &shape).unwrap().iter().copied().collect();
    let (read, jobs) = array
        .with_read_slot(&[0, 0, 0], &shape, (DType::UInt16, |_| true), |slots, _| {
            let [Slot::Read(read)] = slots else { panic!("one box, one slot") };
            let boxes: Vec<Slot<'_, '_>> = starts.iter().map(|start| Slot::Read(SlotRead { start, ..*read })).collect();
            let layout = Layout::build(&boxes, &shape, 2, true)?;
            Ok((u16s(&run_model(&layout, Spoil::Nothing)?.device), layout.jobs.len()))
        })
        .unwrap();
    assert!(read == cpu, "the boxes read back wrong");
    // Chunks are 6 x 5 x 4, every one written: the first three boxes share chunk (0, 0, 0)
    // and reach into its neighbours; the last two share the byte-delta chunks of row 18.
    let chunks: std::collections::BTreeSet<Vec<u64>> = starts
        .iter()
        .flat_map(|start| {
            let corner = |d: usize, end: bool| (start[d] + if end { shape[d] - 1 } else { 0 }) / [6, 5, 4][d];
            let axes: Vec<Vec<u64>> = (0..3).map(|d| (corner(d, false)..=corner(d, true)).collect()).collect();
            product_of(&axes)
        })
        .collect();
    assert_eq!(jobs, chunks.len(), "one job per chunk: {chunks:?}");
}

/// Every combination of one value from each of `axes`.
fn product_of(axes: &[Vec<u64>]) -> Vec<Vec<u64>> {
    axes.iter().fold(vec![Vec::new()], |acc, axis| {
        acc.iter().flat_map(|prefix| axis.iter().map(move |&v| [prefix.clone(), vec![v]].concat())).collect()
    })
}
