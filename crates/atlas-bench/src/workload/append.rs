//! W5: 1000 appends of 64x512 float32 rows (`ArrayHandle::append`), one flush, then one full
//! read. Store defaults (zstd 3, shuffle on). Two chunk shapes: Atlas's default for a growing
//! `[0, 512]` array, and 64x512 (one append per chunk).

use std::path::{Path, PathBuf};

use atlas::{ArrayHandle, ArraySpec, Atlas, Codec, DType, ReadOptions, StoreConfig};
use ndarray::ArrayView2;

use crate::Opts;
use crate::baseline::{RawCodec, split_chunks};
use crate::measure::{Best, ChildMemory, dir_bytes, fresh_dir, reset_peak, time};
use crate::report::Row;

const APPENDS: usize = 1000;
const ROWS: usize = 64;
const COLS: usize = 512;

/// A chunk shape to test: `None` for Atlas's default.
#[derive(Debug, Clone, Copy)]
struct Variant {
    id: &'static str,
    chunk: Option<[u64; 2]>,
}

const VARIANTS: [Variant; 2] =
    [Variant { id: "w5-default", chunk: None }, Variant { id: "w5-c64", chunk: Some([ROWS as u64, COLS as u64]) }];

fn value(row: usize, col: usize) -> f32 {
    20.0 - col as f32 * 0.01 + row as f32 * 0.001
}

/// The rows of append `i`.
fn block(i: usize) -> Vec<f32> {
    (0..ROWS * COLS).map(|k| value(i * ROWS + k / COLS, k % COLS)).collect()
}

fn dir(opts: &Opts, variant: Variant) -> PathBuf {
    opts.root.join(format!("{}-atlas", variant.id))
}

fn create(dir: &Path, variant: Variant) -> (Atlas, ArrayHandle) {
    let store = Atlas::create(dir, StoreConfig::default()).expect("create store");
    let mut spec = ArraySpec::new(DType::Float32, [0, COLS as u64]);
    if let Some(chunk) = variant.chunk {
        spec = spec.chunk_shape(chunk);
    }
    let array = store.create_dataset("d").and_then(|d| d.define_array("a", spec)).expect("define");
    (store, array)
}

fn append_all(store: &Atlas, array: &ArrayHandle, blocks: &[Vec<f32>]) {
    for rows in blocks {
        array.append(ArrayView2::from_shape((ROWS, COLS), rows).expect("block shape")).expect("append");
    }
    store.flush().expect("flush");
}

pub fn run(opts: &Opts) -> Vec<Row> {
    let blocks: Vec<Vec<f32>> = (0..APPENDS).map(block).collect();
    let all: Vec<f32> = blocks.concat();
    let shape = [(APPENDS * ROWS) as u64, COLS as u64];
    let bytes = (all.len() * 4) as u64;
    let chain = RawCodec { codec: Codec::Zstd { level: 3 }, shuffle_elem_bytes: Some(4) };
    let mut rows = Vec::new();
    for variant in VARIANTS {
        let (_, probe) = create(&fresh_dir(&opts.root, "w5-probe"), variant);
        let chunk = probe.meta().expect("meta").chunk_shape;
        drop(probe);
        let name = format!("W5 {APPENDS} appends of {ROWS}x{COLS} f32, chunks {}x{}", chunk[0], chunk[1]);
        let mut write = Row::new(&name, "append+flush", bytes, bytes);
        let mut read = Row::new(&name, "read all", bytes, bytes);

        let raw_chunks = split_chunks(bytemuck::cast_slice(&all), &shape, &chunk, 4);
        let chunk_bytes = raw_chunks[0].len();
        let encoded = chain.encode_all(&raw_chunks);
        write.raw_disk = Some(encoded.iter().map(|e| e.len() as u64).sum());
        let mut raw_out = vec![1u8; bytes as usize];
        let mut atlas_out = vec![0f32; all.len()];
        let [mut raw_enc, mut raw_dec, mut atlas_write, mut atlas_read, mut atlas_alloc] = [Best::default(); 5];
        let mut rounds = opts.rounds();
        while rounds.next() {
            raw_enc.add(time(|| chain.encode_all(&raw_chunks)));
            raw_dec.add(time(|| chain.decode_all(&encoded, chunk_bytes, &mut raw_out)));
            let (store, array) = create(&fresh_dir(&opts.root, &format!("{}-atlas", variant.id)), variant);
            atlas_write.add(time(|| append_all(&store, &array, &blocks)));
            drop((store, array));
            let store = Atlas::open(dir(opts, variant)).expect("open");
            let array = store.open_dataset("d").and_then(|d| d.array("a")).expect("array");
            atlas_read.add(time(|| {
                array.read_into(&[0, 0], &shape, &mut atlas_out, ReadOptions::default()).expect("read");
            }));
            atlas_alloc.add(time(|| array.read::<f32>(&[0, 0], &shape).expect("read")));
        }
        write.rounds = rounds.done();
        read.rounds = rounds.done();

        assert!(atlas_out == all, "W5 reads back what it appended");
        drop((raw_chunks, encoded, raw_out, atlas_out));
        (write.raw, read.raw) = (raw_enc.get(), raw_dec.get());
        (write.atlas, read.atlas, read.atlas_alloc) = (atlas_write.get(), atlas_read.get(), atlas_alloc.get());
        write.atlas_disk = Some(dir_bytes(&dir(opts, variant)));
        write.note = "raw = encoding the final chunks once".into();
        read.note = "Atlas: read_into a reused buffer".into();
        if opts.rss {
            write.atlas_mem = Some(crate::child::spawn(opts, &["w5-write", variant.id]));
            read.atlas_mem = Some(crate::child::spawn(opts, &["w5-read", variant.id]));
        }
        rows.push(write);
        rows.push(read);
    }
    let _ = std::fs::remove_dir_all(opts.root.join("w5-probe"));
    rows
}

pub fn child(task: &str, variant_id: &str, opts: &Opts) {
    let base = ChildMemory::now();
    let variant = *VARIANTS.iter().find(|v| v.id == variant_id).expect("known W5 variant");
    match task {
        "w5-write" => {
            reset_peak();
            let scratch = fresh_dir(&opts.root, &format!("child-{variant_id}"));
            let (store, array) = create(&scratch, variant);
            // Rows are made one append at a time, as a logger would; the input is never whole.
            for i in 0..APPENDS {
                let rows = block(i);
                array.append(ArrayView2::from_shape((ROWS, COLS), &rows).expect("shape")).expect("append");
            }
            store.flush().expect("flush");
            ChildMemory::report(base);
            drop((store, array));
            let _ = std::fs::remove_dir_all(scratch);
        }
        "w5-read" => {
            let store = Atlas::open(dir(opts, variant)).expect("open");
            let array = store.open_dataset("d").and_then(|d| d.array("a")).expect("array");
            let shape = [(APPENDS * ROWS) as u64, COLS as u64];
            std::hint::black_box(array.read::<f32>(&[0, 0], &shape).expect("read"));
            ChildMemory::report(base);
        }
        other => panic!("unknown task {other}"),
    }
}
