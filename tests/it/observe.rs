//! A canonical text dump of everything a store shows through the public API: attributes,
//! datasets, array schemas, statistics, block statistics and every value. Two stores hold
//! the same data exactly when their dumps are equal. Floats are dumped as their bits, so
//! NaN fill values compare equal and no value is rounded away.
//!
//! Used by the corruption, hostile-input and fuzz-regression suites, where whatever opens
//! must be either exactly the expected store or an error.

use std::fmt::Write as _;

use atlas::{Atlas, DType, Dataset, Error};

/// Arrays with more elements than this are dumped by schema only (hostile shapes).
pub(crate) const MAX_DUMPED_ELEMS: u64 = 1 << 16;

/// Everything `store` holds, one item per line; the first error stops it.
pub(crate) fn dump(store: &Atlas) -> Result<String, Error> {
    let mut out = String::new();
    writeln!(out, "store attrs {:?}", store.attrs().all()?).unwrap();
    for name in store.list_datasets() {
        let ds = store.open_dataset(&name)?;
        writeln!(out, "dataset {name:?} attrs {:?}", ds.attrs().all()?).unwrap();
        for array in ds.list_arrays()? {
            let meta = ds.array_meta(&array)?;
            writeln!(out, "array {name:?}/{array:?} {meta:?}").unwrap();
            writeln!(out, "  stats {:?}", ds.array_stats(&array)?).unwrap();
            writeln!(out, "  block stats {:?}", ds.block_stats(&array)?).unwrap();
            let blocks: Vec<_> = store
                .array_blocks(&name, &array)?
                .into_iter()
                .map(|b| (b.coord, b.codec, b.shuffled, b.is_fill, b.stored_bytes, b.raw_bytes, b.checksum))
                .collect();
            writeln!(out, "  blocks {blocks:?}").unwrap();
            if meta.shape.iter().try_fold(1u64, |acc, &n| acc.checked_mul(n)).is_none_or(|n| n > MAX_DUMPED_ELEMS) {
                writeln!(out, "  values not dumped").unwrap();
                continue;
            }
            writeln!(out, "  values {}", values(&ds, &array, meta.dtype, &meta.shape)?).unwrap();
        }
    }
    let report = store.verify(&mut |_, _| {})?;
    writeln!(out, "verify checked {} bad {}", report.blocks_checked, report.bad_blocks.len()).unwrap();
    Ok(out)
}

/// Every value of an array as text (floats as bits).
pub(crate) fn values(ds: &Dataset, array: &str, dtype: DType, shape: &[u64]) -> Result<String, Error> {
    let start = vec![0; shape.len()];
    macro_rules! plain {
        ($t:ty) => {
            format!("{:?}", ds.read_array::<$t>(array, &start, shape)?.iter().collect::<Vec<_>>())
        };
    }
    macro_rules! bits {
        ($t:ty) => {
            format!("{:x?}", ds.read_array::<$t>(array, &start, shape)?.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        };
    }
    Ok(match dtype {
        DType::Int8 => plain!(i8),
        DType::Int16 => plain!(i16),
        DType::Int32 => plain!(i32),
        DType::Int64 | DType::Timestamp => plain!(i64),
        DType::UInt8 => plain!(u8),
        DType::UInt16 => plain!(u16),
        DType::UInt32 => plain!(u32),
        DType::UInt64 => plain!(u64),
        DType::Float32 => bits!(f32),
        DType::Float64 => bits!(f64),
        DType::Bool => plain!(bool),
        DType::String => format!("{:?}", ds.read_strings(array, &start, shape)?.iter().collect::<Vec<_>>()),
        other => panic!("observe::values does not know dtype {other:?}"),
    })
}

/// Opens the store at `path` and dumps it, catching a panic anywhere in Atlas: `Err(message)`
/// for a panic, else the open-and-dump result.
pub(crate) fn open_and_dump_catching(path: &std::path::Path) -> Result<Result<String, Error>, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Atlas::open(path).and_then(|store| dump(&store)))).map_err(
        |payload| {
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_else(|| "a panic with a non-string payload".into())
        },
    )
}

/// The first line where two dumps differ, for failure messages.
pub(crate) fn first_difference(expected: &str, found: &str) -> String {
    for (i, (e, f)) in expected.lines().zip(found.lines()).enumerate() {
        if e != f {
            return format!("line {i}:\n  expected {e}\n  found    {f}");
        }
    }
    format!("line counts differ: expected {}, found {}", expected.lines().count(), found.lines().count())
}
