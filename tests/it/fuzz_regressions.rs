//! Fuzz findings as regression tests, and the fuzz harnesses replayed in plain `cargo test`.
//!
//! `replay_meta_parse` and `replay_fragment_decode` do what the cargo-fuzz targets
//! `meta_parse` and `fragment_decode` do with one input (`fuzz/fuzz_targets/`), on a store in
//! the test's own temp dir. Inputs that once crashed a target go into [`REGRESSIONS`] with
//! their bytes inline, in the target's input format (first byte: the target's selector or
//! flags, then the file). One finding so far: an input the optimised fuzz build survived
//! (8 MiB stack) overflowed a debug build's 2 MiB thread stack when the corpus was replayed
//! here (`fuzz_found_deep_msgpack_nesting_is_an_error_not_a_stack_overflow`). The other
//! inputs are hand-made edge cases of the same formats that must stay errors. `local_fuzz_corpora_replay_without_a_panic` also replays whatever corpora
//! scripts/fuzz left in fuzz/corpus/ (capped), so a checkout that fuzzed keeps its coverage
//! in CI.

use std::path::Path;
use std::time::{Duration, Instant};

use atlas::{ArraySpec, Atlas, AttrValue, Codec, DType, Error, MetaCompression, MetaFormat, Shuffle, StoreConfig};
use ndarray::arr1;

use crate::observe::open_and_dump_catching;
use crate::util::{ENCODINGS, TestDir, test_dir};

/// A small store like the fuzz targets' template: several codecs, strings, a fill entry.
fn template(path: &Path) {
    let store = Atlas::create(path, StoreConfig { codec: Codec::Zstd { level: 3 }, ..StoreConfig::default() }).unwrap();
    store.attrs().set("list", AttrValue::List(vec![1.5.into(), "x".into()])).unwrap();
    let d = store.create_dataset("d").unwrap();
    let spec = ArraySpec::new(DType::Int16, [9]).chunk_shape([4]).fill_value(-1).codec(Codec::Lz4);
    d.define_array("i16", spec.shuffle(Shuffle::Off)).unwrap();
    d.write_array("i16", &[0], arr1(&[3i16, -7, 300, 0, 12, -1, 5, 9, 11]).view()).unwrap();
    d.define_array("f64", ArraySpec::new(DType::Float64, [4]).shuffle(Shuffle::On)).unwrap();
    d.write_array("f64", &[0], arr1(&[0.5, -1.0, f64::NAN, 4.0]).view()).unwrap();
    d.define_array("s", ArraySpec::new(DType::String, [3]).chunk_shape([2]).codec(Codec::None)).unwrap();
    d.write_strings("s", &[0], arr1(&["a", "", "ccc"]).view()).unwrap();
    d.define_array("fill", ArraySpec::new(DType::Int32, [8]).chunk_shape([4]).fill_value(7)).unwrap();
    d.write_array("fill", &[0], arr1(&[7, 7, 7, 7, 1, 2, 3, 4]).view()).unwrap();
    store.flush().unwrap();
}

/// What the `meta_parse` target does with one input: the first byte picks the metadata
/// file name (bit 3 keeps the template's `atlas.json` next to it, bit 4 reseals the file
/// with a fresh checksum where the `test-util` feature gives the means), the rest is the
/// file. Returns the outcome, `Err` holding a panic's message.
fn replay_meta_parse(store: &Path, template_json: &[u8], input: &[u8]) -> Result<Result<String, Error>, String> {
    let Some((&selector, content)) = input.split_first() else { return Ok(Ok(String::new())) };
    let (format, compression, name) = ENCODINGS[usize::from(selector & 7) % 6];
    for (_, _, other) in ENCODINGS {
        let _ = std::fs::remove_file(store.join(other));
    }
    let resealed = resealed(content, (format, compression), selector & 16 != 0);
    std::fs::write(store.join(name), resealed.as_deref().unwrap_or(content)).unwrap();
    if selector & 8 != 0 && name != "atlas.json" {
        std::fs::write(store.join("atlas.json"), template_json).unwrap();
    }
    open_and_dump_catching(store)
}

/// `content` parsed and encoded again with a fresh checksum, when `reseal` asks and the
/// `test-util` feature gives the means; `None` otherwise, or when it does not parse.
#[cfg(feature = "test-util")]
fn resealed(content: &[u8], (format, compression): (MetaFormat, MetaCompression), reseal: bool) -> Option<Vec<u8>> {
    reseal.then(|| atlas::testing::reseal_metadata(content, format, compression)).flatten()
}

#[cfg(not(feature = "test-util"))]
fn resealed(_: &[u8], _: (MetaFormat, MetaCompression), _: bool) -> Option<Vec<u8>> {
    None
}

/// What the `fragment_decode` target does with one input: the rest of the input replaces
/// the store's one fragment (its length patched into the metadata); with the first byte
/// odd, the index checksum is recomputed first.
fn replay_fragment_decode(
    store: &Path,
    fragment: &Path,
    meta_template: &str,
    input: &[u8],
) -> Result<Result<String, Error>, String> {
    let Some((&flags, content)) = input.split_first() else { return Ok(Ok(String::new())) };
    let mut bytes = content.to_vec();
    if flags & 1 != 0 && bytes.len() >= 56 {
        let footer = bytes.len() - 40;
        let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        let (offset, len) = (u64_at(&bytes, footer), u64_at(&bytes, footer + 8));
        if let Some(end) = offset.checked_add(len).filter(|&end| end <= footer as u64) {
            let sum = xxhash_rust::xxh3::xxh3_64(&bytes[offset as usize..end as usize]);
            bytes[footer + 24..footer + 32].copy_from_slice(&sum.to_le_bytes());
        }
    }
    std::fs::write(fragment, &bytes).unwrap();
    std::fs::write(store.join("atlas.json"), meta_template.replace("{len}", &bytes.len().to_string())).unwrap();
    open_and_dump_catching(store)
}

/// The metadata text of the store at `store` with `{len}` in place of its one fragment's
/// length, and that fragment's path.
fn fragment_template(store: &Path) -> (String, std::path::PathBuf) {
    let fragment = crate::util::fragments(store).remove(0);
    let len = std::fs::metadata(&fragment).unwrap().len();
    // Without its checksum (the last field), as the target's template: every fragment
    // length patched in keeps the metadata valid.
    let text = std::fs::read_to_string(store.join("atlas.json")).unwrap();
    let text = format!("{}}}", &text[..text.rfind(",\"checksum\":").unwrap()]);
    let field = format!("\"len_bytes\":{len}");
    assert_eq!(text.matches(&field).count(), 1);
    (text.replace(&field, "\"len_bytes\":{len}"), fragment)
}

/// Inputs of the `meta_parse` format that must give an error, never a panic.
const REGRESSIONS: &[(&str, &[u8])] = &[
    ("empty JSON file", b"\x00"),
    ("JSON null", b"\x00null"),
    ("format_version 0", b"\x00{\"format_version\":0}"),
    ("format_version as a string", b"\x00{\"format_version\":\"1\"}"),
    ("format_version past u32", b"\x00{\"format_version\":4294967296}"),
    ("negative generation", b"\x00{\"format_version\":1,\"generation\":-1}"),
    // A zstd frame header claiming 2^40 bytes of content, then nothing.
    ("zstd frame claiming 1 TiB", b"\x01\x28\xb5\x2f\xfd\xe4\x00\x00\x00\x00\x00\x01\x00\x00"),
    // An LZ4 frame with the content-size flag claiming 2^60 bytes, then an end mark.
    (
        "lz4 frame claiming 2^60 bytes",
        b"\x02\x04\x22\x4d\x18\x6c\x40\x00\x00\x00\x00\x00\x00\x00\x10\x29\x00\x00\x00\x00",
    ),
    ("msgpack nil", b"\x03\xc0"),
    ("msgpack map of 2^32-1 entries, empty", b"\x03\xdf\xff\xff\xff\xff"),
    ("msgpack array of 2^32-1 entries, empty", b"\x03\xdd\xff\xff\xff\xff"),
    ("msgpack str of 2^32-1 bytes, empty", b"\x03\xdb\xff\xff\xff\xff"),
    ("msgpack bin of 2^32-1 bytes, empty", b"\x03\xc6\xff\xff\xff\xff"),
    ("empty msgpack.zst next to the template", b"\x0c"),
];

#[test]
fn fuzz_regression_inputs_are_errors_not_panics() {
    let dir = test_dir!();
    let store = dir.store();
    template(&store);
    let template_json = std::fs::read(store.join("atlas.json")).unwrap();
    for (what, input) in REGRESSIONS {
        match replay_meta_parse(&store, &template_json, input) {
            Err(panic) => panic!("{what}: panicked: {panic}"),
            Ok(Ok(_)) => panic!("{what}: opened"),
            Ok(Err(e)) => println!("fuzz_regressions: {what}: {e}"),
        }
    }
    // The harness itself: the template's own metadata opens.
    let mut input = vec![0];
    input.extend_from_slice(&template_json);
    assert!(matches!(replay_meta_parse(&store, &template_json, &input), Ok(Ok(_))));
}

#[cfg(feature = "test-util")]
#[test]
fn a_resealed_metadata_file_reaches_the_checks_past_its_checksum() {
    // An array id at or past next_array_id: without the reseal the checksum refuses the
    // edit; resealed, the schema rule does.
    let dir = test_dir!();
    let store = dir.store();
    template(&store);
    let template_json = std::fs::read(store.join("atlas.json")).unwrap();
    let text = String::from_utf8(template_json.clone()).unwrap();
    let edited = text.replace("\"next_array_id\":4", "\"next_array_id\":1");
    assert_ne!(edited, text);
    for (reseal, refused_by) in [(0u8, "checksum"), (16, "unallocated id")] {
        let input = [&[reseal][..], edited.as_bytes()].concat();
        match replay_meta_parse(&store, &template_json, &input) {
            Ok(Err(Error::Corrupt { detail, .. })) => assert!(detail.contains(refused_by), "{detail}"),
            other => panic!("reseal {reseal}: {other:?}"),
        }
    }
}

#[test]
fn fragment_harness_reads_the_template_and_refuses_its_truncations() {
    let dir = test_dir!();
    let store = dir.store();
    template(&store);
    let (meta, fragment) = fragment_template(&store);
    let good = std::fs::read(&fragment).unwrap();
    let expected = crate::observe::dump(&Atlas::open(&store).unwrap()).unwrap();
    for flags in [0u8, 1] {
        let input = [&[flags][..], &good].concat();
        match replay_fragment_decode(&store, &fragment, &meta, &input) {
            Ok(Ok(found)) => assert_eq!(found, expected),
            other => panic!("flags {flags}: {other:?}"),
        }
        for cut in [0, 1, 16, 55, 56, good.len() / 2, good.len() - 1] {
            let input = [&[flags][..], &good[..cut]].concat();
            match replay_fragment_decode(&store, &fragment, &meta, &input) {
                Ok(Err(Error::Corrupt { path, .. })) => assert_eq!(path, fragment, "cut {cut}"),
                other => panic!("flags {flags} cut {cut}: the fragment's parser did not refuse it: {other:?}"),
            }
        }
    }
}

/// Replays at most this many files per corpus, for at most this long in all.
const CORPUS_FILES: usize = 2000;
const CORPUS_TIME: Duration = Duration::from_secs(10);

#[test]
fn local_fuzz_corpora_replay_without_a_panic() {
    // The fuzzers run on an 8 MiB main thread of an optimised build; a debug build needs
    // more stack for the same inputs (deep nesting is covered by its own test below).
    std::thread::Builder::new().stack_size(256 << 20).spawn(replay_local_corpora).unwrap().join().unwrap();
}

fn replay_local_corpora() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let dir = TestDir::new("fuzz_regressions::local_fuzz_corpora_replay_without_a_panic");
    let store = dir.store();
    template(&store);
    let template_json = std::fs::read(store.join("atlas.json")).unwrap();
    let (meta, fragment) = fragment_template(&store);
    let good_fragment = std::fs::read(&fragment).unwrap();
    let started = Instant::now();
    let mut replayed = 0;
    for target in ["meta_parse", "fragment_decode"] {
        let Ok(entries) = std::fs::read_dir(corpus.join(target)) else { continue };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files.into_iter().take(CORPUS_FILES) {
            if started.elapsed() > CORPUS_TIME {
                break;
            }
            let input = std::fs::read(&file).unwrap();
            if std::env::var_os("ATLAS_IT_TRACE_CORPUS").is_some() {
                eprintln!("replaying {}", file.display());
            }
            let outcome = if target == "meta_parse" {
                replay_meta_parse(&store, &template_json, &input)
            } else {
                replay_fragment_decode(&store, &fragment, &meta, &input)
            };
            assert!(outcome.is_ok(), "{}: panicked: {:?}", file.display(), outcome.err());
            replayed += 1;
        }
        // Put the template back for the next target.
        std::fs::write(&fragment, &good_fragment).unwrap();
        replay_meta_parse(&store, &template_json, &[&[0][..], &template_json].concat()).unwrap().unwrap();
    }
    println!("fuzz_regressions: replayed {replayed} local corpus inputs");
}

const ENV_REPLAY_INPUT: &str = "ATLAS_IT_REPLAY_META_INPUT";
const ENV_REPLAY_STORE: &str = "ATLAS_IT_REPLAY_META_STORE";

/// Child body: replays one `meta_parse` input (a file) on the store named by the
/// environment, on a thread with the default 2 MiB stack, and prints the outcome.
#[test]
fn meta_parse_replay_child_runs_only_in_spawned_processes() {
    let (Ok(input), Ok(store)) = (std::env::var(ENV_REPLAY_INPUT), std::env::var(ENV_REPLAY_STORE)) else { return };
    let outcome = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let store = std::path::PathBuf::from(store);
            let template_json = std::fs::read(store.join("atlas.json")).unwrap();
            replay_meta_parse(&store, &template_json, &std::fs::read(input).unwrap()).map(|r| r.map(drop))
        })
        .unwrap()
        .join()
        .unwrap();
    println!("replay outcome: {outcome:?}");
    assert!(outcome.is_ok(), "panicked");
}

/// Replays a `meta_parse` input in a child process (a stack overflow aborts the process).
fn replay_in_child(dir: &mut TestDir, input: &[u8]) -> std::process::Output {
    let store = dir.store();
    template(&store);
    let input_path = dir.join("input");
    std::fs::write(&input_path, input).unwrap();
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "fuzz_regressions::meta_parse_replay_child_runs_only_in_spawned_processes", "--nocapture"])
        .env(ENV_REPLAY_INPUT, &input_path)
        .env(ENV_REPLAY_STORE, &store);
    dir.while_alone(|| command.output().unwrap())
}

/// Found by `meta_parse` (a 2591-byte corpus input, minimised here): `MessagePack` metadata
/// whose unknown field `attr` holds 1000 nested one-element arrays. Serde skips unknown
/// fields with `IgnoredAny`, which recurses once per level; with `rmp_serde`'s default limit
/// (1024 levels) this overflowed a 2 MiB thread stack in a debug build and aborted the
/// process. Fixed in 4284c3d (nesting bounded at 128, as `serde_json` does).
fn deeply_nested_unknown_field() -> Vec<u8> {
    [&[0x03, 0x82, 0xae][..], b"format_version", &[0x01, 0xa4], b"attr", &[0x91; 1000], &[0xc0]].concat()
}

#[test]
fn fuzz_found_deep_msgpack_nesting_is_an_error_not_a_stack_overflow() {
    let mut dir = test_dir!();
    let output = replay_in_child(&mut dir, &deeply_nested_unknown_field());
    assert!(
        output.status.success(),
        "replaying the input killed the process: {:?}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|l| l.contains("overflow"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn shallow_msgpack_nesting_in_an_unknown_field_is_read_or_refused_cleanly() {
    // The same shape 100 levels deep stays within any stack: a clean error (no `generation`).
    let mut dir = test_dir!();
    let mut input = deeply_nested_unknown_field();
    input.splice(23..1023, [0x91; 100]);
    let output = replay_in_child(&mut dir, &input);
    assert!(output.status.success(), "{:?}", output.status);
    assert!(String::from_utf8_lossy(&output.stdout).contains("replay outcome: Ok(Err(Corrupt"));
}
