//! Hostile input: stores written by hand to make Atlas allocate, recurse or loop (huge
//! shapes, millions of chunks, deep attribute nesting, index entries claiming huge lengths,
//! a metadata file claiming 2 GiB) and hostile names. Each must be refused with a typed
//! error quickly and before any large allocation, or (millions of chunks) work without
//! per-chunk cost; no name may make a file appear outside the store.
//!
//! "Before any large allocation" is measured: this test binary's global allocator records
//! the largest single allocation ([`largest_allocation_during`]).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atlas::{ArraySpec, Atlas, AttrValue, Codec, DType, EntityKind, Error, Scalar, Shuffle, StoreConfig};
use ndarray::arr1;
use serde_json::{Value, json};

use crate::observe::dump;
use crate::util::{self, TestDir, assert_err, test_dir};

/// The system allocator, recording the largest single allocation or reallocation.
struct LargestAllocation;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only a size is recorded.
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: LargestAllocation = LargestAllocation;

/// Runs `f` with no other test running and returns its result, the largest single
/// allocation any thread made meanwhile, and how long it took.
fn largest_allocation_during<R>(dir: &mut TestDir, f: impl FnOnce() -> R) -> (R, usize, Duration) {
    dir.while_alone(|| {
        LARGEST.store(0, Ordering::SeqCst);
        let started = Instant::now();
        let result = f();
        (result, LARGEST.load(Ordering::SeqCst), started.elapsed())
    })
}

/// No hostile input may cost a single allocation this large.
const LARGE_BYTES: usize = 16 << 20;
/// Nor take this long to be refused (debug build, loaded CI machine).
const QUICK: Duration = Duration::from_secs(5);

#[test]
fn the_allocation_probe_sees_a_large_allocation() {
    let mut dir = test_dir!();
    let (len, largest, _) = largest_allocation_during(&mut dir, || std::hint::black_box(vec![1u8; 64 << 20]).len());
    assert!(largest >= len, "the probe missed a {len}-byte allocation: {largest}");
}

/// A committed store at `path` with dataset `d` holding uint8 array `a` (16 elements,
/// chunks of 4, two chunks written) and string array `s` (4 elements, chunks of 2, one
/// chunk written); returns its metadata as JSON. Its one fragment's index entries, in file
/// order: s[0], a[0], a[1] (a's write is small: staged, and encoded at the flush).
fn small_store(path: &Path) -> Value {
    let store = util::create(path);
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::UInt8, [16]).chunk_shape([4])).unwrap();
    ds.write_array("a", &[0], arr1(&[1u8, 2, 3, 4, 5, 6, 7, 8]).view()).unwrap();
    ds.define_array("s", ArraySpec::new(DType::String, [4]).chunk_shape([2])).unwrap();
    ds.write_strings("s", &[0], arr1(&["one", "two"]).view()).unwrap();
    store.flush().unwrap();
    read_json_meta(path)
}

fn read_json_meta(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path.join("atlas.json")).unwrap()).unwrap()
}

/// Writes hand-edited metadata; without its checksum field, as a hand-written file is.
fn write_json_meta(path: &Path, meta: &Value) {
    let mut meta = meta.clone();
    meta.as_object_mut().expect("metadata is an object").remove("checksum");
    std::fs::write(path.join("atlas.json"), serde_json::to_vec(&meta).unwrap()).unwrap();
}

/// Opens the store and reads everything, returning the first error; fails the test on a
/// panic, a large allocation or a slow refusal.
fn open_and_read(dir: &mut TestDir, path: &Path, what: &str) -> Result<String, Error> {
    let (outcome, largest, took) = largest_allocation_during(dir, || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Atlas::open(path).and_then(|s| dump(&s))))
    });
    let result = outcome.unwrap_or_else(|_| panic!("{what}: Atlas panicked"));
    assert!(largest < LARGE_BYTES, "{what}: a single allocation of {largest} bytes");
    assert!(took < QUICK, "{what}: took {took:?}");
    result
}

fn assert_corrupt(result: Result<String, Error>, what: &str) {
    match result {
        Err(Error::Corrupt { detail, .. }) => assert!(!detail.is_empty(), "{what}"),
        other => panic!("{what}: expected Corrupt, got {other:?}"),
    }
}

/// Two arrays sharing an id would read each other's blocks; a fragment listed twice would
/// be read (and compacted) twice. Both are corrupt at open, in JSON and msgpack.
#[test]
fn a_shared_array_id_or_a_fragment_listed_twice_is_refused_at_open() {
    let mut dir = test_dir!();
    let path = dir.store();
    let good = small_store(&path);
    let mut shared_id = good.clone();
    shared_id["datasets"]["d"]["arrays"]["s"]["id"] = good["datasets"]["d"]["arrays"]["a"]["id"].clone();
    let mut listed_twice = good.clone();
    let fragment = good["fragments"][0].clone();
    listed_twice["fragments"].as_array_mut().unwrap().push(fragment);
    for (meta, says) in [(&shared_id, "duplicate or unallocated id"), (&listed_twice, "listed twice")] {
        write_json_meta(&path, meta);
        match open_and_read(&mut dir, &path, says) {
            Err(Error::Corrupt { detail, .. }) => assert!(detail.contains(says), "{detail}"),
            other => panic!("{says}: expected Corrupt, got {other:?}"),
        }
        std::fs::remove_file(path.join("atlas.json")).unwrap();
        std::fs::write(path.join("atlas.msgpack"), rmp_serde::to_vec_named(meta).unwrap()).unwrap();
        assert_corrupt(open_and_read(&mut dir, &path, says), &format!("{says}, msgpack"));
        std::fs::remove_file(path.join("atlas.msgpack")).unwrap();
    }
    write_json_meta(&path, &good);
    assert!(open_and_read(&mut dir, &path, "the store as written").is_ok());
}

#[test]
fn shapes_whose_element_or_byte_count_overflows_are_refused_at_open() {
    let mut dir = test_dir!();
    let path = dir.store();
    let good = small_store(&path);
    let shapes: [(&str, Value, Value); 4] = [
        ("u64::MAX x 2", json!([u64::MAX, 2]), json!([1, 1])),
        ("2^32 x 2^32", json!([1u64 << 32, 1u64 << 32]), json!([1, 1])),
        ("33 dimensions", json!(vec![2; 33]), json!(vec![1; 33])),
        ("chunk of 2^40 bytes", json!([1u64 << 40]), json!([1u64 << 40])),
    ];
    for (what, shape, chunk_shape) in shapes {
        let mut meta = good.clone();
        let ndim = shape.as_array().unwrap().len();
        let array = &mut meta["datasets"]["d"]["arrays"]["a"];
        array["shape"] = shape;
        array["chunk_shape"] = chunk_shape;
        array["dims"] = json!(vec![""; ndim]);
        write_json_meta(&path, &meta);
        assert_corrupt(open_and_read(&mut dir, &path, what), what);
    }
    // Per-axis lists far past 32 items, each item a few bytes on disk and 8 or 24 in
    // memory: refused as they are read, not built whole first.
    for field in ["shape", "chunk_shape", "dims"] {
        let mut meta = good.clone();
        let item = if field == "dims" { json!("") } else { json!(1) };
        meta["datasets"]["d"]["arrays"]["a"][field] = json!(vec![item; 1 << 20]);
        write_json_meta(&path, &meta);
        let what = format!("{field} of 2^20 items");
        assert_corrupt(open_and_read(&mut dir, &path, &what), &what);
    }
    // A uint64 array of 2^61 elements: the element count fits, its bytes do not.
    let mut meta = good.clone();
    let array = &mut meta["datasets"]["d"]["arrays"]["a"];
    array["dtype"] = json!("uint64");
    array["shape"] = json!([1u64 << 61]);
    write_json_meta(&path, &meta);
    assert_corrupt(open_and_read(&mut dir, &path, "2^64 bytes"), "2^64 bytes");
    // An empty axis makes an array empty whatever the other axes hold, in any place.
    for shape in [json!([0, 1u64 << 40, 1u64 << 40]), json!([1u64 << 40, 1u64 << 40, 0])] {
        let mut meta = good.clone();
        let mut empty = meta["datasets"]["d"]["arrays"]["a"].clone();
        empty["id"] = meta["next_array_id"].clone();
        meta["next_array_id"] = json!(meta["next_array_id"].as_u64().unwrap() + 1);
        empty["shape"] = shape.clone();
        empty["chunk_shape"] = json!([1, 1, 1]);
        empty["dims"] = json!(["", "", ""]);
        empty["stats"] = Value::Null;
        meta["datasets"]["d"]["arrays"]["empty"] = empty;
        write_json_meta(&path, &meta);
        let store = Atlas::open(&path).unwrap_or_else(|e| panic!("shape {shape} is refused: {e}"));
        let meta = store.open_dataset("d").unwrap().array_meta("empty").unwrap();
        assert_eq!(json!(meta.shape), shape);
    }
}

#[test]
fn a_zstd_dictionary_that_does_not_load_is_corrupt_at_open() {
    let mut dir = test_dir!();
    let path = dir.store();
    let mut meta = small_store(&path);
    // zstd's dictionary magic number, then entropy tables of zeros.
    meta["datasets"]["d"]["arrays"]["a"]["zstd_dictionary"] = json!(format!("37a430ec{}", "00".repeat(60)));
    write_json_meta(&path, &meta);
    match open_and_read(&mut dir, &path, "damaged dictionary") {
        Err(Error::Corrupt { path: file, detail }) => {
            assert!(file.ends_with("atlas.json") && detail.contains("zstd dictionary does not load"), "{detail}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Any other bytes are a raw-content dictionary, which zstd takes.
    meta["datasets"]["d"]["arrays"]["a"]["zstd_dictionary"] = json!("00".repeat(60));
    write_json_meta(&path, &meta);
    open_and_read(&mut dir, &path, "raw-content dictionary").unwrap();
}

#[test]
fn counters_at_u64_max_are_corrupt_at_open_so_no_commit_wraps_them() {
    let mut dir = test_dir!();
    let path = dir.store();
    let good = small_store(&path);
    for field in ["generation", "next_array_id"] {
        let mut meta = good.clone();
        meta[field] = json!(u64::MAX);
        write_json_meta(&path, &meta);
        assert_corrupt(open_and_read(&mut dir, &path, field), field);
        // One below opens, but no commit may take it to u64::MAX.
        meta[field] = json!(u64::MAX - 1);
        write_json_meta(&path, &meta);
        let store = Atlas::open(&path).unwrap();
        store.open_dataset("d").unwrap().define_array("new", ArraySpec::new(DType::UInt8, [1])).unwrap();
        assert_err!(store.flush(), Error::InvalidArgument { .. });
        drop(store);
        assert!(!Atlas::open(&path).unwrap().open_dataset("d").unwrap().list_arrays().unwrap().contains(&"new".into()));
    }
}

#[test]
fn persisted_stats_that_do_not_check_out_are_merged_again_from_the_blocks() {
    let dir = test_dir!();
    let path = dir.store();
    let good = small_store(&path);
    let expected = {
        let ds = Atlas::open(&path).unwrap().open_dataset("d").unwrap();
        (ds.array_stats("a").unwrap(), ds.array_stats("s").unwrap())
    };
    assert_eq!((expected.0.count, expected.0.null_count, expected.0.mean), (8, 8, Some(4.5)));
    assert_eq!((expected.1.count, expected.1.null_count, expected.1.mean), (2, 2, None), "strings have no mean");
    let edits: [(&str, &str, Value); 6] = [
        ("counts that do not add up", "null_count", json!(9)),
        ("a max below the min", "max", json!(0)),
        ("a max out of uint8", "max", json!(300)),
        ("a max without a min", "min", Value::Null),
        ("a mean that is not sum / count", "mean", json!(1.5)),
        ("a count over the array", "count", json!(u64::MAX)),
    ];
    for (what, field, value) in edits {
        let mut meta = good.clone();
        meta["datasets"]["d"]["arrays"]["a"]["stats"][field] = value;
        // What builds before this one wrote for strings: a mean of 0.
        meta["datasets"]["d"]["arrays"]["s"]["stats"]["mean"] = json!(0.0);
        write_json_meta(&path, &meta);
        let store = Atlas::open(&path).unwrap_or_else(|e| panic!("{what}: {e}"));
        let ds = store.open_dataset("d").unwrap();
        assert_eq!(ds.array_meta("a").unwrap().stats, None, "{what}: forgotten at open");
        assert_eq!((ds.array_stats("a").unwrap(), ds.array_stats("s").unwrap()), expected, "{what}");
        // The next commit that changes the array persists sound stats again.
        ds.write_array("a", &[15], arr1(&[9u8]).view()).unwrap();
        store.flush().unwrap();
        let persisted = ds.array_meta("a").unwrap().stats.unwrap();
        assert_eq!((persisted.count, persisted.max), (9, Some(9u8.into())), "{what}");
    }
}

#[test]
fn an_array_of_a_trillion_chunks_opens_reads_writes_and_compacts_without_per_chunk_work() {
    let mut dir = test_dir!();
    let path = dir.store();
    let mut meta = small_store(&path);
    // 2^40 chunks of one element along axis 0, and 2^20 x 2^20 chunks in 2-D.
    let far = (1u64 << 40) - 1;
    let array = &mut meta["datasets"]["d"]["arrays"]["a"];
    array["shape"] = json!([1u64 << 40]);
    array["chunk_shape"] = json!([1]);
    array["stats"] = Value::Null;
    write_json_meta(&path, &meta);
    let path2 = path.clone();
    let (checked, largest, took) = largest_allocation_during(&mut dir, move || {
        let store = Atlas::open(&path2).unwrap();
        let ds = store.open_dataset("d").unwrap();
        // The old blocks (raw length 4) do not fit chunks of one element: reading them is
        // refused, chunks never written read as fill.
        assert_err!(ds.read_array::<u8>("a", &[0], &[4]), Error::Corrupt { .. });
        assert_eq!(ds.read_array::<u8>("a", &[far - 3], &[4]).unwrap().into_raw_vec_and_offset().0, [0; 4]);
        ds.write_array("a", &[far - 1], arr1(&[9u8, 10]).view()).unwrap();
        store.flush().unwrap();
        let reopened = Atlas::open(&path2).unwrap().open_dataset("d").unwrap();
        assert_eq!(reopened.read_array::<u8>("a", &[far - 2], &[3]).unwrap().into_raw_vec_and_offset().0, [0, 9, 10]);
        // The old blocks' statistics count more values than a chunk holds, so the merge
        // refuses them too (without walking the chunk grid).
        assert_err!(reopened.array_stats("a"), Error::Corrupt { .. });
        assert_err!(reopened.block_stats("a"), Error::Corrupt { .. });
        // Compact copies blocks without a decode and refuses such statistics as well.
        assert_err!(store.compact(), Error::Corrupt { .. });
        reopened.resize_array("a", &[1u64 << 39]).unwrap_or_else(|e| panic!("shrink: {e}"));
        true
    });
    assert!(checked);
    assert!(largest < LARGE_BYTES, "a single allocation of {largest} bytes");
    assert!(took < QUICK, "took {took:?}");

    // 2-D: 2^20 x 2^20 chunks of one element; a 3 x 3 box in the far corner, read, written
    // twice and compacted (without the damaged array).
    let store = Atlas::open(&path).unwrap();
    let ds = store.open_dataset("d").unwrap();
    ds.delete_array("a").unwrap();
    let spec = ArraySpec::new(DType::Int16, [1 << 20, 1 << 20]).chunk_shape([1, 1]).fill_value(-5);
    ds.define_array("grid", spec).unwrap();
    store.flush().unwrap();
    let corner = [(1 << 20) - 3, (1 << 20) - 3];
    let (read, largest, took) = largest_allocation_during(&mut dir, || {
        let read = ds.read_array::<i16>("grid", &corner, &[3, 3]).unwrap();
        for value in [1i16, 2] {
            ds.write_array("grid", &corner[..], ndarray::Array2::from_elem((3, 3), value).view()).unwrap();
            store.flush().unwrap();
        }
        store.compact().unwrap();
        (read, ds.read_array::<i16>("grid", &corner, &[3, 3]).unwrap())
    });
    assert!(read.0.iter().all(|&v| v == -5));
    assert!(read.1.iter().all(|&v| v == 2));
    assert!(largest < LARGE_BYTES && took < QUICK, "{largest} bytes, {took:?}");
}

#[test]
fn compaction_drops_a_block_outside_its_arrays_grid_so_a_later_grow_reads_fill() {
    // A shrink by hand (the metadata edited; a shrink by Atlas writes fill entries): the
    // block of elements 4..8 is outside the grid, unreachable, and reported by verify.
    let dir = test_dir!();
    let path = dir.store();
    let mut meta = small_store(&path);
    meta["datasets"]["d"]["arrays"]["a"]["shape"] = json!([4]);
    meta["datasets"]["d"]["arrays"]["a"]["stats"] = Value::Null;
    write_json_meta(&path, &meta);
    let store = Atlas::open(&path).unwrap();
    assert_eq!(store.verify(&mut |_, _| {}).unwrap().bad_blocks.len(), 1);
    let report = store.compact().unwrap();
    assert_eq!((report.blocks_kept, report.blocks_dropped), (2, 1));
    assert!(store.verify(&mut |_, _| {}).unwrap().bad_blocks.is_empty());
    let ds = store.open_dataset("d").unwrap();
    ds.resize_array("a", &[16]).unwrap();
    assert_eq!(ds.read_array::<u8>("a", &[0], &[8]).unwrap().into_raw_vec_and_offset().0, [1, 2, 3, 4, 0, 0, 0, 0]);
}

#[test]
fn an_axis_of_extent_zero_beside_huge_ones_empties_the_array_without_overflow() {
    // Zero elements, whatever the other extents: the shape is accepted, and the chunks the
    // array had are outside its grid (places in the grid would overflow u64 here).
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let array = ds.define_array("a", ArraySpec::new(DType::Int32, [4, 4, 4]).chunk_shape([1, 1, 1])).unwrap();
    array.write(&[2, 0, 0], ndarray::Array3::from_elem((2, 1, 1), 7i32).view()).unwrap();
    store.flush().unwrap();
    array.resize(&[u64::MAX, u64::MAX, 0]).unwrap();
    let stats = array.stats().unwrap();
    assert_eq!((stats.count, stats.null_count), (0, 0));
    store.flush().unwrap();
    let reopened = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap().array("a").unwrap();
    assert_eq!(reopened.shape().unwrap(), [u64::MAX, u64::MAX, 0]);
    assert_eq!(reopened.stats().unwrap().count, 0);
    assert!(reopened.block_stats().unwrap().is_empty());
    assert_eq!(reopened.read::<i32>(&[5, 5, 0], &[2, 2, 0]).unwrap().len(), 0);
}

#[test]
fn a_read_of_a_quarter_million_one_element_chunks_plans_them_a_bounded_batch_at_a_time() {
    // A metadata file of a few hundred bytes can claim such a grid; reading a row of it
    // planned every chunk at once (a few hundred bytes of plan each, 24 MiB in one
    // allocation here) before it read any.
    let mut dir = test_dir!();
    let path = dir.store();
    let store = util::create(&path);
    let ds = store.create_dataset("d").unwrap();
    let row = 1u64 << 18;
    ds.define_array("a", ArraySpec::new(DType::UInt8, [4, row]).chunk_shape([1, 1]).fill_value(7)).unwrap();
    ds.define_array("s", ArraySpec::new(DType::String, [4, row]).chunk_shape([1, 1])).unwrap();
    store.flush().unwrap();
    let (read, largest, _) =
        largest_allocation_during(&mut dir, || ds.read_array::<u8>("a", &[1, 0], &[1, row]).unwrap());
    assert!(read.iter().all(|&v| v == 7));
    assert!(largest < LARGE_BYTES, "a single allocation of {largest} bytes");
    // Strings hold 24 bytes an element, 6 MiB for the row: under the bound still.
    let (strings, largest, _) =
        largest_allocation_during(&mut dir, || ds.read_strings("s", &[2, 0], &[1, row]).unwrap());
    assert!(strings.iter().all(String::is_empty));
    assert!(largest < LARGE_BYTES, "a single allocation of {largest} bytes");
}

#[test]
fn writes_and_reads_of_more_chunks_than_a_plan_batch_land_exactly() {
    // A batch of one-element chunks and a part, written and read back across the batch
    // boundary (`engine::plan::PLAN_BATCH`, 2^16).
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let n = (1 << 16) + 5;
    let spec = ArraySpec::new(DType::UInt16, [n]).chunk_shape([1]).codec(Codec::None);
    ds.define_array("a", spec).unwrap();
    let values: Vec<u16> = (0..n).map(|i| (i * 7 % 65_521) as u16).collect();
    ds.write_array("a", &[0], arr1(&values).view()).unwrap();
    store.flush().unwrap();
    let back = ds.read_array::<u16>("a", &[0], &[n]).unwrap();
    assert_eq!(back.as_slice().unwrap(), &values[..]);
    let boxes = ds.array("a").unwrap().read_boxes::<u16, _>(&[[2], [0]], &[(1 << 16) + 3]).unwrap();
    let expected: Vec<u16> = [2usize, 0].iter().flat_map(|&s| values[s..s + (1 << 16) + 3].to_vec()).collect();
    assert_eq!(boxes.as_slice().unwrap(), &expected[..]);
    let texts: Vec<String> = (0..n).map(|i| format!("{}", i % 97)).collect();
    ds.define_array("s", ArraySpec::new(DType::String, [n]).chunk_shape([1])).unwrap();
    ds.write_strings("s", &[0], arr1(&texts).view()).unwrap();
    store.flush().unwrap();
    assert_eq!(ds.read_strings("s", &[0], &[n]).unwrap().as_slice().unwrap(), &texts[..]);
}

/// `levels` nested single-element lists around an integer, in the tagged JSON form.
fn nested_attr(levels: usize) -> Value {
    (0..levels).fold(json!({"type": "int", "value": 1}), |v, _| json!({"type": "list", "value": [v]}))
}

#[test]
fn attribute_nesting_beyond_the_limit_is_refused_at_open_in_json_and_msgpack() {
    let mut dir = test_dir!();
    let path = dir.store();
    let good = small_store(&path);
    // 33 levels: over MAX_ATTR_DEPTH. 100 levels: over serde_json's own recursion limit.
    for levels in [33, 100] {
        for place in ["store", "dataset", "array"] {
            let mut meta = good.clone();
            let attrs = match place {
                "store" => &mut meta["attributes"],
                "dataset" => &mut meta["datasets"]["d"]["attributes"],
                _ => &mut meta["datasets"]["d"]["arrays"]["a"]["attributes"],
            };
            attrs["deep"] = nested_attr(levels);
            let what = format!("{levels} levels on the {place}");
            write_json_meta(&path, &meta);
            assert_corrupt(open_and_read(&mut dir, &path, &what), &what);
            // The same as MessagePack (no JSON nesting limit applies there).
            std::fs::remove_file(path.join("atlas.json")).unwrap();
            std::fs::write(path.join("atlas.msgpack"), rmp_serde::to_vec_named(&meta).unwrap()).unwrap();
            assert_corrupt(open_and_read(&mut dir, &path, &format!("{what}, msgpack")), &what);
            std::fs::remove_file(path.join("atlas.msgpack")).unwrap();
            write_json_meta(&path, &good);
        }
    }
    // JSON nested past serde_json's limit, written as text (serde_json cannot write it).
    let deep_text = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let text = serde_json::to_string(&good).unwrap().replacen(
        "\"attributes\":{}",
        &format!("\"attributes\":{{\"x\":{{\"type\":\"list\",\"value\":{deep_text}}}}}"),
        1,
    );
    std::fs::write(path.join("atlas.json"), text).unwrap();
    assert_corrupt(open_and_read(&mut dir, &path, "10000 JSON levels"), "10000 JSON levels");
}

#[test]
fn a_key_given_twice_in_json_or_msgpack_metadata_is_refused_at_open() {
    let mut dir = test_dir!();
    let path = dir.store();
    let good = small_store(&path);
    let int = |v: i64| json!({"type": "int", "value": v});
    // Each case adds an entry under a capital letter, renamed in the bytes to the lowercase
    // key beside it: a map no `Value` can hold.
    for place in ["dataset", "array", "store attribute", "map attribute"] {
        let mut meta = good.clone();
        meta.as_object_mut().unwrap().remove("checksum");
        let key = match place {
            "dataset" => {
                meta["datasets"]["D"] = meta["datasets"]["d"].clone();
                "d"
            }
            "array" => {
                meta["datasets"]["d"]["arrays"]["A"] = meta["datasets"]["d"]["arrays"]["a"].clone();
                "a"
            }
            "store attribute" => {
                (meta["attributes"]["k"], meta["attributes"]["K"]) = (int(1), int(2));
                "k"
            }
            _ => {
                meta["attributes"]["m"] = json!({"type": "map", "value": {"x": int(1), "X": int(2)}});
                "x"
            }
        };
        let twice = |bytes: Vec<u8>, prefix: u8| {
            let from = [prefix, key.to_ascii_uppercase().as_bytes()[0]];
            let at: Vec<usize> = bytes.windows(2).enumerate().filter(|(_, w)| *w == from).map(|(i, _)| i).collect();
            assert_eq!(at.len(), 1, "{place}: the key to rename is found once");
            let mut bytes = bytes;
            bytes[at[0] + 1] = key.as_bytes()[0];
            bytes
        };
        std::fs::write(path.join("atlas.json"), twice(serde_json::to_vec(&meta).unwrap(), b'"')).unwrap();
        assert_corrupt(open_and_read(&mut dir, &path, place), place);
        std::fs::remove_file(path.join("atlas.json")).unwrap();
        // In MessagePack a one-letter key is the byte 0xa1 and the letter.
        std::fs::write(path.join("atlas.msgpack"), twice(rmp_serde::to_vec_named(&meta).unwrap(), 0xa1)).unwrap();
        assert_corrupt(open_and_read(&mut dir, &path, place), &format!("{place}, msgpack"));
        std::fs::remove_file(path.join("atlas.msgpack")).unwrap();
        write_json_meta(&path, &good);
    }
    open_and_read(&mut dir, &path, "the untouched store").unwrap();
}

const ENV_DEEP_STORE: &str = "ATLAS_IT_DEEP_MSGPACK_STORE";

/// Child body: opens the store named by the environment on a thread with the default
/// 2 MiB stack and prints the outcome.
#[test]
fn deep_msgpack_child_runs_only_in_spawned_processes() {
    let Ok(path) = std::env::var(ENV_DEEP_STORE) else { return };
    let outcome = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || Atlas::open(path).map(drop))
        .unwrap()
        .join()
        .unwrap();
    println!("deep msgpack outcome: {outcome:?}");
    assert!(matches!(outcome, Err(Error::Corrupt { .. })));
}

/// A msgpack metadata file whose store attribute nests `levels` lists deep.
fn deep_msgpack_store(path: &Path, levels: usize) {
    let mut meta = small_store(path);
    meta["attributes"]["deep"] = nested_attr(levels);
    std::fs::remove_file(path.join("atlas.json")).unwrap();
    std::fs::write(path.join("atlas.msgpack"), rmp_serde::to_vec_named(&meta).unwrap()).unwrap();
}

/// Before 4284c3d (nesting bounded at 128), `MessagePack` metadata was parsed with
/// `rmp_serde`'s default limit of 1024 levels, and this store aborted a debug build on a
/// 2 MiB thread with a stack overflow.
#[test]
fn deeply_nested_msgpack_attributes_are_corrupt_not_a_stack_overflow() {
    let mut dir = test_dir!();
    let path = dir.store();
    // 500 levels: 1000 msgpack containers, just under rmp_serde's own limit.
    deep_msgpack_store(&path, 500);
    // In a child process: a stack overflow aborts the whole process.
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "hostile::deep_msgpack_child_runs_only_in_spawned_processes", "--nocapture"])
        .env(ENV_DEEP_STORE, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = dir.while_alone(|| command.output().unwrap());
    assert!(
        output.status.success(),
        "opening the store killed the process: {:?}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|l| l.contains("overflow"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn moderately_nested_msgpack_attributes_are_corrupt() {
    let mut dir = test_dir!();
    let path = dir.store();
    deep_msgpack_store(&path, 100);
    assert_corrupt(open_and_read(&mut dir, &path, "100 msgpack levels"), "100 msgpack levels");
}

#[test]
fn a_metadata_file_claiming_two_gibibytes_is_refused_before_it_is_read() {
    let mut dir = test_dir!();
    let path = dir.store();
    drop(small_store(&path));
    for name in ["atlas.json", "atlas.msgpack.zst"] {
        for name in ["atlas.json", "atlas.msgpack.zst"] {
            let _ = std::fs::remove_file(path.join(name));
        }
        // A sparse file: its length is 2 GiB, none of it is on disk.
        let file = std::fs::File::create(path.join(name)).unwrap();
        file.set_len(2 << 30).unwrap();
        drop(file);
        let (result, largest, took) = largest_allocation_during(&mut dir, || Atlas::open(&path).map(drop));
        assert_err!(result, Error::LimitExceeded { found, .. } if found == 2 << 30);
        assert!(largest < LARGE_BYTES && took < QUICK, "{name}: {largest} bytes, {took:?}");
    }
}

/// Rewrites the index of the fragment at `file` with `patch` (given the file's bytes and
/// the index's offset), then recomputes the index checksum so the change is not caught by
/// it: only the field checks stand between the bytes and the reader.
fn patch_index(file: &Path, patch: impl FnOnce(&mut [u8], usize)) {
    let mut bytes = std::fs::read(file).unwrap();
    let footer = bytes.len() - 40;
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let index_offset = u64_at(&bytes, footer) as usize;
    patch(&mut bytes, index_offset);
    let footer = bytes.len() - 40;
    let (index_offset, index_len) = (u64_at(&bytes, footer) as usize, u64_at(&bytes, footer + 8) as usize);
    if let Some(index) = bytes.get(index_offset..index_offset.saturating_add(index_len)) {
        let sum = xxhash_rust::xxh3::xxh3_64(index);
        bytes[footer + 24..footer + 32].copy_from_slice(&sum.to_le_bytes());
    }
    std::fs::write(file, bytes).unwrap();
}

#[test]
fn verify_reports_entry_statistics_the_chunk_does_not_have_and_blocks_outside_the_grid() {
    let dir = test_dir!();
    let path = dir.store();
    drop(small_store(&path));
    // a[0] holds 1, 2, 3, 4: its entry (the second, after s[0]) now claims a max of 200,
    // plausible enough for `stats` to take, so a query skipping blocks by max would be
    // misled.
    patch_index(&util::fragments(&path)[0], |b, i| put_u64(b, i + ENTRY_LEN_1D + ENTRY_MAX, 200));
    // And the array is cut to its first chunk, leaving a[1]'s block outside the grid,
    // where an honest shrink leaves fill entries only.
    let mut meta = read_json_meta(&path);
    meta["datasets"]["d"]["arrays"]["a"]["shape"] = json!([4]);
    meta["datasets"]["d"]["arrays"]["a"]["stats"] = Value::Null;
    write_json_meta(&path, &meta);
    let report = Atlas::open(&path).unwrap().verify(&mut |_, _| {}).unwrap();
    let bad: Vec<(Vec<u64>, String)> =
        report.bad_blocks.iter().map(|b| (b.coord.clone(), b.error.to_string())).collect();
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad[0].0 == [0] && bad[0].1.contains("says count 4, min 1, max 200") && bad[0].1.contains("max 4"));
    assert!(bad[1].0 == [1] && bad[1].1.contains("outside the array's grid"), "{bad:?}");
    assert!(report.bad_blocks.iter().all(|b| matches!(b.error, Error::Corrupt { .. })));
}

#[test]
fn verify_reports_values_in_a_chunks_padding_and_a_fill_entry_not_of_the_fill_value() {
    // Cut in the metadata alone from 16 to 6, `a`'s second chunk (5..=8) keeps 5 and 6 and
    // holds 7 and 8 in its padding, which a read of the array grown again would show, and
    // which its statistics count: an honest shrink rewrites the chunk with fill there.
    let dir = test_dir!();
    let path = dir.store();
    drop(small_store(&path));
    let mut meta = read_json_meta(&path);
    meta["datasets"]["d"]["arrays"]["a"]["shape"] = json!([6]);
    meta["datasets"]["d"]["arrays"]["a"]["stats"] = Value::Null;
    write_json_meta(&path, &meta);
    let report = Atlas::open(&path).unwrap().verify(&mut |_, _| {}).unwrap();
    let bad: Vec<(Vec<u64>, String)> =
        report.bad_blocks.iter().map(|b| (b.coord.clone(), b.error.to_string())).collect();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].0 == [1] && bad[0].1.contains("values past the array's shape"), "{bad:?}");
    // A fill entry (no bytes) whose checksum is not that of a chunk of the fill value: the
    // entry of a chunk of values, made a fill entry.
    let other = dir.join("fill");
    let store = util::create(&other);
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("f", ArraySpec::new(DType::UInt8, [8]).chunk_shape([4])).unwrap();
    ds.write_array("f", &[0], arr1(&[0u8; 4]).view()).unwrap();
    store.flush().unwrap();
    let report = Atlas::open(&other).unwrap().verify(&mut |_, _| {}).unwrap();
    assert!(report.bad_blocks.is_empty() && report.blocks_checked == 1, "a true fill entry: {report:?}");
    patch_index(&util::fragments(&other)[0], |b, i| put_u64(b, i + ENTRY_CHECKSUM, 0x1234));
    let report = Atlas::open(&other).unwrap().verify(&mut |_, _| {}).unwrap();
    assert_eq!(report.bad_blocks.len(), 1, "{report:?}");
    let error = report.bad_blocks[0].error.to_string();
    assert!(error.contains("a fill entry whose checksum 0x0000000000001234"), "{error}");
}

#[test]
fn verify_reports_persisted_statistics_the_blocks_do_not_merge_to() {
    let dir = test_dir!();
    let path = dir.store();
    let good = small_store(&path);
    let verify = |store: &Atlas| store.verify(&mut |_, _| {}).unwrap();
    assert!(verify(&Atlas::open(&path).unwrap()).bad_stats.is_empty(), "an honest store");
    // A sum rounded otherwise, as builds before the exact merge left sums past 2^53, is no
    // mismatch: sums are not compared.
    let mut meta = good.clone();
    meta["datasets"]["d"]["arrays"]["a"]["stats"]["sum"] = json!(36.5);
    meta["datasets"]["d"]["arrays"]["a"]["stats"]["mean"] = json!(36.5 / 8.0);
    write_json_meta(&path, &meta);
    let store = Atlas::open(&path).unwrap();
    assert_eq!(store.open_dataset("d").unwrap().array_stats("a").unwrap().sum, 36.5, "kept at open");
    assert!(verify(&store).bad_stats.is_empty());
    // Plausible statistics (kept at open, and what `stats` returns) over values 1..=8.
    let mut meta = good.clone();
    meta["datasets"]["d"]["arrays"]["a"]["stats"] =
        json!({"count": 8, "null_count": 8, "min": 100, "max": 200, "sum": 1200.0, "mean": 150.0});
    write_json_meta(&path, &meta);
    let store = Atlas::open(&path).unwrap();
    assert_eq!(store.open_dataset("d").unwrap().array_stats("a").unwrap().max, Some(200u8.into()));
    let report = verify(&store);
    assert!(report.bad_blocks.is_empty(), "{report:?}");
    let [bad] = &report.bad_stats[..] else { panic!("{report:?}") };
    assert_eq!(bad.array, "d/a");
    assert_eq!((bad.persisted.max, bad.merged.max), (Some(200u8.into()), Some(8u8.into())));
    // Statistics that fail their own checks (counts that do not add up to the elements)
    // are forgotten at open, so `stats` merges them again, but verify still reports them.
    let mut meta = good.clone();
    meta["datasets"]["d"]["arrays"]["a"]["stats"]["count"] = json!(99);
    write_json_meta(&path, &meta);
    let store = Atlas::open(&path).unwrap();
    assert_eq!(store.open_dataset("d").unwrap().array_stats("a").unwrap().count, 8, "merged again");
    let report = verify(&store);
    let [bad] = &report.bad_stats[..] else { panic!("{report:?}") };
    assert_eq!((bad.array.as_str(), bad.persisted.count, bad.merged.count), ("d/a", 99, 8));
    assert!(bad.unsound.as_ref().is_some_and(|wrong| wrong.contains("do not add up")), "{bad:?}");
    // A mean that is not sum / count: every field compared agrees, the reason tells. A
    // string array's mean of 0, as earlier builds wrote, is no damage.
    let mut meta = good.clone();
    meta["datasets"]["d"]["arrays"]["a"]["stats"]["mean"] = json!(9.5);
    meta["datasets"]["d"]["arrays"]["s"]["stats"]["mean"] = json!(0.0);
    write_json_meta(&path, &meta);
    let report = verify(&Atlas::open(&path).unwrap());
    let [bad] = &report.bad_stats[..] else { panic!("{report:?}") };
    assert_eq!(bad.array, "d/a");
    assert!(bad.unsound.as_ref().is_some_and(|wrong| wrong.contains("mean")), "{bad:?}");
    // Until a commit writes the file anew, without them.
    let store = Atlas::open(&path).unwrap();
    store.attrs().set("touched", 1).unwrap();
    store.flush().unwrap();
    assert!(verify(&store).bad_stats.is_empty());
    assert!(verify(&Atlas::open(&path).unwrap()).bad_stats.is_empty());
    // The fragments dropped from the metadata: every block is gone, the statistics say 8
    // values of `a` and 2 of `s`.
    let mut meta = good;
    meta["fragments"] = json!([]);
    write_json_meta(&path, &meta);
    let report = verify(&Atlas::open(&path).unwrap());
    let bad: Vec<(&str, u64, u64)> =
        report.bad_stats.iter().map(|b| (b.array.as_str(), b.persisted.count, b.merged.count)).collect();
    assert_eq!(bad, [("d/a", 8, 0), ("d/s", 2, 0)]);
}

#[test]
fn verify_takes_the_statistics_builds_before_nat_was_null_gave_timestamp_blocks() {
    // Those builds counted NaT (i64::MIN) as a value; their blocks keep such statistics
    // until written again, and are not corrupt for it (their timestamp arrays had fill 0).
    let dir = test_dir!();
    let path = dir.store();
    let store = util::create(&path);
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("t", ArraySpec::new(DType::Timestamp, [4]).fill_value(0i64)).unwrap();
    ds.write_array("t", &[0], arr1(&[i64::MIN, 5, 6, 7]).view()).unwrap();
    store.flush().unwrap();
    drop((ds, store));
    let old_sum = i64::MIN as f64 + 18.0;
    patch_index(&util::fragments(&path)[0], |b, i| {
        put_u64(b, i + ENTRY_VALID_COUNT, 4);
        put_u64(b, i + ENTRY_MIN, i64::MIN.cast_unsigned());
        put_u64(b, i + ENTRY_SUM, old_sum.to_bits());
    });
    let store = Atlas::open(&path).unwrap();
    assert_eq!(store.open_dataset("d").unwrap().block_stats("t").unwrap()[0].count, 4, "the old statistics");
    assert!(store.verify(&mut |_, _| {}).unwrap().bad_blocks.is_empty());
}

#[test]
fn verify_takes_bool_bytes_other_than_0_and_1_as_true_under_either_statistics() {
    // Builds before the Python module made bools 0 and 1 could store other bytes, which
    // reads give as true. Their entries counted the bytes themselves (sum 258, max 255);
    // FORMAT.md's count trues (sum 3, max 1). Both are sound; a wrong sum is not.
    let bytes = [1u8, 2, 0, 255];
    let dir = test_dir!();
    for (name, max, sum, sound) in [("spec", 1, 3.0, true), ("legacy", 255, 258.0, true), ("wrong", 1, 100.0, false)] {
        let path = dir.join(name);
        let store = util::create(&path);
        let ds = store.create_dataset("d").unwrap();
        ds.define_array("b", ArraySpec::new(DType::Bool, [4]).codec(Codec::None)).unwrap();
        ds.write_array("b", &[0], arr1(&[true, true, false, true]).view()).unwrap();
        store.flush().unwrap();
        drop((ds, store));
        patch_index(&util::fragments(&path)[0], |b, i| {
            let offset = u64::from_le_bytes(b[i + ENTRY_OFFSET..i + ENTRY_OFFSET + 8].try_into().unwrap()) as usize;
            b[offset..offset + 4].copy_from_slice(&bytes);
            put_u64(b, i + ENTRY_CHECKSUM, xxhash_rust::xxh3::xxh3_64(&bytes));
            put_u64(b, i + ENTRY_MAX, max);
            put_u64(b, i + ENTRY_SUM, f64::to_bits(sum));
        });
        let store = Atlas::open(&path).unwrap();
        let read = store.open_dataset("d").unwrap().read_array::<bool>("b", &[0], &[4]).unwrap();
        assert_eq!(read.into_raw_vec_and_offset().0, [true, true, false, true], "{name}");
        let report = store.verify(&mut |_, _| {}).unwrap();
        assert_eq!(report.bad_blocks.is_empty(), sound, "{name}: {:?}", report.bad_blocks);
    }
}

#[test]
fn a_writer_refuses_a_data_directory_linked_to_another_stores_but_writes_one_linked_elsewhere() {
    // A store whose `data` links to another store's: its first change would remove that
    // store's fragments as orphans (no commit of its own names them).
    let dir = test_dir!();
    let (victim, linked) = (dir.join("victim"), dir.join("linked"));
    drop(small_store(&victim));
    let victims = util::fragments(&victim);
    util::create(&linked).flush().unwrap();
    std::fs::remove_dir(linked.join("data")).unwrap();
    std::os::unix::fs::symlink(victim.join("data"), linked.join("data")).unwrap();
    let store = Atlas::open(&linked).unwrap();
    assert_err!(store.create_dataset("d"), Error::Corrupt { detail, .. } if detail.contains("data directory of the store"));
    assert!(!store.has_pending_changes());
    assert_eq!(util::fragments(&victim), victims, "the other store's fragments are still there");
    Atlas::open(&victim).unwrap().verify(&mut |_, _| {}).map(|r| assert!(r.bad_blocks.is_empty())).unwrap();
    // A link to a directory of its own elsewhere (data kept on another disk) is written.
    let elsewhere = dir.join("disk2/data");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::remove_file(linked.join("data")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, linked.join("data")).unwrap();
    let store = Atlas::open(&linked).unwrap();
    let spec = ArraySpec::new(DType::UInt8, [4]);
    store.create_dataset("d").unwrap().define_array("a", spec).unwrap().write(&[0], arr1(&[1u8, 2]).view()).unwrap();
    store.flush().unwrap();
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 1, "its fragment is there");
    let back = Atlas::open(&linked).unwrap().open_dataset("d").unwrap().read_array::<u8>("a", &[0], &[2]).unwrap();
    assert_eq!(back.into_raw_vec_and_offset().0, [1, 2]);
}

#[test]
fn a_fragment_indexing_one_chunk_twice_is_corrupt_at_open() {
    // a[1]'s entry made to name a[0]: which of the two blocks is a[0] would be an accident
    // of the index order, and the other would be dropped unseen by a compaction.
    let dir = test_dir!();
    let path = dir.store();
    drop(small_store(&path));
    patch_index(&util::fragments(&path)[0], |b, i| put_u64(b, i + 2 * ENTRY_LEN_1D + ENTRY_COORD, 0));
    let err = Atlas::open(&path).unwrap_err();
    assert!(matches!(&err, Error::Corrupt { detail, .. } if detail.contains("chunk [0] is indexed twice")), "{err}");
}

/// Index entry field offsets (docs/FORMAT.md, "Index entry").
const ENTRY_ARRAY_ID: usize = 0;
const ENTRY_OFFSET: usize = 8;
const ENTRY_STORED_LEN: usize = 16;
const ENTRY_RAW_LEN: usize = 24;
const ENTRY_CHECKSUM: usize = 32;
const ENTRY_NDIM: usize = 43;
const ENTRY_VALID_COUNT: usize = 48;
const ENTRY_MIN: usize = 56;
const ENTRY_MAX: usize = 64;
const ENTRY_SUM: usize = 72;
const ENTRY_COORD: usize = 80;
/// Bytes of an entry of a 1-D array.
const ENTRY_LEN_1D: usize = 88;

fn put_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// A change to a fragment image, given the index offset.
type Patch = fn(&mut [u8], usize);

#[test]
fn index_entries_claiming_huge_or_out_of_file_lengths_are_refused_without_allocating() {
    let mut dir = test_dir!();
    let path = dir.store();
    drop(small_store(&path));
    let fragment = util::fragments(&path).remove(0);
    let good = std::fs::read(&fragment).unwrap();
    // Entries in file order: s[0] (encoded when written), a[0], a[1] (small writes,
    // staged and encoded at the flush).
    let cases: [(&str, Patch); 10] = [
        ("two entries naming one block", |b, i| {
            let first_offset = b[i + ENTRY_OFFSET..i + ENTRY_OFFSET + 8].to_vec();
            b[i + ENTRY_LEN_1D + ENTRY_OFFSET..i + ENTRY_LEN_1D + ENTRY_OFFSET + 8].copy_from_slice(&first_offset);
        }),
        ("numeric raw_len 2^60", |b, i| put_u64(b, i + ENTRY_LEN_1D + ENTRY_RAW_LEN, 1 << 60)),
        ("string raw_len 2^60", |b, i| put_u64(b, i + ENTRY_RAW_LEN, 1 << 60)),
        ("string raw_len u64::MAX", |b, i| put_u64(b, i + ENTRY_RAW_LEN, u64::MAX)),
        ("stored_len past the file", |b, i| put_u64(b, i + ENTRY_STORED_LEN, 1 << 20)),
        ("stored_len u64::MAX", |b, i| put_u64(b, i + ENTRY_STORED_LEN, u64::MAX)),
        ("offset past the file", |b, i| put_u64(b, i + ENTRY_OFFSET, 1 << 40)),
        ("ndim 200", |b, i| b[i + ENTRY_NDIM] = 200),
        ("entry_count 2^60", |b, _| {
            let footer = b.len() - 40;
            put_u64(b, footer + 16, 1 << 60);
        }),
        ("index_len 2^62", |b, _| {
            let footer = b.len() - 40;
            put_u64(b, footer + 8, 1 << 62);
        }),
    ];
    for (what, patch) in cases {
        std::fs::write(&fragment, &good).unwrap();
        patch_index(&fragment, patch);
        match open_and_read(&mut dir, &path, what) {
            Err(Error::Corrupt { path: bad, .. }) => assert_eq!(bad, fragment, "{what}"),
            other => panic!("{what}: expected Corrupt naming the fragment, got {other:?}"),
        }
    }
}

#[test]
fn an_index_of_zeros_under_a_valid_footer_is_corrupt_before_room_for_its_entries_is_taken() {
    let mut dir = test_dir!();
    let path = dir.store();
    drop(small_store(&path));
    let fragment = util::fragments(&path).remove(0);
    let mut bytes = std::fs::read(&fragment).unwrap();
    let mut footer = bytes.split_off(bytes.len() - 40);
    bytes.truncate(usize::try_from(u64::from_le_bytes(footer[..8].try_into().unwrap())).unwrap());
    // 2^19 entries of zeros (40 MiB): a checksum anyone can compute, and an entry count
    // that fits the bytes; held in memory, the entries would take over 16 MiB.
    let zeros = vec![0u8; 80 << 19];
    put_u64(&mut footer, 8, zeros.len() as u64);
    put_u64(&mut footer, 16, 1 << 19);
    put_u64(&mut footer, 24, xxhash_rust::xxh3::xxh3_64(&zeros));
    bytes.extend(zeros);
    bytes.extend(footer);
    let mut meta = read_json_meta(&path);
    meta["fragments"][0]["len_bytes"] = json!(bytes.len());
    write_json_meta(&path, &meta);
    std::fs::write(&fragment, bytes).unwrap();
    match open_and_read(&mut dir, &path, "an index of zeros") {
        Err(Error::Corrupt { path: bad, .. }) => assert_eq!(bad, fragment),
        other => panic!("expected Corrupt naming the fragment, got {other:?}"),
    }
}

/// `MAX_CHUNK_BYTES` (docs/FORMAT.md, "Limits and name rules").
const MAX_CHUNK_BYTES: u64 = 256 << 20;

#[test]
fn a_block_claiming_the_largest_raw_length_costs_at_most_one_chunk_buffer() {
    // A string block's raw length is not fixed by the schema: up to MAX_CHUNK_BYTES is
    // allocated before its stream turns out short (documented bound, see GUARANTEES.md);
    // one byte more is refused before any allocation.
    let mut dir = test_dir!();
    let path = dir.store();
    drop(small_store(&path));
    let fragment = util::fragments(&path).remove(0);
    let good = std::fs::read(&fragment).unwrap();
    for (raw_len, bound) in
        [(MAX_CHUNK_BYTES, MAX_CHUNK_BYTES as usize + (1 << 20)), (MAX_CHUNK_BYTES + 1, LARGE_BYTES)]
    {
        std::fs::write(&fragment, &good).unwrap();
        patch_index(&fragment, |b, i| put_u64(b, i + ENTRY_RAW_LEN, raw_len)); // s[0]
        let (result, largest, took) = largest_allocation_during(&mut dir, || {
            Atlas::open(&path).and_then(|s| s.open_dataset("d")?.read_strings("s", &[0], &[4]))
        });
        assert_err!(result, Error::Corrupt { .. });
        assert!(largest <= bound && took < QUICK, "raw length {raw_len}: {largest} bytes, {took:?}");
    }
}

#[test]
fn a_lowered_chunk_limit_refuses_a_string_block_claiming_more_at_open() {
    // A string block's raw length is not fixed by the schema, so the limit is checked
    // against the index entries of string arrays when the commit is loaded.
    use atlas::{Limits, OpenOptions};
    let dir = test_dir!();
    let path = dir.store();
    drop(small_store(&path));
    let fragment = util::fragments(&path).remove(0);
    patch_index(&fragment, |b, i| put_u64(b, i + ENTRY_RAW_LEN, 1 << 20)); // s[0]
    let mut limits = Limits::default();
    limits.max_chunk_bytes = 64 << 10;
    match Atlas::open_with(&path, &OpenOptions::with_limits(limits)) {
        Err(Error::LimitExceeded { path: bad, what, limit, found }) => {
            assert_eq!((bad, limit, found), (fragment, 64 << 10, 1 << 20));
            assert!(what.contains("d/s"), "{what}");
        }
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    // Within the format's maximum and the default limit, the block opens and is corrupt
    // when read.
    let read = Atlas::open(&path).unwrap().open_dataset("d").unwrap().read_strings("s", &[0], &[4]);
    assert_err!(read, Error::Corrupt { .. });
}

#[test]
fn a_lowered_chunk_limit_counts_a_string_arrays_offset_table() {
    use atlas::{Limits, OpenOptions};
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let spec = ArraySpec::new(DType::String, [1 << 20]).chunk_shape([1 << 16]);
    store.create_dataset("d").unwrap().define_array("s", spec).unwrap();
    store.flush().unwrap();
    let mut limits = Limits::default();
    limits.max_chunk_bytes = 64 << 10; // under the 256 KiB offset table of every block
    match Atlas::open_with(dir.store(), &OpenOptions::with_limits(limits)) {
        Err(Error::LimitExceeded { what, found, .. }) => {
            assert!(what.contains("d/s"), "{what}");
            assert_eq!(found, 4 * ((1 << 16) + 1), "one offset more than strings");
        }
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
}

#[test]
fn a_refresh_to_hand_written_metadata_that_takes_back_an_array_id_is_refused_as_an_open_is() {
    // The blocks a handle indexed were checked against the commit it read; a commit that
    // allocates fewer ids makes a deleted array's blocks part of the next array defined.
    let dir = test_dir!();
    let path = dir.store();
    let writer = util::create(&path);
    let ds = writer.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Float64, [4])).unwrap();
    ds.define_array("b", ArraySpec::new(DType::Float64, [4])).unwrap();
    ds.write_array("b", &[0], arr1(&[1.0, 2.0, 3.0, 4.0]).view()).unwrap();
    writer.flush().unwrap();
    ds.delete_array("b").unwrap();
    writer.flush().unwrap();
    let reader = Atlas::open(&path).unwrap();
    ds.write_array("a", &[0], arr1(&[5.0]).view()).unwrap();
    writer.flush().unwrap();
    let mut meta = read_json_meta(&path);
    meta["next_array_id"] = 1.into();
    write_json_meta(&path, &meta);
    assert_err!(Atlas::open(&path), Error::Corrupt { detail, .. } if detail.contains("never allocated"));
    assert_err!(reader.refresh(), Error::Corrupt { detail, .. } if detail.contains("never allocated"));
}

#[test]
fn a_refresh_holds_a_new_fragments_string_blocks_to_the_chunk_limit() {
    use atlas::{Limits, OpenOptions};
    let dir = test_dir!();
    let writer = util::create(&dir.store());
    let ds = writer.create_dataset("d").unwrap();
    ds.define_array("s", ArraySpec::new(DType::String, [8]).chunk_shape([4])).unwrap();
    ds.write_strings("s", &[0], ndarray::Array1::from_elem(4, "short").view()).unwrap();
    writer.flush().unwrap();
    let mut limits = Limits::default();
    limits.max_chunk_bytes = 1024;
    let reader = Atlas::open_with(dir.store(), &OpenOptions::with_limits(limits)).unwrap();
    // Another writer's flush adds a fragment with a block of 4 KiB of text.
    ds.write_strings("s", &[4], ndarray::Array1::from_elem(4, "x".repeat(1000)).view()).unwrap();
    writer.flush().unwrap();
    assert_err!(reader.refresh(), Error::LimitExceeded { limit: 1024, .. });
    // A flush within the limit is taken.
    ds.write_strings("s", &[4], ndarray::Array1::from_elem(4, "y").view()).unwrap();
    writer.flush().unwrap();
    reader.refresh().unwrap();
    let read = reader.open_dataset("d").unwrap().read_strings("s", &[2], &[4]).unwrap();
    assert_eq!(read.iter().map(String::as_str).collect::<Vec<_>>(), ["short", "short", "y", "y"]);
}

#[test]
fn verifying_a_fill_entry_of_a_large_string_chunk_builds_no_chunk() {
    let mut dir = test_dir!();
    let path = dir.store();
    let store = util::create(&path);
    let ds = store.create_dataset("d").unwrap();
    let elems = 1usize << 20; // a chunk of fill strings would be 24 MiB of `String`s
    ds.define_array("s", ArraySpec::new(DType::String, [elems as u64]).chunk_shape([elems as u64])).unwrap();
    ds.write_strings("s", &[0], ndarray::Array1::from_elem(elems, "").view()).unwrap();
    store.flush().unwrap();
    let blocks = store.array_blocks("d", "s").unwrap();
    assert_eq!(blocks.iter().map(|b| b.is_fill).collect::<Vec<_>>(), [true], "chunk 0 is a fill entry");
    let (report, largest, _) = largest_allocation_during(&mut dir, || store.verify(&mut |_, _| {}).unwrap());
    assert_eq!(report.bad_blocks.len(), 0);
    assert!(largest < LARGE_BYTES, "verify allocated {largest} bytes at once");
    // Its raw length is that of 2^20 empty strings' offsets: any other is reported.
    drop((ds, store));
    patch_index(&util::fragments(&path).remove(0), |b, i| put_u64(b, i + ENTRY_RAW_LEN, u64::MAX));
    let report = Atlas::open(&path).unwrap().verify(&mut |_, _| {}).unwrap();
    assert_eq!(report.bad_blocks.len(), 1, "{:?}", report.bad_blocks);
    assert!(matches!(report.bad_blocks[0].error, Error::Corrupt { .. }));
}

/// Opens the store at `path` on another thread and returns what it gave, failing the test
/// if it has not returned within 10 s.
fn open_within_a_while(path: &Path) -> Result<(), Error> {
    let (sender, receiver) = std::sync::mpsc::channel();
    let path = path.to_path_buf();
    std::thread::spawn(move || sender.send(Atlas::open(&path).and_then(|s| dump(&s)).map(drop)));
    receiver.recv_timeout(Duration::from_secs(10)).expect("the open hangs")
}

#[test]
fn a_fifo_in_place_of_a_store_file_is_an_error_not_a_hang() {
    let dir = test_dir!();
    let path = dir.store();
    drop(small_store(&path));
    let mkfifo = |file: &Path| {
        std::fs::remove_file(file).unwrap();
        assert!(std::process::Command::new("mkfifo").arg(file).status().unwrap().success());
    };
    let fragment = util::fragments(&path).remove(0);
    mkfifo(&fragment);
    assert_err!(open_within_a_while(&path), Error::Corrupt { .. });
    mkfifo(&path.join("atlas.json"));
    assert_err!(open_within_a_while(&path), Error::Corrupt { .. });

    // The writer lock's file: a store opens (readers take no lock), and its first change
    // is refused.
    let path = dir.join("lock");
    drop(small_store(&path));
    let lock = path.join("atlas.lock");
    let _ = std::fs::remove_file(&lock);
    assert!(std::process::Command::new("mkfifo").arg(&lock).status().unwrap().success());
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(Atlas::open(&path).and_then(|store| store.create_dataset("x")).map(drop)));
    let changed = receiver.recv_timeout(Duration::from_secs(10)).expect("the change hangs");
    assert!(matches!(changed, Err(Error::Io { .. } | Error::Corrupt { .. })), "{changed:?}");
}

#[test]
fn the_statistics_atlas_writes_pass_the_entry_check_for_every_dtype() {
    let dir = test_dir!();
    let path = dir.store();
    let store = util::create(&path);
    let ds = store.create_dataset("d").unwrap();
    let spec = |dtype| ArraySpec::new(dtype, [5]).chunk_shape([2]);
    ds.define_array("i8", spec(DType::Int8)).unwrap().write(&[0], arr1(&[-128i8, 127, -1, 0, 5]).view()).unwrap();
    ds.define_array("u64", spec(DType::UInt64)).unwrap().write(&[0], arr1(&[u64::MAX, 1, 0, 7, 2]).view()).unwrap();
    let f32s = arr1(&[f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MAX, -0.0]);
    ds.define_array("f32", spec(DType::Float32).fill_value(f64::NAN)).unwrap().write(&[0], f32s.view()).unwrap();
    let f64s = arr1(&[f64::MIN_POSITIVE, f64::NAN, -1e300, 0.0, 1.0]);
    ds.define_array("f64", spec(DType::Float64)).unwrap().write(&[0], f64s.view()).unwrap();
    let times = arr1(&[i64::MIN + 1, i64::MAX, -1, 0, 3]);
    ds.define_array("t", spec(DType::Timestamp).fill_value(i64::MIN)).unwrap().write(&[0], times.view()).unwrap();
    let flags = arr1(&[true, false, true, true, false]);
    ds.define_array("b", spec(DType::Bool).fill_value(true)).unwrap().write(&[0], flags.view()).unwrap();
    ds.define_array("s", spec(DType::String))
        .unwrap()
        .write_strings(&[0], arr1(&["a", "", "c", "d", "e"]).view())
        .unwrap();
    store.flush().unwrap();
    let ds = Atlas::open(&path).unwrap().open_dataset("d").unwrap();
    for name in ["i8", "u64", "f32", "f64", "t", "b", "s"] {
        let blocks = ds.block_stats(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(blocks.len(), 3, "{name}");
        assert!(ds.array_meta(name).unwrap().stats.is_some(), "{name}: persisted at the commit");
    }
    let i8_stats = ds.array_stats("i8").unwrap();
    assert_eq!((i8_stats.min, i8_stats.max), (Some(Scalar::Int(-128)), Some(Scalar::Int(127))));
}

#[test]
fn a_bool_block_holding_bytes_above_one_has_a_max_of_true() {
    // Builds before the Python module made bool bytes 0 and 1 could store a byte of 255,
    // which reads as true: its statistics say so rather than refusing the block.
    let dir = test_dir!();
    let path = dir.store();
    let store = util::create(&path);
    let ds = store.create_dataset("d").unwrap();
    let flags = ds.define_array("b", ArraySpec::new(DType::Bool, [4]).chunk_shape([4])).unwrap();
    flags.write(&[0], arr1(&[true, false, true, true]).view()).unwrap();
    store.flush().unwrap();
    drop(store);
    patch_index(&util::fragments(&path).remove(0), |b, i| put_u64(b, i + ENTRY_MAX, 255));
    let ds = Atlas::open(&path).unwrap().open_dataset("d").unwrap();
    let blocks = ds.block_stats("b").unwrap();
    assert_eq!((blocks[0].min, blocks[0].max), (Some(1u64.into()), Some(1u64.into())));
}

#[test]
fn index_entry_stats_that_cannot_describe_their_block_are_corrupt_reported_by_verify_and_never_persisted() {
    // a (uint8, chunks of 4) holds 1..=8 in its first two chunks; its entries come after s[0]'s.
    let patches: [(&str, Patch); 7] = [
        ("valid counts that overflow", |b, i| {
            put_u64(b, i + ENTRY_LEN_1D + ENTRY_VALID_COUNT, 1 << 63);
            put_u64(b, i + 2 * ENTRY_LEN_1D + ENTRY_VALID_COUNT, 1 << 63);
        }),
        ("more valid values than elements", |b, i| put_u64(b, i + ENTRY_LEN_1D + ENTRY_VALID_COUNT, 5)),
        ("a min out of uint8", |b, i| put_u64(b, i + ENTRY_LEN_1D + ENTRY_MIN, 1000)),
        ("a min above the max", |b, i| put_u64(b, i + ENTRY_LEN_1D + ENTRY_MIN, 200)),
        ("a sum below 0 for uint8", |b, i| put_u64(b, i + ENTRY_LEN_1D + ENTRY_SUM, (-1e300f64).to_bits())),
        ("an infinite sum for uint8", |b, i| put_u64(b, i + ENTRY_LEN_1D + ENTRY_SUM, f64::INFINITY.to_bits())),
        ("a sum without valid values", |b, i| {
            put_u64(b, i + ENTRY_LEN_1D + ENTRY_VALID_COUNT, 0);
            put_u64(b, i + ENTRY_LEN_1D + ENTRY_MIN, 0);
            put_u64(b, i + ENTRY_LEN_1D + ENTRY_MAX, 0);
        }),
    ];
    for (what, patch) in patches {
        let dir = test_dir!();
        let path = dir.store();
        let mut meta = small_store(&path);
        patch_index(&util::fragments(&path).remove(0), patch);
        // Without persisted stats, `array_stats` merges the entries.
        meta["datasets"]["d"]["arrays"]["a"]["stats"] = Value::Null;
        write_json_meta(&path, &meta);
        let store = Atlas::open(&path).unwrap();
        let ds = store.open_dataset("d").unwrap();
        let outcome = std::panic::catch_unwind(|| (ds.array_stats("a"), ds.array("a").unwrap().block_stats()));
        let (stats, blocks) = outcome.unwrap_or_else(|_| panic!("{what}: stats panicked on index entries from disk"));
        for err in [stats.unwrap_err(), blocks.unwrap_err()] {
            assert!(
                matches!(&err, Error::Corrupt { detail, .. } if detail.contains("statistics of block")),
                "{what}: {err}"
            );
        }
        // `verify` reports the block whose entry holds them, and only that one or two.
        let report = store.verify(&mut |_, _| {}).unwrap();
        assert!(report.bad_blocks.iter().any(|bad| bad.coord == [0]), "{what}: {:?}", report.bad_blocks);
        for bad in &report.bad_blocks {
            assert!(bad.array == "d/a" && bad.coord.len() == 1 && bad.coord[0] < 2, "{what}: {bad:?}");
            assert!(matches!(&bad.error, Error::Corrupt { detail, .. } if detail.contains("statistics of block")));
        }
        // A commit that changes the array persists no stats for it rather than failing.
        ds.write_array("a", &[15], arr1(&[9u8]).view()).unwrap();
        store.flush().unwrap();
        assert_eq!(ds.array_meta("a").unwrap().stats, None, "{what}");
        assert_eq!(ds.read_array::<u8>("a", &[15], &[1]).unwrap()[0], 9, "{what}");
    }
}

#[test]
fn recompress_and_compact_refuse_to_copy_unsound_block_statistics() {
    // Both carry a block's index-entry statistics over to its new entry (compact without
    // decoding the block), so unchecked they would persist damage under a fresh checksum.
    let dir = test_dir!();
    let path = dir.store();
    let mut meta = small_store(&path);
    patch_index(&util::fragments(&path).remove(0), |b, i| put_u64(b, i + ENTRY_LEN_1D + ENTRY_MIN, 200));
    meta["datasets"]["d"]["arrays"]["a"]["stats"] = Value::Null;
    write_json_meta(&path, &meta);
    let store = Atlas::open(&path).unwrap();
    let ds = store.open_dataset("d").unwrap();
    // A second fragment that leaves the first one's chunk 1 dead, so compact copies.
    ds.write_array("a", &[4], arr1(&[9u8, 9, 9, 9]).view()).unwrap();
    store.flush().unwrap();
    let unsound = |err: &Error| matches!(err, Error::Corrupt { detail, .. } if detail.contains("statistics of block"));
    let err = store.recompress_array("d", "a", Codec::Lz4, Some(Shuffle::Off)).unwrap_err();
    assert!(unsound(&err), "recompress: {err}");
    let err = store.compact().unwrap_err();
    assert!(unsound(&err), "compact: {err}");
    assert_eq!(ds.read_array::<u8>("a", &[0], &[8]).unwrap(), arr1(&[1u8, 2, 3, 4, 9, 9, 9, 9]).into_dyn());
    assert_eq!(util::fragments(&path).len(), 2, "nothing was committed");
}

#[test]
fn a_fill_entry_with_statistics_other_than_zero_is_corrupt_and_reported_by_verify() {
    // Chunk 0 holds only the fill value (a fill entry, statistics all 0), chunk 1 data.
    let dir = test_dir!();
    let path = dir.store();
    let store = util::create(&path);
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::UInt8, [8]).chunk_shape([4])).unwrap();
    ds.write_array("a", &[0], arr1(&[0u8, 0, 0, 0, 1, 2, 3, 4]).view()).unwrap();
    store.flush().unwrap();
    drop(store);
    let mut meta = read_json_meta(&path);
    patch_index(&util::fragments(&path).remove(0), |b, i| {
        let fill_entry = (0..2)
            .map(|k| i + k * ENTRY_LEN_1D)
            .find(|&at| b[at + ENTRY_STORED_LEN..at + ENTRY_STORED_LEN + 8] == [0; 8])
            .expect("chunk 0 is a fill entry");
        put_u64(b, fill_entry + ENTRY_VALID_COUNT, 1);
    });
    meta["datasets"]["d"]["arrays"]["a"]["stats"] = Value::Null;
    write_json_meta(&path, &meta);
    let store = Atlas::open(&path).unwrap();
    let ds = store.open_dataset("d").unwrap();
    let err = ds.array_stats("a").unwrap_err();
    assert!(matches!(&err, Error::Corrupt { detail, .. } if detail.contains("a fill entry's are not all 0")), "{err}");
    let report = store.verify(&mut |_, _| {}).unwrap();
    let bad: Vec<_> = report.bad_blocks.iter().map(|bad| (bad.array.as_str(), bad.coord.clone())).collect();
    assert_eq!(bad, [("d/a", vec![0])]);
    assert_eq!(
        ds.read_array::<u8>("a", &[0], &[8]).unwrap(),
        arr1(&[0u8, 0, 0, 0, 1, 2, 3, 4]).into_dyn(),
        "data reads"
    );
}

#[test]
fn a_string_block_with_a_min_max_or_sum_other_than_zero_is_corrupt_and_reported_by_verify() {
    // FORMAT: a string entry's min, max and sum are always 0; one that is not would count
    // into the array's sum. s[0] is the fragment's first entry (see the test above).
    for field in [ENTRY_MIN, ENTRY_MAX, ENTRY_SUM] {
        let dir = test_dir!();
        let path = dir.store();
        let mut meta = small_store(&path);
        patch_index(&util::fragments(&path).remove(0), |b, i| put_u64(b, i + field, 5f64.to_bits()));
        meta["datasets"]["d"]["arrays"]["s"]["stats"] = Value::Null;
        write_json_meta(&path, &meta);
        let store = Atlas::open(&path).unwrap();
        let ds = store.open_dataset("d").unwrap();
        let err = ds.array_stats("s").unwrap_err();
        let expected = "a string block's min, max and sum are not all 0";
        assert!(matches!(&err, Error::Corrupt { detail, .. } if detail.contains(expected)), "{field}: {err}");
        let report = store.verify(&mut |_, _| {}).unwrap();
        let bad: Vec<_> = report.bad_blocks.iter().map(|bad| (bad.array.as_str(), bad.coord.clone())).collect();
        assert_eq!(bad, [("d/s", vec![0])], "{field}");
        assert_eq!(
            ds.read_strings("s", &[0], &[2]).unwrap(),
            arr1(&["one", "two"]).map(ToString::to_string).into_dyn(),
            "data reads"
        );
    }
}

#[test]
fn entries_past_the_arrays_grid_count_in_no_statistics() {
    // Entries past the array's shape (a shrink leaves fill entries there) are not the
    // array's, so unsound statistics there fail no statistics call. Here a[1] gets a min
    // above its max and the array is cut to its first chunk by hand.
    let dir = test_dir!();
    let path = dir.store();
    let mut meta = small_store(&path);
    patch_index(&util::fragments(&path).remove(0), |b, i| put_u64(b, i + 2 * ENTRY_LEN_1D + ENTRY_MIN, 200));
    meta["datasets"]["d"]["arrays"]["a"]["shape"] = serde_json::json!([4]);
    meta["datasets"]["d"]["arrays"]["a"]["stats"] = Value::Null;
    write_json_meta(&path, &meta);
    let store = Atlas::open(&path).unwrap();
    let ds = store.open_dataset("d").unwrap();
    let stats = ds.array_stats("a").unwrap();
    assert_eq!((stats.count, stats.sum), (4, 10.0));
    let blocks = ds.block_stats("a").unwrap();
    assert_eq!(blocks.iter().map(|b| b.coord.clone()).collect::<Vec<_>>(), [vec![0]]);
    // `verify` reports the block there, which no honest shrink leaves (it leaves fill
    // entries), before its statistics.
    let bad = store.verify(&mut |_, _| {}).unwrap().bad_blocks;
    assert_eq!(bad.len(), 1);
    assert!(bad[0].coord == [1] && bad[0].error.to_string().contains("outside the array's grid"), "{bad:?}");
}

#[test]
fn a_block_of_an_array_id_never_allocated_is_corrupt_not_the_next_arrays_data() {
    // Arrays a and s hold ids 0 and 1: a block of id 2 would read as the next array's.
    let dir = test_dir!();
    let path = dir.store();
    let meta = small_store(&path);
    assert_eq!(meta["next_array_id"], 2);
    let fragment = util::fragments(&path).remove(0);
    patch_index(&fragment, |b, i| put_u64(b, i + ENTRY_ARRAY_ID, 2));
    let err = Atlas::open(&path).unwrap_err();
    assert!(matches!(&err, Error::Corrupt { detail, .. } if detail.contains("array id 2, never allocated")), "{err}");
}

#[test]
fn verify_reports_a_fill_entry_whose_raw_length_every_read_refuses() {
    let dir = test_dir!();
    let path = dir.store();
    let store = util::create(&path);
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::UInt8, [8]).chunk_shape([4])).unwrap();
    ds.write_array("a", &[0], arr1(&[9u8, 9, 9, 9, 1, 2, 3, 4]).view()).unwrap();
    store.flush().unwrap();
    ds.write_array("a", &[0], arr1(&[0u8, 0, 0, 0]).view()).unwrap(); // over a block: a fill entry
    store.flush().unwrap();
    drop((ds, store));
    let fragment = util::fragments(&path).remove(1);
    patch_index(&fragment, |b, i| put_u64(b, i + ENTRY_RAW_LEN, 5));
    let store = Atlas::open(&path).unwrap();
    let read = store.open_dataset("d").unwrap().read_array::<u8>("a", &[0], &[4]);
    assert!(matches!(read, Err(Error::Corrupt { .. })), "{read:?}");
    let report = store.verify(&mut |_, _| {}).unwrap();
    assert_eq!(report.blocks_checked, 2);
    assert_eq!(report.bad_blocks.len(), 1, "{:?}", report.bad_blocks);
    assert_eq!(report.bad_blocks[0].coord, [0]);
    assert!(matches!(report.bad_blocks[0].error, Error::Corrupt { .. }));
}

#[test]
fn index_entries_with_foreign_or_extreme_coordinates_give_no_panic_when_the_array_shrinks() {
    // Index coordinates are not checked against the schema at open (docs/FORMAT.md): an
    // entry of `a` may claim chunk u64::MAX, or carry the two coordinates of `b`'s chunks.
    let dir = test_dir!();
    let path = dir.store();
    let store = util::create(&path);
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::UInt8, [16]).chunk_shape([4])).unwrap();
    ds.write_array("a", &[0], arr1(&[1u8, 2, 3, 4, 5, 6, 7, 8]).view()).unwrap();
    ds.define_array("b", ArraySpec::new(DType::UInt8, [4, 4]).chunk_shape([2, 2])).unwrap();
    ds.write_array("b", &[0, 0], ndarray::Array2::<u8>::ones((4, 4)).view()).unwrap();
    store.flush().unwrap();
    drop((ds, store));
    // Entries in file order: a[0], a[1], then b's four (2-D, 8 bytes longer). a[1] claims
    // chunk u64::MAX; a[0] and b[0, 0] swap arrays, so each has coordinates of the other's
    // length.
    patch_index(&util::fragments(&path).remove(0), |b, i| {
        put_u64(b, i + ENTRY_ARRAY_ID, 1);
        put_u64(b, i + ENTRY_LEN_1D + ENTRY_COORD, u64::MAX);
        put_u64(b, i + 2 * ENTRY_LEN_1D + ENTRY_ARRAY_ID, 0);
    });
    let outcome = std::panic::catch_unwind(|| {
        let store = Atlas::open(&path)?;
        let ds = store.open_dataset("d")?;
        let (a, b) = (ds.array("a")?, ds.array("b")?);
        a.resize(&[2])?;
        a.resize(&[16])?;
        b.resize(&[1, 4])?;
        b.resize(&[4, 4])?;
        store.flush()?;
        Ok::<_, Error>((a.read::<u8>(&[0], &[16])?, b.read::<u8>(&[0, 0], &[4, 4])?))
    });
    let (a, b) = outcome.unwrap_or_else(|_| panic!("shrinking arrays with hostile index entries panicked")).unwrap();
    assert_eq!(a, ndarray::Array1::<u8>::zeros(16).into_dyn(), "a's chunks left it; the rest is fill");
    let mut b_expected = ndarray::Array2::<u8>::zeros((4, 4));
    b_expected.slice_mut(ndarray::s![0, 2..]).fill(1);
    assert_eq!(b, b_expected.into_dyn(), "b keeps row 0 of its own chunks");
}

/// Dataset and array names that must never be accepted: path tricks, NUL and other
/// control characters, over-long names, leading `.` or `_`.
fn hostile_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "",
        ".",
        "..",
        "../x",
        "..\\x",
        "/x",
        "/etc/passwd",
        "a/b",
        "a\\b",
        "C:\\x",
        "C:/x",
        "\\\\server\\share",
        "nul\0",
        "\0",
        "a\0b",
        "tab\t",
        "line\nfeed",
        "cr\r",
        "esc\x1b",
        "del\x7f",
        "nel\u{85}",
        "bell\x07",
        ".hidden",
        "_private",
        "./x",
        "x/..",
        "x/.",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect();
    names.push("a".repeat(10 * 1024));
    names.push("/".repeat(300));
    names.push("\u{e9}".repeat(200)); // 400 bytes of UTF-8
    names
}

/// Attribute keys that must be refused (docs/FORMAT.md, "Limits and name rules").
fn hostile_attribute_keys() -> Vec<String> {
    let mut keys: Vec<String> = ["", "nul\0", "\0", "tab\t", "line\nfeed", "esc\x1b", "del\x7f", "nel\u{85}"]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
    keys.push("k".repeat(10 * 1024));
    keys
}

/// Names of every entry under `root`, recursively.
fn entry_names(root: &Path) -> Vec<String> {
    util::tree(root).into_keys().collect()
}

#[test]
fn hostile_names_are_refused_everywhere_and_no_file_appears_outside_the_store() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let array = ds.define_array("a", ArraySpec::new(DType::Int8, [2])).unwrap();
    store.flush().unwrap();
    let before = entry_names(dir.path());
    for name in hostile_names() {
        assert_err!(store.create_dataset(&name), Error::InvalidName { kind: EntityKind::Dataset, .. });
        assert_err!(store.open_dataset(&name), Error::NotFound { .. } | Error::InvalidName { .. });
        assert_err!(store.delete_dataset(&name), Error::NotFound { .. } | Error::InvalidName { .. });
        assert_err!(
            ds.define_array(&name, ArraySpec::new(DType::Int8, [1])),
            Error::InvalidName { kind: EntityKind::Array, .. }
        );
        assert_err!(ds.write_array(&name, &[0], arr1(&[1i8]).view()), Error::NotFound { .. });
    }
    for key in hostile_attribute_keys() {
        for attrs in [store.attrs(), ds.attrs(), array.attrs()] {
            assert_err!(attrs.set(&key, 1), Error::InvalidName { kind: EntityKind::Attribute, .. });
        }
    }
    assert!(!store.has_pending_changes(), "a refused name started a change");
    // Path-like attribute keys are refused too; netCDF-style keys are fine.
    for key in ["..", "/x", "a/b", "C:\\x", "../../escape"] {
        assert_err!(array.attrs().set(key, key), Error::InvalidName { kind: EntityKind::Attribute, .. });
    }
    array.attrs().set("_FillValue", 1).unwrap();
    store.flush().unwrap();
    drop((array, ds, store));
    assert_eq!(entry_names(dir.path()), before, "a file appeared or vanished");
    let reopened = Atlas::open(dir.store()).unwrap();
    let attrs = reopened.open_dataset("d").unwrap().array("a").unwrap().attrs().all().unwrap();
    assert_eq!(attrs.get("_FillValue"), Some(&AttrValue::from(1)));
}

#[test]
fn hostile_names_written_into_the_metadata_by_hand_are_corrupt() {
    let mut dir = test_dir!();
    let path = dir.store();
    let good = small_store(&path);
    let before = entry_names(dir.path());
    let mut cases: Vec<(String, Value)> = Vec::new();
    for name in hostile_names() {
        let mut meta = good.clone();
        let dataset = meta["datasets"]["d"].clone();
        meta["datasets"][&name] = dataset.clone();
        cases.push((format!("dataset {name:?}"), meta.clone()));
        let mut meta = good.clone();
        let array = meta["datasets"]["d"]["arrays"]["a"].clone();
        meta["datasets"]["d"]["arrays"].as_object_mut().unwrap().remove("a");
        meta["datasets"]["d"]["arrays"][&name] = array;
        cases.push((format!("array {name:?}"), meta));
    }
    for key in hostile_attribute_keys() {
        let mut meta = good.clone();
        meta["attributes"][&key] = json!({"type": "int", "value": 1});
        cases.push((format!("attribute {key:?}"), meta));
    }
    for fragment in ["../atlas.json", "../../escape.frag", "/etc/passwd", "x.frag", "0000000000000001-zz.frag"] {
        let mut meta = good.clone();
        meta["fragments"][0]["name"] = json!(fragment);
        cases.push((format!("fragment {fragment:?}"), meta));
    }
    for (what, meta) in cases {
        write_json_meta(&path, &meta);
        assert_corrupt(open_and_read(&mut dir, &path, &what), &what);
        // A refused store cannot be written either, so nothing can be created or removed.
        assert!(Atlas::open(&path).is_err());
    }
    write_json_meta(&path, &good);
    assert_eq!(entry_names(dir.path()), before);
    let store = Atlas::open(&path).unwrap();
    store.create_dataset("after").unwrap();
    store.flush().unwrap();
    drop(store);
    assert_eq!(entry_names(dir.path()), before, "the next writer touched files it should not");
}

#[test]
fn a_store_created_with_a_hostile_path_component_stays_where_the_path_says() {
    // Atlas takes store paths from its caller as they are; names inside a store are what
    // it guards. A store path with `..` resolves like any path: here, into the test dir.
    let dir = test_dir!();
    std::fs::create_dir(dir.join("sub")).unwrap();
    let store = Atlas::create(dir.join("sub/../inner"), StoreConfig::default()).unwrap();
    store.create_dataset("d").unwrap();
    store.flush().unwrap();
    assert!(dir.join("inner/atlas.json").exists());
    assert_eq!(util::names(&dir.join("sub")), Vec::<String>::new());
}

#[test]
fn lowered_limits_refuse_a_large_metadata_file_and_large_chunks_before_reading_them() {
    use atlas::{Limits, OpenOptions};
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("big", ArraySpec::new(atlas::DType::Float64, [1 << 16]).chunk_shape([1 << 16])).unwrap();
    store.attrs().set("note", "x".repeat(4096)).unwrap();
    store.flush().unwrap();
    drop((ds, store));

    let mut limits = Limits::default();
    limits.max_meta_bytes = 1024;
    let refused = Atlas::open_with(dir.store(), &OpenOptions::with_limits(limits));
    assert_err!(refused, Error::LimitExceeded { limit: 1024, .. });
    let mut limits = Limits::default();
    limits.max_chunk_bytes = 64 << 10;
    match Atlas::open_with(dir.store(), &OpenOptions::with_limits(limits)) {
        Err(Error::LimitExceeded { what, limit, found, .. }) => {
            assert!(what.contains("d/big"), "{what}");
            assert_eq!((limit, found), (64 << 10, 8 << 16));
        }
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    // The defaults open it.
    Atlas::open_with(dir.store(), &OpenOptions::default()).unwrap();
}

#[test]
fn a_commit_over_the_handles_metadata_limit_is_refused_and_the_handle_can_shrink_it() {
    use atlas::{Limits, OpenOptions};
    let dir = test_dir!();
    util::create(&dir.store());
    let mut limits = Limits::default();
    limits.max_meta_bytes = 2048;
    let store = Atlas::open_with(dir.store(), &OpenOptions::with_limits(limits)).unwrap();
    store.attrs().set("note", "x".repeat(4096)).unwrap();
    assert_err!(store.flush(), Error::LimitExceeded { limit: 2048, .. });
    // Nothing was committed, and the pending change can be taken back and redone smaller.
    assert_eq!(Atlas::open_with(dir.store(), &OpenOptions::with_limits(limits)).unwrap().generation(), 0);
    store.attrs().set("note", "short").unwrap();
    store.flush().unwrap();
    let reopened = Atlas::open_with(dir.store(), &OpenOptions::with_limits(limits)).unwrap();
    assert_eq!(reopened.attrs().get("note").unwrap(), Some("short".into()));
    // Chunks over the handle's limit are refused when the array is defined, and the
    // default chunk shape stays within it (down to one element).
    let mut small_chunks = Limits::default();
    small_chunks.max_chunk_bytes = 64 << 10;
    let store = Atlas::open_with(dir.store(), &OpenOptions::with_limits(small_chunks)).unwrap();
    let ds = store.create_dataset("d").unwrap();
    let big = ArraySpec::new(DType::Float64, [1 << 14]);
    let err = ds.define_array("big", big.clone().chunk_shape([1 << 14])).unwrap_err();
    assert!(matches!(&err, Error::InvalidArgument { detail } if detail.contains("max_chunk_bytes of 65536")), "{err}");
    assert_eq!(ds.define_array("big", big).unwrap().meta().unwrap().chunk_shape, [1 << 13]);
    store.flush().unwrap();
    let mut one_byte = Limits::default();
    one_byte.max_chunk_bytes = 1;
    // The committed 64 KiB chunks are over one byte: such a handle cannot open the store.
    assert_err!(
        Atlas::open_with(dir.store(), &OpenOptions::with_limits(one_byte)),
        Error::LimitExceeded { limit: 1, .. }
    );
    // In this test's own directory: a second `TestDir` would take the spawn guard again while
    // holding it, and wait forever behind a test waiting to run alone.
    let fresh = dir.join("fresh");
    let store = Atlas::create_with(&fresh, StoreConfig::default(), &OpenOptions::with_limits(one_byte)).unwrap();
    let ds = store.create_dataset("d").unwrap();
    assert_eq!(
        ds.define_array("bytes", ArraySpec::new(DType::UInt8, [5, 7])).unwrap().meta().unwrap().chunk_shape,
        [1, 1]
    );
    assert_err!(ds.define_array("wide", ArraySpec::new(DType::UInt16, [3])), Error::InvalidArgument { .. });
    store.flush().unwrap();
}

#[test]
fn a_commit_with_chunks_over_the_handles_limit_is_refused_by_refresh_and_a_first_change() {
    use atlas::{Limits, OpenOptions};
    let dir = test_dir!();
    let writer = util::create(&dir.store());
    let mut small_chunks = Limits::default();
    small_chunks.max_chunk_bytes = 64 << 10;
    let reader = Atlas::open_with(dir.store(), &OpenOptions::with_limits(small_chunks)).unwrap();
    // Another handle commits an array of 128 KiB chunks.
    writer.create_dataset("d").unwrap().define_array("big", ArraySpec::new(DType::Float64, [1 << 14])).unwrap();
    writer.flush().unwrap();
    let over = |result: Result<(), Error>| match result {
        Err(Error::LimitExceeded { what, limit, found, .. }) => {
            assert!(what.contains("d/big"), "{what}");
            assert_eq!((limit, found), (64 << 10, 128 << 10));
        }
        other => panic!("expected LimitExceeded, got {other:?}"),
    };
    over(reader.refresh());
    over(reader.create_dataset("mine").map(drop));
    // The handle stays on the commit it had, holding no lock: the other writer goes on.
    assert_eq!((reader.generation(), reader.list_datasets()), (0, Vec::<String>::new()));
    assert!(!reader.has_pending_changes());
    writer.create_dataset("more").unwrap();
    writer.flush().unwrap();
}

#[test]
fn a_string_array_of_the_largest_chunk_a_block_can_hold_opens_under_the_default_limits() {
    // A string block holds one 4-byte offset more than its chunk has strings: 2^26 - 1
    // strings is the most whose offsets fit 256 MiB.
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let spec = |n: u64| ArraySpec::new(DType::String, [n]).chunk_shape([n]);
    assert_err!(ds.define_array("s", spec(1 << 26)), Error::InvalidArgument { detail } if detail.contains("over the limit"));
    ds.define_array("s", spec((1 << 26) - 1)).unwrap();
    store.flush().unwrap();
    Atlas::open(dir.store()).unwrap();
}

#[test]
fn a_zstd_metadata_frame_asking_for_a_window_past_the_limit_is_corrupt() {
    use atlas::{Limits, MetaCompression, OpenOptions};
    use std::io::Write;
    let dir = test_dir!();
    let config = StoreConfig { meta_compression: MetaCompression::Zstd, ..StoreConfig::default() };
    let store = Atlas::create(dir.store(), config).unwrap();
    store.create_dataset("d").unwrap();
    store.attrs().set("note", "x".repeat(4096)).unwrap();
    store.flush().unwrap();
    drop(store);
    // The same metadata in a frame of unknown size with a 128 MiB window.
    let file = dir.store().join("atlas.json.zst");
    let plain = zstd::decode_all(std::fs::read(&file).unwrap().as_slice()).unwrap();
    let unsized_frame = |window_log: u32| {
        let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        encoder.include_contentsize(false).unwrap();
        encoder.window_log(window_log).unwrap();
        encoder.write_all(&plain).unwrap();
        encoder.finish().unwrap()
    };
    std::fs::write(&file, unsized_frame(27)).unwrap();

    let mut limits = Limits::default();
    limits.max_meta_bytes = 64 << 10;
    let refused = Atlas::open_with(dir.store(), &OpenOptions::with_limits(limits));
    assert_err!(refused, Error::Corrupt { .. });
    // The default limit (1 GiB) allows the window...
    assert_eq!(Atlas::open(dir.store()).unwrap().list_datasets(), ["d"]);
    // ... but no larger one: its buffer would come on top of the output the limit bounds.
    std::fs::write(&file, unsized_frame(28)).unwrap();
    assert_err!(Atlas::open(dir.store()), Error::Corrupt { .. });
    // A frame as Atlas writes it (its size in the header) over a lowered limit is refused
    // by that size, before decoding: over the limit, not corrupt.
    let compressed = zstd::bulk::compress(&plain, 3).unwrap();
    std::fs::write(&file, &compressed).unwrap();
    let mut limits = Limits::default();
    limits.max_meta_bytes = 2048;
    assert!(compressed.len() < 2048 && plain.len() > 4096, "the file fits the limit, its contents do not");
    let refused = Atlas::open_with(dir.store(), &OpenOptions::with_limits(limits));
    assert_err!(refused, Error::LimitExceeded { found, .. } if found == plain.len() as u64);
}

#[test]
fn requests_at_the_api_edges_are_cheap_or_refused_never_a_panic() {
    let mut dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    // Never-written chunks of 2^26 - 1 strings (the most a string chunk holds): one string
    // from each of 256 such chunks is read without building their strings.
    let n = (1 << 26) - 1;
    ds.define_array("s", ArraySpec::new(DType::String, [256, n]).chunk_shape([1, n])).unwrap();
    let (read, largest, took) = largest_allocation_during(&mut dir, || ds.read_strings("s", &[0, 0], &[256, 1]));
    assert_eq!(read.unwrap().len(), 256);
    assert!(largest < LARGE_BYTES && took < QUICK, "{largest} bytes at once, {took:?}");
    // An empty box with huge extents (past the small array: fill), beside a dataset
    // lacking the array.
    ds.define_array("u", ArraySpec::new(DType::UInt8, [1, 1, 1])).unwrap();
    store.create_dataset("e").unwrap();
    let mut none: [u8; 0] = [];
    let shape = [0, 1 << 32, 1 << 32];
    store.read_array_across_stacked_into("u", &["d", "e"], &[0, 0, 0], &shape, &mut none, Default::default()).unwrap();
    // A result that cannot be held in memory is refused, not attempted.
    assert_err!(store.read_array_across_stacked::<u8>("u", &["d", "e"], &[0, 0, 0], &shape), Error::OutOfMemory { .. });
}
