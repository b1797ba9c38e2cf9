//! W4: 1000 random 32^3 boxes read one after another from W2's array (zstd 1 + shuffle,
//! chunks 64^3), the same boxes (same seed) on Atlas and zarrs. The raw codec decodes
//! exactly the chunks those boxes touch, on all cores.

use std::path::PathBuf;

use crate::Opts;
use crate::baseline::{split_chunks, unravel};
use crate::case::{Case, smooth, smooth_value, w4_source};
use crate::measure::{Best, ChildMemory, time};
use crate::report::Row;
use crate::workload::bulk::chain;
use crate::{atlas_side, zarrs_side};

const BOXES: usize = 1000;
const EDGE: u64 = 32;
const SEED: u64 = 0x5eed_0004;
/// Decoded chunks each side keeps across boxes: Atlas's default `chunk_cache_bytes`.
const CACHE_BYTES: u64 = 32 << 20;

/// splitmix64: a tiny deterministic generator, so both libraries get the same boxes.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The boxes' start corners.
fn starts(shape: &[u64]) -> Vec<Vec<u64>> {
    let mut state = SEED;
    (0..BOXES).map(|_| shape.iter().map(|&n| next(&mut state) % (n - EDGE + 1)).collect()).collect()
}

/// Flat chunk indices (C order) each box touches, all boxes together.
fn touched_chunks(case: &Case, starts: &[Vec<u64>]) -> Vec<usize> {
    let grid: Vec<u64> = case.shape.iter().zip(&case.chunk).map(|(s, c)| s / c).collect();
    let mut picks = Vec::new();
    for start in starts {
        let lo: Vec<u64> = start.iter().zip(&case.chunk).map(|(s, c)| s / c).collect();
        let hi: Vec<u64> = start.iter().zip(&case.chunk).map(|(s, c)| (s + EDGE - 1) / c).collect();
        let extent: Vec<u64> = lo.iter().zip(&hi).map(|(l, h)| h - l + 1).collect();
        for i in 0..extent.iter().product::<u64>() {
            let offset = unravel(i, &extent);
            let flat = (0..grid.len()).fold(0, |acc, d| acc * grid[d] + lo[d] + offset[d]);
            picks.push(flat as usize);
        }
    }
    picks
}

fn dirs(opts: &Opts) -> (PathBuf, PathBuf) {
    (opts.root.join("w4-atlas"), opts.root.join("w4-zarrs"))
}

pub fn run(opts: &Opts) -> Vec<Row> {
    let case = w4_source(opts.scale);
    let data = smooth(&case.shape);
    let starts = starts(&case.shape);
    let shape = [EDGE; 3];
    let box_bytes = EDGE * EDGE * EDGE * 4;
    let name = format!("W4 {BOXES} boxes 32^3 from {} {}", case.shape_label(), case.codec_label());
    let mut row = Row::new(name, "box reads", box_bytes * BOXES as u64, case.array_bytes());

    // Raw codec inputs: every chunk encoded, and the chunks the boxes touch (with repeats).
    let chain = chain(&case);
    let encoded = chain.encode_all(&split_chunks(bytemuck::cast_slice(&data), &case.shape, &case.chunk, 4));
    let picks = touched_chunks(&case, &starts);

    // The stores, written untimed.
    let (atlas_dir, zarrs_dir) = dirs(opts);
    let _ = std::fs::remove_dir_all(&atlas_dir);
    let _ = std::fs::remove_dir_all(&zarrs_dir);
    let (store, array) = atlas_side::create(&atlas_dir, &case, atlas::DType::Float32);
    atlas_side::write(&store, &array, &case, &data);
    drop((store, array));
    zarrs_side::write(&zarrs_side::create::<f32>(&zarrs_dir, &case), &data);
    drop(data);

    // Atlas's handle keeps its default 32 MiB of decoded chunks; zarrs gets a cache as large.
    let array = atlas_side::open(&atlas_dir);
    let uncached = atlas_side::open_with(&atlas_dir, &atlas::OpenOptions::default().chunk_cache_bytes(0));
    let zarrs = zarrs_side::open(&zarrs_dir);
    let zarrs_cached = zarrs_side::open_cached(&zarrs_dir, CACHE_BYTES);
    let mut out = vec![0f32; box_bytes as usize / 4];
    let mut all_out = vec![0f32; BOXES * box_bytes as usize / 4];
    let [mut raw, mut atlas_into, mut atlas_alloc, mut zarrs_time] = [Best::default(); 4];
    let [mut uncached_into, mut uncached_alloc, mut zarrs_cached_time] = [Best::default(); 3];
    let [mut batch_into, mut batch_alloc] = [Best::default(); 2];
    let mut rounds = opts.rounds();
    while rounds.next() {
        raw.add(time(|| chain.decode_picks(&encoded, case.chunk_bytes(), &picks)));
        for (handle, into, alloc) in
            [(&array, &mut atlas_into, &mut atlas_alloc), (&uncached, &mut uncached_into, &mut uncached_alloc)]
        {
            into.add(time(|| {
                for start in &starts {
                    handle.read_into(start, &shape, &mut out, atlas::ReadOptions::default()).expect("box read");
                }
            }));
            alloc.add(time(|| {
                for start in &starts {
                    std::hint::black_box(handle.read::<f32>(start, &shape).expect("box read"));
                }
            }));
        }
        zarrs_cached_time.add(time(|| {
            for start in &starts {
                std::hint::black_box(zarrs_side::read_box_cached::<f32>(&zarrs_cached, start, &shape));
            }
        }));
        batch_into.add(time(|| {
            array.read_boxes_into(&starts, &shape, &mut all_out, atlas::ReadOptions::default()).expect("boxes read");
        }));
        batch_alloc.add(time(|| {
            std::hint::black_box(array.read_boxes::<f32, _>(&starts, &shape).expect("boxes read"));
        }));
        zarrs_time.add(time(|| {
            for start in &starts {
                std::hint::black_box(zarrs_side::read_box::<f32>(&zarrs, start, &shape));
            }
        }));
    }
    row.rounds = rounds.done();

    (row.raw, row.atlas, row.atlas_alloc, row.zarrs) =
        (raw.get(), atlas_into.get(), atlas_alloc.get(), zarrs_cached_time.get());

    let mut plain = Row::new(&row.workload, "box reads, no chunk cache", row.bytes, row.array_bytes);
    (plain.raw, plain.zarrs, plain.rounds) = (row.raw, zarrs_time.get(), row.rounds);
    (plain.atlas, plain.atlas_alloc) = (uncached_into.get(), uncached_alloc.get());

    let mut batch = Row::new(&row.workload, "box reads, one read_boxes call", row.bytes, row.array_bytes);
    (batch.raw, batch.zarrs, batch.rounds) = (row.raw, row.zarrs, row.rounds);
    (batch.atlas, batch.atlas_alloc) = (batch_into.get(), batch_alloc.get());

    check_reads(&starts, &all_out, [&array, &uncached], (&zarrs, &zarrs_cached));
    row.note = format!(
        "{} chunk decodes ({:.1} per box) without a cache; both sides keep 32 MiB of decoded chunks across boxes and rounds; Atlas: read_into a reused buffer, Atlas/zarrs uses the allocating read ({:.0} MB/s); peak vs the whole W2 array",
        picks.len(),
        picks.len() as f64 / BOXES as f64,
        row.bytes as f64 / 1e6 / row.atlas_alloc.expect("set").as_secs_f64()
    );
    plain.note = format!(
        "the same boxes, neither side with a chunk cache: every box decodes the chunks it touches ({:.0} MB/s allocating)",
        plain.bytes as f64 / 1e6 / plain.atlas_alloc.expect("set").as_secs_f64()
    );
    let distinct: std::collections::BTreeSet<usize> = picks.iter().copied().collect();
    batch.note = format!(
        "the same boxes in one call ({} chunks decoded, once each); raw = the {} decodes of the row above; zarrs reads one box per call through its cache; Atlas/zarrs uses the allocating read_boxes ({:.0} MB/s)",
        distinct.len(),
        picks.len(),
        batch.bytes as f64 / 1e6 / batch.atlas_alloc.expect("set").as_secs_f64()
    );
    if opts.rss {
        row.atlas_mem = Some(crate::child::spawn(opts, &["w4-read"]));
        row.zarrs_mem = Some(crate::child::spawn(opts, &["w4-read-zarrs"]));
    }
    vec![row, plain, batch]
}

/// Checks that every way of reading the boxes timed above reads the same values:
/// `batch` (what `read_boxes` gave) against a read per box from each Atlas handle and from
/// both zarrs arrays, and the first box against the array's values.
fn check_reads(
    starts: &[Vec<u64>],
    batch: &[f32],
    atlas: [&atlas::ArrayHandle; 2],
    (zarrs, zarrs_cached): (&zarrs_side::ZarrsArray, &zarrs::array::chunk_cache::ChunkCacheDecodedLruSizeLimit),
) {
    let shape = [EDGE; 3];
    let mut out = vec![0f32; (EDGE * EDGE * EDGE) as usize];
    for handle in atlas {
        for (i, start) in starts.iter().enumerate() {
            handle.read_into(start, &shape, &mut out, atlas::ReadOptions::default()).expect("box read");
            assert!(batch[i * out.len()..][..out.len()] == out, "read_boxes reads box {i} as read does");
        }
    }
    let first = &starts[0];
    let expected = smooth_value(first[0], first[1], first[2] + 1);
    assert!(batch[1].to_bits() == expected.to_bits(), "Atlas box holds the array's values");
    for (i, start) in starts.iter().enumerate() {
        let atlas_box = &batch[i * out.len()..][..out.len()];
        assert!(zarrs_side::read_box::<f32>(zarrs, start, &shape) == atlas_box, "zarrs reads box {i} as Atlas");
        let cached = zarrs_side::read_box_cached::<f32>(zarrs_cached, start, &shape);
        assert!(cached == atlas_box, "cached zarrs reads box {i} as Atlas");
    }
}

pub fn child(task: &str, opts: &Opts) {
    let base = ChildMemory::now();
    let case = w4_source(opts.scale);
    let starts = starts(&case.shape);
    let (atlas_dir, zarrs_dir) = dirs(opts);
    match task {
        "w4-read" => {
            let array = atlas_side::open(&atlas_dir);
            for _ in 0..opts.repeat {
                for start in &starts {
                    std::hint::black_box(array.read::<f32>(start, &[EDGE; 3]).expect("box read"));
                }
            }
        }
        "w4-read-uncached" => {
            let array = atlas_side::open_with(&atlas_dir, &atlas::OpenOptions::default().chunk_cache_bytes(0));
            for _ in 0..opts.repeat {
                for start in &starts {
                    std::hint::black_box(array.read::<f32>(start, &[EDGE; 3]).expect("box read"));
                }
            }
        }
        "w4-read-boxes" => {
            let array = atlas_side::open(&atlas_dir);
            let starts: Vec<&[u64]> = starts.iter().map(|s| &s[..]).collect();
            let mut out = vec![0f32; starts.len() * (EDGE * EDGE * EDGE) as usize];
            for _ in 0..opts.repeat {
                let options = atlas::ReadOptions::default();
                array.read_boxes_into(&starts, &[EDGE; 3], &mut out, options).expect("boxes read");
            }
        }
        "w4-read-zarrs" => {
            let cache = zarrs_side::open_cached(&zarrs_dir, CACHE_BYTES);
            for _ in 0..opts.repeat {
                for start in &starts {
                    std::hint::black_box(zarrs_side::read_box_cached::<f32>(&cache, start, &[EDGE; 3]));
                }
            }
        }
        other => panic!("unknown task {other}"),
    }
    ChildMemory::report(base);
}
