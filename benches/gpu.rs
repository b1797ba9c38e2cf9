//! GPU read benchmark (`scripts/gpu-check.sh`; `cargo bench --features gpu --bench gpu`).
//!
//! For W1/W2 of the speed issue, in one run on one machine: nvCOMP's raw batched decode of
//! the very blocks Atlas stored (already on the device: the codec limit), the same with the
//! blocks' upload from pinned host memory first (the codec and link limit), Atlas's GPU read to
//! device memory (checksums verified on the host, and not verified), Atlas's GPU read to
//! host memory, and Atlas's CPU read on all cores. Prints one markdown table: GB/s of raw
//! array bytes and the ratios the GPU issue targets.
//!
//! Options: `--scale F` (linear factor on W1's 512^3 and W2's 256x512x512; default 1),
//! `--reps N` (best of N; default 5), `--dir PATH` (where the store goes; default a temp dir).

use std::ops::Range;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use atlas::cudarc::driver::CudaContext;
use atlas::{ArraySpec, Atlas, BlockCodec, Codec, DType, Device, ReadOptions, Shuffle, StoreConfig};
use ndarray::Array3;
use nvcomp_sys::{Algo, Nvcomp};

struct Case {
    name: &'static str,
    dtype: DType,
    codec: Codec,
    shuffle: Shuffle,
}

const CASES: [Case; 6] = [
    Case { name: "W1 zstd3+shuf", dtype: DType::UInt16, codec: Codec::Zstd { level: 3 }, shuffle: Shuffle::On },
    Case { name: "W1 lz4", dtype: DType::UInt16, codec: Codec::Lz4, shuffle: Shuffle::Off },
    Case { name: "W2 zstd1+shuf", dtype: DType::Float32, codec: Codec::Zstd { level: 1 }, shuffle: Shuffle::On },
    Case { name: "W2 zstd1", dtype: DType::Float32, codec: Codec::Zstd { level: 1 }, shuffle: Shuffle::Off },
    Case { name: "W2 lz4+shuf", dtype: DType::Float32, codec: Codec::Lz4, shuffle: Shuffle::On },
    Case { name: "W2 lz4", dtype: DType::Float32, codec: Codec::Lz4, shuffle: Shuffle::Off },
];

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `n * scale`, rounded down to whole 64-chunks, at least one.
#[allow(clippy::cast_sign_loss)] // clamped to >= 1 first
fn scaled(n: usize, scale: f64) -> usize {
    ((n / 64) as f64 * scale).max(1.0) as usize * 64
}

/// Best time of `reps` runs of `f`.
fn best(reps: usize, mut f: impl FnMut()) -> Duration {
    (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .expect("at least one rep")
}

fn write_case(store: &Atlas, case: &Case, scale: f64) -> (String, Vec<u64>) {
    let ds = store.open_dataset("bench").unwrap();
    let name = case.name.replace([' ', '+'], "_");
    let spec = |shape: [u64; 3]| {
        ArraySpec::new(case.dtype, shape).chunk_shape([64, 64, 64]).codec(case.codec).shuffle(case.shuffle)
    };
    let shape = if case.dtype == DType::UInt16 {
        let n = scaled(512, scale);
        let w1 = Array3::from_shape_fn((n, n, n), |(z, y, x)| ((x + y * y / 32 + z * z * z) % 65536) as u16);
        ds.define_array(&name, spec([n as u64; 3])).unwrap().write(&[0, 0, 0], w1.view()).unwrap();
        vec![n as u64; 3]
    } else {
        let (nz, ny) = (scaled(256, scale), scaled(512, scale));
        let w2 = Array3::from_shape_fn((nz, ny, ny), |(z, y, x)| {
            10.0 * (0.02 * x as f32).sin() * (0.015 * y as f32).cos() + 0.05 * z as f32
        });
        let shape = [nz as u64, ny as u64, ny as u64];
        ds.define_array(&name, spec(shape)).unwrap().write(&[0, 0, 0], w2.view()).unwrap();
        shape.to_vec()
    };
    store.flush().unwrap();
    (name, shape)
}

/// An array's stored blocks packed for nvCOMP (16-byte aligned).
struct Packed {
    algo: Algo,
    input: Vec<u8>,
    ins: Vec<Range<usize>>,
    outs: Vec<Range<usize>>,
    /// Blocks stored raw, not in the batch.
    left_out: usize,
}

/// The array's compressed blocks packed for nvCOMP, with each block's input and output
/// range. Blocks stored as their raw bytes (the codec did not make them smaller) have
/// nothing to decode and are left out.
fn packed_blocks(store: &Atlas, array: &str) -> Packed {
    let blocks = store.array_blocks("bench", array).unwrap();
    let mut files: std::collections::HashMap<PathBuf, Vec<u8>> = std::collections::HashMap::new();
    let (mut input, mut ins, mut outs, mut out_len) = (Vec::new(), Vec::new(), Vec::new(), 0usize);
    let (mut algo, mut left_out) = (Algo::Zstd, 0);
    for b in blocks.iter().filter(|b| !b.is_fill) {
        algo = match b.codec {
            BlockCodec::Lz4 => Algo::Lz4,
            BlockCodec::Zstd => Algo::Zstd,
            BlockCodec::None => {
                left_out += 1;
                continue;
            }
            // nvCOMP takes no dictionary (the bench's arrays train none).
            _ => continue,
        };
        let file = files.entry(b.path.clone()).or_insert_with(|| std::fs::read(&b.path).unwrap());
        let stored = &file[b.offset_bytes as usize..(b.offset_bytes + b.stored_bytes) as usize];
        let start = input.len().next_multiple_of(16);
        input.resize(start, 0);
        input.extend_from_slice(stored);
        ins.push(start..input.len());
        let o = out_len.next_multiple_of(16);
        out_len = o + b.raw_bytes as usize;
        outs.push(o..out_len);
    }
    Packed { algo, input, ins, outs, left_out }
}

fn main() {
    let scale: f64 = arg("--scale", 1.0);
    let reps: usize = arg("--reps", 5);
    let dir: PathBuf = arg("--dir", std::env::temp_dir().join(format!("atlas-gpu-bench-{}", std::process::id())));
    let nvcomp = Nvcomp::load().unwrap_or_else(|e| exit(&format!("libnvcomp: {e}")));
    if !nvcomp_sys::cuda_driver_present() {
        exit("no CUDA driver (libcuda.so) on this machine");
    }
    let ctx = CudaContext::new(0).unwrap_or_else(|e| exit(&format!("CUDA device 0: {e}")));
    let stream = ctx.new_stream().unwrap();
    println!(
        "GPU: {} | nvCOMP {} ({}) | scale {scale} | best of {reps}",
        ctx.name().unwrap(),
        nvcomp.version(),
        nvcomp.origin()
    );
    println!();
    println!(
        "| case | MB | raw nvCOMP GB/s | raw with upload GB/s | to device GB/s | to device, no verify GB/s | to host GB/s | CPU GB/s | device/raw | device no-verify/raw | device/raw with upload | device/CPU | host/CPU |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    let _ = std::fs::remove_dir_all(&dir);
    let store = Atlas::create(&dir, StoreConfig::default()).unwrap();
    store.create_dataset("bench").unwrap();
    for case in &CASES {
        let (name, shape) = write_case(&store, case, scale);
        let array = store.open_dataset("bench").unwrap().array(&name).unwrap();
        let bytes = shape.iter().product::<u64>() as usize * case.dtype.size_bytes();
        let gbps = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e9;
        let start = vec![0; 3];

        let Packed { algo, input, ins, outs, left_out } = packed_blocks(&store, &name);
        let mut d_input = stream.clone_htod(&input).unwrap();
        let mut d_out = stream.alloc_zeros::<u8>(outs.last().map_or(1, |r| r.end)).unwrap();
        // SAFETY: pinned bytes, all written before they are read.
        let mut pinned = unsafe { ctx.alloc_pinned::<u8>(input.len().max(1)) }.unwrap();
        pinned.as_mut_slice().unwrap()[..input.len()].copy_from_slice(&input);
        let mut decode = |d_input: &_| {
            let results = nvcomp.decompress_batch(&stream, algo, d_input, &ins, &mut d_out, &outs).unwrap();
            assert!(results.iter().zip(&outs).all(|(r, o)| *r == Ok(o.len())), "raw nvCOMP decode failed");
        };
        // No raw figures when every block is stored as it is.
        let raw = (!ins.is_empty()).then(|| best(reps, || decode(&d_input)));
        let raw_upload = (!ins.is_empty()).then(|| {
            best(reps, || {
                stream.memcpy_htod(&pinned, &mut d_input).unwrap();
                decode(&d_input);
            })
        });
        let cuda = |verify| ReadOptions { verify_checksums: verify, device: Device::Cuda(0) };
        let device = best(reps, || drop(array.read_to_device(&start, &shape, cuda(true)).unwrap()));
        let device_nv = best(reps, || drop(array.read_to_device(&start, &shape, cuda(false)).unwrap()));
        let mut host_out = vec![0u8; bytes];
        let host = best(reps, || read_bytes(&array, case.dtype, &shape, &mut host_out, cuda(true)));
        let mut cpu_out = vec![0u8; bytes];
        let cpu = best(reps, || read_bytes(&array, case.dtype, &shape, &mut cpu_out, ReadOptions::default()));
        // Bit-exact at the bench's scale too: the GPU read to host and to device against the CPU.
        assert!(host_out == cpu_out, "{}: the GPU read to host differs from the CPU read", case.name);
        let on_device = array.read_to_device(&start, &shape, cuda(true)).unwrap();
        assert!(on_device.to_host_bytes().unwrap() == cpu_out, "{}: the GPU read to device differs", case.name);
        // With blocks stored raw left out, the raw figure covers only the others (GB/s of
        // what the batch decodes; its time against the reads of the whole array).
        let raw_left_out = if left_out > 0 { format!(" ({left_out} raw blocks left out)") } else { String::new() };
        let batch_bytes: usize = outs.iter().map(ExactSizeIterator::len).sum();
        let (raw_gbps, raw_upload_gbps, raw_ratio, raw_ratio_nv, raw_upload_ratio) = match (raw, raw_upload) {
            (Some(raw), Some(raw_upload)) => (
                format!("{:.1}{raw_left_out}", batch_bytes as f64 / raw.as_secs_f64() / 1e9),
                format!("{:.1}", batch_bytes as f64 / raw_upload.as_secs_f64() / 1e9),
                format!("{:.2}x", raw.as_secs_f64() / device.as_secs_f64()),
                format!("{:.2}x", raw.as_secs_f64() / device_nv.as_secs_f64()),
                format!("{:.2}x", raw_upload.as_secs_f64() / device.as_secs_f64()),
            ),
            _ => ("- (all stored raw)".into(), "-".into(), "-".into(), "-".into(), "-".into()),
        };
        println!(
            "| {} | {:.0} | {raw_gbps} | {raw_upload_gbps} | {:.1} | {:.1} | {:.1} | {:.1} | {raw_ratio} | {raw_ratio_nv} | {raw_upload_ratio} | {:.2}x | {:.2}x |",
            case.name,
            bytes as f64 / 1e6,
            gbps(device),
            gbps(device_nv),
            gbps(host),
            gbps(cpu),
            cpu.as_secs_f64() / device.as_secs_f64(),
            cpu.as_secs_f64() / host.as_secs_f64(),
        );
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    println!();
    println!("targets: to device >= 0.8x raw nvCOMP; zstd GPU read >= 3x the CPU read (all {} cores)", cores());
}

fn exit(why: &str) -> ! {
    eprintln!("gpu bench: cannot run here: {why}");
    std::process::exit(2)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

fn read_bytes(array: &atlas::ArrayHandle, dtype: DType, shape: &[u64], out: &mut [u8], options: ReadOptions) {
    let start = vec![0; shape.len()];
    match dtype {
        DType::UInt16 => array.read_into(&start, shape, bytemuck::cast_slice_mut::<u8, u16>(out), options),
        _ => array.read_into(&start, shape, bytemuck::cast_slice_mut::<u8, f32>(out), options),
    }
    .unwrap();
}
