//! The safe batch layer on a real GPU: chunks compressed by nvCOMP decode on the CPU and
//! back, bit-exact, for zstd and LZ4. Skips without a GPU, a driver or libnvcomp, unless
//! `ATLAS_REQUIRE_GPU` is set (scripts/gpu-check.sh), which makes that a failure.

use std::ops::Range;

use cudarc::driver::CudaContext;
use nvcomp_sys::{Algo, Nvcomp};

fn gpu() -> Option<(Nvcomp, std::sync::Arc<cudarc::driver::CudaStream>)> {
    let skip = |why: String| {
        assert!(std::env::var_os("ATLAS_REQUIRE_GPU").is_none(), "ATLAS_REQUIRE_GPU is set but: {why}");
        eprintln!("SKIP: {why}");
        None
    };
    let lib = match Nvcomp::load() {
        Ok(lib) => lib,
        Err(e) => return skip(e.to_string()),
    };
    if !nvcomp_sys::cuda_driver_present() {
        return skip("no CUDA driver".into());
    }
    match CudaContext::new(0) {
        Ok(ctx) => Some((lib, ctx.default_stream())),
        Err(e) => skip(format!("no CUDA device: {e}")),
    }
}

/// The next byte of a xorshift sequence in `x`.
fn next_byte(x: &mut u64) -> u8 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x as u8
}

/// Chunks of varied sizes and compressibility, packed 16-byte aligned.
fn chunks() -> (Vec<u8>, Vec<Range<usize>>) {
    let mut data = Vec::new();
    let mut ranges = Vec::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for (i, len) in [1usize, 1000, 65_536, 300_000, 4096].into_iter().enumerate() {
        let start = data.len().next_multiple_of(16);
        data.resize(start, 0);
        for j in 0..len {
            let random = next_byte(&mut x);
            data.push(if i % 2 == 0 { (j / 64) as u8 } else { random });
        }
        ranges.push(start..data.len());
    }
    (data, ranges)
}

#[test]
fn gpu_compression_and_cpu_compression_decode_each_other() {
    let Some((lib, stream)) = gpu() else { return };
    let (data, ranges) = chunks();
    let device_in = stream.clone_htod(&data).unwrap();
    for algo in [Algo::Zstd, Algo::Lz4] {
        // GPU compress, CPU decompress.
        let compressed = lib.compress_batch(&stream, algo, &device_in, &ranges).unwrap();
        for (c, r) in compressed.iter().zip(&ranges) {
            let back = match algo {
                Algo::Zstd => zstd::bulk::decompress(c, r.len()).unwrap(),
                _ => lz4_flex::block::decompress(c, r.len()).unwrap(),
            };
            assert!(back == data[r.clone()], "{algo:?}: CPU decode of GPU output differs");
        }
        // CPU compress, GPU decompress.
        let mut packed = Vec::new();
        let mut ins = Vec::new();
        for r in &ranges {
            let c = match algo {
                Algo::Zstd => zstd::bulk::compress(&data[r.clone()], 3).unwrap(),
                _ => lz4_flex::block::compress(&data[r.clone()]),
            };
            let start = packed.len().next_multiple_of(16);
            packed.resize(start, 0);
            packed.extend_from_slice(&c);
            ins.push(start..packed.len());
        }
        let device_packed = stream.clone_htod(&packed).unwrap();
        let mut out = stream.alloc_zeros::<u8>(data.len()).unwrap();
        let results = lib.decompress_batch(&stream, algo, &device_packed, &ins, &mut out, &ranges).unwrap();
        assert!(results.iter().zip(&ranges).all(|(res, r)| *res == Ok(r.len())), "{algo:?}: {results:?}");
        let host = stream.clone_dtoh(&out).unwrap();
        for r in &ranges {
            assert!(host[r.clone()] == data[r.clone()], "{algo:?}: GPU decode of CPU output differs");
        }
    }
}

/// nvCOMP's LZ4 decoder reports garbage as a status and leaves the context usable. (Its
/// zstd decoder does not: nvCOMP 6.0 faults with an illegal address on input that is not a
/// zstd frame, which poisons the CUDA context; Atlas hands it only blocks that are one
/// sound frame of the chunk's length, docs/GPU.md.)
#[test]
#[allow(clippy::single_range_in_vec_init)] // the last batch is of one chunk
fn garbage_lz4_reports_a_status_and_the_gpu_goes_on() {
    let Some((lib, stream)) = gpu() else { return };
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..4096).map(|_| next_byte(&mut x)).collect();
    // Random bytes; a token claiming the longest literal run; matches reaching far back.
    let patterns = [random, vec![0xff; 4096], [0x0f, 0xff, 0xff].repeat(1365)];
    let mut packed = Vec::new();
    let mut ins = Vec::new();
    for p in &patterns {
        let start = packed.len().next_multiple_of(16);
        packed.resize(start, 0);
        packed.extend_from_slice(p);
        ins.push(start..packed.len());
    }
    let outs: Vec<_> = (0..patterns.len()).map(|i| i * 65_536..(i + 1) * 65_536).collect();
    let input = stream.clone_htod(&packed).unwrap();
    let mut out = stream.alloc_zeros::<u8>(outs.len() * 65_536).unwrap();
    let results = lib.decompress_batch(&stream, Algo::Lz4, &input, &ins, &mut out, &outs).unwrap();
    assert!(results.iter().all(|r| *r != Ok(65_536)), "garbage decoded to a whole chunk: {results:?}");
    // The context still works: a sound chunk decodes after the garbage.
    let sound = lz4_flex::block::compress(&[7u8; 4096]);
    let input = stream.clone_htod(&sound).unwrap();
    let mut out = stream.alloc_zeros::<u8>(4096).unwrap();
    let results = lib.decompress_batch(&stream, Algo::Lz4, &input, &[0..sound.len()], &mut out, &[0..4096]).unwrap();
    assert_eq!(results, [Ok(4096)]);
    assert!(stream.clone_dtoh(&out).unwrap() == [7u8; 4096]);
}
