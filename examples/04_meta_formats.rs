//! Writes the same store (30 differing datasets x 4 arrays, with attributes) under each of
//! the six metadata encodings, prints the metadata file's size against plain JSON, and
//! reopens each store with no format argument.
//!
//! Run: `cargo run --release --example 04_meta_formats`

use std::error::Error;
use std::path::Path;

use atlas::{ArraySpec, Atlas, AttrValue, DType, MetaCompression, MetaFormat, StoreConfig};
use ndarray::Array1;

const DATASETS: usize = 30;

fn main() -> Result<(), Box<dyn Error>> {
    let root = tempfile::tempdir()?;
    let encodings = [MetaFormat::Json, MetaFormat::MsgPack]
        .into_iter()
        .flat_map(|f| [MetaCompression::None, MetaCompression::Zstd, MetaCompression::Lz4].map(|c| (f, c)));
    println!("{:<20} {:>10} {:>12}", "metadata file", "bytes", "vs json");
    let mut json_bytes = None;
    for (i, (meta_format, meta_compression)) in encodings.into_iter().enumerate() {
        let path = root.path().join(format!("store{i}"));
        let config = StoreConfig { meta_format, meta_compression, ..StoreConfig::default() };
        write_store(&path, config)?;

        let store = Atlas::open(&path)?; // the file name says format and compression
        assert_eq!(store.list_datasets().len(), DATASETS, "reopened store lost datasets");
        let name = store.meta_file_name();
        let suffix = [(MetaCompression::None, ""), (MetaCompression::Zstd, ".zst"), (MetaCompression::Lz4, ".lz4")];
        let suffix = suffix.iter().find(|(c, _)| *c == meta_compression).map_or("?", |(_, s)| *s);
        let format = if meta_format == MetaFormat::Json { "json" } else { "msgpack" };
        assert_eq!(name, format!("atlas.{format}{suffix}"));
        let flags = store.open_dataset("profile_007")?.attrs().get("flags")?;
        assert_eq!(flags, Some(AttrValue::from(vec![1, 2, 3])), "attributes did not round-trip");
        assert_eq!(store.attrs().get("created")?, Some(AttrValue::Timestamp(1_700_000_000_000_000_000)));
        let bytes = std::fs::metadata(path.join(name))?.len();
        let base = *json_bytes.get_or_insert(bytes);
        #[allow(clippy::cast_precision_loss)]
        let ratio = bytes as f64 / base as f64;
        println!("{name:<20} {bytes:>10} {ratio:>11.3}x");
    }
    println!("all six stores reopened by file name with {DATASETS} datasets and their attributes each");
    println!("(the datasets share their layout, which compression finds: a registry of less alike ones shrinks less)");
    Ok(())
}

/// 30 ocean-profile-like datasets, each with four arrays and a few attributes.
fn write_store(path: &Path, config: StoreConfig) -> Result<(), Box<dyn Error>> {
    let store = Atlas::create(path, config)?;
    store.attrs().set("title", "example profiles")?;
    store.attrs().set("created", AttrValue::Timestamp(1_700_000_000_000_000_000))?;
    for d in 0..DATASETS {
        let ds = store.create_dataset(&format!("profile_{d:03}"))?;
        // Profiles that differ (position, date, length, values), so that the compressed
        // sizes are not those of 30 copies of one dataset.
        let offset = d as f64;
        ds.attrs().set("station", format!("ST{d:04}"))?;
        ds.attrs().set("lat", -60.0 + offset * 1.37)?;
        ds.attrs().set("lon", offset * 47.3 % 360.0 - 180.0)?;
        ds.attrs().set("date_string", format!("2024-03-{:02}", d % 28 + 1))?; // stays a string
        ds.attrs().set("flags", vec![1, 2, 3])?;
        let n = 150 + (d as u64 * 37) % 100;
        for (name, dtype) in
            [("temp", DType::Float32), ("salinity", DType::Float32), ("depth", DType::Float64), ("qc", DType::UInt8)]
        {
            let array = ds.define_array(name, ArraySpec::new(dtype, [n]).dims(["level"]))?;
            array.attrs().set("units", units(name))?;
        }
        let level = Array1::from_shape_fn(n as usize, |i| i as f64);
        ds.write_array("depth", &[0], (&level * 5.0).view())?;
        ds.write_array("temp", &[0], level.mapv(|z| (20.0 - z * 0.05 + offset * 0.1) as f32).view())?;
        ds.write_array("salinity", &[0], level.mapv(|z| (34.0 + z * 0.002 + offset * 0.01) as f32).view())?;
        ds.write_array("qc", &[0], Array1::<u8>::ones(n as usize).view())?;
    }
    store.flush()?;
    Ok(())
}

fn units(name: &str) -> &'static str {
    match name {
        "temp" => "degC",
        "salinity" => "psu",
        "depth" => "m",
        _ => "1",
    }
}
