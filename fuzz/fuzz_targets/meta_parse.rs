//! Any bytes as the metadata file, under each of the six metadata file names (the first
//! input byte picks the name, and whether the template's `atlas.json` stays next to it as
//! a second, older metadata file): open and read everything; errors are fine, panics are not.
//! The store's data folder holds the template's fragment, so metadata naming it reads data.
//! With bit 4 of the first byte set, the file is first resealed (parsed and encoded again
//! with a fresh checksum) when it parses, so that changed values reach the checks past the
//! checksum: the schema rules, the fragments named, the reads.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use atlas::{Atlas, MetaCompression, MetaFormat};
use atlas_fuzz::{build_template, copy_store, read_everything, scratch, seed};
use libfuzzer_sys::fuzz_target;

const ENCODINGS: [(MetaFormat, MetaCompression, &str); 6] = [
    (MetaFormat::Json, MetaCompression::None, "atlas.json"),
    (MetaFormat::Json, MetaCompression::Zstd, "atlas.json.zst"),
    (MetaFormat::Json, MetaCompression::Lz4, "atlas.json.lz4"),
    (MetaFormat::MsgPack, MetaCompression::None, "atlas.msgpack"),
    (MetaFormat::MsgPack, MetaCompression::Zstd, "atlas.msgpack.zst"),
    (MetaFormat::MsgPack, MetaCompression::Lz4, "atlas.msgpack.lz4"),
];

/// The store directory inputs are written into, and the template's JSON metadata.
static STORE: OnceLock<(PathBuf, Vec<u8>)> = OnceLock::new();

fn store() -> &'static (PathBuf, Vec<u8>) {
    STORE.get_or_init(|| {
        let dir = scratch("meta_parse");
        let template = dir.join("template");
        build_template(&template);
        let json = std::fs::read(template.join("atlas.json")).expect("template metadata");
        // Seeds: the template's metadata in every encoding (a commit rewrites it).
        for (i, (format, compression, name)) in ENCODINGS.into_iter().enumerate() {
            let copy = dir.join(format!("enc{i}"));
            copy_store(&template, &copy);
            let opened = Atlas::open(&copy).expect("open template copy");
            opened.set_meta_format(Some(format), Some(compression)).expect("set format");
            opened.attrs().set("encoding", name).expect("attr");
            opened.flush().expect("flush");
            let encoded = std::fs::read(copy.join(name)).expect("read encoded metadata");
            for reseal in [0u8, 16] {
                let mut input = vec![i as u8 | reseal];
                input.extend(&encoded);
                seed(&format!("{name}-{reseal}"), &input);
            }
        }
        let store = dir.join("store");
        copy_store(&template, &store);
        std::fs::remove_file(store.join("atlas.json")).expect("remove metadata");
        (store, json)
    })
}

fuzz_target!(init: { store(); }, |data: &[u8]| {
    let Some((&selector, content)) = data.split_first() else { return };
    let (store, template_json) = store();
    let (format, compression, name) = ENCODINGS[usize::from(selector & 7) % 6];
    for (_, _, other) in ENCODINGS {
        if other != name {
            let _ = std::fs::remove_file(store.join(other));
        }
    }
    let resealed = (selector & 16 != 0).then(|| atlas::testing::reseal_metadata(content, format, compression)).flatten();
    std::fs::write(store.join(name), resealed.as_deref().unwrap_or(content)).expect("write input");
    if selector & 8 != 0 && name != "atlas.json" {
        std::fs::write(store.join("atlas.json"), template_json).expect("write second metadata file");
    }
    if let Ok(opened) = Atlas::open(store) {
        read_everything(&opened);
    }
});
