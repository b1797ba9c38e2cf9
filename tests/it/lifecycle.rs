//! Store lifecycle: compaction, recompression and changing the metadata encoding keep every
//! value, checksum and statistic, reclaim space, and leave other handles reading whole
//! commits.
//!
//! Some checks read the fragment index straight from the files, as docs/FORMAT.md lays it
//! out ("Fragment file"), to see the checksums and codec ids the public API does not show.

use std::collections::BTreeMap;
use std::path::Path;

use atlas::{ArraySpec, Atlas, BlockStats, Codec, DType, Dataset, Error, MetaCompression, MetaFormat, Shuffle};
use ndarray::{Array1, arr1};

use crate::util::{self, ENCODINGS, assert_err, iota, test_dir};

/// Every value of every array (floats by their bits, so NaNs compare), with its block stats.
#[derive(Debug, PartialEq)]
struct Content {
    values: Vec<String>,
    blocks: Vec<BlockStats>,
}

/// The values of an array, each formatted exactly.
fn values(ds: &Dataset, name: &str) -> Vec<String> {
    let meta = ds.array_meta(name).unwrap();
    let (start, shape) = (vec![0; meta.shape.len()], &meta.shape[..]);
    macro_rules! read {
        ($t:ty, $fmt:expr) => {
            ds.read_array::<$t>(name, &start, shape).unwrap().iter().map($fmt).collect()
        };
    }
    match meta.dtype {
        DType::Int8 => read!(i8, ToString::to_string),
        DType::Int16 => read!(i16, ToString::to_string),
        DType::Int32 => read!(i32, ToString::to_string),
        DType::Int64 | DType::Timestamp => read!(i64, ToString::to_string),
        DType::UInt8 => read!(u8, ToString::to_string),
        DType::UInt16 => read!(u16, ToString::to_string),
        DType::UInt32 => read!(u32, ToString::to_string),
        DType::UInt64 => read!(u64, ToString::to_string),
        DType::Float32 => read!(f32, |v: &f32| format!("{:#x}", v.to_bits())),
        DType::Float64 => read!(f64, |v: &f64| format!("{:#x}", v.to_bits())),
        DType::Bool => read!(bool, ToString::to_string),
        DType::String => ds.read_strings(name, &start, shape).unwrap().iter().map(|s| format!("{s:?}")).collect(),
        other => panic!("dtype {other:?} not covered"),
    }
}

/// `dataset/array` -> its content, for every array of the store.
fn contents(store: &Atlas) -> BTreeMap<String, Content> {
    let mut all = BTreeMap::new();
    for ds_name in store.list_datasets() {
        let ds = store.open_dataset(&ds_name).unwrap();
        for name in ds.list_arrays().unwrap() {
            let content = Content { values: values(&ds, &name), blocks: ds.block_stats(&name).unwrap() };
            all.insert(format!("{ds_name}/{name}"), content);
        }
    }
    all
}

/// As [`contents`], without the block stats of blocks holding no valid value (compaction
/// drops the entries of chunks holding only the fill value).
fn contents_without_empty_blocks(store: &Atlas) -> BTreeMap<String, Content> {
    let mut all = contents(store);
    for content in all.values_mut() {
        content.blocks.retain(|b| b.count > 0);
    }
    all
}

/// One index entry as docs/FORMAT.md ("Index entry") lays it out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DiskEntry {
    array_id: u64,
    coord: Vec<u64>,
    checksum: u64,
    codec: u8,
    filter: u8,
    is_fill: bool,
    stored_bytes: u64,
    raw_bytes: u64,
}

impl DiskEntry {
    /// Whether the block is encoded with `codec` and `filter`, or stored as its raw bytes
    /// because that codec would not have made it smaller.
    fn is_encoded_as(&self, codec: u8, filter: u8) -> bool {
        (self.codec, self.filter) == (codec, filter)
            || (self.codec, self.filter, self.stored_bytes) == (CODEC_NONE, 0, self.raw_bytes)
    }
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap())
}

/// The index entries of one fragment file, in index order.
fn fragment_entries(path: &Path) -> Vec<DiskEntry> {
    let bytes = std::fs::read(path).unwrap();
    let footer = &bytes[bytes.len() - 40..];
    assert_eq!(&footer[32..], b"ATLFEND\0");
    let (index_offset, count) = (u64_at(footer, 0) as usize, u64_at(footer, 16));
    let mut at = index_offset;
    let mut entries = Vec::new();
    for _ in 0..count {
        let e = &bytes[at..];
        let ndim = usize::from(e[43]);
        entries.push(DiskEntry {
            array_id: u64_at(e, 0),
            coord: (0..ndim).map(|i| u64_at(e, 80 + 8 * i)).collect(),
            checksum: u64_at(e, 32),
            codec: e[40],
            filter: e[41],
            is_fill: e[44] & 1 != 0,
            stored_bytes: u64_at(e, 16),
            raw_bytes: u64_at(e, 24),
        });
        at += 80 + 8 * ndim;
    }
    entries
}

/// (array id, chunk) -> the entry that wins for it over all fragment files of the store.
/// Fragment names start with their commit's generation, so name order is commit order.
fn live_index(store: &Path) -> BTreeMap<(u64, Vec<u64>), DiskEntry> {
    let mut index = BTreeMap::new();
    for fragment in util::fragments(store) {
        for entry in fragment_entries(&fragment) {
            index.insert((entry.array_id, entry.coord.clone()), entry);
        }
    }
    index
}

/// Ids of the arrays the store has (not deleted).
fn array_ids(store: &Atlas) -> Vec<u64> {
    let mut ids = Vec::new();
    for ds_name in store.list_datasets() {
        let ds = store.open_dataset(&ds_name).unwrap();
        ids.extend(ds.list_arrays().unwrap().iter().map(|a| ds.array_meta(a).unwrap().id));
    }
    ids
}

const CODEC_NONE: u8 = 0;
const CODEC_ZSTD: u8 = 1;
const CODEC_LZ4: u8 = 2;

/// Two datasets with arrays of several dtypes and codecs, written over three flushes:
/// overwritten chunks, a partly all-fill array, a deleted array and a deleted dataset.
fn populate(store: &Atlas) {
    for ds_name in ["run1", "run2", "scratch"] {
        let ds = store.create_dataset(ds_name).unwrap();
        ds.define_array("temp", ArraySpec::new(DType::Float32, [20, 30]).chunk_shape([8, 8]).fill_value(f32::NAN))
            .unwrap();
        ds.define_array("count", ArraySpec::new(DType::Int64, [50]).chunk_shape([16]).codec(Codec::None)).unwrap();
        ds.define_array("flags", ArraySpec::new(DType::UInt8, [40]).chunk_shape([16]).codec(Codec::Lz4)).unwrap();
        ds.define_array("mask", ArraySpec::new(DType::Bool, [10]).chunk_shape([4])).unwrap();
        ds.define_array(
            "level",
            ArraySpec::new(DType::Float64, [12]).chunk_shape([5]).codec(Codec::Zstd { level: 9 }).shuffle(Shuffle::Off),
        )
        .unwrap();
        ds.define_array("names", ArraySpec::new(DType::String, [7]).chunk_shape([3])).unwrap();
        ds.write_array("temp", &[0, 0], iota(&[20, 30], |i| i as f32 * 0.5).view()).unwrap();
        ds.write_array("count", &[0], iota(&[50], |i| i as i64 * 1000 - 7).view()).unwrap();
        ds.write_array("flags", &[0], iota(&[40], |i| (i % 7) as u8).view()).unwrap();
        ds.write_array("mask", &[0], iota(&[10], |i| i % 3 == 0).view()).unwrap();
        ds.write_array("level", &[0], iota(&[12], |i| (i as f64).sqrt()).view()).unwrap();
        let names: Vec<String> = (0..7).map(|i| format!("{ds_name}-{i}")).collect();
        ds.write_strings("names", &[0], Array1::from(names).view()).unwrap();
    }
    store.flush().unwrap();

    let run1 = store.open_dataset("run1").unwrap();
    run1.write_array("temp", &[4, 4], iota(&[10, 20], |i| -(i as f32)).view()).unwrap();
    run1.write_array("count", &[10], iota(&[30], |i| i as i64).view()).unwrap();
    // Chunks back to all fill: NaN for temp's first rows (fill entries), 0 for mask.
    run1.write_array("temp", &[0, 0], ndarray::Array2::from_elem((8, 30), f32::NAN).view()).unwrap();
    run1.write_array("mask", &[0], Array1::from_elem(10, false).view()).unwrap();
    store.flush().unwrap();

    let run2 = store.open_dataset("run2").unwrap();
    run2.write_array("flags", &[3], iota(&[30], |i| (i * 3) as u8).view()).unwrap();
    run2.write_strings("names", &[2], arr1(&["x", "", "a longer string"]).view()).unwrap();
    run2.delete_array("level").unwrap();
    store.delete_dataset("scratch").unwrap();
    store.flush().unwrap();
}

#[test]
fn compaction_shrinks_a_store_and_keeps_every_live_value_exactly() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    populate(&store);
    let before = contents_without_empty_blocks(&store);
    let stats_before = store.open_dataset("run1").unwrap().array_stats("count").unwrap();
    let generation = store.generation();
    let bytes_before = util::data_bytes(&dir.store());
    assert_eq!(util::fragments(&dir.store()).len(), 3);

    let report = store.compact().unwrap();
    assert_eq!(report.fragments_before, 3);
    assert_eq!(report.fragments_after, 1);
    assert_eq!(report.before_bytes, bytes_before);
    assert_eq!(report.after_bytes, util::data_bytes(&dir.store()));
    assert!(report.after_bytes < report.before_bytes, "{report:?}");
    assert!(report.blocks_dropped > 0 && report.blocks_kept > 0, "{report:?}");
    assert_eq!(util::fragments(&dir.store()).len(), 1);
    assert_eq!(store.generation(), generation + 1);
    assert!(!store.has_pending_changes());

    // The same handle, and a fresh open, read exactly what was there.
    assert_eq!(contents_without_empty_blocks(&store), before);
    let reopened = Atlas::open(dir.store()).unwrap();
    assert_eq!(contents_without_empty_blocks(&reopened), before);
    let run1 = reopened.open_dataset("run1").unwrap();
    assert_eq!(run1.array_stats("count").unwrap(), stats_before);
    assert_eq!(run1.array_meta("count").unwrap().codec, Some(Codec::None));
    assert_eq!(reopened.list_datasets(), ["run1", "run2"]);

    // Kept blocks hold one entry per chunk, none of them a fill entry.
    let entries = fragment_entries(&util::fragments(&dir.store())[0]);
    assert_eq!(entries.len() as u64, report.blocks_kept);
    assert!(entries.iter().all(|e| !e.is_fill));
    // A second compaction finds nothing to do.
    let again = store.compact().unwrap();
    assert_eq!((again.fragments_after, again.blocks_dropped, again.after_bytes), (1, 0, report.after_bytes));
    assert_eq!(store.generation(), generation + 1);
    assert!(!store.has_pending_changes());
}

#[test]
fn compaction_copies_blocks_as_stored_keeping_checksums_and_codecs() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    populate(&store);
    let before: Vec<DiskEntry> = live_index(&dir.store()).into_values().filter(|e| !e.is_fill).collect();
    store.compact().unwrap();
    let ids = array_ids(&store);
    let live_before: Vec<DiskEntry> = before.into_iter().filter(|e| ids.contains(&e.array_id)).collect();
    let after: Vec<DiskEntry> = live_index(&dir.store()).into_values().collect();
    assert_eq!(after, live_before);
}

#[test]
fn compaction_orders_blocks_by_array_name_then_dataset_then_chunk() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    // Written in the opposite order across flushes.
    for ds_name in ["b", "a"] {
        let ds = store.create_dataset(ds_name).unwrap();
        for name in ["y", "x"] {
            ds.define_array(name, ArraySpec::new(DType::Int32, [8]).chunk_shape([2])).unwrap();
            for start in [6u64, 0, 4, 2] {
                ds.write_array(name, &[start], arr1(&[1, 2]).view()).unwrap();
                store.flush().unwrap();
            }
        }
    }
    store.compact().unwrap();
    let id = |ds: &str, name: &str| store.open_dataset(ds).unwrap().array_meta(name).unwrap().id;
    let order: Vec<(u64, Vec<u64>)> =
        fragment_entries(&util::fragments(&dir.store())[0]).into_iter().map(|e| (e.array_id, e.coord)).collect();
    let mut expected = Vec::new();
    for (ds, name) in [("a", "x"), ("b", "x"), ("a", "y"), ("b", "y")] {
        expected.extend((0..4).map(|c| (id(ds, name), vec![c])));
    }
    assert_eq!(order, expected);
}

#[test]
fn compaction_reclaims_one_small_rewritten_block_among_many() {
    // 100 live blocks of 16 bytes, and chunk 0 written twice in the session: 16 dead
    // bytes, fewer than the 7 bytes of padding a bound per live block would allow.
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::UInt32, [400]).chunk_shape([4]).codec(Codec::None)).unwrap();
    let values = ndarray::Array1::from_shape_fn(400, |i| i as u32 + 1);
    ds.write_array("a", &[0], ndarray::arr1(&[9u32, 9, 9, 9]).view()).unwrap();
    // A small write is staged; a change of settings encodes it into the fragment, where
    // the next write of its chunk leaves it dead.
    ds.array("a").unwrap().set_codec(Some(Codec::None)).unwrap();
    ds.write_array("a", &[0], values.view()).unwrap();
    store.flush().unwrap();
    let report = store.compact().unwrap();
    assert_eq!((report.blocks_kept, report.blocks_dropped), (100, 0));
    assert_eq!(report.before_bytes - report.after_bytes, 16, "{report:?}");
    assert_eq!(ds.read_array::<u32>("a", &[0], &[400]).unwrap(), values.into_dyn());
    let generation = store.generation();
    store.compact().unwrap();
    assert_eq!(store.generation(), generation, "nothing more to gain");
}

#[test]
fn compaction_reclaims_blocks_a_session_rewrote_in_its_one_fragment() {
    // Row by row in one session, each row's chunk sealed into a block before the next
    // write (by a change of settings): each chunk of 8 rows is written 8 times, and only
    // the last block of each is in the index. Those dead bytes are reclaimed though no
    // entry is.
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let a =
        ds.define_array("a", ArraySpec::new(DType::UInt32, [16, 64]).chunk_shape([8, 64]).codec(Codec::None)).unwrap();
    let values = ndarray::Array2::from_shape_fn((16, 64), |(i, j)| (i * 64 + j) as u32);
    for row in 0..16usize {
        ds.write_array("a", &[row as u64, 0], values.slice(ndarray::s![row..=row, ..])).unwrap();
        a.set_shuffle(None).unwrap();
    }
    store.flush().unwrap();
    let report = store.compact().unwrap();
    assert_eq!((report.fragments_before, report.fragments_after), (1, 1));
    assert_eq!((report.blocks_kept, report.blocks_dropped), (2, 0));
    assert!(report.before_bytes > 7 * report.after_bytes, "{report:?}");
    let reopened = Atlas::open(dir.store()).unwrap();
    assert_eq!(
        reopened.open_dataset("d").unwrap().read_array::<u32>("a", &[0, 0], &[16, 64]).unwrap(),
        values.into_dyn()
    );
    // Compacted, it has nothing more to give: no new commit.
    let generation = store.generation();
    assert_eq!(store.compact().unwrap().after_bytes, report.after_bytes);
    assert_eq!(store.generation(), generation);
}

#[test]
fn compacting_an_empty_store_leaves_no_fragment() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let report = store.compact().unwrap();
    assert_eq!(report, atlas::CompactReport::default());
    assert_eq!(store.generation(), 0);
    assert!(!store.has_pending_changes());

    // Arrays whose every block is gone: the store compacts to no fragment at all.
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::UInt16, [100]).chunk_shape([10])).unwrap();
    ds.define_array("zeros", ArraySpec::new(DType::UInt16, [20]).chunk_shape([10])).unwrap();
    ds.write_array("a", &[0], iota(&[100], |i| i as u16).view()).unwrap();
    ds.write_array("zeros", &[0], Array1::<u16>::zeros(20).view()).unwrap();
    store.flush().unwrap();
    ds.delete_array("a").unwrap();
    store.flush().unwrap();
    let report = store.compact().unwrap();
    assert_eq!((report.fragments_before, report.fragments_after, report.after_bytes), (1, 0, 0));
    assert_eq!((report.blocks_kept, report.blocks_dropped), (0, 12));
    assert!(util::fragments(&dir.store()).is_empty());
    let reopened = Atlas::open(dir.store()).unwrap();
    let rds = reopened.open_dataset("d").unwrap();
    assert_eq!(rds.read_array::<u16>("zeros", &[0], &[20]).unwrap(), Array1::<u16>::zeros(20).into_dyn());
    assert_eq!(rds.array_stats("zeros").unwrap().count, 0);
}

#[test]
fn compaction_reclaims_the_blocks_of_deleted_arrays_and_datasets() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let spec = || ArraySpec::new(DType::UInt64, [4096]).chunk_shape([512]).codec(Codec::None);
    for ds_name in ["keep", "gone"] {
        let ds = store.create_dataset(ds_name).unwrap();
        for name in ["a", "b"] {
            ds.define_array(name, spec()).unwrap();
            ds.write_array(name, &[0], iota(&[4096], |i| i as u64 * 31).view()).unwrap();
        }
    }
    store.flush().unwrap();
    store.delete_dataset("gone").unwrap();
    store.open_dataset("keep").unwrap().delete_array("b").unwrap();
    store.flush().unwrap();
    let bytes_before = util::data_bytes(&dir.store());
    assert!(bytes_before > 4 * 4096 * 8, "deleting changes no file");

    let report = store.compact().unwrap();
    assert_eq!((report.blocks_kept, report.blocks_dropped), (8, 24));
    let bytes_after = util::data_bytes(&dir.store());
    assert!(bytes_after < bytes_before / 3, "{bytes_after} of {bytes_before}");
    assert!(bytes_after >= 4096 * 8);
    let keep = Atlas::open(dir.store()).unwrap().open_dataset("keep").unwrap();
    assert_eq!(keep.read_array::<u64>("a", &[0], &[4096]).unwrap(), iota(&[4096], |i| i as u64 * 31));
}

#[test]
fn a_handle_opened_before_compaction_reads_its_commit_until_it_refreshes() {
    let dir = test_dir!();
    let writer = util::create(&dir.store());
    let ds = writer.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Int32, [64]).chunk_shape([8])).unwrap();
    ds.write_array("a", &[0], iota(&[64], |i| i as i32).view()).unwrap();
    writer.flush().unwrap();
    ds.write_array("a", &[0], Array1::from_elem(16, -1).view()).unwrap();
    writer.flush().unwrap();

    let reader = Atlas::open(dir.store()).unwrap();
    let rds = reader.open_dataset("d").unwrap();
    let old = rds.read_array::<i32>("a", &[0], &[64]).unwrap();

    ds.write_array("a", &[32], Array1::from_elem(32, 7).view()).unwrap();
    writer.compact().unwrap();
    assert_eq!(util::fragments(&dir.store()).len(), 1, "old fragments are removed");
    let new = ds.read_array::<i32>("a", &[0], &[64]).unwrap();
    assert_ne!(old, new);

    // Its fragment files are gone, but the reader's maps still serve its commit.
    assert_eq!(rds.read_array::<i32>("a", &[0], &[64]).unwrap(), old);
    assert_eq!(rds.block_stats("a").unwrap().len(), 8);
    reader.refresh().unwrap();
    assert_eq!(reader.generation(), writer.generation());
    assert_eq!(rds.read_array::<i32>("a", &[0], &[64]).unwrap(), new);
    // A later change through the reader starts from the compacted commit.
    rds.write_array("a", &[0], arr1(&[5]).view()).unwrap();
    reader.flush().unwrap();
    assert_eq!(util::fragments(&dir.store()).len(), 2);
}

#[test]
fn pending_changes_are_committed_by_compaction_and_all_kept() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Int16, [30]).chunk_shape([4])).unwrap();
    ds.write_array("a", &[0], iota(&[30], |i| i as i16).view()).unwrap();
    store.flush().unwrap();
    let generation = store.generation();

    // Uncommitted: an overwrite, a new dataset and array, an attribute, a deletion.
    ds.write_array("a", &[10], Array1::from_elem(10, -3i16).view()).unwrap();
    let extra = store.create_dataset("extra").unwrap();
    extra.define_array("b", ArraySpec::new(DType::Float32, [5])).unwrap();
    extra.write_array("b", &[0], arr1(&[1.5f32, 2.5, 3.5, 4.5, 5.5]).view()).unwrap();
    store.attrs().set("note", "kept").unwrap();
    store.create_dataset("doomed").unwrap();
    store.delete_dataset("doomed").unwrap();
    assert!(store.has_pending_changes());

    let report = store.compact().unwrap();
    assert!(!store.has_pending_changes());
    assert_eq!(store.generation(), generation + 2, "a commit for the changes, one for compaction");
    assert_eq!((report.fragments_before, report.fragments_after), (2, 1));
    assert_eq!(util::fragments(&dir.store()).len(), 1);

    let reopened = Atlas::open(dir.store()).unwrap();
    let mut expected: Vec<i16> = (0..30).collect();
    expected[10..20].fill(-3);
    let a = reopened.open_dataset("d").unwrap().read_array::<i16>("a", &[0], &[30]).unwrap();
    assert_eq!(a, Array1::from(expected).into_dyn());
    let b = reopened.open_dataset("extra").unwrap().read_array::<f32>("b", &[0], &[5]).unwrap();
    assert_eq!(b, arr1(&[1.5f32, 2.5, 3.5, 4.5, 5.5]).into_dyn());
    assert_eq!(reopened.attrs().get("note").unwrap(), Some("kept".into()));
    assert_eq!(reopened.list_datasets(), ["d", "extra"]);
}

#[test]
fn compaction_is_refused_while_another_handle_writes() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    store.create_dataset("d").unwrap();
    store.flush().unwrap();
    let other = Atlas::open(dir.store()).unwrap();
    other.create_dataset("e").unwrap();
    assert_err!(store.compact(), Error::Locked { .. });
    other.flush().unwrap();
    store.compact().unwrap();
    assert_eq!(store.list_datasets(), ["d", "e"]);
}

#[test]
fn readers_opening_and_refreshing_during_compactions_never_fail() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::UInt32, [256]).chunk_shape([16])).unwrap();
    ds.write_array("a", &[0], Array1::from_elem(256, 0u32).view()).unwrap();
    store.flush().unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut reads = 0u32;
            let refreshed = Atlas::open(dir.store()).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let opened = Atlas::open(dir.store()).unwrap();
                refreshed.refresh().unwrap();
                for handle in [&opened, &refreshed] {
                    let a = handle.open_dataset("d").unwrap().read_array::<u32>("a", &[0], &[256]).unwrap();
                    // Every commit writes one value everywhere.
                    assert!(a.iter().all(|v| *v == a[0]), "a torn commit: {a:?}");
                }
                reads += 1;
            }
            reads
        });
        for k in 1..=40u32 {
            ds.write_array("a", &[0], Array1::from_elem(256, k).view()).unwrap();
            store.flush().unwrap();
            store.compact().unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    });
}

#[test]
fn recompress_reencodes_every_block_keeping_checksums_values_and_stats() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    populate(&store);
    let before = contents(&store);
    let index_before = live_index(&dir.store());

    store.recompress(Codec::Lz4, Some(Shuffle::Off)).unwrap();
    assert!(store.has_pending_changes());
    assert_eq!(contents(&store), before, "pending re-encoded blocks read back");
    store.flush().unwrap();
    assert_eq!(store.codec(), Codec::Lz4);

    let reopened = Atlas::open(dir.store()).unwrap();
    assert_eq!(contents(&reopened), before);
    assert_eq!(reopened.codec(), Codec::Lz4);
    for ds_name in reopened.list_datasets() {
        let ds = reopened.open_dataset(&ds_name).unwrap();
        for name in ds.list_arrays().unwrap() {
            let meta = ds.array_meta(&name).unwrap();
            assert_eq!((meta.codec, meta.shuffle), (None, None), "{ds_name}/{name} keeps its own settings");
        }
    }
    let index_after = live_index(&dir.store());
    assert_eq!(index_after.len(), index_before.len());
    let ids = array_ids(&reopened);
    for (key, old) in &index_before {
        let new = &index_after[key];
        assert_eq!(new.checksum, old.checksum, "{key:?}");
        assert_eq!(new.is_fill, old.is_fill, "{key:?}");
        if !new.is_fill && ids.contains(&key.0) {
            assert!(new.is_encoded_as(CODEC_LZ4, 0), "{key:?}: {new:?}");
        }
    }
    assert!(index_after.values().any(|e| e.codec == CODEC_LZ4), "some blocks are smaller in LZ4");
    // New blocks follow the new default too.
    let ds = reopened.open_dataset("run1").unwrap();
    ds.write_array("count", &[0], arr1(&[1i64]).view()).unwrap();
    reopened.flush().unwrap();
    let id = ds.array_meta("count").unwrap().id;
    assert_eq!(live_index(&dir.store())[&(id, vec![0])].codec, CODEC_LZ4);
}

#[test]
fn array_stats_are_exact_and_the_same_however_the_blocks_were_last_encoded() {
    // Block sums 2^60 and -2^60 among 30 blocks of 64 ones: added in f64 (in the order
    // the blocks were found), each 64 after 2^60 was lost, and a recompress, finding them
    // in another order, changed the total.
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let spec = ArraySpec::new(DType::Int64, [2048]).chunk_shape([64]);
    let array = store.create_dataset("d").unwrap().define_array("a", spec).unwrap();
    let mut values = Array1::<i64>::ones(2048);
    values.slice_mut(ndarray::s![..64]).fill(0);
    values.slice_mut(ndarray::s![1024..1088]).fill(0);
    (values[0], values[1024]) = (1 << 60, -(1 << 60));
    array.write(&[0], values.view()).unwrap();
    store.flush().unwrap();
    let before = array.stats().unwrap();
    assert_eq!(before.sum, 1920.0);
    for codec in [Codec::Lz4, Codec::None, Codec::Zstd { level: 3 }] {
        store.recompress(codec, None).unwrap();
        store.flush().unwrap();
        assert_eq!(Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap().array_stats("a").unwrap(), before);
    }
}

#[test]
fn recompress_array_changes_one_array_and_leaves_the_others() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    populate(&store);
    let before = contents(&store);
    let index_before = live_index(&dir.store());
    let run1 = store.open_dataset("run1").unwrap();
    let temp_id = run1.array_meta("temp").unwrap().id;

    store.recompress_array("run1", "temp", Codec::None, Some(Shuffle::On)).unwrap();
    store.flush().unwrap();
    let meta = run1.array_meta("temp").unwrap();
    assert_eq!((meta.codec, meta.shuffle), (Some(Codec::None), Some(Shuffle::On)));
    assert_eq!(run1.array_meta("count").unwrap().codec, Some(Codec::None));
    assert_eq!(store.codec(), Codec::default());
    assert_eq!(contents(&Atlas::open(dir.store()).unwrap()), before);

    let index_after = live_index(&dir.store());
    for (key, old) in &index_before {
        let new = &index_after[key];
        if key.0 == temp_id && !old.is_fill {
            assert_eq!((new.codec, new.filter, new.checksum), (CODEC_NONE, 1, old.checksum), "{key:?}");
        } else {
            assert_eq!(new, old, "{key:?} changed");
        }
    }
}

#[test]
fn recompress_from_zstd_to_lz4_to_none_and_back_reads_back_exactly() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("f", ArraySpec::new(DType::Float32, [100, 100]).chunk_shape([32, 32])).unwrap();
    ds.define_array("i", ArraySpec::new(DType::Int16, [1000]).chunk_shape([128])).unwrap();
    let f = iota(&[100, 100], |i| ((i as f32) * 0.01).sin());
    let i = iota(&[1000], |k| (k as i16) / 3);
    ds.write_array("f", &[0, 0], f.view()).unwrap();
    ds.write_array("i", &[0], i.view()).unwrap();
    store.flush().unwrap();
    let checksums = |store: &Path| -> Vec<u64> { live_index(store).values().map(|e| e.checksum).collect() };
    let first = checksums(&dir.store());
    let stats = (ds.block_stats("f").unwrap(), ds.block_stats("i").unwrap());

    let steps = [
        (Codec::Lz4, Shuffle::Auto, CODEC_LZ4),
        (Codec::None, Shuffle::Off, CODEC_NONE),
        (Codec::Zstd { level: 19 }, Shuffle::On, CODEC_ZSTD),
        (Codec::None, Shuffle::Auto, CODEC_NONE),
        (Codec::Zstd { level: -3 }, Shuffle::Off, CODEC_ZSTD),
    ];
    let mut sizes = Vec::new();
    for (codec, shuffle, id) in steps {
        store.recompress(codec, Some(shuffle)).unwrap();
        store.flush().unwrap();
        store.compact().unwrap();
        sizes.push(util::data_bytes(&dir.store()));
        let reopened = Atlas::open(dir.store()).unwrap();
        let rds = reopened.open_dataset("d").unwrap();
        assert_eq!(rds.read_array::<f32>("f", &[0, 0], &[100, 100]).unwrap(), f, "{codec:?}");
        assert_eq!(rds.read_array::<i16>("i", &[0], &[1000]).unwrap(), i, "{codec:?}");
        assert_eq!((rds.block_stats("f").unwrap(), rds.block_stats("i").unwrap()), stats);
        assert_eq!(checksums(&dir.store()), first, "{codec:?}");
        let index = live_index(&dir.store());
        // Auto shuffles only compressed blocks.
        let shuffled = shuffle == Shuffle::On || (shuffle == Shuffle::Auto && codec != Codec::None);
        assert!(index.values().all(|e| e.is_encoded_as(id, u8::from(shuffled))), "{codec:?} {shuffle:?}");
        assert!(index.values().any(|e| e.codec == id && (e.filter == 1) == shuffled), "{codec:?} {shuffle:?}");
    }
    // Uncompressed takes the most room, and is the same size whatever the shuffle.
    assert!(sizes[1] > sizes[0] && sizes[1] > sizes[2], "{sizes:?}");
    assert_eq!(sizes[1], sizes[3]);
}

#[test]
fn recompress_without_a_shuffle_keeps_each_arrays_own_or_the_stores() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let values = iota(&[4096], |i| 1000.0 + i as f64 * 0.125);
    let delta = ArraySpec::new(DType::Float64, [4096]).chunk_shape([512]).shuffle(Shuffle::ByteDelta);
    ds.define_array("own", delta).unwrap();
    ds.define_array("follows", ArraySpec::new(DType::Float64, [4096]).chunk_shape([512])).unwrap();
    for name in ["own", "follows"] {
        ds.write_array(name, &[0], values.view()).unwrap();
    }
    store.flush().unwrap();
    let filters = |name: &str| -> Vec<(bool, bool)> {
        store.array_blocks("d", name).unwrap().iter().map(|b| (b.shuffled, b.byte_delta)).collect()
    };
    let shuffled = vec![(true, false); 8];
    let delta = vec![(true, true); 8];

    store.recompress(Codec::Lz4, None).unwrap();
    assert_eq!((store.codec(), store.shuffle()), (Codec::Lz4, Shuffle::Auto));
    let own = |name: &str| ds.array_meta(name).unwrap();
    assert_eq!((own("own").codec, own("own").shuffle), (None, Some(Shuffle::ByteDelta)));
    assert_eq!((filters("own"), filters("follows")), (delta.clone(), shuffled.clone()));

    store.recompress_array("d", "follows", Codec::Zstd { level: 1 }, None).unwrap();
    assert_eq!((own("follows").codec, own("follows").shuffle), (Some(Codec::Zstd { level: 1 }), None));
    assert_eq!(filters("follows"), shuffled);
    store.recompress(Codec::Lz4, Some(Shuffle::ByteDelta)).unwrap();
    assert_eq!((store.shuffle(), own("own").shuffle, own("follows").shuffle), (Shuffle::ByteDelta, None, None));
    assert_eq!((filters("own"), filters("follows")), (delta.clone(), delta));
    store.flush().unwrap();
    for name in ["own", "follows"] {
        let reopened = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap();
        assert_eq!(reopened.read_array::<f64>(name, &[0], &[4096]).unwrap(), values);
    }
}

#[test]
fn recompress_covers_pending_writes_and_fill_chunks_stay_fill() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    // Runs of 16 equal values: LZ4 makes every chunk smaller.
    ds.define_array("a", ArraySpec::new(DType::Int32, [400]).chunk_shape([100])).unwrap();
    ds.write_array("a", &[0], iota(&[400], |i| i as i32 / 16 + 1).view()).unwrap();
    store.flush().unwrap();
    // Pending: one chunk overwritten, one back to all fill.
    ds.write_array("a", &[100], Array1::from_elem(100, 9).view()).unwrap();
    ds.write_array("a", &[300], Array1::from_elem(100, 0).view()).unwrap();
    let before = ds.read_array::<i32>("a", &[0], &[400]).unwrap();
    store.recompress_array("d", "a", Codec::Lz4, Some(Shuffle::Off)).unwrap();
    assert_eq!(ds.read_array::<i32>("a", &[0], &[400]).unwrap(), before);
    store.flush().unwrap();
    let index = live_index(&dir.store());
    let id = ds.array_meta("a").unwrap().id;
    let chunk = |c: u64| &index[&(id, vec![c])];
    assert!((0..3).all(|c| chunk(c).codec == CODEC_LZ4 && !chunk(c).is_fill));
    assert!(chunk(3).is_fill);
    assert_eq!(
        Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap().read_array::<i32>("a", &[0], &[400]).unwrap(),
        before
    );
}

#[test]
fn recompress_refuses_bad_arguments_and_a_corrupt_block_changes_nothing() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::UInt8, [64]).chunk_shape([16]).codec(Codec::None)).unwrap();
    ds.write_array("a", &[0], iota(&[64], |i| i as u8).view()).unwrap();
    store.flush().unwrap();
    assert_err!(store.recompress(Codec::Zstd { level: 1000 }, Some(Shuffle::Auto)), Error::InvalidArgument { .. });
    assert_err!(store.recompress_array("d", "nope", Codec::Lz4, Some(Shuffle::Auto)), Error::NotFound { .. });
    assert_err!(store.recompress_array("nope", "a", Codec::Lz4, Some(Shuffle::Auto)), Error::NotFound { .. });
    assert!(!store.has_pending_changes());

    // Flip a stored byte of chunk 2 (codec none: the bytes are the values 32..48).
    let fragment = &util::fragments(&dir.store())[0];
    let mut bytes = std::fs::read(fragment).unwrap();
    let at = bytes.windows(16).position(|w| w == (32u8..48).collect::<Vec<_>>()).unwrap();
    bytes[at] ^= 0xff;
    std::fs::write(fragment, bytes).unwrap();
    let damaged = Atlas::open(dir.store()).unwrap();
    assert_err!(damaged.recompress(Codec::Lz4, Some(Shuffle::Auto)), Error::ChecksumMismatch { .. });
    assert_eq!(damaged.codec(), Codec::default(), "nothing changed");
    let damaged_ds = damaged.open_dataset("d").unwrap();
    assert_eq!(damaged_ds.array_meta("a").unwrap().codec, Some(Codec::None));
    // A write over part of the damaged chunk fails as it reads it; the flush of changes that
    // wrote no block commits no fragment.
    assert_err!(damaged_ds.write_array("a", &[33], arr1(&[7u8]).view()), Error::ChecksumMismatch { .. });
    damaged.flush().unwrap();
    assert_eq!(util::fragments(&dir.store()), std::slice::from_ref(fragment), "no new fragment file");
}

#[test]
fn a_recompression_that_leaves_every_block_where_it_was_commits_no_fragment() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let spec = ArraySpec::new(DType::UInt64, [4096]).chunk_shape([1024]).codec(Codec::None);
    ds.define_array("noise", spec).unwrap();
    // LZ4 does not make these smaller: recompressed, every block stays raw, in place.
    let noise = iota(&[4096], |i| (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29));
    ds.write_array("noise", &[0], noise.view()).unwrap();
    store.flush().unwrap();
    let before = util::fragments(&dir.store());
    let generation = store.generation();

    store.recompress_array("d", "noise", Codec::Lz4, Some(Shuffle::Off)).unwrap();
    store.flush().unwrap();
    assert_eq!(store.generation(), generation + 1, "the codec change is committed");
    assert_eq!(util::fragments(&dir.store()), before, "with no new fragment");
    let reopened = Atlas::open(dir.store()).unwrap();
    let rds = reopened.open_dataset("d").unwrap();
    assert_eq!(rds.array_meta("noise").unwrap().codec, Some(Codec::Lz4));
    assert_eq!(rds.read_array::<u64>("noise", &[0], &[4096]).unwrap(), noise.into_dyn());
}

#[test]
fn set_meta_format_walks_all_six_encodings_leaving_one_file_each_time() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    populate(&store);
    let before = contents(&store);
    let mut generation = store.generation();
    for (format, compression, name) in ENCODINGS.into_iter().rev().chain([ENCODINGS[0]]) {
        store.set_meta_format(Some(format), Some(compression)).unwrap();
        assert!(store.has_pending_changes());
        assert_eq!(store.meta_file_name(), name);
        store.flush().unwrap();
        generation += 1;
        assert_eq!(store.generation(), generation);
        assert_eq!(util::meta_files(&dir.store()), [name]);
        assert!(!util::names(&dir.store()).iter().any(|n| n.contains("tmp")));

        let reopened = Atlas::open(dir.store()).unwrap();
        assert_eq!(reopened.meta_file_name(), name);
        assert_eq!(reopened.generation(), generation);
        assert_eq!(contents(&reopened), before, "{name}");
    }
}

#[test]
fn set_meta_format_keeps_what_it_is_not_given_as_the_newest_commit_has_it() {
    let dir = test_dir!();
    let stale = util::create(&dir.store());
    let other = Atlas::open(dir.store()).unwrap();
    other.set_meta_format(Some(MetaFormat::MsgPack), None).unwrap();
    other.flush().unwrap();
    // This handle still sees JSON: the format another writer chose is kept all the same.
    stale.set_meta_format(None, Some(MetaCompression::Zstd)).unwrap();
    stale.flush().unwrap();
    assert_eq!(util::meta_files(&dir.store()), ["atlas.msgpack.zst"]);
}

#[test]
fn set_meta_format_crash_leaving_both_files_opens_the_newer_and_the_next_writer_cleans_up() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    store.create_dataset("old").unwrap();
    store.flush().unwrap();
    let old_meta = std::fs::read(dir.store().join("atlas.json")).unwrap();
    store.set_meta_format(Some(MetaFormat::MsgPack), Some(MetaCompression::Lz4)).unwrap();
    store.create_dataset("new").unwrap();
    store.flush().unwrap();
    drop(store);
    // As if the process died after the commit point, before removing the old file.
    std::fs::write(dir.store().join("atlas.json"), old_meta).unwrap();
    assert_eq!(util::meta_files(&dir.store()), ["atlas.json", "atlas.msgpack.lz4"]);

    let reopened = Atlas::open(dir.store()).unwrap();
    assert_eq!(reopened.meta_file_name(), "atlas.msgpack.lz4");
    assert_eq!(reopened.list_datasets(), ["new", "old"]);
    reopened.attrs().set("k", 1).unwrap();
    assert_eq!(util::meta_files(&dir.store()), ["atlas.msgpack.lz4"], "the next writer removes the stale file");
    reopened.flush().unwrap();
    assert_eq!(util::meta_files(&dir.store()), ["atlas.msgpack.lz4"]);
}

#[test]
fn readers_opening_during_format_changes_never_fail() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    store.attrs().set("k", 0).unwrap();
    store.flush().unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            // Each open sees a whole commit, never one older than an open before it saw:
            // generation 1 holds k = 0, and generation g > 1 holds k = g - 2.
            let (mut opens, mut newest) = (0u32, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let opened = Atlas::open(dir.store()).unwrap();
                let generation = opened.generation();
                assert!(generation >= newest, "generation {generation} after {newest}");
                let k = i64::try_from(generation.saturating_sub(2)).unwrap();
                assert_eq!(opened.attrs().get("k").unwrap(), Some(atlas::AttrValue::Int(k)), "generation {generation}");
                newest = generation;
                opens += 1;
            }
            opens
        });
        for (k, (format, compression, _)) in ENCODINGS.into_iter().cycle().take(60).enumerate() {
            store.set_meta_format(Some(format), Some(compression)).unwrap();
            store.attrs().set("k", k as i64).unwrap();
            store.flush().unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    });
}

#[test]
fn recompressing_while_an_append_holds_a_staged_chunk_keeps_its_checksum_and_stats() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let spec = ArraySpec::new(DType::Float32, [0, 64]).chunk_shape([16, 64]).codec(Codec::Lz4);
    let array = ds.define_array("a", spec).unwrap();
    // 20 rows: chunk 0 sealed, chunk 1 staged (4 of its 16 rows), runs that compress.
    let rows = ndarray::Array2::from_shape_fn((20, 64), |(i, j)| (i * 100 + j / 8 + 1) as f32);
    array.append(rows.view()).unwrap();
    store.recompress_array("d", "a", Codec::Zstd { level: 3 }, Some(Shuffle::On)).unwrap();
    store.flush().unwrap();

    let reopened = Atlas::open(dir.store()).unwrap();
    let ds = reopened.open_dataset("d").unwrap();
    assert_eq!(ds.read_array::<f32>("a", &[0, 0], &[20, 64]).unwrap(), rows.into_dyn());
    let report = reopened.verify(&mut |_, _| {}).unwrap();
    assert_eq!((report.blocks_checked, report.bad_blocks.len()), (2, 0));
    let blocks = reopened.array_blocks("d", "a").unwrap();
    assert!(blocks.iter().all(|b| b.codec == atlas::BlockCodec::Zstd && b.shuffled), "{blocks:?}");
    let stats = ds.block_stats("a").unwrap();
    // Valid values: 16 rows, and the 4 rows of the array in chunk 1.
    assert_eq!(stats.iter().map(|b| b.count).collect::<Vec<_>>(), [16 * 64, 4 * 64]);
}

/// Descriptors this process has open.
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn fragments_hold_no_descriptor_and_a_removed_one_still_reads_through_its_map() {
    let mut dir = test_dir!();
    let store = util::create(&dir.store());
    let spec = ArraySpec::new(DType::Int64, [300, 64]).chunk_shape([1, 64]).codec(Codec::None).shuffle(Shuffle::Off);
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("x", spec).unwrap();
    // Uncompressed chunks of 512 KiB, each read whole with `pread` while its file is there.
    let big = ArraySpec::new(DType::Int64, [2, 65536]).chunk_shape([1, 65536]).codec(Codec::None).shuffle(Shuffle::Off);
    let big_values = ndarray::Array2::from_shape_fn((2, 65536), |(i, j)| (i * 65536 + j) as i64);
    ds.define_array("big", big).unwrap();
    ds.write_array("big", &[0, 0], big_values.view()).unwrap();
    for row in 0..300u64 {
        ds.write_array(
            "x",
            &[row, 0],
            Array1::from_elem(64, row as i64).into_shape_with_order((1, 64)).unwrap().view(),
        )
        .unwrap();
        store.flush().unwrap(); // a fragment a flush: 300 of them
    }
    let expected = ndarray::Array2::from_shape_fn((300, 64), |(row, _)| row as i64).into_dyn();
    // Alone, so that no other test opens or closes files meanwhile.
    let path = dir.store();
    let (reader, opened_with) = dir.while_alone(|| {
        let before = open_descriptors();
        let reader = Atlas::open(&path).unwrap();
        (reader, open_descriptors() - before)
    });
    assert!(opened_with < 10, "opening a store of 300 fragments kept {opened_with} descriptors");
    // A compaction removes the files the reader maps: its reads (whole uncompressed chunks,
    // which `pread` the file while it is there) come from the maps.
    store.compact().unwrap();
    assert_eq!(util::fragments(&dir.store()).len(), 1);
    let read = |reader: &Atlas| {
        let ds = reader.open_dataset("d").unwrap();
        (
            ds.read_array::<i64>("x", &[0, 0], &[300, 64]).unwrap(),
            ds.read_array::<i64>("big", &[0, 0], &[2, 65536]).unwrap(),
        )
    };
    assert_eq!(read(&reader), (expected.clone(), big_values.clone().into_dyn()));
    reader.refresh().unwrap();
    assert_eq!(read(&reader), (expected, big_values.into_dyn()));
}

/// The start addresses of this process's maps of the file named `name`.
fn maps_of(name: &str) -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines().filter(|line| line.ends_with(name)).map(|line| line.split('-').next().unwrap().to_string()).collect()
}

#[test]
fn a_refresh_keeps_the_maps_of_the_fragments_it_had_and_maps_only_new_ones() {
    let dir = test_dir!();
    let writer = util::create(&dir.store());
    let ds = writer.create_dataset("d").unwrap();
    ds.define_array("x", ArraySpec::new(DType::Int32, [8]).chunk_shape([4])).unwrap();
    ds.write_array("x", &[0], arr1(&[1, 2, 3, 4, 5, 6, 7, 8]).view()).unwrap();
    writer.flush().unwrap();
    let first = util::fragments(&dir.store())[0].file_name().unwrap().to_string_lossy().into_owned();
    let reader = Atlas::open(dir.store()).unwrap();
    let before = maps_of(&first);
    assert_eq!(before.len(), 2, "the writer's map and the reader's");
    ds.write_array("x", &[0], arr1(&[9, 9, 9, 9]).view()).unwrap();
    writer.flush().unwrap();
    reader.refresh().unwrap();
    assert_eq!(maps_of(&first), before, "the reader mapped the first fragment again");
    let read = reader.open_dataset("d").unwrap().read_array::<i32>("x", &[0], &[8]).unwrap();
    assert_eq!(read, arr1(&[9, 9, 9, 9, 5, 6, 7, 8]).into_dyn());
}
