//! Shared helpers: a temp dir per test (named after it), listings and snapshots of store
//! directories, the six metadata encodings, and small constructors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use atlas::{Atlas, MetaCompression, MetaFormat, StoreConfig};

/// The name of the enclosing function, e.g. `roundtrip::all_dtypes_round_trip`.
macro_rules! test_name {
    () => {{
        fn f() {}
        let full = std::any::type_name_of_val(&f);
        let full = full.strip_suffix("::f").unwrap_or(full);
        // Drop the crate prefix and any closure frames (proptest bodies run in closures).
        let parts: Vec<&str> = full.split("::").filter(|p| *p != "it" && *p != "{{closure}}").collect();
        parts.join("::")
    }};
}
pub(crate) use test_name;

/// A fresh temp dir named after the calling test; removed when dropped.
macro_rules! test_dir {
    () => {
        $crate::util::TestDir::new(&$crate::util::test_name!())
    };
}
pub(crate) use test_dir;

/// Asserts that `$result` is an `Err` matching `$pattern`, printing the result otherwise.
macro_rules! assert_err {
    ($result:expr, $pattern:pat $(if $guard:expr)? $(,)?) => {
        match $result {
            Err($pattern) $(if $guard)? => {}
            other => panic!("expected Err({}), got {:?}", stringify!($pattern), other),
        }
    };
}
pub(crate) use assert_err;

/// Held shared by every running test (through its [`TestDir`]: one per test, since a second
/// read while a writer waits would wait forever) and exclusively while a test spawns a
/// child process. A child starts as a fork that holds a copy of every open file of
/// this process until it execs, writer-lock files of other tests' stores included; `flock`
/// locks follow those copies, so a spawn must never overlap a test holding a writer lock.
static SPAWN_GUARD: RwLock<()> = RwLock::new(());

/// A temp dir for one test. The store under test usually lives in its `store/` subfolder, so
/// tests can check that nothing appears next to it.
#[derive(Debug)]
pub(crate) struct TestDir {
    dir: tempfile::TempDir,
    running: Option<RwLockReadGuard<'static, ()>>,
}

impl TestDir {
    pub(crate) fn new(test_name: &str) -> Self {
        let prefix: String =
            test_name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
        let running = Some(SPAWN_GUARD.read().unwrap_or_else(PoisonError::into_inner));
        let dir = tempfile::Builder::new().prefix(&format!("atlas-it-{prefix}-")).tempdir().expect("temp dir");
        Self { dir, running }
    }

    /// Runs `spawn` while no other test runs (see [`SPAWN_GUARD`]). The caller must hold no
    /// writer lock itself.
    pub(crate) fn while_alone<R>(&mut self, spawn: impl FnOnce() -> R) -> R {
        self.running = None;
        let alone = SPAWN_GUARD.write().unwrap_or_else(PoisonError::into_inner);
        let result = spawn();
        drop(alone);
        self.running = Some(SPAWN_GUARD.read().unwrap_or_else(PoisonError::into_inner));
        result
    }

    /// The temp dir itself.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `<temp dir>/store`, where a test's store goes.
    pub(crate) fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// `<temp dir>/<name>`.
    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Every (format, compression) pair of the metadata file, with the file name it must get.
pub(crate) const ENCODINGS: [(MetaFormat, MetaCompression, &str); 6] = [
    (MetaFormat::Json, MetaCompression::None, "atlas.json"),
    (MetaFormat::Json, MetaCompression::Zstd, "atlas.json.zst"),
    (MetaFormat::Json, MetaCompression::Lz4, "atlas.json.lz4"),
    (MetaFormat::MsgPack, MetaCompression::None, "atlas.msgpack"),
    (MetaFormat::MsgPack, MetaCompression::Zstd, "atlas.msgpack.zst"),
    (MetaFormat::MsgPack, MetaCompression::Lz4, "atlas.msgpack.lz4"),
];

/// Whether `name` is one of the six metadata file names.
pub(crate) fn is_meta_name(name: &str) -> bool {
    ENCODINGS.iter().any(|(_, _, n)| *n == name)
}

/// A store config with the given metadata encoding and defaults otherwise.
pub(crate) fn meta_config(format: MetaFormat, compression: MetaCompression) -> StoreConfig {
    StoreConfig { meta_format: format, meta_compression: compression, ..StoreConfig::default() }
}

/// Creates a store with the default config in `path`.
pub(crate) fn create(path: &Path) -> Atlas {
    Atlas::create(path, StoreConfig::default()).expect("create store")
}

/// Sorted names of the plain entries of `dir`.
pub(crate) fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list dir")
        .map(|e| e.expect("dir entry").file_name().into_string().expect("utf-8 name"))
        .collect();
    names.sort();
    names
}

/// Names of the metadata files in a store directory.
pub(crate) fn meta_files(store: &Path) -> Vec<String> {
    names(store).into_iter().filter(|n| is_meta_name(n)).collect()
}

/// The fragment files in `store/data`, sorted by name.
pub(crate) fn fragments(store: &Path) -> Vec<PathBuf> {
    names(&store.join("data"))
        .into_iter()
        .filter(|n| n.ends_with(".frag"))
        .map(|n| store.join("data").join(n))
        .collect()
}

/// Total bytes of the files in `store/data`.
pub(crate) fn data_bytes(store: &Path) -> u64 {
    names(&store.join("data")).iter().map(|n| std::fs::metadata(store.join("data").join(n)).unwrap().len()).sum()
}

/// Every file under `root` (recursively) with its bytes, keyed by path relative to `root`;
/// directories are listed with empty contents and a trailing `/`.
pub(crate) fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("list dir") {
            let path = entry.expect("dir entry").path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                walk(root, &path, out);
            } else {
                out.insert(rel, std::fs::read(&path).expect("read file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Flips a byte in the middle of the stored bytes of chunk `coord` of `array`
/// (`dataset/array`), in place.
pub(crate) fn damage_block(store: &Atlas, array: &str, coord: &[u64]) {
    use std::os::unix::fs::FileExt;
    let (dataset, name) = array.split_once('/').expect("dataset/array");
    let block = store.array_blocks(dataset, name).unwrap().into_iter().find(|b| b.coord == coord).unwrap();
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&block.path).unwrap();
    let at = block.offset_bytes + block.stored_bytes / 2;
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x5a], at).unwrap();
}

/// Elements `0, 1, 2, ...` converted to `T` by `f`, in the shape given.
pub(crate) fn iota<T>(shape: &[usize], f: impl Fn(usize) -> T) -> ndarray::ArrayD<T> {
    let n = shape.iter().product();
    ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), (0..n).map(f).collect()).expect("shape matches")
}

/// `usize` extents as the `u64` ones the API takes.
pub(crate) fn u64s(v: &[usize]) -> Vec<u64> {
    v.iter().map(|&n| n as u64).collect()
}
