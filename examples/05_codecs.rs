//! Writes a smooth float32 field with zstd, lz4 and none, shuffle on, bytedelta, delta and off, and prints
//! bytes on disk, compression ratio and write/read speed (the best of 3 reads). Then changes an array's codec
//! mid-life and shows old and new blocks both read back exactly.
//!
//! Run: `cargo run --release --example 05_codecs`

use std::error::Error;
use std::path::Path;
use std::time::Instant;

use atlas::{ArraySpec, Atlas, Codec, DType, Shuffle, StoreConfig};
use ndarray::{Array3, s};

const SHAPE: [usize; 3] = [64, 256, 256];
const CHUNKS: [u64; 3] = [16, 128, 128];
/// Reads timed per case; the best is printed.
const READS: usize = 3;

fn main() -> Result<(), Box<dyn Error>> {
    let root = tempfile::tempdir()?;
    let field = smooth_field();
    let raw_bytes = (field.len() * 4) as f64;
    println!("field: float32 {SHAPE:?}, chunks {CHUNKS:?}, {:.1} MiB raw", raw_bytes / f64::from(1 << 20));
    println!("(write: the write and its flush; read: the best of {READS}; blocks: as stored, per codec)");
    println!(
        "{:<10} {:<9} {:>12} {:>7} {:>12} {:>12}  blocks",
        "codec", "shuffle", "bytes", "ratio", "write MB/s", "read MB/s"
    );
    let codecs = [("zstd-3", Codec::Zstd { level: 3 }), ("lz4", Codec::Lz4), ("none", Codec::None)];
    for (label, codec) in codecs {
        for shuffle in [Shuffle::On, Shuffle::ByteDelta, Shuffle::Delta, Shuffle::Off] {
            let path = root.path().join(format!("{label}-{shuffle:?}"));
            let store = Atlas::create(&path, StoreConfig { codec, shuffle, ..StoreConfig::default() })?;
            let ds = store.create_dataset("ocean")?;
            let spec = ArraySpec::new(DType::Float32, SHAPE.map(|n| n as u64)).chunk_shape(CHUNKS);
            ds.define_array("theta", spec)?;

            let t = Instant::now();
            ds.write_array("theta", &[0, 0, 0], field.view())?;
            store.flush()?;
            let write_s = t.elapsed().as_secs_f64();

            // The best of a few reads: the first also starts the thread pool and maps the files.
            let mut read_s = f64::INFINITY;
            for _ in 0..READS {
                let t = Instant::now();
                let back = ds.read_array::<f32>("theta", &[0, 0, 0], &SHAPE.map(|n| n as u64))?;
                read_s = read_s.min(t.elapsed().as_secs_f64());
                assert_eq!(back, field.view().into_dyn(), "{label} read back different values");
            }

            let bytes = data_bytes(&path)?;
            println!(
                "{label:<10} {:<9} {bytes:>12} {:>6.2}x {:>12.0} {:>12.0}  {}",
                shuffle.name(),
                raw_bytes / bytes as f64,
                raw_bytes / write_s / 1e6,
                raw_bytes / read_s / 1e6,
                blocks_per_codec(&store)?
            );
        }
    }
    codec_change_mid_life(root.path(), &field)
}

/// Half the array written with zstd, the other half after switching to lz4: each block
/// keeps the codec that wrote it, and the whole array reads back exactly.
fn codec_change_mid_life(root: &Path, field: &Array3<f32>) -> Result<(), Box<dyn Error>> {
    let path = root.join("mid-life");
    let store = Atlas::create(&path, StoreConfig::default())?;
    let ds = store.create_dataset("ocean")?;
    let theta =
        ds.define_array("theta", ArraySpec::new(DType::Float32, SHAPE.map(|n| n as u64)).chunk_shape(CHUNKS))?;
    let half = SHAPE[0] / 2;
    theta.write(&[0, 0, 0], field.slice(s![..half, .., ..]))?;
    store.flush()?;
    theta.set_codec(Some(Codec::Lz4))?;
    theta.write(&[half as u64, 0, 0], field.slice(s![half.., .., ..]))?;
    store.flush()?;

    let reopened = Atlas::open(&path)?;
    // Each block kept the codec that wrote it.
    let codecs = blocks_per_codec(&reopened)?;
    assert_eq!(codecs, "8 lz4, 8 zstd", "{codecs}");
    let back = reopened.open_dataset("ocean")?.array("theta")?.read_all::<f32>()?;
    assert_eq!(back, field.clone().into_dyn());
    println!("codec changed mid-life (zstd -> lz4): blocks {codecs}, all {} values read back exactly", field.len());
    Ok(())
}

/// The blocks of `ocean/theta` per codec they are stored with, e.g. `"8 lz4, 8 zstd"`: a
/// chunk its codec does not make smaller is stored raw, as `none`.
fn blocks_per_codec(store: &Atlas) -> Result<String, Box<dyn Error>> {
    let mut counts = std::collections::BTreeMap::new();
    for block in store.array_blocks("ocean", "theta")? {
        *counts.entry(block.codec.name()).or_insert(0) += 1;
    }
    Ok(counts.iter().map(|(codec, n)| format!("{n} {codec}")).collect::<Vec<_>>().join(", "))
}

/// A smooth field like ocean temperature: large-scale waves plus a vertical gradient.
fn smooth_field() -> Array3<f32> {
    Array3::from_shape_fn(SHAPE, |(z, y, x)| {
        let (z, y, x) = (z as f32, y as f32, x as f32);
        25.0 - 0.3 * z + 2.0 * (y / 40.0).sin() * (x / 55.0).cos() + 0.5 * ((x + y) / 17.0).sin()
    })
}

/// Bytes of all fragment files of a store.
fn data_bytes(store: &Path) -> std::io::Result<u64> {
    std::fs::read_dir(store.join("data"))?.map(|e| e.and_then(|e| e.metadata()).map(|m| m.len())).sum()
}
