//! GPU reads (`ReadOptions::device`, `ArrayHandle::read_to_device`). On a machine without a
//! GPU the tests check the typed errors and the CPU fallback; with one (feature `gpu`, a
//! driver, libnvcomp) they check GPU reads are bit-exact against CPU reads and never return
//! wrong data for a damaged block. `scripts/gpu-check.sh` sets `ATLAS_REQUIRE_GPU=1`, which
//! turns "no GPU here" into a failure.

#[cfg(feature = "gpu")]
use atlas::BlockState;
#[cfg(not(feature = "gpu"))]
use atlas::GpuUnavailable;
use atlas::{ArraySpec, Atlas, Codec, DType, Device, Error, ReadOptions, Shuffle, StoreConfig};
use ndarray::Array3;

use crate::util::test_dir;

fn on(device: Device) -> ReadOptions {
    ReadOptions { device, ..ReadOptions::default() }
}

/// A store with one array per codec and shuffle setting, W1/W2-like values, small.
fn arrays(path: &std::path::Path) -> Atlas {
    let store = Atlas::create(path, StoreConfig::default()).unwrap();
    let ds = store.create_dataset("w").unwrap();
    let w1 = Array3::from_shape_fn((48, 40, 36), |(z, y, x)| (x + y * y / 32 + z * z * z) as u16);
    for (name, codec, shuffle) in [
        ("w1_zstd3", Codec::Zstd { level: 3 }, Shuffle::On),
        ("w1_none", Codec::None, Shuffle::Off),
        ("w1_lz4_shuf", Codec::Lz4, Shuffle::On),
    ] {
        let spec = ArraySpec::new(DType::UInt16, [48, 40, 36]).chunk_shape([16, 16, 16]).codec(codec).shuffle(shuffle);
        ds.define_array(name, spec).unwrap().write(&[0, 0, 0], w1.view()).unwrap();
    }
    let w2 = Array3::from_shape_fn((32, 40, 44), |(z, y, x)| {
        10.0 * (0.02 * x as f32).sin() * (0.015 * y as f32).cos() + 0.05 * z as f32
    });
    for (name, codec, shuffle) in [
        ("w2_zstd1_shuf", Codec::Zstd { level: 1 }, Shuffle::On),
        ("w2_zstd1", Codec::Zstd { level: 1 }, Shuffle::Off),
        ("w2_lz4_shuf", Codec::Lz4, Shuffle::On),
        ("w2_lz4", Codec::Lz4, Shuffle::Off),
        // Decoded on the CPU and uploaded raw: the device has no byte-delta kernel.
        ("w2_zstd1_bd", Codec::Zstd { level: 1 }, Shuffle::ByteDelta),
        ("w2_lz4_delta", Codec::Lz4, Shuffle::Delta),
    ] {
        let spec = ArraySpec::new(DType::Float32, [32, 40, 44]).chunk_shape([16, 16, 16]).codec(codec).shuffle(shuffle);
        ds.define_array(name, spec).unwrap().write(&[0, 0, 0], w2.view()).unwrap();
    }
    store.flush().unwrap();
    store
}

const BOXES: [([u64; 3], [u64; 3]); 3] =
    [([0, 0, 0], [32, 40, 36]), ([5, 3, 7], [20, 30, 25]), ([31, 39, 35], [1, 1, 1])];

#[test]
fn auto_reads_what_the_cpu_reads_on_any_machine() {
    let dir = test_dir!();
    let store = arrays(&dir.path().join("store"));
    let array = store.open_dataset("w").unwrap().array("w1_zstd3").unwrap();
    for (start, shape) in BOXES {
        let cpu = array.read::<u16>(&start, &shape).unwrap();
        let mut auto = vec![0u16; cpu.len()];
        array.read_into(&start, &shape, &mut auto, on(Device::Auto)).unwrap();
        assert!(auto == cpu.iter().copied().collect::<Vec<_>>(), "box {start:?} reads back wrong");
    }
}

#[cfg(not(feature = "gpu"))]
#[test]
fn cuda_without_the_feature_says_it_was_not_built() {
    let dir = test_dir!();
    let store = arrays(&dir.path().join("store"));
    let array = store.open_dataset("w").unwrap().array("w1_zstd3").unwrap();
    let mut out = vec![0u16; 8];
    let err = array.read_into(&[0, 0, 0], &[2, 2, 2], &mut out, on(Device::Cuda(0))).unwrap_err();
    assert!(matches!(err, Error::GpuUnavailable(GpuUnavailable::NotBuilt)), "{err}");
}

/// Refused as a CPU read of that size is, before the read is laid out in host memory.
#[cfg(feature = "gpu")]
#[test]
fn a_read_to_device_larger_than_memory_is_refused_before_it_is_planned() {
    let dir = test_dir!();
    let store = Atlas::create(dir.path().join("store"), StoreConfig::default()).unwrap();
    let ds = store.create_dataset("d").unwrap();
    let vast = ds.define_array("vast", ArraySpec::new(DType::UInt8, [u64::MAX])).unwrap();
    let read = vast.read_to_device(&[0], &[u64::MAX], on(Device::Cuda(0)));
    assert!(matches!(read, Err(Error::OutOfMemory { .. })), "{:?}", read.map(drop));
    let read = store.read_array_across_stacked_to_device("vast", &["d"], &[0], &[u64::MAX], on(Device::Cuda(0)));
    assert!(matches!(read, Err(Error::OutOfMemory { .. })), "{:?}", read.map(drop));
}

/// Whether GPU reads can run here, going by a first GPU read of the uint16 `array`.
#[cfg(feature = "gpu")]
fn gpu_here(array: &atlas::ArrayHandle) -> bool {
    gpu_answered(array.read_into(&[0, 0, 0], &[1, 1, 1], &mut [0u16; 1], on(Device::Cuda(0))))
}

/// Whether a first GPU read, `probe`, ran; panics when `ATLAS_REQUIRE_GPU` is set and it
/// could not.
#[cfg(feature = "gpu")]
fn gpu_answered(probe: atlas::Result<()>) -> bool {
    match probe {
        Ok(()) => true,
        Err(Error::GpuUnavailable(why)) => {
            assert!(std::env::var_os("ATLAS_REQUIRE_GPU").is_none(), "ATLAS_REQUIRE_GPU is set but: {why}");
            eprintln!("SKIP (no GPU here): {why}");
            false
        }
        Err(other) => panic!("a GPU read failed: {other}"),
    }
}

/// [`arrays`] at `path`, when GPU reads can run here (see [`gpu_here`]).
#[cfg(feature = "gpu")]
fn arrays_on_gpu(path: &std::path::Path) -> Option<Atlas> {
    let store = arrays(path);
    gpu_here(&store.open_dataset("w").unwrap().array("w1_zstd3").unwrap()).then_some(store)
}

#[cfg(feature = "gpu")]
#[test]
fn cuda_is_unavailable_with_a_reason_or_reads_what_the_cpu_reads() {
    let dir = test_dir!();
    let store = arrays(&dir.path().join("store"));
    let ds = store.open_dataset("w").unwrap();
    if !gpu_here(&ds.array("w1_zstd3").unwrap()) {
        let err = ds.array("w2_lz4").unwrap().read_to_device(&[0, 0, 0], &[2, 2, 2], on(Device::Auto)).unwrap_err();
        assert!(matches!(err, Error::GpuUnavailable(_)), "{err}");
        return;
    }
    for name in ["w1_zstd3", "w1_none", "w1_lz4_shuf"] {
        let array = ds.array(name).unwrap();
        for (start, shape) in BOXES {
            let cpu = array.read::<u16>(&start, &shape).unwrap();
            let mut host = vec![0u16; cpu.len()];
            array.read_into(&start, &shape, &mut host, on(Device::Cuda(0))).unwrap();
            assert!(host == cpu.iter().copied().collect::<Vec<_>>(), "{name} {start:?}: GPU to host differs");
            for verify in [true, false] {
                let options = ReadOptions { verify_checksums: verify, device: Device::Cuda(0) };
                let device = array.read_to_device(&start, &shape, options).unwrap();
                assert_eq!(device.shape(), &shape[..]);
                assert!(device.to_host::<u16>().unwrap() == cpu, "{name} {start:?}: GPU to device differs");
            }
        }
    }
    for name in ["w2_zstd1_shuf", "w2_zstd1", "w2_lz4_shuf", "w2_lz4", "w2_zstd1_bd"] {
        let array = ds.array(name).unwrap();
        let shape = [32, 40, 44];
        let cpu: ndarray::ArrayD<f32> = array.read(&[0, 0, 0], &shape).unwrap();
        let device = array.read_to_device(&[0, 0, 0], &shape, on(Device::Cuda(0))).unwrap();
        let gpu = device.to_host::<f32>().unwrap();
        assert!(gpu.iter().zip(&cpu).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}: not bit-exact");
    }
}

/// Applies `damage` to the stored bytes of the first block with any of array `name` in
/// dataset "w", in its fragment file.
#[cfg(feature = "gpu")]
fn damage_first_block(store: &Atlas, name: &str, damage: impl FnOnce(&mut [u8])) {
    let block = store.array_blocks("w", name).unwrap().into_iter().find(|b| !b.is_fill).unwrap();
    let mut bytes = std::fs::read(&block.path).unwrap();
    damage(&mut bytes[block.offset_bytes as usize..(block.offset_bytes + block.stored_bytes) as usize]);
    std::fs::write(&block.path, bytes).unwrap();
}

#[cfg(feature = "gpu")]
#[test]
fn a_damaged_block_errors_on_the_gpu_too_and_never_reads_wrong() {
    let dir = test_dir!();
    let path = dir.path().join("store");
    let Some(store) = arrays_on_gpu(&path) else { return };
    for name in ["w1_zstd3", "w2_lz4", "w1_none"] {
        damage_first_block(&store, name, |stored| stored[stored.len() / 2] ^= 0x40);
    }
    drop(store);
    let store = Atlas::open(&path).unwrap();
    let ds = store.open_dataset("w").unwrap();
    for name in ["w1_zstd3", "w1_none"] {
        let mut out = vec![0u16; 32 * 40 * 36];
        let err = ds.array(name).unwrap().read_into(&[0, 0, 0], &[32, 40, 36], &mut out, on(Device::Cuda(0)));
        assert!(matches!(err, Err(Error::ChecksumMismatch { .. } | Error::Corrupt { .. })), "{name}: {err:?}");
    }
    let err = ds.array("w2_lz4").unwrap().read_to_device(&[0, 0, 0], &[32, 40, 44], on(Device::Cuda(0)));
    assert!(matches!(err, Err(Error::ChecksumMismatch { .. } | Error::Corrupt { .. })), "w2_lz4: {err:?}");
}

/// Scrambles the content of every compressed block of the zstd frame `frame`, keeping the
/// frame header and every block header: a frame that passes the checks Atlas makes before
/// nvCOMP sees a block, with a body that is garbage.
#[cfg(feature = "gpu")]
fn scramble_zstd_body(frame: &mut [u8]) {
    let fhd = frame[4];
    let fcs = [usize::from(fhd & 0x20 != 0), 2, 4, 8][usize::from(fhd >> 6)];
    let dict_id = [0, 1, 2, 4][usize::from(fhd & 3)];
    let mut at = 5 + usize::from(fhd & 0x20 == 0) + dict_id + fcs;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    loop {
        let header = u32::from_le_bytes([frame[at], frame[at + 1], frame[at + 2], 0]);
        let (last, kind, size) = (header & 1 == 1, (header >> 1) & 3, (header >> 3) as usize);
        at += 3;
        let body = if kind == 1 { 1 } else { size };
        if kind == 2 {
            for b in &mut frame[at..at + body] {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
        }
        at += body;
        if last {
            break;
        }
    }
}

/// nvCOMP validates little: a zstd block whose frame and block headers are sound but whose
/// content is garbage reaches the GPU, and nvCOMP 6.0 faults on it (an illegal address),
/// which poisons the process's CUDA context. The read must fail, never return data;
/// `Device::Auto` reads go on on the CPU, which reports the damage. Ignored because it
/// poisons the context of the whole test process: `scripts/gpu-check.sh` runs it alone.
#[cfg(feature = "gpu")]
#[test]
#[ignore = "may fault the GPU for its whole process: scripts/gpu-check.sh runs it alone"]
fn a_zstd_block_with_sound_headers_and_a_garbage_body_is_never_read_wrong() {
    let dir = test_dir!();
    let path = dir.path().join("store");
    let Some(store) = arrays_on_gpu(&path) else { return };
    damage_first_block(&store, "w2_zstd1", scramble_zstd_body);
    drop(store);
    let store = Atlas::open(&path).unwrap();
    let ds = store.open_dataset("w").unwrap();
    let (damaged, shape) = (ds.array("w2_zstd1").unwrap(), [32, 40, 44]);
    let read = damaged.read_to_device(&[0, 0, 0], &shape, on(Device::Cuda(0)));
    let expected = |e: &Error| matches!(e, Error::ChecksumMismatch { .. } | Error::Corrupt { .. });
    assert!(matches!(&read, Err(e) if expected(e) || matches!(e, Error::Gpu(_))), "{:?}", read.map(drop));
    let mut out = vec![0f32; 32 * 40 * 44];
    let auto = damaged.read_into(&[0, 0, 0], &shape, &mut out, on(Device::Auto));
    assert!(matches!(&auto, Err(e) if expected(e)), "Device::Auto: {auto:?}");
    // A sound array still reads right with `Device::Auto`, on the GPU or after a fault on the CPU.
    let sound = ds.array("w1_lz4_shuf").unwrap();
    let cpu = sound.read::<u16>(&[0, 0, 0], &[8, 8, 8]).unwrap();
    let mut auto = vec![0u16; 512];
    sound.read_into(&[0, 0, 0], &[8, 8, 8], &mut auto, on(Device::Auto)).unwrap();
    assert!(auto == cpu.iter().copied().collect::<Vec<_>>(), "Device::Auto reads wrong after a garbage block");
}

/// A dataset without the array reads as one fill part of 2^31 + 16 one-byte units, past
/// the scatter's 32-bit index arithmetic: the 64-bit path fills it all, to the end (4.3 GB
/// of device and host memory; skipped without a GPU).
#[cfg(feature = "gpu")]
#[test]
fn a_fill_part_of_over_2_31_units_is_scattered_whole() {
    let dir = test_dir!();
    let store = Atlas::create(dir.path().join("store"), StoreConfig::default()).unwrap();
    let len = (1u64 << 31) + 16;
    let spec = ArraySpec::new(DType::UInt8, [len]).chunk_shape([1 << 24]).fill_value(7u8);
    let array = store.create_dataset("a").unwrap().define_array("v", spec).unwrap();
    array.write(&[len - 1], ndarray::arr1(&[9u8]).view()).unwrap();
    store.create_dataset("b").unwrap();
    store.flush().unwrap();
    if !gpu_answered(array.read_into(&[0], &[1], &mut [0u8; 1], on(Device::Cuda(0)))) {
        return;
    }
    let datasets = ["a", "b"];
    let device = store.read_array_across_stacked_to_device("v", &datasets, &[0], &[len], on(Device::Cuda(0))).unwrap();
    let bytes = device.to_host_bytes().unwrap();
    let (a, b) = bytes.split_at(usize::try_from(len).unwrap());
    assert!(a[..a.len() - 1].iter().all(|&x| x == 7) && a[a.len() - 1] == 9, "the array reads wrong");
    assert!(b.len() == a.len() && b.iter().all(|&x| x == 7), "the fill part is not filled to its end");
}

/// Boxes that share chunks, read on the GPU in one call, read what the CPU reads.
#[cfg(feature = "gpu")]
#[test]
fn boxes_sharing_chunks_read_on_the_gpu_as_on_the_cpu() {
    let dir = test_dir!();
    let Some(store) = arrays_on_gpu(&dir.path().join("store")) else { return };
    let starts: Vec<[u64; 3]> = vec![[0, 0, 0], [4, 3, 2], [10, 12, 14], [30, 28, 30], [4, 3, 2]];
    let shape = [12, 12, 6];
    for name in ["w1_zstd3", "w1_none", "w1_lz4_shuf"] {
        let array = store.open_dataset("w").unwrap().array(name).unwrap();
        let cpu = array.read_boxes::<u16, _>(&starts, &shape).unwrap();
        let mut gpu = vec![0u16; cpu.len()];
        array.read_boxes_into(&starts, &shape, &mut gpu, on(Device::Cuda(0))).unwrap();
        assert!(gpu == cpu.iter().copied().collect::<Vec<_>>(), "{name}: the boxes read back wrong");
    }
}

#[cfg(feature = "gpu")]
#[test]
fn reads_across_datasets_on_the_gpu_match_the_cpu() {
    let dir = test_dir!();
    let Some(store) = arrays_on_gpu(&dir.path().join("store")) else { return };
    // A second dataset with a shorter array of another codec; a third without it.
    let short = Array3::from_shape_fn((20, 40, 36), |(z, y, x)| (z * 7 + y + x) as u16);
    let spec = ArraySpec::new(DType::UInt16, [20, 40, 36]).chunk_shape([8, 8, 8]).codec(Codec::Lz4);
    store.create_dataset("v").unwrap().define_array("w1_zstd3", spec).unwrap().write(&[0, 0, 0], short.view()).unwrap();
    store.create_dataset("empty").unwrap();
    store.flush().unwrap();
    let datasets = ["w", "v", "empty"];
    let (start, shape) = ([4, 0, 2], [30, 40, 30]);
    let cpu = store.read_array_across_stacked::<u16>("w1_zstd3", &datasets, &start, &shape).unwrap();
    let mut host = vec![0u16; cpu.len()];
    store
        .read_array_across_stacked_into("w1_zstd3", &datasets, &start, &shape, &mut host, on(Device::Cuda(0)))
        .unwrap();
    assert!(host == cpu.iter().copied().collect::<Vec<_>>(), "GPU to host differs");
    let device = store.read_array_across_stacked_to_device("w1_zstd3", &datasets, &start, &shape, on(Device::Cuda(0)));
    assert!(device.unwrap().to_host::<u16>().unwrap() == cpu, "GPU to device differs");
}

/// Blocks of three codecs, committed, and unflushed ones the GPU read must see too: a
/// chunk staged raw in memory and blocks encoded into the session's pending fragment.
#[cfg(feature = "gpu")]
#[test]
fn an_array_whose_codec_changed_mid_life_reads_the_same_on_the_gpu() {
    let dir = test_dir!();
    let path = dir.path().join("store");
    drop(arrays(&path));
    // Writes of one 256-byte chunk are staged; writes of two go to the pending fragment.
    let store = Atlas::open_with(&path, &atlas::OpenOptions::default().staging_bytes(8 * 256)).unwrap();
    let ds = store.open_dataset("w").unwrap();
    if !gpu_here(&ds.array("w1_zstd3").unwrap()) {
        return;
    }
    let spec = ArraySpec::new(DType::Float32, [24, 30]).chunk_shape([8, 8]).fill_value(-1.0f32);
    let array = ds.define_array("mixed", spec).unwrap();
    let values = ndarray::Array2::from_shape_fn((8, 30), |(i, j)| (i * 30 + j) as f32 * 0.25);
    // Rows 0..8 zstd+shuffle, 8..16 lz4, 16..24 none.
    for (row, codec) in [(0u64, Codec::Zstd { level: 5 }), (8, Codec::Lz4), (16, Codec::None)] {
        array.set_codec(Some(codec)).unwrap();
        array.write(&[row, 0], values.view()).unwrap();
    }
    store.flush().unwrap();
    array.set_codec(Some(Codec::Lz4)).unwrap();
    array.write(&[3, 3], ndarray::Array2::from_elem((2, 2), 9.5f32).view()).unwrap();
    array.write(&[9, 6], ndarray::Array2::from_elem((2, 4), -2.5f32).view()).unwrap();
    let states: Vec<_> = store.array_blocks("w", "mixed").unwrap().into_iter().map(|b| (b.coord, b.state)).collect();
    for (coord, state) in
        [(vec![0, 0], BlockState::Staged), (vec![1, 0], BlockState::Pending), (vec![1, 1], BlockState::Pending)]
    {
        assert!(states.contains(&(coord.clone(), state)), "chunk {coord:?} is not {state:?}: {states:?}");
    }
    for (start, shape) in [([0, 0], [24, 30]), ([5, 7], [13, 20])] {
        let cpu: ndarray::ArrayD<f32> = array.read(&start, &shape).unwrap();
        let gpu = array.read_to_device(&start, &shape, on(Device::Cuda(0))).unwrap().to_host::<f32>().unwrap();
        assert!(gpu.iter().zip(&cpu).all(|(a, b)| a.to_bits() == b.to_bits()), "mixed {start:?}: not bit-exact");
    }
}
