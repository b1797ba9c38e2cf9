//! W3: 1000 small datasets, each `temp` f32[1000] and `depth` f64[1000], written and flushed
//! once; then `temp` of every dataset read back (`read_array_across_stacked`, and a loop of
//! `read_array` for comparison). Store defaults: zstd 3, shuffle on.

use std::path::{Path, PathBuf};

use atlas::{ArraySpec, Atlas, Codec, DType, StoreConfig};
use ndarray::ArrayView1;

use crate::Opts;
use crate::baseline::RawCodec;
use crate::measure::{Best, ChildMemory, dir_bytes, fresh_dir, reset_peak, time};
use crate::report::Row;

const DATASETS: usize = 1000;
const LEN: usize = 1000;
const CODEC: Codec = Codec::Zstd { level: 3 };

fn names() -> Vec<String> {
    (0..DATASETS).map(|i| format!("d{i:04}")).collect()
}

fn temp(dataset: usize) -> Vec<f32> {
    (0..LEN).map(|i| 20.0 - i as f32 * 0.015 + dataset as f32 * 0.001).collect()
}

fn depth(dataset: usize) -> Vec<f64> {
    (0..LEN).map(|i| i as f64 * 2.5 + dataset as f64 * 1e-3).collect()
}

fn dir(opts: &Opts) -> PathBuf {
    opts.root.join("w3-atlas")
}

/// Creates the datasets and arrays, writes them and flushes (all timed together).
fn write_all(dir: &Path, names: &[String], temps: &[Vec<f32>], depths: &[Vec<f64>]) {
    let store = Atlas::create(dir, StoreConfig::default()).expect("create store");
    for ((name, t), d) in names.iter().zip(temps).zip(depths) {
        let dataset = store.create_dataset(name).expect("create dataset");
        dataset.define_array("temp", ArraySpec::new(DType::Float32, [LEN as u64])).expect("define temp");
        dataset.define_array("depth", ArraySpec::new(DType::Float64, [LEN as u64])).expect("define depth");
        dataset.write_array("temp", &[0], ArrayView1::from(t)).expect("write temp");
        dataset.write_array("depth", &[0], ArrayView1::from(d)).expect("write depth");
    }
    store.flush().expect("flush");
}

fn read_across(store: &Atlas, names: &[&str]) -> Vec<f32> {
    let stacked = store.read_array_across_stacked::<f32>("temp", names, &[0], &[LEN as u64]).expect("read across");
    stacked.into_raw_vec_and_offset().0
}

/// Reads `temp` of every dataset with one `read_array` call each.
fn read_loop(store: &Atlas, names: &[String]) {
    for name in names {
        let dataset = store.open_dataset(name).expect("dataset");
        std::hint::black_box(dataset.read_array::<f32>("temp", &[0], &[LEN as u64]).expect("read"));
    }
}

pub fn run(opts: &Opts) -> Vec<Row> {
    let names = names();
    let temps: Vec<Vec<f32>> = (0..DATASETS).map(temp).collect();
    let depths: Vec<Vec<f64>> = (0..DATASETS).map(depth).collect();
    let write_bytes = (DATASETS * LEN * (4 + 8)) as u64;
    let read_bytes = (DATASETS * LEN * 4) as u64;
    let label = "W3 1000 datasets x (f32[1000], f64[1000])";
    let mut write = Row::new(label, "create+write+flush", write_bytes, write_bytes);
    let mut read = Row::new(label, "read temp (across_stacked)", read_bytes, read_bytes);
    let mut looped = Row::new(label, "read temp (loop of read_array)", read_bytes, read_bytes);
    let mut open = Row::new(label, "open store", 0, 0);

    // Raw codec: every array is one chunk.
    let temp_chain = RawCodec { codec: CODEC, shuffle_elem_bytes: Some(4) };
    let depth_chain = RawCodec { codec: CODEC, shuffle_elem_bytes: Some(8) };
    let temp_raw: Vec<Vec<u8>> = temps.iter().map(|t| bytemuck::cast_slice(t).to_vec()).collect();
    let depth_raw: Vec<Vec<u8>> = depths.iter().map(|d| bytemuck::cast_slice(d).to_vec()).collect();
    let temp_enc = temp_chain.encode_all(&temp_raw);
    write.raw_disk = Some(temp_enc.iter().chain(&depth_chain.encode_all(&depth_raw)).map(|e| e.len() as u64).sum());
    let mut out = vec![1u8; read_bytes as usize];
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();

    let [mut raw_enc, mut raw_dec, mut atlas_write, mut atlas_read, mut atlas_loop, mut atlas_open] =
        [Best::default(); 6];
    let mut rounds = opts.rounds();
    while rounds.next() {
        raw_enc.add(time(|| (temp_chain.encode_all(&temp_raw), depth_chain.encode_all(&depth_raw))));
        raw_dec.add(time(|| temp_chain.decode_all(&temp_enc, LEN * 4, &mut out)));
        let dir = fresh_dir(&opts.root, "w3-atlas");
        atlas_write.add(time(|| write_all(&dir, &names, &temps, &depths)));
        let mut store = None;
        atlas_open.add(time(|| store = Some(Atlas::open(&dir).expect("open"))));
        let store = store.expect("opened");
        atlas_read.add(time(|| read_across(&store, &refs)));
        atlas_loop.add(time(|| read_loop(&store, &names)));
    }
    write.rounds = rounds.done();
    read.rounds = rounds.done();
    looped.rounds = rounds.done();
    open.rounds = rounds.done();

    let store = Atlas::open(dir(opts)).expect("open");
    assert!(read_across(&store, &refs) == temps.concat(), "W3 reads back what it wrote");
    (write.raw, read.raw, looped.raw) = (raw_enc.get(), raw_dec.get(), raw_dec.get());
    (write.atlas, read.atlas, looped.atlas, open.atlas) =
        (atlas_write.get(), atlas_read.get(), atlas_loop.get(), atlas_open.get());
    write.atlas_disk = Some(dir_bytes(&dir(opts)));
    write.note =
        format!("metadata file {} is {:.2} MB", store.meta_file_name(), dir_bytes_of_meta(&dir(opts)) as f64 / 1e6);
    open.note = format!("{:.1} ms best (no data read)", open.atlas.expect("set").as_secs_f64() * 1e3);
    if opts.rss {
        write.atlas_mem = Some(crate::child::spawn(opts, &["w3-write"]));
        read.atlas_mem = Some(crate::child::spawn(opts, &["w3-read"]));
    }
    vec![write, read, looped, open]
}

/// Bytes of the metadata file (`atlas.json`, `atlas.msgpack.zst`...).
fn dir_bytes_of_meta(dir: &Path) -> u64 {
    let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
    entries
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("atlas.json") || name.starts_with("atlas.msgpack")
        })
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum()
}

pub fn child(task: &str, opts: &Opts) {
    let base = ChildMemory::now();
    match task {
        "w3-write" => {
            let names = names();
            let temps: Vec<Vec<f32>> = (0..DATASETS).map(temp).collect();
            let depths: Vec<Vec<f64>> = (0..DATASETS).map(depth).collect();
            reset_peak();
            let scratch = fresh_dir(&opts.root, "child-w3-write");
            for _ in 0..opts.repeat {
                write_all(&fresh_dir(&opts.root, "child-w3-write"), &names, &temps, &depths);
            }
            ChildMemory::report(base);
            let _ = std::fs::remove_dir_all(scratch);
        }
        "w3-read" => {
            let names = names();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let store = Atlas::open(dir(opts)).expect("open");
            for _ in 0..opts.repeat {
                std::hint::black_box(read_across(&store, &refs));
            }
            ChildMemory::report(base);
        }
        "w3-read-loop" => {
            let store = Atlas::open(dir(opts)).expect("open");
            for _ in 0..opts.repeat {
                read_loop(&store, &names());
            }
            ChildMemory::report(base);
        }
        other => panic!("unknown task {other}"),
    }
}
