//! Any bytes as the fragment file of a small valid store (its length patched into the
//! metadata): open and read everything. With the first input byte odd, the harness first
//! recomputes the index checksum (when the footer allows), so the fuzzer gets past it to
//! the index entries and blocks.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use atlas::Atlas;
use atlas_fuzz::{build_template, fix_index_checksum, read_everything, scratch, seed, strip_checksum};
use libfuzzer_sys::fuzz_target;

struct Template {
    store: PathBuf,
    fragment: PathBuf,
    /// The metadata text with `{len}` where the fragment's length goes.
    meta: String,
}

static TEMPLATE: OnceLock<Template> = OnceLock::new();

fn template() -> &'static Template {
    TEMPLATE.get_or_init(|| {
        let store = scratch("fragment_decode").join("store");
        build_template(&store);
        let mut fragments: Vec<PathBuf> =
            std::fs::read_dir(store.join("data")).expect("list data").map(|e| e.expect("entry").path()).collect();
        assert_eq!(fragments.len(), 1, "the template has one fragment");
        let fragment = fragments.remove(0);
        let bytes = std::fs::read(&fragment).expect("read fragment");
        // Without its checksum (as hand-written JSON may be), so the length patched in
        // below leaves the metadata valid and every input reaches the fragment's parser.
        let text = strip_checksum(&std::fs::read_to_string(store.join("atlas.json")).expect("read metadata"));
        let field = format!("\"len_bytes\":{}", bytes.len());
        assert_eq!(text.matches(&field).count(), 1);
        let meta = text.replace(&field, "\"len_bytes\":{len}");
        for flags in [0u8, 1] {
            let mut input = vec![flags];
            input.extend_from_slice(&bytes);
            seed(&format!("template-{flags}"), &input);
        }
        Template { store, fragment, meta }
    })
}

fuzz_target!(init: { template(); }, |data: &[u8]| {
    let Some((&flags, content)) = data.split_first() else { return };
    let template = template();
    let mut bytes = content.to_vec();
    if flags & 1 != 0 {
        fix_index_checksum(&mut bytes);
    }
    std::fs::write(&template.fragment, &bytes).expect("write fragment");
    let meta = template.meta.replace("{len}", &bytes.len().to_string());
    std::fs::write(template.store.join("atlas.json"), meta).expect("write metadata");
    if let Ok(opened) = Atlas::open(&template.store) {
        read_everything(&opened);
    }
});
