//! End-to-end tests of the `atlas` binary: stores are made through the library, each
//! subcommand is run as a process, and its output, exit code and effect on the store are
//! checked.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use atlas::{ArraySpec, Atlas, AttrValue, Codec, DType, Shuffle, StoreConfig};
use ndarray::{Array1, Array2, Array3, ArrayD};
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use serde_json::Value as Json;
use tempfile::TempDir;

fn atlas() -> Command {
    Command::new(env!("CARGO_BIN_EXE_atlas"))
}

fn stdout_of(cmd: &mut Command) -> String {
    let output = cmd.assert().success().get_output().stdout.clone();
    String::from_utf8(output).unwrap()
}

fn stdout_of_code(cmd: &mut Command, code: i32) -> String {
    String::from_utf8(cmd.assert().code(code).get_output().stdout.clone()).unwrap()
}

/// The exit status of `atlas verify STORE` writing to a pipe nobody reads.
fn verify_status_to_a_closed_pipe(store: &Path) -> Option<i32> {
    status_to_a_closed_pipe(&["verify".as_ref(), store.as_os_str()])
}

/// The exit code of `atlas ARGS` writing to a pipe whose reader is gone.
fn status_to_a_closed_pipe(args: &[&std::ffi::OsStr]) -> Option<i32> {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_atlas")).args(args).stdout(writer).status();
    status.unwrap().code()
}

fn json_of(cmd: &mut Command) -> Json {
    serde_json::from_str(&stdout_of(cmd)).unwrap()
}

/// A store with dataset `run42` holding `temp` (float32 [6, 5], chunks [2, 5], fill NaN,
/// rows 0..4 written as `t * 10 + z`), `flags` (uint8 [5], own codec lz4, never written),
/// `when` (timestamp [2]) and `names` (string [3]); an empty dataset `empty`; attributes on
/// the store, `run42` and `temp`.
fn sample_store(dir: &TempDir) -> PathBuf {
    let path = dir.path().join("ocean.atlas");
    let store = Atlas::create(&path, StoreConfig::default()).unwrap();
    store.attrs().set("title", "Argo profiles").unwrap();
    store.attrs().set("created", AttrValue::Timestamp(1_700_000_000_000_000_000)).unwrap();
    let run = store.create_dataset("run42").unwrap();
    run.attrs().set("depths", vec![0.5, 1.5]).unwrap();
    let temp = run
        .define_array(
            "temp",
            ArraySpec::new(DType::Float32, [6, 5]).dims(["time", "depth"]).chunk_shape([2, 5]).fill_value(f32::NAN),
        )
        .unwrap();
    temp.attrs().set("units", "degC").unwrap();
    let data = Array2::from_shape_fn((4, 5), |(t, z)| (t * 10 + z) as f32);
    temp.write(&[0, 0], data.view()).unwrap();
    run.define_array("flags", ArraySpec::new(DType::UInt8, [5]).codec(Codec::Lz4)).unwrap();
    let when = run.define_array("when", ArraySpec::new(DType::Timestamp, [2])).unwrap();
    when.write(&[0], Array1::from(vec![1_700_000_000_000_000_000i64, -1]).view()).unwrap();
    let names = run.define_array("names", ArraySpec::new(DType::String, [3])).unwrap();
    names.write_strings(&[0], Array1::from(vec!["a b", "", "z"]).view()).unwrap();
    store.create_dataset("empty").unwrap();
    store.flush().unwrap();
    path
}

fn fragments(store: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(store.join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "frag"))
        .collect();
    files.sort();
    files
}

/// A .npy file as numpy writes it (format 1.0, header padded to 64 bytes).
fn npy(descr: &str, shape: &[u64], body: &[u8]) -> Vec<u8> {
    let shape = match shape {
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    out
}

fn zst(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn decompress(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    match path.extension().and_then(|e| e.to_str()) {
        Some("zst") => zstd::decode_all(&bytes[..]).unwrap(),
        Some("gz") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut out).unwrap();
            out
        }
        _ => bytes,
    }
}

/// Element bytes of `elems` elements of a dtype: a pattern with no all-zero chunk, valid
/// for bool (0 or 1).
fn pattern(descr: &str, elems: usize) -> Vec<u8> {
    let size: usize = if descr.contains("M8") { 8 } else { descr[2..].parse().unwrap() };
    (0..elems * size).map(|i| if descr == "|b1" { u8::from(i % 3 != 0) } else { (i * 37 + 11) as u8 }).collect()
}

const DESCRS: [&str; 12] = ["|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8", "<f4", "<f8", "|b1", "<M8[ns]"];

#[test]
fn help_documents_the_exit_codes() {
    atlas()
        .arg("--help")
        .assert()
        .success()
        .stdout(contains("Exit codes:"))
        .stdout(contains("0  success"))
        .stdout(contains("2  usage error"))
        .stdout(contains("3  `atlas verify` found bad blocks"));
    atlas().assert().code(2).stderr(contains("Usage"));
    atlas().args(["frobnicate", "x"]).assert().code(2);
}

#[test]
fn info_shows_arrays_codec_mix_bytes_and_metadata_file() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    {
        // A chunk of only the fill value: a fill entry, stored as no bytes.
        let handle = Atlas::open(&store).unwrap();
        handle.open_dataset("run42").unwrap().write_array("flags", &[0], Array1::<u8>::zeros(5).view()).unwrap();
        handle.flush().unwrap();
    }
    let lib = Atlas::open(&store).unwrap();
    let temp_blocks = lib.array_blocks("run42", "temp").unwrap();
    let temp_stored: u64 = temp_blocks.iter().map(|b| b.stored_bytes).sum();
    let fragment_bytes: u64 = fragments(&store).iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();

    let text = stdout_of(atlas().arg("info").arg(&store));
    assert!(text.contains("metadata    atlas.json (json, compression none"), "{text}");
    assert!(text.contains("generation 2\n"), "{text}");
    assert!(text.contains("codec       zstd:3 for new blocks, shuffle auto\n"), "{text}");
    assert!(text.contains("datasets    2, arrays 4"), "{text}");
    assert!(text.contains("in 2 fragment files"), "{text}");
    assert!(text.contains("  temp  float32 [6, 5]  chunks [2, 5]  dims [time, depth]"), "{text}");
    let line = format!("blocks 2 of 3 chunks (zstd+shuffle 2), raw 80 B, stored {temp_stored} B, ratio");
    assert!(text.contains(&line), "{text}");
    assert!(
        text.contains(
            "  flags  uint8 [5]  chunks [5]  dims [dim_0]\n    blocks 1 of 1 chunk (fill 1), raw 0 B, stored 0 B\n"
        ),
        "{text}"
    );
    assert!(
        // Stored raw: 20 bytes that a zstd frame does not make smaller.
        text.contains("  names  string [3]  chunks [3]  dims [dim_0]\n    blocks 1 of 1 chunk (none 1)"),
        "{text}"
    );

    let doc = json_of(atlas().arg("info").arg(&store).arg("--json"));
    assert_eq!(doc["meta_file"], "atlas.json");
    assert_eq!(doc["meta_format"], "json");
    assert_eq!(doc["meta_compression"], "none");
    assert_eq!(doc["generation"], 2);
    assert_eq!(doc["fragment_files"], 2);
    assert_eq!(doc["fragment_bytes"], fragment_bytes);
    assert_eq!(doc["codec"], serde_json::json!({"name": "zstd", "level": 3}));
    let run = &doc["datasets"].as_array().unwrap().iter().find(|d| d["name"] == "run42").unwrap();
    assert_eq!(run["attribute_count"], 1);
    let temp = run["arrays"].as_array().unwrap().iter().find(|a| a["name"] == "temp").unwrap();
    assert_eq!(temp["dtype"], "float32");
    assert_eq!(temp["shape"], serde_json::json!([6, 5]));
    assert_eq!(temp["chunk_shape"], serde_json::json!([2, 5]));
    assert_eq!(temp["dims"], serde_json::json!(["time", "depth"]));
    assert_eq!(temp["fill_value"], "NaN");
    assert_eq!(temp["chunks"], 3);
    assert_eq!(temp["blocks"], 2);
    assert_eq!(temp["codec_mix"], serde_json::json!({"zstd+shuffle": 2}));
    assert_eq!(temp["raw_bytes"], 80);
    assert_eq!(temp["stored_bytes"], temp_stored);
    assert!((temp["ratio"].as_f64().unwrap() - 80.0 / temp_stored as f64).abs() < 1e-9);
    let flags = run["arrays"].as_array().unwrap().iter().find(|a| a["name"] == "flags").unwrap();
    assert_eq!(flags["codec"], serde_json::json!({"name": "lz4"}));
    assert_eq!(flags["codec_mix"], serde_json::json!({"fill": 1}));
    assert_eq!(flags["ratio"], Json::Null);
}

#[test]
fn info_json_gives_fill_values_as_cat_json_gives_an_element_holding_them() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("s");
    let store = Atlas::create(&path, StoreConfig::default()).unwrap();
    let ds = store.create_dataset("d").unwrap();
    let arrays = [
        ("b", ArraySpec::new(DType::Bool, [2]).fill_value(1.0), Json::from(true)),
        ("f", ArraySpec::new(DType::Float64, [2]), serde_json::json!(0.0)),
        ("i", ArraySpec::new(DType::Int64, [2]).fill_value(5.0), Json::from(5)),
        ("t", ArraySpec::new(DType::Timestamp, [2]), Json::Null),
        ("s", ArraySpec::new(DType::String, [2]), Json::from("")),
    ];
    for (name, spec, _) in &arrays {
        ds.define_array(name, spec.clone()).unwrap();
    }
    store.flush().unwrap();
    let doc = json_of(atlas().arg("info").arg(&path).arg("--json"));
    for (name, _, expected) in arrays {
        let array = doc["datasets"][0]["arrays"].as_array().unwrap().iter().find(|a| a["name"] == name).unwrap();
        assert_eq!(array["fill_value"], expected, "{name}");
    }
}

#[test]
fn ls_lists_datasets_then_one_datasets_arrays() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let text = stdout_of(atlas().arg("ls").arg(&store));
    assert_eq!(text, "empty  0 arrays\nrun42  4 arrays\n");
    let text = stdout_of(atlas().arg("ls").arg(&store).arg("run42"));
    // Every column lines up, the shapes and chunks of other lengths included.
    assert!(text.contains("temp   float32    [6, 5]  chunks [2, 5]  dims [time, depth]\n"), "{text}");
    assert!(text.contains("names  string     [3]     chunks [3]     dims [dim_0]\n"), "{text}");
    let doc = json_of(atlas().arg("ls").arg(&store).arg("--json"));
    assert_eq!(doc["datasets"][1], serde_json::json!({"name": "run42", "array_count": 4}));
    let doc = json_of(atlas().arg("ls").arg(&store).args(["run42", "--json"]));
    assert_eq!(doc["arrays"][3]["name"], "when");
    assert_eq!(doc["arrays"][3]["dtype"], "timestamp");
    atlas().arg("ls").arg(&store).arg("nope").assert().code(1).stderr(contains("dataset not found: nope"));
    // Columns line up by characters, not bytes: `\u{e9}` is two bytes in UTF-8.
    let opened = Atlas::open(&store).unwrap();
    opened.create_dataset("donn\u{e9}es").unwrap().attrs().set("cl\u{e9}", 1).unwrap();
    opened.flush().unwrap();
    let text = stdout_of(atlas().arg("ls").arg(&store));
    assert_eq!(text, "donn\u{e9}es  0 arrays\nempty    0 arrays\nrun42    4 arrays\n");
    let array = atlas().arg("ls").arg(&store).arg("run42/temp").assert().code(1);
    array.stderr(contains("run42/temp names an array; `atlas ls ").and(contains(" run42` lists its dataset's arrays")));
    // A dataset as `atlas info` heads it, or with the root `/` before it; `/` alone is the
    // store, as h5py names its root.
    for spelled in ["run42/", "/run42", "/run42/"] {
        assert_eq!(
            stdout_of(atlas().arg("ls").arg(&store).arg(spelled)),
            stdout_of(atlas().arg("ls").arg(&store).arg("run42"))
        );
    }
    assert_eq!(stdout_of(atlas().arg("ls").arg(&store).arg("/")), stdout_of(atlas().arg("ls").arg(&store)));
    let text = stdout_of(atlas().arg("attrs").arg(&store).arg("donn\u{e9}es"));
    assert_eq!(text, "cl\u{e9}  int       1\n");
}

#[test]
fn stats_reports_counts_extremes_and_blocks() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let text = stdout_of(atlas().arg("stats").arg(&store).arg("run42/temp"));
    assert!(text.contains("count   20\n"), "{text}");
    assert!(text.contains("nulls   10  (NaN elements)\n"), "{text}");
    assert!(text.contains("min     0\n"), "{text}");
    assert!(text.contains("max     34\n"), "{text}");
    assert!(text.contains("blocks  2 of 3 chunks written"), "{text}");
    let text = stdout_of(atlas().arg("stats").arg(&store).args(["run42/when", "--blocks"]));
    assert!(text.contains("min     1969-12-31T23:59:59.999999999"), "{text}");
    assert!(text.contains("max     2023-11-14T22:13:20"), "{text}");
    // A mean of instants is an instant; their sum is nothing to show, nor a string's.
    assert!(text.contains("sum     -\nmean    1996-12-07T23:06:40\n"), "{text}");
    assert!(text.contains("[0]\t2\t"), "{text}");
    let text = stdout_of(atlas().arg("stats").arg(&store).arg("run42/names"));
    assert!(text.contains("sum     -\nmean    -\n"), "{text}");
    let doc = json_of(atlas().arg("stats").arg(&store).args(["run42/temp", "--json", "--blocks"]));
    assert_eq!(doc["stats"]["count"], 20);
    assert_eq!(doc["stats"]["max"], 34.0);
    assert_eq!(doc["blocks"], 2);
    assert_eq!(doc["block_stats"][1]["coord"], serde_json::json!([1, 0]));
    assert_eq!(doc["block_stats"][1]["min"], 20.0);
    // JSON as text: no sum of instants.
    let doc = json_of(atlas().arg("stats").arg(&store).args(["run42/when", "--json", "--blocks"]));
    assert_eq!(
        (&doc["stats"]["sum"], &doc["block_stats"][0]["sum"]),
        (&serde_json::Value::Null, &serde_json::Value::Null)
    );
    // Its mean in nanoseconds, as min and max are.
    assert_eq!(
        (doc["stats"]["mean"].as_i64(), doc["stats"]["min"].as_i64()),
        (Some(850_000_000_000_000_000), Some(-1))
    );
    atlas()
        .arg("stats")
        .arg(&store)
        .arg("run42/nope")
        .assert()
        .code(1)
        .stderr(contains("array not found: run42/nope in store"))
        .stderr(contains("lists its arrays"));
    atlas().arg("stats").arg(&store).arg("run42").assert().code(2).stderr(contains("DATASET/ARRAY"));
    // Bools print as `cat` prints them, from the statistics of this session and once reopened.
    let flags = dir.path().join("flags.atlas");
    let flag_store = Atlas::create(&flags, StoreConfig::default()).unwrap();
    let d = flag_store.create_dataset("d").unwrap();
    // The fill value is no value: the statistics of each array hold the other bool only.
    for (name, fill) in [("ok", false), ("ko", true)] {
        let spec = ArraySpec::new(DType::Bool, [3]).fill_value(fill);
        d.define_array(name, spec).unwrap().write(&[0], Array1::from(vec![true, false, true]).view()).unwrap();
    }
    flag_store.flush().unwrap();
    for (name, value) in [("d/ok", "true"), ("d/ko", "false")] {
        let text = stdout_of(atlas().arg("stats").arg(&flags).args([name, "--blocks"]));
        assert!(text.contains(&format!("min     {value}\nmax     {value}\n")), "{text}");
        assert!(text.contains(&format!("\t{value}\t{value}\t")), "{text}");
        let doc = json_of(atlas().arg("stats").arg(&flags).args([name, "--json", "--blocks"]));
        let value = serde_json::Value::Bool(value == "true");
        assert_eq!((&doc["stats"]["min"], &doc["stats"]["max"]), (&value, &value), "{doc}");
        assert_eq!((&doc["block_stats"][0]["min"], &doc["block_stats"][0]["max"]), (&value, &value), "{doc}");
    }
}

#[test]
fn attrs_prints_store_dataset_and_array_attributes() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let text = stdout_of(atlas().arg("attrs").arg(&store));
    assert_eq!(text, "created  timestamp 2023-11-14T22:13:20\ntitle    string    \"Argo profiles\"\n");
    let text = stdout_of(atlas().arg("attrs").arg(&store).arg("run42"));
    assert_eq!(text, "depths  list      [0.5, 1.5]\n");
    let doc = json_of(atlas().arg("attrs").arg(&store).args(["run42/temp", "--json"]));
    assert_eq!(doc, serde_json::json!({"units": {"type": "string", "value": "degC"}}));
}

#[test]
fn cat_prints_the_selected_values() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let cat = |args: &[&str]| stdout_of(atlas().arg("cat").arg(&store).args(args));
    assert_eq!(cat(&["run42/temp", "--slice", "0:2,1:3"]), "1 2\n11 12\n");
    assert_eq!(cat(&["run42/temp", "--slice", "1,::2"]), "10\n12\n14\n");
    assert_eq!(cat(&["run42/temp", "--slice", "-1"]), "NaN\nNaN\nNaN\nNaN\nNaN\n");
    assert_eq!(cat(&["run42/temp", "--slice", "3,4"]), "34\n");
    assert_eq!(cat(&["run42/temp", "--slice", "4:1"]), "");
    assert_eq!(cat(&["run42/when"]), "2023-11-14T22:13:20\n1969-12-31T23:59:59.999999999\n");
    assert_eq!(cat(&["run42/names"]), "\"a b\"\n\"\"\n\"z\"\n");
    assert_eq!(cat(&["run42/flags"]), "0\n0\n0\n0\n0\n");
    assert_eq!(cat(&["run42/flags", "--slice", "1::4611686018427387904"]), "0\n", "a step past any slab size");
    let whole = cat(&["run42/temp"]);
    assert_eq!(whole.lines().count(), 6);
    assert_eq!(whole.lines().next(), Some("0 1 2 3 4"));
    // Slabs of one row print the same as one slab, with steps too.
    assert_eq!(cat(&["run42/temp", "--slab-bytes", "1"]), whole);
    let every_third = cat(&["run42/temp", "--slice", "::3"]);
    assert_eq!(every_third, "0 1 2 3 4\n30 31 32 33 34\n");
    assert_eq!(cat(&["run42/temp", "--slice", "::3", "--slab-bytes", "1"]), every_third);
    assert_eq!(
        cat(&["run42/temp", "--slice", "1::2", "--slab-bytes", "40"]),
        "10 11 12 13 14\n30 31 32 33 34\nNaN NaN NaN NaN NaN\n"
    );

    let doc: Json = serde_json::from_str(&cat(&["run42/temp", "--slice", "3:5,0:2", "--json"])).unwrap();
    assert_eq!(doc, serde_json::json!([[30.0, 31.0], ["NaN", "NaN"]]));
    let doc: Json = serde_json::from_str(&cat(&["run42/when", "--json"])).unwrap();
    assert_eq!(doc, serde_json::json!([1_700_000_000_000_000_000i64, -1]));
    // JSON is written a slab at a time too, byte for byte as one slab.
    for slice in [":,:", "::2,1:", "1,:", "4:1", "3,4"] {
        let json = |slab: &str| cat(&["run42/temp", "--slice", slice, "--json", "--slab-bytes", slab]);
        let whole = json("1048576");
        assert_eq!(json("1"), whole, "{slice}");
        serde_json::from_str::<Json>(&whole).unwrap();
    }
    assert_eq!(cat(&["run42/names", "--json", "--slab-bytes", "1"]), "[\"a b\",\"\",\"z\"]\n");
}

#[test]
fn json_gives_float32_values_their_own_shortest_digits() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("f4.atlas");
    let store = Atlas::create(&path, StoreConfig::default()).unwrap();
    let x = store.create_dataset("d").unwrap().define_array("x", ArraySpec::new(DType::Float32, [3])).unwrap();
    x.write(&[0], Array1::from(vec![0.1f32, 0.2, 20.001]).view()).unwrap();
    store.flush().unwrap();
    let cat = stdout_of(atlas().arg("cat").arg(&path).args(["d/x", "--json"]));
    assert_eq!(cat, "[0.1,0.2,20.001]\n", "as the text output writes them, not widened to float64");
    let doc = json_of(atlas().arg("stats").arg(&path).args(["d/x", "--json", "--blocks"]));
    assert_eq!((doc["stats"]["min"].to_string(), doc["stats"]["max"].to_string()), ("0.1".into(), "20.001".into()));
    assert_eq!(doc["block_stats"][0]["max"].to_string(), "20.001");
}

#[test]
fn cat_prints_planes_of_higher_dimensional_arrays_under_headers() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("cube");
    let store = Atlas::create(&path, StoreConfig::default()).unwrap();
    let ds = store.create_dataset("d").unwrap();
    let cube = ds.define_array("cube", ArraySpec::new(DType::Int16, [3, 2, 2]).chunk_shape([1, 2, 2])).unwrap();
    cube.write(
        &[0, 0, 0],
        Array3::from_shape_fn((3, 2, 2), |(i, j, k)| i16::try_from(i * 4 + j * 2 + k).unwrap()).view(),
    )
    .unwrap();
    ds.define_array("scalar", ArraySpec::new(DType::Float64, [])).unwrap();
    ds.write_array("scalar", &[], ndarray::arr0(2.5f64).view()).unwrap();
    let hyper = ds.define_array("hyper", ArraySpec::new(DType::Int16, [2, 3, 2, 2])).unwrap();
    let values =
        ndarray::Array::from_shape_fn((2, 3, 2, 2), |(h, i, j, k)| i16::try_from(h * 100 + i * 4 + j * 2 + k).unwrap());
    hyper.write(&[0, 0, 0, 0], values.view()).unwrap();
    store.flush().unwrap();
    let expected = "[0, :, :]\n0 1\n2 3\n\n[1, :, :]\n4 5\n6 7\n\n[2, :, :]\n8 9\n10 11\n";
    assert_eq!(stdout_of(atlas().arg("cat").arg(&path).arg("d/cube")), expected);
    assert_eq!(stdout_of(atlas().arg("cat").arg(&path).args(["d/cube", "--slab-bytes", "1"])), expected);
    let planes = stdout_of(atlas().arg("cat").arg(&path).args(["d/cube", "--slice", "1:,:,1"]));
    assert_eq!(planes, "5 7\n9 11\n");
    // Plane headers give the plane's index in the array, not in the selection.
    let stepped = stdout_of(atlas().arg("cat").arg(&path).args(["d/cube", "--slice", "1::1", "--slab-bytes", "1"]));
    assert_eq!(stepped, "[1, :, :]\n4 5\n6 7\n\n[2, :, :]\n8 9\n10 11\n");
    assert_eq!(stdout_of(atlas().arg("cat").arg(&path).arg("d/scalar")), "2.5\n");
    // Axis 0 picked: the slabs cut the first kept axis, and the plane headers count on,
    // naming the picked index and the stepped one as the array's.
    let picked = "[1, 0, :, :]\n100 101\n102 103\n\n[1, 2, :, :]\n108 109\n110 111\n";
    for slab in ["1", "1048576"] {
        let args = ["d/hyper", "--slice", "1,::2", "--slab-bytes", slab];
        assert_eq!(stdout_of(atlas().arg("cat").arg(&path).args(args)), picked, "slab {slab}");
    }
}

#[test]
fn cat_refuses_a_malformed_slice_as_usage_and_an_outside_one_as_error() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let cat = || {
        let mut cmd = atlas();
        cmd.arg("cat").arg(&store).arg("run42/temp");
        cmd
    };
    cat().args(["--slice", "1:x"]).assert().code(2).stderr(contains("\"x\" is not an integer"));
    cat().args(["--slice", "0:2:-1"]).assert().code(2).stderr(contains("steps must be positive"));
    cat().args(["--slice", "6"]).assert().code(1).stderr(contains("index 6 is out of bounds for axis 0 with size 6"));
    cat().args(["--slice", "0,0,0"]).assert().code(1).stderr(contains("3 items but the array has 2 dimensions"));
}

#[test]
fn a_missing_store_or_a_directory_without_one_is_named_in_the_error() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("nowhere");
    for cmd in ["info", "ls", "verify", "compact"] {
        atlas()
            .arg(cmd)
            .arg(&missing)
            .assert()
            .code(1)
            .stderr(contains(format!("atlas: error: {}: no such store", missing.display())));
    }
    atlas().arg("info").arg(dir.path()).assert().code(1).stderr(contains("not an Atlas store"));
    let file = dir.path().join("a-file");
    std::fs::write(&file, "hi").unwrap();
    atlas().arg("info").arg(&file).assert().code(1).stderr(contains("not an Atlas store (a store is a directory)"));
}

#[test]
fn cat_json_gives_a_missing_timestamp_as_null_and_the_least_int64_as_a_number() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("s.atlas");
    let ds = Atlas::create(&path, StoreConfig::default()).unwrap().create_dataset("d").unwrap();
    ds.define_array("t", ArraySpec::new(DType::Timestamp, [2]))
        .unwrap()
        .write(&[1], Array1::from(vec![5i64]).view())
        .unwrap();
    ds.define_array("i", ArraySpec::new(DType::Int64, [1]))
        .unwrap()
        .write(&[0], Array1::from(vec![i64::MIN]).view())
        .unwrap();
    drop(ds);
    assert_eq!(stdout_of(atlas().arg("cat").arg(&path).args(["d/t", "--json"])), "[null,5]\n", "NaT, unwritten");
    assert_eq!(stdout_of(atlas().arg("cat").arg(&path).args(["d/i", "--json"])), format!("[{}]\n", i64::MIN));
}

#[test]
fn verify_passes_a_sound_store() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    atlas().arg("verify").arg(&store).assert().success().stdout("ok: 4 blocks in 4 arrays verified\n").stderr("");
    let one = dir.path().join("one");
    let ds = Atlas::create(&one, StoreConfig::default()).unwrap().create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::UInt8, [2]))
        .unwrap()
        .write(&[0], Array1::from(vec![1u8, 2]).view())
        .unwrap();
    drop(ds);
    atlas().arg("verify").arg(&one).assert().success().stdout("ok: 1 block in 1 array verified\n");
    let doc = json_of(atlas().arg("verify").arg(&store).arg("--json"));
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["blocks_checked"], 4);
    // A relative path is shown absolute, as `info` shows it.
    let relative = json_of(atlas().current_dir(dir.path()).arg("verify").arg("ocean.atlas").arg("--json"));
    assert_eq!(relative["store"], store.to_string_lossy().as_ref(), "{relative}");
    assert_eq!(doc["bad_blocks"], serde_json::json!([]));
}

/// A store whose blocks are stored raw (no codec, no shuffle), so a flipped byte is found
/// by its checksum: `run/temp` (float64 [4, 8], chunks [2, 8]) and `run/ok` (int32 [10]).
fn raw_store(dir: &TempDir) -> (PathBuf, Array2<f64>) {
    let path = dir.path().join("raw.atlas");
    let config = StoreConfig { codec: Codec::None, shuffle: Shuffle::Off, ..StoreConfig::default() };
    let store = Atlas::create(&path, config).unwrap();
    let run = store.create_dataset("run").unwrap();
    run.define_array("temp", ArraySpec::new(DType::Float64, [4, 8]).chunk_shape([2, 8])).unwrap();
    let data = Array2::from_shape_fn((4, 8), |(i, j)| 1000.5 + (i * 8 + j) as f64);
    run.write_array("temp", &[0, 0], data.view()).unwrap();
    run.define_array("ok", ArraySpec::new(DType::Int32, [10])).unwrap();
    run.write_array("ok", &[0], Array1::from_iter(1..=10).view()).unwrap();
    store.flush().unwrap();
    (path, data)
}

#[test]
fn verify_reports_statistics_the_metadata_keeps_that_are_not_the_blocks_and_exits_3() {
    // `run/ok` holds 1..=10; the metadata file, edited by hand (without its checksum, as a
    // hand-written one is taken), says its values go from 100 to 200.
    let dir = TempDir::new().unwrap();
    let (store, _) = raw_store(&dir);
    let meta_path = store.join("atlas.json");
    let mut meta: Json = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    meta.as_object_mut().unwrap().remove("checksum");
    meta["datasets"]["run"]["arrays"]["ok"]["stats"] =
        serde_json::json!({"count": 10, "null_count": 0, "min": 100, "max": 200, "sum": 1500.0, "mean": 150.0});
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    let text = stdout_of_code(atlas().arg("verify").arg(&store), 3);
    let file = meta_path.display();
    assert!(
        text.contains(&format!(
            "BAD run/ok in {file}: the statistics the metadata keeps (count 10, nulls 0, min 100, max 200) \
             are not those of its blocks (count 10, nulls 0, min 1, max 10)"
        )),
        "{text}"
    );
    assert!(text.ends_with("0 bad of 3 blocks checked in 2 arrays; the statistics of 1 array are not their blocks'\n"));
    let doc: Json = serde_json::from_str(&stdout_of_code(atlas().arg("verify").arg(&store).arg("--json"), 3)).unwrap();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["bad_blocks"][0]["kind"], "stats_mismatch", "{doc}");
    assert_eq!(doc["bad_blocks"][0]["array"], "run/ok");
}

#[test]
fn verify_lists_a_flipped_byte_by_array_chunk_and_file_and_exits_3() {
    let dir = TempDir::new().unwrap();
    let (store, data) = raw_store(&dir);
    let fragment = fragments(&store).remove(0);
    let mut bytes = std::fs::read(&fragment).unwrap();
    // Chunk [1, 0] holds rows 2..4, stored as is: find its bytes and flip one.
    let chunk: Vec<u8> = data.slice(ndarray::s![2..4, ..]).iter().flat_map(|v| v.to_le_bytes()).collect();
    let at = bytes.windows(chunk.len()).position(|w| w == chunk.as_slice()).expect("the raw chunk is in the file");
    bytes[at + 13] ^= 0x40;
    std::fs::write(&fragment, &bytes).unwrap();

    let offset = Atlas::open(&store).unwrap().array_blocks("run", "temp").unwrap()[1].offset_bytes;
    let assert = atlas().arg("verify").arg(&store).assert().code(3);
    let text = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    let line =
        format!("BAD run/temp chunk [1, 0] file {} offset {offset}: checksum mismatch: stored 0x", fragment.display());
    assert!(text.contains(&line), "{text}");
    assert!(text.contains("checksum mismatch"), "{text}");
    assert!(text.ends_with("1 bad of 3 blocks checked in 2 arrays\n"), "{text}");
    assert_eq!(text.matches("BAD").count(), 1, "{text}");
    // With no one left to read the report, the status still tells.
    assert_eq!(verify_status_to_a_closed_pipe(&store), Some(3));

    let assert = atlas().arg("verify").arg(&store).arg("--json").assert().code(3);
    let doc: Json = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(doc["ok"], false);
    let bad = &doc["bad_blocks"].as_array().unwrap()[..];
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0]["array"], "run/temp");
    assert_eq!(bad[0]["coord"], serde_json::json!([1, 0]));
    assert_eq!(bad[0]["file"], fragment.to_str().unwrap());
    assert_eq!(bad[0]["offset"], offset);
    assert_eq!(bad[0]["kind"], "checksum_mismatch");
    // Reading the bad chunk fails the same way; the good ones still read.
    atlas().arg("cat").arg(&store).arg("run/temp").assert().code(1).stderr(contains("checksum mismatch"));
    atlas().arg("cat").arg(&store).args(["run/temp", "--slice", "0:2"]).assert().success();
}

#[test]
fn verify_exits_3_when_the_reader_leaves_during_a_long_report() {
    // 300 bad blocks make a report far past the output buffer: the reader is gone before
    // most lines are written.
    let dir = TempDir::new().unwrap();
    let store = dir.path().join("s");
    let atlas_store = Atlas::create(&store, StoreConfig::default()).unwrap();
    let ds = atlas_store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::UInt8, [2400]).chunk_shape([8]).codec(Codec::None)).unwrap();
    ds.write_array("a", &[0], Array1::from_shape_fn(2400, |i| (i % 251) as u8).view()).unwrap();
    atlas_store.flush().unwrap();
    drop((ds, atlas_store));
    let fragment = fragments(&store).remove(0);
    let mut bytes = std::fs::read(&fragment).unwrap();
    // The blocks, 8 bytes each and stored as they are, follow the 16-byte header.
    bytes[16..16 + 2400].iter_mut().for_each(|b| *b ^= 0xff);
    std::fs::write(&fragment, &bytes).unwrap();

    assert_eq!(verify_status_to_a_closed_pipe(&store), Some(3));
    let report = stdout_of_code(atlas().arg("verify").arg(&store), 3);
    assert_eq!(report.matches("BAD").count(), 300);
    assert!(report.len() > 16 << 10, "the report is longer than the output buffer");
}

#[test]
fn verify_reports_a_missing_fragment_file_as_damage() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let fragment = fragments(&store).remove(0);
    std::fs::remove_file(&fragment).unwrap();
    let report = stdout_of_code(atlas().arg("verify").arg(&store), 3);
    assert!(report.contains("missing"), "{report}");
    assert!(report.contains(fragment.file_name().unwrap().to_str().unwrap()), "{report}");
    assert!(report.ends_with("the store does not open because of the file above: no block was checked\n"), "{report}");
    let doc: Json = serde_json::from_str(&stdout_of_code(atlas().arg("verify").arg(&store).arg("--json"), 3)).unwrap();
    assert_eq!((doc["opened"].as_bool(), doc["blocks_checked"].as_u64()), (Some(false), Some(0)), "{doc}");
    // Other commands fail on it naming the OS error once, not once per level of the chain.
    let assert = atlas().arg("info").arg(&store).assert().code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "{stderr}");
}

#[test]
fn json_reports_give_a_path_that_is_not_utf8_as_text() {
    use std::os::unix::ffi::OsStrExt;
    let dir = TempDir::new().unwrap();
    let store = dir.path().join(std::ffi::OsStr::from_bytes(b"s\xff.atlas"));
    std::fs::rename(sample_store(&dir), &store).unwrap();
    let doc = json_of(atlas().arg("info").arg(&store).arg("--json"));
    assert!(doc["store"].as_str().unwrap().ends_with("s\u{fffd}.atlas"), "{doc}");
    assert_eq!(json_of(atlas().arg("verify").arg(&store).arg("--json"))["ok"], true);
    std::fs::remove_file(fragments(&store).remove(0)).unwrap();
    let assert = atlas().arg("verify").arg(&store).arg("--json").assert().code(3);
    let doc: Json = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert!(doc["bad_blocks"][0]["file"].as_str().unwrap().contains("s\u{fffd}.atlas/data/"), "{doc}");
}

#[test]
fn verify_reports_a_damaged_fragment_index_naming_the_file() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let fragment = fragments(&store).remove(0);
    let mut bytes = std::fs::read(&fragment).unwrap();
    let in_index = bytes.len() - 40 - 3;
    bytes[in_index] ^= 0xff;
    std::fs::write(&fragment, &bytes).unwrap();
    let assert = atlas().arg("verify").arg(&store).assert().code(3);
    let text = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(text.starts_with(&format!("BAD file {}: ", fragment.display())), "{text}");
    atlas().arg("info").arg(&store).assert().code(1).stderr(contains(fragment.display().to_string()));
}

#[test]
fn convert_meta_rewrites_the_metadata_file_in_the_new_encoding() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let text =
        stdout_of(atlas().arg("convert-meta").arg(&store).args(["--format", "msgpack", "--compression", "zstd"]));
    assert!(text.starts_with("atlas.json ("), "{text}");
    assert!(text.contains(") -> atlas.msgpack.zst ("), "{text}");
    assert!(store.join("atlas.msgpack.zst").exists() && !store.join("atlas.json").exists());
    let reopened = Atlas::open(&store).unwrap();
    assert_eq!(reopened.meta_file_name(), "atlas.msgpack.zst");
    assert_eq!(reopened.attrs().get("title").unwrap(), Some(AttrValue::from("Argo profiles")));
    let doc = json_of(atlas().arg("info").arg(&store).arg("--json"));
    assert_eq!((doc["meta_format"].as_str(), doc["meta_compression"].as_str()), (Some("msgpack"), Some("zstd")));
    atlas().arg("convert-meta").arg(&store).args(["--format", "yaml"]).assert().code(2);
    // What is not given stays as it is; giving neither is a usage error.
    stdout_of(atlas().arg("convert-meta").arg(&store).args(["--format", "json"]));
    assert_eq!(Atlas::open(&store).unwrap().meta_file_name(), "atlas.json.zst");
    stdout_of(atlas().arg("convert-meta").arg(&store).args(["--compression", "lz4"]));
    assert_eq!(Atlas::open(&store).unwrap().meta_file_name(), "atlas.json.lz4");
    // `zst`, as export spells it, is zstd here too.
    stdout_of(atlas().arg("convert-meta").arg(&store).args(["--compression", "zst"]));
    assert_eq!(Atlas::open(&store).unwrap().meta_file_name(), "atlas.json.zst");
    atlas().arg("convert-meta").arg(&store).assert().code(2).stderr(contains("--format"));
}

fn temp_values(store: &Path) -> ArrayD<f32> {
    Atlas::open(store).unwrap().open_dataset("run42").unwrap().read_array::<f32>("temp", &[0, 0], &[6, 5]).unwrap()
}

fn same_floats(a: &ArrayD<f32>, b: &ArrayD<f32>) -> bool {
    a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn recompress_changes_the_codec_and_keeps_values_and_block_identity() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let before = temp_values(&store);
    let blocks_before = Atlas::open(&store).unwrap().open_dataset("run42").unwrap().block_stats("temp").unwrap();
    let text =
        stdout_of(atlas().arg("recompress").arg(&store).args(["--codec", "lz4", "--shuffle", "off"]).arg("--quiet"));
    assert_eq!(text, "recompressed 4 arrays (of 4 blocks) to lz4, shuffle off\n");
    let reopened = Atlas::open(&store).unwrap();
    assert_eq!((reopened.codec(), reopened.shuffle()), (Codec::Lz4, Shuffle::Off));
    assert_eq!(reopened.open_dataset("run42").unwrap().array_meta("flags").unwrap().codec, None);
    assert!(stdout_of(atlas().arg("info").arg(&store)).contains("codec       lz4 for new blocks, shuffle off\n"));
    assert_eq!(json_of(atlas().arg("info").arg(&store).arg("--json"))["shuffle"], "off");
    assert_eq!(reopened.open_dataset("run42").unwrap().block_stats("temp").unwrap(), blocks_before);
    assert!(same_floats(&temp_values(&store), &before));
    atlas().arg("verify").arg(&store).assert().success();

    // One array: it keeps the codec as its own; the store's default stays.
    let text = stdout_of(atlas().arg("recompress").arg(&store).args([
        "--array",
        "run42/temp",
        "--codec",
        "zstd",
        "--level",
        "9",
    ]));
    assert_eq!(text, "recompressed 1 array (of 2 blocks) to zstd:9, shuffle unchanged\n");
    let reopened = Atlas::open(&store).unwrap();
    assert_eq!(reopened.codec(), Codec::Lz4);
    let temp_meta = reopened.open_dataset("run42").unwrap().array_meta("temp").unwrap();
    assert_eq!(
        (temp_meta.codec, temp_meta.shuffle),
        (Some(Codec::Zstd { level: 9 }), None),
        "the shuffle is the store's"
    );
    assert!(same_floats(&temp_values(&store), &before));

    // Byte delta for one array, then the whole store recompressed without --shuffle: every
    // array keeps its shuffle, the store's setting included.
    let text = stdout_of(
        atlas()
            .arg("recompress")
            .arg(&store)
            .args(["--array", "run42/temp", "--codec", "lz4"])
            .args(["--shuffle", "bytedelta"]),
    );
    assert_eq!(text, "recompressed 1 array (of 2 blocks) to lz4, shuffle bytedelta\n");
    assert!(stdout_of(atlas().arg("info").arg(&store)).contains("lz4+bytedelta 2"));
    stdout_of(atlas().arg("recompress").arg(&store).args(["--codec", "zstd", "--quiet"]));
    let reopened = Atlas::open(&store).unwrap();
    assert_eq!((reopened.codec(), reopened.shuffle()), (Codec::Zstd { level: 3 }, Shuffle::Off));
    assert_eq!(reopened.open_dataset("run42").unwrap().array_meta("temp").unwrap().shuffle, Some(Shuffle::ByteDelta));
    assert!(stdout_of(atlas().arg("info").arg(&store)).contains("zstd+bytedelta 2"));
    assert!(same_floats(&temp_values(&store), &before));
    // The element delta.
    let text = stdout_of(atlas().arg("recompress").arg(&store).args([
        "--array",
        "run42/temp",
        "--codec",
        "zstd",
        "--shuffle",
        "delta",
    ]));
    assert_eq!(text, "recompressed 1 array (of 2 blocks) to zstd:3, shuffle delta\n");
    assert!(stdout_of(atlas().arg("info").arg(&store)).contains("zstd+delta 2"));
    assert!(same_floats(&temp_values(&store), &before));

    atlas()
        .arg("recompress")
        .arg(&store)
        .args(["--codec", "lz4", "--level", "3"])
        .assert()
        .code(2)
        .stderr(contains("--level"));
    atlas()
        .arg("recompress")
        .arg(&store)
        .args(["--codec", "zstd", "--level", "99"])
        .assert()
        .code(2)
        .stderr(contains("--level 99 is outside zstd's levels, -131072 to 22"))
        .stderr(contains("Usage: atlas recompress"));
    atlas()
        .arg("recompress")
        .arg(&store)
        .args(["--array", "run42/nope", "--codec", "none"])
        .assert()
        .code(1)
        .stderr(contains("array not found: run42/nope"));
}

#[test]
fn compact_reclaims_the_blocks_recompression_left_behind() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let before = temp_values(&store);
    atlas().arg("recompress").arg(&store).args(["--codec", "none"]).assert().success();
    assert_eq!(fragments(&store).len(), 2);
    let doc = json_of(atlas().arg("compact").arg(&store).arg("--json"));
    assert_eq!(doc["fragments_before"], 2);
    assert_eq!(doc["fragments_after"], 1);
    assert_eq!(doc["blocks_kept"], 4);
    // Two re-encoded; the blocks of the timestamps and the names were stored as their raw
    // bytes already (zstd did not make them smaller), which is what `none` asks for.
    assert_eq!(doc["blocks_dropped"], 2);
    assert_eq!(fragments(&store).len(), 1);
    assert!(same_floats(&temp_values(&store), &before));
    let text = stdout_of(atlas().arg("compact").arg(&store));
    assert!(text.starts_with("fragments  1 -> 1\n"), "{text}");
    assert!(text.contains("blocks     4 kept, 0 dropped"), "{text}");
}

#[test]
fn import_export_round_trips_every_dtype_through_every_file_format() {
    let dir = TempDir::new().unwrap();
    let store = dir.path().join("s");
    Atlas::create(&store, StoreConfig::default()).unwrap();
    let shape = [7u64, 3];
    for descr in DESCRS {
        let original = npy(descr, &shape, &pattern(descr, 21));
        let name = descr.replace(['<', '|', '[', ']'], "");
        let sources = [
            (dir.path().join(format!("{name}.npy")), original.clone()),
            (dir.path().join(format!("{name}.npy.zst")), zst(&original)),
            (dir.path().join(format!("{name}.npy.gz")), gz(&original)),
        ];
        for (i, (source, bytes)) in sources.iter().enumerate() {
            std::fs::write(source, bytes).unwrap();
            let array = format!("{name}/from{i}");
            atlas()
                .arg("import")
                .arg(&store)
                .arg(&array)
                .arg(source)
                .args(["--chunks", "2,3", "--slab-bytes", "1"])
                .assert()
                .success()
                .stdout(contains(format!("-> {array}: ")))
                .stderr("");
            // Exported in another format than it came in: the bytes numpy wrote come back.
            let ext = ["npy", "npy.zst", "npy.gz"][(i + 1) % 3];
            let target = dir.path().join(format!("out-{name}-{i}.{ext}"));
            atlas().arg("export").arg(&store).arg(&array).arg(&target).assert().success().stderr("");
            assert_eq!(decompress(&target), original, "{descr} via {}", source.display());
        }
        let reopened = Atlas::open(&store).unwrap();
        let ds = reopened.open_dataset(&name).unwrap();
        let meta = ds.array_meta("from0").unwrap();
        assert_eq!((meta.dtype.name(), meta.shape.clone()), (DType::from_name(descr).unwrap().name(), shape.to_vec()));
        let blocks = ds.block_stats("from0").unwrap();
        assert_eq!(blocks.len(), 4, "{descr}: one block per chunk");
        assert_eq!(ds.block_stats("from1").unwrap(), blocks, "{descr}");
        assert_eq!(ds.block_stats("from2").unwrap(), blocks, "{descr}");
        // The same chunks, so the same checksums, whatever the source's compression.
        let checksums = |array: &str| -> Vec<u64> {
            reopened.array_blocks(&name, array).unwrap().iter().map(|b| b.checksum).collect()
        };
        assert_eq!(checksums("from1"), checksums("from0"), "{descr}");
        assert_eq!(checksums("from2"), checksums("from0"), "{descr}");
    }
    // Every chunk was written once: nothing superseded for compaction to drop.
    let doc = json_of(atlas().arg("compact").arg(&store).arg("--json"));
    assert_eq!(doc["blocks_dropped"], 0);
    atlas().arg("verify").arg(&store).assert().success();
}

#[test]
fn imported_values_read_back_through_the_library() {
    let dir = TempDir::new().unwrap();
    let store = dir.path().join("s");
    Atlas::create(&store, StoreConfig::default()).unwrap();
    let values: Vec<f64> = (0..12).map(|i| f64::from(i) * 0.5 - 1.0).collect();
    let body: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let file = dir.path().join("grid.npy.gz");
    std::fs::write(&file, gz(&npy("<f8", &[3, 4], &body))).unwrap();
    atlas().arg("import").arg(&store).arg("exp/grid").arg(&file).args(["--dims", "y,x"]).assert().success();
    let ds = Atlas::open(&store).unwrap().open_dataset("exp").unwrap();
    let back = ds.read_array::<f64>("grid", &[0, 0], &[3, 4]).unwrap();
    assert_eq!(back.iter().copied().collect::<Vec<_>>(), values);
    assert_eq!(ds.array_meta("grid").unwrap().dims, vec!["y", "x"]);
    let text = stdout_of(atlas().arg("cat").arg(&store).args(["exp/grid", "--slice", "2"]));
    assert_eq!(text, "3\n3.5\n4\n4.5\n");
}

#[test]
fn compressed_and_plain_sources_and_stdin_give_identical_fragments() {
    let dir = TempDir::new().unwrap();
    let body: Vec<u8> = (0..5000u32).flat_map(|i| ((i % 97) as f32 * 0.25).to_le_bytes()).collect();
    let original = npy("<f4", &[100, 50], &body);
    let mut contents = Vec::new();
    // `pzstd` starts its output with a skippable frame (magic 0x184D2A50-5F, length, payload).
    let mut skippable_first = [0x5eu8, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4].to_vec();
    skippable_first.extend(zst(&original));
    let sources = [
        ("npy", original.clone()),
        ("npy.zst", zst(&original)),
        ("skippable.npy.zst", skippable_first),
        ("npy.gz", gz(&original)),
    ];
    // Each as a file, then on standard input (`-`), its compression told by its first bytes.
    for ((ext, bytes), stdin) in sources.iter().flat_map(|source| [(source, false), (source, true)]) {
        let store = dir.path().join(format!("store-{ext}-{stdin}"));
        Atlas::create(&store, StoreConfig::default()).unwrap();
        let mut import = atlas();
        import.arg("import").arg(&store).arg("d/field").args(["--chunks", "16,50"]);
        if stdin {
            import.arg("-").write_stdin(bytes.clone());
        } else {
            let file = dir.path().join(format!("field.{ext}"));
            std::fs::write(&file, bytes).unwrap();
            import.arg(&file);
        }
        import.assert().success();
        let frags = fragments(&store);
        assert_eq!(frags.len(), 1);
        contents.push(std::fs::read(&frags[0]).unwrap());
    }
    // Same blocks at the same offsets with the same checksums, byte for byte.
    assert!(contents.iter().all(|c| *c == contents[0]), "every source gives the same fragment");
    // Nothing on standard input is no .npy file.
    let store = dir.path().join("store-npy-false");
    let empty = atlas().arg("import").arg(&store).args(["d/none", "-"]).write_stdin(Vec::new()).assert();
    empty.code(1).stderr(contains("standard input: the data ends inside the .npy preamble"));
}

#[test]
fn zero_dimensional_and_empty_arrays_round_trip() {
    let dir = TempDir::new().unwrap();
    let store = dir.path().join("s");
    Atlas::create(&store, StoreConfig::default()).unwrap();
    let scalar = npy("<i4", &[], &(-7i32).to_le_bytes());
    let empty = npy("<u2", &[0, 3], &[]);
    for (name, bytes) in [("scalar", scalar), ("empty", empty)] {
        let file = dir.path().join(format!("{name}.npy"));
        std::fs::write(&file, &bytes).unwrap();
        atlas().arg("import").arg(&store).arg(format!("d/{name}")).arg(&file).assert().success();
        let out = dir.path().join(format!("{name}-out.npy"));
        atlas().arg("export").arg(&store).arg(format!("d/{name}")).arg(&out).assert().success();
        assert_eq!(std::fs::read(&out).unwrap(), bytes, "{name}");
    }
    assert_eq!(stdout_of(atlas().arg("cat").arg(&store).arg("d/scalar")), "-7\n");
    assert_eq!(stdout_of(atlas().arg("cat").arg(&store).arg("d/empty")), "");
    assert_eq!(stdout_of(atlas().arg("cat").arg(&store).args(["d/empty", "--json"])), "[]\n");
    // Empty, with axes too long for any array in memory; and empty after a first axis.
    let ds = Atlas::open(&store).unwrap().open_dataset("d").unwrap();
    ds.define_array("vast", ArraySpec::new(DType::UInt8, [0, 1 << 32, 1 << 32]).chunk_shape([1, 1, 1])).unwrap();
    ds.define_array("rows", ArraySpec::new(DType::UInt8, [2, 0])).unwrap();
    drop(ds);
    assert_eq!(stdout_of(atlas().arg("cat").arg(&store).args(["d/vast", "--json"])), "[]\n");
    assert_eq!(stdout_of(atlas().arg("cat").arg(&store).args(["d/rows", "--json"])), "[[],[]]\n");
}

#[test]
fn import_refuses_files_it_cannot_read_naming_the_file_and_commits_nothing() {
    let dir = TempDir::new().unwrap();
    let store = dir.path().join("s");
    Atlas::create(&store, StoreConfig::default()).unwrap();
    // Past one zstd block (128 KiB) of data, so a cut stream still yields its start.
    let body: Vec<u8> = (0..1u32 << 18).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let whole = zst(&npy("<i8", &[64, 512], &body));
    let mut long = npy("<i2", &[1, 4], &[1; 8]);
    long.extend_from_slice(b"trailing");
    let small_gz = gz(&npy("<i2", &[1, 4], &[1; 8]));
    let cases: [(&str, Vec<u8>, &str); 12] = [
        ("long.npy", long, "8 bytes after the 8 bytes of array data"),
        (
            "no_trailer.npy.gz",
            small_gz[..small_gz.len() - 8].to_vec(),
            "ends in an incomplete part after the array data",
        ),
        ("plain.npy.gz", npy("<i2", &[4], &[1; 8]), "a plain .npy file, not gz-compressed"),
        ("twice.npy.gz", gz(&small_gz), "gz-compressed again inside"),
        ("fortran.npy", npy("<f8", &[2, 2], &[0; 32]).replace_header("False", "True"), "Fortran-order"),
        ("big.npy", npy(">f8", &[2], &[0; 16]), "big-endian"),
        ("complex.npy", npy("<c8", &[2], &[0; 16]), "not supported"),
        ("text.npy", b"hello, world".to_vec(), "not a .npy file"),
        ("short.npy.zst", zst(&npy("<i8", &[4, 4], &[1; 100])), "data ends early"),
        ("claims_2_63_bytes.npy", npy("|u1", &[1, 1 << 63], &[1; 64]), "data ends early"),
        ("cut.npy.zst", whole[..whole.len() - 200].to_vec(), "data ends early"),
        ("broken.npy.gz", gz(&npy("<i2", &[4], &[1; 8]))[..30].to_vec(), "broken.npy.gz"),
    ];
    for (name, bytes, reason) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, bytes).unwrap();
        atlas()
            .arg("import")
            .arg(&store)
            .arg("d/a")
            .arg(&file)
            .args(["--chunks", "1,4", "--slab-bytes", "1"])
            .assert()
            .code(1)
            .stderr(contains(file.display().to_string()))
            .stderr(contains(reason))
            .stderr(contains("nothing was committed"));
        let reopened = Atlas::open(&store).unwrap();
        assert!(!reopened.dataset_exists("d"), "{name}: a failed import left its dataset");
        assert_eq!(reopened.generation(), 0, "{name}");
        assert!(fragments(&store).is_empty(), "{name}: a failed import left its fragment");
    }
    // A header claiming 2^63 bytes with slabs as large: nothing that large is reserved.
    let claims = dir.path().join("claims.npy");
    std::fs::write(&claims, npy("|u1", &[1 << 63], &[1; 64])).unwrap();
    let huge_slabs = ["--slab-bytes", "18446744073709551615"];
    atlas()
        .arg("import")
        .arg(&store)
        .arg("d/a")
        .arg(&claims)
        .args(huge_slabs)
        .assert()
        .code(1)
        .stderr(contains("ends early"));
    atlas()
        .arg("import")
        .arg(&store)
        .arg("d/a")
        .arg(dir.path().join("absent.npy"))
        .assert()
        .code(1)
        .stderr(contains("absent.npy"));
    // The store is as new: the next import succeeds.
    let file = dir.path().join("ok.npy");
    std::fs::write(&file, npy("<i2", &[4], &[1; 8])).unwrap();
    atlas().arg("import").arg(&store).arg("d/a").arg(&file).assert().success();
    assert_eq!(fragments(&store).len(), 1);
}

trait ReplaceHeader {
    fn replace_header(self, from: &str, to: &str) -> Vec<u8>;
}

impl ReplaceHeader for Vec<u8> {
    /// Replaces text inside the header, keeping its length (pads or trims the spaces).
    fn replace_header(self, from: &str, to: &str) -> Vec<u8> {
        let header_len = usize::from(u16::from_le_bytes([self[8], self[9]]));
        let header = std::str::from_utf8(&self[10..10 + header_len]).unwrap();
        let mut changed = header.replacen(from, to, 1);
        let body_at = changed.trim_end().len();
        changed.truncate(body_at);
        while changed.len() + 1 < header_len {
            changed.push(' ');
        }
        changed.push('\n');
        let mut out = self[..10].to_vec();
        out.extend_from_slice(changed.as_bytes());
        out.extend_from_slice(&self[10 + header_len..]);
        out
    }
}

#[test]
fn import_into_an_existing_array_needs_overwrite_and_a_matching_schema() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let file = dir.path().join("t.npy");
    let body: Vec<u8> = (0..30).flat_map(|i| (i as f32).to_le_bytes()).collect();
    std::fs::write(&file, npy("<f4", &[6, 5], &body)).unwrap();
    atlas().arg("import").arg(&store).arg("run42/temp").arg(&file).assert().code(1).stderr(contains("--overwrite"));
    atlas().arg("import").arg(&store).args(["run42/temp"]).arg(&file).arg("--overwrite").assert().success();
    let values = temp_values(&store);
    assert_eq!(values.iter().copied().collect::<Vec<_>>(), (0..30).map(|i| i as f32).collect::<Vec<_>>());
    std::fs::write(&file, npy("<f4", &[5, 6], &body)).unwrap();
    atlas()
        .arg("import")
        .arg(&store)
        .arg("run42/temp")
        .arg(&file)
        .arg("--overwrite")
        .assert()
        .code(1)
        .stderr(contains("holds float32 [5, 6], but array run42/temp is float32 [6, 5]"));
}

#[test]
fn export_refuses_to_replace_files_and_arrays_npy_cannot_hold() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let file = dir.path().join("temp.npy");
    atlas().arg("export").arg(&store).arg("run42/temp").arg(&file).assert().success();
    atlas().arg("export").arg(&store).arg("run42/temp").arg(&file).assert().code(1).stderr(contains("--force"));
    atlas().arg("export").arg(&store).arg("run42/temp").arg(&file).arg("--force").assert().success();
    // A name near the 255-byte limit: its temporary file's name is cut to fit.
    let long = dir.path().join(format!("{}.npy", "x".repeat(251)));
    atlas().arg("export").arg(&store).arg("run42/temp").arg(&long).assert().success();
    assert_eq!(std::fs::read(&long).unwrap(), std::fs::read(&file).unwrap());
    let names = dir.path().join("names.npy");
    atlas().arg("export").arg(&store).arg("run42/names").arg(&names).assert().code(1).stderr(contains("string values"));
    assert!(!names.exists());
    let explicit = dir.path().join("plain-name");
    atlas().arg("export").arg(&store).arg("run42/temp").arg(&explicit).args(["--compression", "gz"]).assert().success();
    let mut gz_bytes = Vec::new();
    flate2::read::GzDecoder::new(&std::fs::read(&explicit).unwrap()[..]).read_to_end(&mut gz_bytes).unwrap();
    assert_eq!(gz_bytes, std::fs::read(&file).unwrap());
    // `zstd` and `gzip`, as convert-meta and gzip spell them, name the same compressions.
    let spelled = dir.path().join("spelled.npy.zst");
    atlas()
        .arg("export")
        .arg(&store)
        .arg("run42/temp")
        .arg(&spelled)
        .args(["--compression", "zstd"])
        .assert()
        .success();
    assert_eq!(zstd::decode_all(&std::fs::read(&spelled).unwrap()[..]).unwrap(), std::fs::read(&file).unwrap());
    let spelled = dir.path().join("spelled.npy.gz");
    atlas()
        .arg("export")
        .arg(&store)
        .arg("run42/temp")
        .arg(&spelled)
        .args(["--compression", "gzip"])
        .assert()
        .success();
    atlas()
        .arg("export")
        .arg(&store)
        .arg("run42/temp")
        .arg(dir.path().join("t.npy.gz"))
        .args(["--compression", "zst"])
        .assert()
        .code(2)
        .stderr(contains("is named for gz compression but --compression zst"))
        .stderr(contains("Usage: atlas export"));
    // A .npy name says "not compressed": gzip bytes under it would load nowhere.
    let plain = dir.path().join("t2.npy");
    atlas()
        .arg("export")
        .arg(&store)
        .arg("run42/temp")
        .arg(&plain)
        .args(["--compression", "gz"])
        .assert()
        .code(2)
        .stderr(contains("is named for no compression but --compression gz"));
    assert!(!plain.exists());
}

#[test]
fn export_to_dev_stdout_writes_where_the_shell_redirected_it() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let file = dir.path().join("temp.npy");
    atlas().arg("export").arg(&store).arg("run42/temp").arg(&file).assert().success();
    // `atlas export ... /dev/stdout >> log`: the bytes go after what the file held.
    let log = dir.path().join("log");
    std::fs::write(&log, b"before\n").unwrap();
    let appending = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["export".as_ref(), store.as_os_str(), "run42/temp".as_ref(), "/dev/stdout".as_ref()])
        .stdout(appending)
        .status()
        .unwrap();
    assert!(status.success());
    let mut want = b"before\n".to_vec();
    want.extend(std::fs::read(&file).unwrap());
    assert_eq!(std::fs::read(&log).unwrap(), want);

    // Through a link to /dev/stdout, the same: the log is appended to, not replaced.
    let link = dir.path().join("out");
    std::os::unix::fs::symlink("/dev/stdout", &link).unwrap();
    let appending = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["export".as_ref(), store.as_os_str(), "run42/temp".as_ref(), link.as_os_str(), "--force".as_ref()])
        .stdout(appending)
        .status()
        .unwrap();
    assert!(status.success());
    want.extend(std::fs::read(&file).unwrap());
    assert_eq!(std::fs::read(&log).unwrap(), want);
}

#[test]
fn an_export_cut_short_by_its_reader_is_an_error() {
    // `atlas cat | head` succeeds when head leaves; an export whose reader leaves has
    // handed over part of a file.
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["export".as_ref(), store.as_os_str(), "run42/temp".as_ref(), "/dev/stdout".as_ref()])
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("the reader closed the pipe before the end"));
}

#[test]
fn export_takes_dash_for_stdout_names_in_any_case_and_refuses_a_directory_path_up_front() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let file = dir.path().join("temp.npy");
    atlas().arg("export").arg(&store).arg("run42/temp").arg(&file).assert().success();
    // `-`: the bytes on stdout, the summary on stderr.
    let output = atlas().arg("export").arg(&store).args(["run42/temp", "-"]).assert().success().get_output().clone();
    assert_eq!(output.stdout, std::fs::read(&file).unwrap());
    assert!(String::from_utf8_lossy(&output.stderr).contains("exported run42/temp -> -"));
    // `.NPY.GZ` is gzip as `.npy.gz` is, and `.NPY` takes no --compression.
    let upper = dir.path().join("TEMP.NPY.GZ");
    atlas().arg("export").arg(&store).arg("run42/temp").arg(&upper).assert().success().stdout(contains("(gz)"));
    assert_eq!(&std::fs::read(&upper).unwrap()[..2], &[0x1f, 0x8b]);
    let plain = dir.path().join("TEMP.NPY");
    let given = atlas().arg("export").arg(&store).arg("run42/temp").arg(&plain).args(["--compression", "zst"]).assert();
    given.code(2).stderr(contains("named for no compression"));
    // A path ending in / is refused before anything is written.
    let slashed = format!("{}/", dir.path().join("out.npy").display());
    atlas().arg("export").arg(&store).arg("run42/temp").arg(&slashed).assert().code(1).stderr(contains("ends with /"));
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 3, "the store and two exports, no temporary file: {names:?}");
}

#[test]
fn export_refuses_a_dangling_link_and_keeps_the_permissions_of_a_file_it_replaces() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let link = dir.path().join("out.npy");
    std::os::unix::fs::symlink("missing.npy", &link).unwrap();
    atlas()
        .arg("export")
        .arg(&store)
        .arg("run42/temp")
        .arg(&link)
        .assert()
        .code(1)
        .stderr(contains("is a symbolic link to missing.npy, which does not exist"));
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "only the store and the link: {names:?}");

    let private = dir.path().join("private.npy");
    std::fs::write(&private, b"old").unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    atlas().arg("export").arg(&store).arg("run42/temp").arg(&private).arg("--force").assert().success();
    assert_eq!(std::fs::metadata(&private).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read(&private).unwrap().starts_with(b"\x93NUMPY"));

    // Through a link to a file: the file is replaced, the link kept, the summary on stdout.
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("private.npy", &link).unwrap();
    atlas()
        .arg("export")
        .arg(&store)
        .arg("run42/temp")
        .arg(&link)
        .arg("--force")
        .assert()
        .success()
        .stdout(contains("exported run42/temp"));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert!(std::fs::read(&private).unwrap().starts_with(b"\x93NUMPY"));
}

#[test]
fn a_missing_dataset_is_named_with_its_store_by_every_command() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let out = dir.path().join("x.npy");
    for args in [vec!["ls", "nope"], vec!["attrs", "nope"], vec!["export", "nope/temp", out.to_str().unwrap()]] {
        let (command, rest) = args.split_first().unwrap();
        atlas()
            .arg(command)
            .arg(&store)
            .args(rest)
            .assert()
            .code(1)
            .stderr(contains("dataset not found: nope"))
            .stderr(contains("ocean.atlas"))
            .stderr(contains("lists its datasets"));
    }
}

#[test]
fn chunk_rows_larger_than_sixteen_slabs_are_imported_and_exported_in_slabs_of_inner_axes() {
    // A chunk row of axis 0 is 2 x 3000 bytes, over 16 slabs of 16 bytes: the slabs take one
    // row at a time and cut it into whole chunks of axis 1 (100 bytes), so each chunk is
    // written once per row it holds.
    let dir = TempDir::new().unwrap();
    let body: Vec<u8> = (0..6000u32).map(|i| (i * 7 % 251) as u8).collect();
    let original = npy("|u1", &[2, 3000], &body);
    let source = dir.path().join("wide.npy");
    std::fs::write(&source, &original).unwrap();
    let fragment_bytes = |store: &Path| std::fs::metadata(&fragments(store)[0]).unwrap().len();
    let (cut, whole) = (dir.path().join("cut"), dir.path().join("whole"));
    for (store, slab_bytes) in [(&cut, "16"), (&whole, "1048576")] {
        Atlas::create(store, StoreConfig::default()).unwrap();
        atlas()
            .arg("import")
            .arg(store)
            .arg("d/w")
            .arg(&source)
            .args(["--chunks", "2,100", "--slab-bytes", slab_bytes])
            .assert()
            .success();
        let target = dir.path().join("back.npy");
        atlas()
            .arg("export")
            .arg(store)
            .arg("d/w")
            .arg(&target)
            .args(["--force", "--slab-bytes", "16"])
            .assert()
            .success();
        assert_eq!(std::fs::read(&target).unwrap(), original, "slabs of {slab_bytes} bytes");
    }
    // Slabs smaller than a chunk are small writes, staged in memory: each chunk is stored
    // once, as when it is written whole.
    assert_eq!(fragment_bytes(&cut), fragment_bytes(&whole));
}

#[test]
fn export_writes_to_a_fifo_and_never_removes_it() {
    // A fifo cannot be fsynced: exporting to one failed, and then removed the path (as root,
    // `/dev/stdout` too). The summary goes to stderr, out of the way of the data.
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let file = dir.path().join("temp.npy");
    atlas().arg("export").arg(&store).arg("run42/temp").arg(&file).assert().success();
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    // No `--force` needed: a fifo is a stream written into, never replaced.
    let exported = atlas().arg("export").arg(&store).arg("run42/temp").arg(&fifo).assert().success();
    assert_eq!(reader.join().unwrap(), std::fs::read(&file).unwrap());
    assert!(fifo.exists(), "the fifo is still there");
    exported.stdout("").stderr(contains("exported run42/temp"));
}

#[test]
fn long_operations_draw_no_progress_bars_when_stderr_is_not_a_terminal() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let file = dir.path().join("t.npy.zst");
    for args in [&["verify"][..], &["compact"], &["recompress", "--codec", "lz4"]] {
        atlas().args(args).arg(&store).assert().success().stderr("");
    }
    atlas().arg("export").arg(&store).arg("run42/temp").arg(&file).assert().success().stderr("");
    atlas().arg("import").arg(&store).arg("copy/temp").arg(&file).assert().success().stderr("");
}

#[test]
fn import_creates_a_store_only_when_asked() {
    let dir = TempDir::new().unwrap();
    let store = dir.path().join("new.atlas");
    let file = dir.path().join("v.npy");
    std::fs::write(&file, npy("<u4", &[3], &[1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0])).unwrap();
    atlas()
        .arg("import")
        .arg(&store)
        .arg("d/v")
        .arg(&file)
        .assert()
        .code(1)
        .stderr(contains("no such store"))
        .stderr(contains("pass --create"));
    assert!(!store.exists());
    // Where `--create` could not make one (a directory with files, a file), it is not offered.
    for taken in [dir.path(), file.as_path()] {
        let refused = atlas().arg("import").arg(taken).arg("d/v").arg(&file).assert().code(1);
        let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
        assert!(stderr.contains("not an Atlas store") && !stderr.contains("--create"), "{stderr}");
    }
    atlas().arg("import").arg(&store).arg("d/v").arg(&file).arg("--create").assert().success();
    assert_eq!(stdout_of(atlas().arg("cat").arg(&store).arg("d/v")), "1\n2\n3\n");
}

#[test]
fn an_import_without_chunks_picks_chunk_rows_that_fit_a_slab_and_writes_each_chunk_once() {
    // Atlas's default chunk for 64 x 2048 bytes is the whole array, a chunk row of 32 slabs
    // of 4 KiB: cut into slabs, each chunk would be written 32 times.
    let dir = TempDir::new().unwrap();
    let body: Vec<u8> = (0..64 * 2048u32).map(|i| (i * 7 % 251) as u8).collect();
    let source = dir.path().join("wide.npy");
    std::fs::write(&source, npy("|u1", &[64, 2048], &body)).unwrap();
    let store = dir.path().join("s");
    atlas()
        .arg("import")
        .arg(&store)
        .arg("d/w")
        .arg(&source)
        .args(["--create", "--slab-bytes", "4096"])
        .assert()
        .success();
    let opened = Atlas::open(&store).unwrap();
    assert_eq!(opened.open_dataset("d").unwrap().array_meta("w").unwrap().chunk_shape, [2, 2048]);
    let report = opened.compact().unwrap();
    assert_eq!(report.blocks_dropped, 0, "a chunk was written more than once");
    let back = opened.open_dataset("d").unwrap().read_array::<u8>("w", &[0, 0], &[64, 2048]).unwrap();
    assert_eq!(back.as_slice().unwrap(), &body[..]);
}

#[test]
fn an_import_with_create_makes_no_store_when_the_file_cannot_be_read() {
    let dir = TempDir::new().unwrap();
    let store = dir.path().join("new");
    atlas()
        .arg("import")
        .arg(&store)
        .arg("d/a")
        .arg(dir.path().join("absent.npy"))
        .arg("--create")
        .assert()
        .code(1)
        .stderr(contains("absent.npy"));
    assert!(!store.exists(), "a store was created for a file that does not exist");
    // A file whose header reads but whose body is cut short: the store made for it goes.
    let truncated = dir.path().join("short.npy");
    std::fs::write(&truncated, npy("<u4", &[3], &[1, 0, 0, 0, 2, 0])).unwrap();
    atlas()
        .arg("import")
        .arg(&store)
        .arg("d/a")
        .arg(&truncated)
        .arg("--create")
        .assert()
        .code(1)
        .stderr(contains("nothing was committed"));
    assert!(!store.exists(), "a failed import left the store it created");
    // A store two directories down: both directories it made go too.
    let nested = dir.path().join("outer").join("inner");
    atlas().arg("import").arg(&nested).arg("d/a").arg(&truncated).arg("--create").assert().code(1);
    assert!(!dir.path().join("outer").exists(), "a failed import left the directories it made");
    // Into an empty directory the user made: the store's files go, the directory stays.
    std::fs::create_dir(&store).unwrap();
    atlas().arg("import").arg(&store).arg("d/a").arg(&truncated).arg("--create").assert().code(1);
    assert!(store.is_dir(), "a failed import removed a directory it did not make");
    assert_eq!(std::fs::read_dir(&store).unwrap().count(), 0, "a failed import left store files");
    // A store whose creation fails (no file may grow past 0 bytes, so its metadata cannot
    // be written): the directories made for it go too.
    let whole = dir.path().join("whole.npy");
    std::fs::write(&whole, npy("<u4", &[1], &[1, 0])).unwrap();
    let limited = std::process::Command::new("bash")
        .args(["-c", r#"trap '' XFSZ; ulimit -f 0; exec "$0" "$@""#, env!("CARGO_BIN_EXE_atlas"), "import"])
        .arg(&nested)
        .arg("d/a")
        .arg(&whole)
        .arg("--create")
        .output()
        .unwrap();
    assert_eq!(limited.status.code(), Some(1), "{}", String::from_utf8_lossy(&limited.stderr));
    assert!(String::from_utf8_lossy(&limited.stderr).contains("cannot create store"));
    assert!(!dir.path().join("outer").exists(), "a failed create left the directories it made");
}

#[test]
fn chunks_or_dims_of_another_number_of_axes_than_the_file_are_refused_in_the_flags_terms() {
    let dir = TempDir::new().unwrap();
    let store = dir.path().join("s");
    let file = dir.path().join("a.npy");
    std::fs::write(&file, npy("<i2", &[2, 2], &[1; 8])).unwrap();
    for (args, flag) in [(["--chunks", "2"], "--chunks gives 1 value"), (["--dims", "x,y,z"], "--dims gives 3 values")]
    {
        atlas()
            .arg("import")
            .arg(&store)
            .arg("d/a")
            .arg(&file)
            .arg("--create")
            .args(args)
            .assert()
            .code(1)
            .stderr(contains(format!("{flag} for {}, whose array has 2 axes (shape [2, 2])", file.display())));
    }
    assert!(!store.exists(), "the store made for the import went with it");
    // A zero or non-number extent is a usage error, told before any store is made.
    let extents = [
        ("0,2", "'0' for '--chunks <CHUNKS>': a chunk extent is at least 1"),
        ("2,-1", "'-1' for '--chunks <CHUNKS>': a chunk extent is a whole number of at least 1"),
        ("2,x", "'x' for '--chunks <CHUNKS>': a chunk extent is a whole number of at least 1"),
        ("2,18446744073709551616", "a chunk extent is at most 18446744073709551615"),
    ];
    for (chunks, told) in extents {
        let import =
            atlas().arg("import").arg(&store).arg("d/a").arg(&file).args(["--create", "--chunks", chunks]).assert();
        import.code(2).stderr(contains("--chunks").and(contains(told)));
    }
    assert!(!store.exists());
}

#[test]
fn chunks_or_dims_for_an_existing_array_that_differ_from_its_own_are_refused() {
    let dir = TempDir::new().unwrap();
    let store = dir.path().join("s");
    let file = dir.path().join("a.npy");
    std::fs::write(&file, npy("<i2", &[4], &[1; 8])).unwrap();
    atlas().arg("import").arg(&store).arg("d/a").arg(&file).args(["--create", "--chunks", "2"]).assert().success();
    atlas()
        .arg("import")
        .arg(&store)
        .arg("d/a")
        .arg(&file)
        .args(["--overwrite", "--chunks", "4"])
        .assert()
        .code(1)
        .stderr(contains("--chunks, --dims and --fill-value only shape a new array"));
    atlas().arg("import").arg(&store).arg("d/a").arg(&file).args(["--overwrite", "--chunks", "2"]).assert().success();
}

#[test]
fn a_failed_export_over_an_existing_file_keeps_it_whole_and_leaves_no_temp_file() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let file = dir.path().join("temp.npy");
    atlas().arg("export").arg(&store).arg("run42/temp").arg(&file).assert().success();
    let before = std::fs::read(&file).unwrap();
    // Damage every block: the export's first read fails.
    for fragment in fragments(&store) {
        let mut bytes = std::fs::read(&fragment).unwrap();
        for b in &mut bytes[16..64] {
            *b ^= 0x5a;
        }
        std::fs::write(&fragment, bytes).unwrap();
    }
    atlas().arg("export").arg(&store).arg("run42/temp").arg(&file).arg("--force").assert().code(1);
    assert_eq!(std::fs::read(&file).unwrap(), before, "the old export was damaged");
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(names.iter().all(|n| !n.to_string_lossy().ends_with(".tmp")), "{names:?}");
}

#[test]
fn mv_renames_datasets_and_moves_arrays_leaving_the_blocks_where_they_are() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let fragments = || std::fs::read_dir(store.join("data")).unwrap().count();
    let before = fragments();
    let out = stdout_of(atlas().arg("mv").arg(&store).args(["/run42/temp", "empty/t"]));
    assert_eq!(out, "moved array run42/temp to empty/t\n");
    let out = stdout_of(atlas().arg("mv").arg(&store).args(["run42/", "run43"]));
    assert_eq!(out, "renamed dataset run42 to run43\n");
    assert_eq!(fragments(), before, "no block was written");
    let reopened = Atlas::open(&store).unwrap();
    assert_eq!(reopened.list_datasets(), ["empty", "run43"]);
    let moved = reopened.open_dataset("empty").unwrap().array("t").unwrap();
    assert_eq!(moved.read::<f32>(&[1, 1], &[1, 1]).unwrap().into_raw_vec_and_offset().0, [11.0]);
    assert_eq!(moved.attrs().get("units").unwrap(), Some("degC".into()));

    let refused = [
        (["run43", "empty"], "dataset already exists: empty"),
        (["nope", "x"], "dataset not found: nope"),
        (["run43/nope", "run43/x"], "array not found: run43/nope"),
        (["empty/t", "run43/flags"], "array already exists: run43/flags"),
        (["empty/t", "run43"], "an array moves to a DATASET/ARRAY (e.g. run43/t)"),
        (["run43", "empty/x"], "a dataset is renamed to a DATASET"),
    ];
    for (args, message) in refused {
        atlas().arg("mv").arg(&store).args(args).assert().code(1).stderr(contains(message));
    }
    atlas().arg("mv").arg(&store).args(["run43", ""]).assert().code(2);
    assert_eq!(stdout_of(atlas().arg("mv").arg(&store).args(["run43", "run43/"])), "dataset run43 keeps its name\n");
    assert_eq!(
        stdout_of(atlas().arg("mv").arg(&store).args(["empty/t", "/empty/t"])),
        "array empty/t stays where it is\n"
    );
    assert_eq!(Atlas::open(&store).unwrap().list_datasets(), ["empty", "run43"]);
}

#[test]
fn mv_and_rm_keep_the_python_modules_list_of_xarray_coordinates_true() {
    let dir = TempDir::new().unwrap();
    let store = dir.path().join("s");
    {
        let atlas = Atlas::create(&store, StoreConfig::default()).unwrap();
        let ds = atlas.create_dataset("d").unwrap();
        for name in ["time", "lat", "v"] {
            ds.define_array(name, ArraySpec::new(DType::Float64, [3])).unwrap();
        }
        ds.attrs().set("_xarray_coords", AttrValue::from(vec!["time", "lat"])).unwrap();
        atlas.create_dataset("e").unwrap();
        atlas.flush().unwrap();
    }
    let coords = || {
        let attrs = Atlas::open(&store).unwrap().open_dataset("d").unwrap().attrs();
        let list = attrs.get("_xarray_coords").unwrap().unwrap();
        list.as_list().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    atlas().arg("mv").arg(&store).args(["d/time", "d/t"]).assert().success();
    assert_eq!(coords(), ["t", "lat"], "renamed in its dataset: still a coordinate");
    atlas().arg("mv").arg(&store).args(["d/v", "d/w"]).assert().success();
    assert_eq!(coords(), ["t", "lat"], "not a coordinate: the list stays");
    atlas().arg("rm").arg(&store).arg("d/lat").assert().success();
    assert_eq!(coords(), ["t"]);
    atlas().arg("mv").arg(&store).args(["d/t", "e/t"]).assert().success();
    assert!(coords().is_empty(), "moved to another dataset: no coordinate of this one");
}

#[test]
fn cp_copies_an_array_with_its_blocks_as_stored() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let out = stdout_of(atlas().arg("cp").arg(&store).args(["/run42/temp", "empty/t"]));
    assert_eq!(out, "copied array run42/temp to empty/t (2 blocks)\n");
    let reopened = Atlas::open(&store).unwrap();
    let blocks = |dataset: &str, array: &str| {
        let blocks = reopened.array_blocks(dataset, array).unwrap();
        blocks.into_iter().map(|b| (b.coord, b.checksum, b.stored_bytes)).collect::<Vec<_>>()
    };
    assert_eq!(blocks("empty", "t"), blocks("run42", "temp"));
    let copy = reopened.open_dataset("empty").unwrap().array("t").unwrap();
    assert_eq!(copy.attrs().get("units").unwrap(), Some("degC".into()));
    let refused = [
        (["run42/temp", "empty/t"], "array already exists: empty/t"),
        (["run42/nope", "empty/x"], "array not found: run42/nope"),
        (["run42/temp", "nope/x"], "dataset not found: nope"),
    ];
    for (args, message) in refused {
        atlas().arg("cp").arg(&store).args(args).assert().code(1).stderr(contains(message));
    }
    atlas().arg("cp").arg(&store).args(["run42", "empty/x"]).assert().code(2);
}

#[test]
fn rm_deletes_datasets_and_arrays_in_one_commit_or_nothing_when_one_is_missing() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let arrays = |dataset: &str| Atlas::open(&store).unwrap().open_dataset(dataset).unwrap().list_arrays().unwrap();
    // The root `/` is dropped once: `//run42/temp` names no array.
    atlas().arg("rm").arg(&store).arg("//run42/temp").assert().code(2);
    let missing = atlas().arg("rm").arg(&store).args(["run42/temp", "run42/nope"]).assert().code(1);
    missing.stderr(contains("nothing was deleted").and(contains("nope")));
    assert_eq!(arrays("run42"), ["flags", "names", "temp", "when"]);
    atlas().arg("rm").arg(&store).assert().code(2);

    let out = stdout_of(atlas().arg("rm").arg(&store).args(["run42/temp", "empty", "run42/flags", "run42/temp"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..3],
        ["deleted array run42/flags", "deleted array run42/temp", "deleted dataset empty (0 arrays)"]
    );
    assert!(lines[3].contains("until `atlas compact"), "{out}");
    assert_eq!(Atlas::open(&store).unwrap().list_datasets(), ["run42"]);
    assert_eq!(arrays("run42"), ["names", "when"]);

    // An array of a dataset deleted too goes with it; `run42/` names the dataset, as `ls`
    // takes it.
    let out = stdout_of(atlas().arg("rm").arg(&store).args(["run42/when", "run42/"]));
    assert!(out.starts_with("deleted dataset run42 (2 arrays)\n"), "{out}");
    assert!(Atlas::open(&store).unwrap().list_datasets().is_empty());
}

#[test]
fn rm_force_skips_missing_names_and_changes_nothing_when_none_is_left() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let generation = || Atlas::open(&store).unwrap().generation();
    let before = generation();
    let none = atlas().arg("rm").arg("-f").arg(&store).args(["nope", "run42/nope", "nope/temp"]).assert().success();
    none.stdout("");
    assert_eq!(generation(), before, "nothing to delete: no commit");

    let out = stdout_of(atlas().arg("rm").arg("--force").arg(&store).args(["run42/nope", "run42/temp", "gone/"]));
    assert!(out.starts_with("deleted array run42/temp\n"), "{out}");
    assert_eq!(generation(), before + 1);
    let arrays = Atlas::open(&store).unwrap().open_dataset("run42").unwrap().list_arrays().unwrap();
    assert_eq!(arrays, ["flags", "names", "when"]);
    // A name that is not one is still a usage error, forced or not.
    atlas().arg("rm").arg("-f").arg(&store).arg("a/b/c").assert().code(2);
}

#[test]
fn an_export_names_its_file_only_once_whole_so_ctrl_c_leaves_nothing() {
    let dir = TempDir::new().unwrap();
    let store = dir.path().join("s");
    let atlas_store = Atlas::create(&store, StoreConfig::default()).unwrap();
    let spec = ArraySpec::new(DType::Float64, [1024, 1024]).chunk_shape([8, 1024]);
    let handle = atlas_store.create_dataset("d").unwrap().define_array("a", spec).unwrap();
    handle.write(&[0, 0], Array2::from_shape_fn((1024, 1024), |(i, j)| (i * 1024 + j) as f64).view()).unwrap();
    atlas_store.flush().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let export = |file: &Path| {
        // Slabs of one chunk (gzip'd: long enough to be stopped midway).
        std::process::Command::new(env!("CARGO_BIN_EXE_atlas"))
            .arg("export")
            .arg(&store)
            .arg("d/a")
            .arg(file)
            .args(["--slab-bytes", "65536"])
            .spawn()
            .unwrap()
    };
    let entries = || std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect::<Vec<_>>();
    // No name appears in the directory until the file is whole, under its own name.
    let plain = out.join("a.npy");
    let mut child = export(&plain);
    while child.try_wait().unwrap().is_none() {
        let seen = entries();
        assert!(seen.is_empty() || seen == ["a.npy"], "{seen:?}");
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::metadata(&plain).unwrap().len(), 128 + (8 << 20), "a 128-byte header and the body");
    // Stopped midway by Ctrl-C, it leaves nothing.
    std::fs::remove_file(&plain).unwrap();
    let mut child = export(&out.join("a.npy.gz"));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none(), "the export ended before the signal");
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&child.wait().unwrap()), Some(2));
    assert!(entries().is_empty(), "the export left {:?}", entries());
}

#[test]
fn a_malformed_attrs_target_is_a_usage_error() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    for target in ["run42//", "run42/temp/x", "//temp", "//run42/temp", ""] {
        atlas().arg("attrs").arg(&store).arg(target).assert().code(2).stderr(contains("DATASET"));
    }
    // `/`, the root, is the store, as `ls` takes it.
    assert!(stdout_of(atlas().arg("attrs").arg(&store).arg("/")).contains("Argo profiles"));
    // `run42/` is the dataset, as `ls` takes it; a leading `/`, the root, as h5py writes it.
    for dataset in ["run42/", "/run42", "/run42/"] {
        assert!(stdout_of(atlas().arg("attrs").arg(&store).arg(dataset)).contains("depths"), "{dataset}");
    }
    assert!(stdout_of(atlas().arg("attrs").arg(&store).arg("/run42/temp")).contains("degC"));
    assert!(stdout_of(atlas().arg("stats").arg(&store).arg("/run42/temp")).contains("count"));
    // `ls` with an empty dataset name likewise.
    atlas().arg("ls").arg(&store).arg("").assert().code(2).stderr(contains("DATASET"));
}

#[test]
fn cat_refuses_a_row_larger_than_sixteen_slabs_instead_of_reading_it_whole() {
    // Two rows of 2^33 bytes, never written: each would read as 8 GiB of fill.
    let dir = TempDir::new().unwrap();
    let store = dir.path().join("s");
    let atlas_store = Atlas::create(&store, StoreConfig::default()).unwrap();
    let spec = ArraySpec::new(DType::UInt8, [2, 1 << 33]).chunk_shape([1, 1 << 20]);
    atlas_store.create_dataset("d").unwrap().define_array("a", spec).unwrap();
    atlas_store.flush().unwrap();
    atlas().arg("cat").arg(&store).arg("d/a").assert().code(1).stderr(contains("narrow it with --slice"));
    let out = atlas().arg("cat").arg(&store).arg("d/a").args(["--slice", "1,0:3"]).assert().success();
    out.stdout("0\n0\n0\n");
}

#[test]
fn cat_to_a_closed_pipe_stops_quietly_in_text_and_json() {
    // Output well past any buffer, so the pipe breaks while values are being written.
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("s.atlas");
    let store = Atlas::create(&path, StoreConfig::default()).unwrap();
    let values =
        store.create_dataset("d").unwrap().define_array("v", ArraySpec::new(DType::UInt8, [4, 100_000])).unwrap();
    values.write(&[0, 0], Array2::from_elem((4, 100_000), 7u8).view()).unwrap();
    store.flush().unwrap();
    for json in [false, true] {
        let mut args = vec!["cat".as_ref(), path.as_os_str(), "d/v".as_ref()];
        if json {
            args.push("--json".as_ref());
        }
        assert_eq!(status_to_a_closed_pipe(&args), Some(0), "--json {json}");
    }
}

#[test]
fn a_failed_write_to_standard_output_says_so() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let Ok(full) = std::fs::File::create("/dev/full") else { return }; // Linux only
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_atlas")).arg("info").arg(&store).stdout(full).output();
    let output = output.unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("standard output: No space left on device"), "{stderr}");
}

#[test]
fn import_gives_a_new_array_the_fill_value_asked_for() {
    let dir = TempDir::new().unwrap();
    let store = dir.path().join("s");
    let file = dir.path().join("f.npy");
    let body: Vec<u8> = [0.0f32, 1.5, f32::NAN].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&file, npy("<f4", &[3], &body)).unwrap();
    atlas()
        .arg("import")
        .arg(&store)
        .arg("d/f")
        .arg(&file)
        .args(["--create", "--fill-value", "nan"])
        .assert()
        .success();
    // Zero is a value now, NaN the one null.
    let doc = json_of(atlas().arg("stats").arg(&store).args(["d/f", "--json"]));
    assert_eq!((doc["stats"]["count"].as_u64(), doc["stats"]["null_count"].as_u64()), (Some(2), Some(1)));
    let meta = Atlas::open(&store).unwrap().open_dataset("d").unwrap().array_meta("f").unwrap();
    assert!(matches!(meta.fill_value, atlas::Scalar::Float(f) if f.is_nan()));
    // Negative values; one the dtype cannot hold; text; another value for an existing array.
    atlas().arg("import").arg(&store).arg("d/g").arg(&file).args(["--fill-value", "-999"]).assert().success();
    let refused = atlas().arg("import").arg(&store).arg("d/h").arg(&file).args(["--fill-value", "1e99"]).assert();
    refused.code(1).stderr(contains("cannot define d/h: fill value 1e99 does not fit dtype float32"));
    // The library's error says what it could not define; the CLI does not say it again.
    let vanishing = atlas().arg("import").arg(&store).arg("d/h").arg(&file).args(["--fill-value", "1e-50"]).assert();
    let stderr = String::from_utf8(vanishing.code(1).get_output().stderr.clone()).unwrap();
    assert_eq!(stderr.matches("cannot define").count(), 1, "{stderr}");
    atlas().arg("import").arg(&store).arg("d/h").arg(&file).args(["--fill-value", "x"]).assert().code(2);
    let other =
        atlas().arg("import").arg(&store).arg("d/f").arg(&file).args(["--overwrite", "--fill-value", "0"]).assert();
    // The fill value is told as `stats` and `cat` print values.
    other.code(1).stderr(contains("and fill value NaN: --chunks, --dims and --fill-value only shape a new array"));
    atlas()
        .arg("import")
        .arg(&store)
        .arg("d/f")
        .arg(&file)
        .args(["--overwrite", "--fill-value", "NaN"])
        .assert()
        .success();
}

#[test]
fn suggested_commands_quote_what_a_shell_would_split() {
    let dir = TempDir::new().unwrap();
    let store = dir.path().join("my store");
    Atlas::create(&store, StoreConfig::default()).unwrap().create_dataset("run 1").unwrap();
    let quoted = format!("'{}'", store.display());
    let missing = atlas().arg("ls").arg(&store).arg("nope").assert().code(1);
    missing.stderr(contains(format!("`atlas ls {quoted}` lists its datasets")));
    let missing = atlas().arg("mv").arg(&store).args(["run 1/x", "run 1/y"]).assert().code(1);
    missing.stderr(contains(format!("`atlas ls {quoted} 'run 1'` lists its arrays")));
}

#[test]
fn fill_values_of_bool_and_timestamp_arrays_are_given_as_words() {
    let dir = TempDir::new().unwrap();
    let store = dir.path().join("s");
    let (flags, times) = (dir.path().join("b.npy"), dir.path().join("t.npy"));
    std::fs::write(&flags, npy("|b1", &[2], &[1, 0])).unwrap();
    let instants: Vec<u8> = [0i64, 86_400_000_000_000].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&times, npy("<M8[ns]", &[2], &instants)).unwrap();
    let import = |array: &str, file: &Path, fill: &str| {
        atlas().arg("import").arg(&store).arg(array).arg(file).args(["--create", "--fill-value", fill]).assert()
    };
    import("d/b", &flags, "true").success();
    import("d/t", &times, "1970-01-02T00:00").success();
    import("d/n", &times, "NaT").success();
    let meta = |array: &str| Atlas::open(&store).unwrap().open_dataset("d").unwrap().array_meta(array).unwrap();
    assert_eq!(meta("b").fill_value.to_le_bytes(DType::Bool), Some(vec![1]));
    assert_eq!(meta("t").fill_value, atlas::Scalar::Int(86_400_000_000_000));
    assert_eq!(meta("n").fill_value, atlas::Scalar::Int(i64::MIN));
    import("d/x", &times, "true").code(1).stderr(contains("true and false are fill values of bool arrays"));
    import("d/x", &flags, "2020-01-01")
        .code(1)
        .stderr(contains("a date or NaT is the fill value of a timestamp array"));
    import("d/x", &flags, "2020-02-30").code(2);
    // A refused change of an existing array's fill tells the one it has in the same words.
    let overwrite = |array: &str, file: &Path, fill: &str| {
        atlas().arg("import").arg(&store).arg(array).arg(file).args(["--overwrite", "--fill-value", fill]).assert()
    };
    overwrite("d/n", &times, "1970-01-01T00:00").code(1).stderr(contains("and fill value NaT: --chunks"));
    overwrite("d/b", &flags, "false").code(1).stderr(contains("and fill value true: --chunks"));
}

#[test]
fn files_of_other_formats_are_named_on_import_and_refused_as_export_names() {
    let dir = TempDir::new().unwrap();
    let store = sample_store(&dir);
    let archive = dir.path().join("a.npy");
    std::fs::write(&archive, b"PK\x03\x04 rest of a zip").unwrap();
    let refused = atlas().arg("import").arg(&store).arg("run42/z").arg(&archive).assert().code(1);
    refused.stderr(contains("a zip archive (numpy.savez makes .npz ones): extract its .npy files first"));
    let bz2 = dir.path().join("out.npy.bz2");
    let refused = atlas().arg("export").arg(&store).arg("run42/temp").arg(&bz2).assert().code(2);
    refused.stderr(contains("named for a format export does not write"));
    assert!(!bz2.exists());
    atlas().arg("export").arg(&store).arg("run42/temp").arg(&bz2).args(["--compression", "none"]).assert().success();
    assert!(std::fs::read(&bz2).unwrap().starts_with(b"\x93NUMPY"));
    // An empty name in --dims is a stray comma, not an unnamed axis.
    let npy_file = dir.path().join("v.npy");
    std::fs::write(&npy_file, npy("<i4", &[2, 1], &[0; 8])).unwrap();
    let refused = atlas().arg("import").arg(&store).arg("run42/v").arg(&npy_file).args(["--dims", "x,"]).assert();
    refused.code(2).stderr(contains("a dimension name is empty (a stray comma?)"));
}

#[test]
fn import_gives_a_new_or_overwritten_array_the_codec_asked_for() {
    let dir = TempDir::new().unwrap();
    let store = dir.path().join("s");
    let file = dir.path().join("f.npy");
    let values: Vec<u16> = (0..4096u16).map(|v| v % 7).collect();
    let body: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&file, npy("<u2", &[64, 64], &body)).unwrap();
    let import = |array: &str, args: &[&str]| {
        let mut cmd = atlas();
        cmd.arg("import").arg(&store).arg(array).arg(&file).arg("--create").args(args);
        cmd
    };
    import("d/a", &["--codec", "lz4", "--shuffle", "off"]).assert().success();
    import("d/b", &["--codec", "zstd", "--level", "9"]).assert().success();
    import("d/c", &[]).assert().success();
    let codec_of = |array: &str| {
        let meta = Atlas::open(&store).unwrap().open_dataset("d").unwrap().array_meta(array).unwrap();
        (meta.codec, meta.shuffle)
    };
    assert_eq!(codec_of("a"), (Some(Codec::Lz4), Some(Shuffle::Off)));
    assert_eq!(codec_of("b"), (Some(Codec::Zstd { level: 9 }), None));
    assert_eq!(codec_of("c"), (None, None));
    let doc = json_of(atlas().arg("info").arg(&store).arg("--json"));
    let mix = |i: usize| doc["datasets"][0]["arrays"][i]["codec_mix"].clone();
    assert!(mix(0).as_object().unwrap().keys().all(|k| k.starts_with("lz4")), "{}", mix(0));
    // Overwriting rewrites every block with the codec given, which the array keeps.
    import("d/c", &["--overwrite", "--codec", "none"]).assert().success();
    assert_eq!(codec_of("c"), (Some(Codec::None), None));
    let read = Atlas::open(&store).unwrap().open_dataset("d").unwrap().array("c").unwrap();
    assert_eq!(read.read::<u16>(&[0, 0], &[64, 64]).unwrap().into_raw_vec_and_offset().0, values);
    let doc = json_of(atlas().arg("info").arg(&store).arg("--json"));
    assert!(doc["datasets"][0]["arrays"][2]["codec_mix"].as_object().unwrap().keys().all(|k| k.starts_with("none")));
    // Levels only for zstd, and only zstd's.
    let bad = import("d/e", &["--level", "3"]).assert().code(2);
    bad.stderr(contains("--level needs --codec zstd")).stderr(contains("Usage: atlas import"));
    import("d/e", &["--codec", "lz4", "--level", "3"]).assert().code(2).stderr(contains("--level applies to"));
    import("d/e", &["--codec", "zstd", "--level", "99"]).assert().code(2).stderr(contains("outside zstd's levels"));
    assert!(Atlas::open(&store).unwrap().open_dataset("d").unwrap().array_meta("e").is_err());
}

#[test]
fn a_committed_change_whose_summary_cannot_be_written_still_succeeds() {
    // A script retrying on a failure would import the file again ("already exists").
    let dir = TempDir::new().unwrap();
    let (store, file) = (dir.path().join("s"), dir.path().join("a.npy"));
    std::fs::write(&file, npy("<i2", &[2], &[1, 0, 2, 0])).unwrap();
    let full = std::fs::File::options().write(true).open("/dev/full").unwrap();
    let mut import = std::process::Command::new(env!("CARGO_BIN_EXE_atlas"));
    let ran = import.arg("import").arg(&store).arg("d/a").arg(&file).arg("--create").stdout(full).output().unwrap();
    assert!(ran.status.success(), "{ran:?}");
    assert!(String::from_utf8_lossy(&ran.stderr).contains("work is done, but its summary could not be written"));
    let read = Atlas::open(&store).unwrap().open_dataset("d").unwrap().read_array::<i16>("a", &[0], &[2]).unwrap();
    assert_eq!(read.into_raw_vec_and_offset().0, [1, 2]);
}

#[test]
fn a_refused_json_cat_writes_nothing_to_stdout() {
    let dir = TempDir::new().unwrap();
    let store = dir.path().join("s");
    let atlas_store = Atlas::create(&store, StoreConfig::default()).unwrap();
    let spec = ArraySpec::new(DType::Float64, [2, 1 << 30]).chunk_shape([1, 1 << 20]);
    atlas_store.create_dataset("d").unwrap().define_array("wide", spec).unwrap();
    atlas_store.flush().unwrap();
    let refused = atlas().arg("cat").arg(&store).arg("d/wide").arg("--json").assert().code(1);
    refused.stdout("").stderr(contains("narrow it with --slice"));
}

#[test]
fn import_create_refuses_dot_dot_after_a_missing_directory_and_export_into_the_store_it_reads() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("a.npy");
    std::fs::write(&file, npy("<i2", &[2], &[1, 0, 2, 0])).unwrap();
    // `new/../existing` would make `new`, put the store in `existing` and, on a failure,
    // remove `existing` as its own.
    let existing = dir.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    let odd = dir.path().join("new/../existing");
    let refused = atlas().arg("import").arg(&odd).arg("d/a").arg(&file).arg("--create").assert().code(1);
    refused.stderr(contains("`..` after"));
    assert!(existing.is_dir() && !dir.path().join("new").exists());
    // An export over (or into) the store it reads would replace its files.
    let store = sample_store(&dir);
    for target in [store.join("atlas.json"), store.join("data/x.npy")] {
        let export = atlas().arg("export").arg(&store).arg("run42/temp").arg(&target).arg("--force").assert();
        export.code(1).stderr(contains("inside the store"));
    }
    assert!(Atlas::open(&store).is_ok());
    // Standard output is no file of the store, whatever the directory.
    let to_stdout = atlas().current_dir(&store).arg("export").arg(".").arg("run42/temp").arg("-").assert();
    to_stdout.success();
}

#[test]
fn paths_printed_on_stdout_have_their_control_characters_escaped() {
    let dir = TempDir::new().unwrap();
    let store = dir.path().join("e\x1b[31mvil");
    Atlas::create(&store, StoreConfig::default()).unwrap();
    let info = stdout_of(atlas().arg("info").arg(&store));
    assert!(!info.contains('\x1b') && info.contains("\\u{1b}[31mvil"), "{info}");
}
