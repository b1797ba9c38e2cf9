//! Any text as a dataset name, an array name and an attribute key (store, dataset and
//! array). Checked against the rules of docs/FORMAT.md ("Limits and name rules"): a name is
//! accepted exactly when the rules allow it, an accepted name survives a commit and reopen,
//! and no file ever appears outside the store or under an unexpected name inside it.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use atlas::{ArraySpec, Atlas, DType, Error, StoreConfig};
use atlas_fuzz::{scratch, seed};
use libfuzzer_sys::fuzz_target;

/// The jail (its only entry is the store) and the open store with its use count.
static STATE: Mutex<Option<(PathBuf, Atlas, u32)>> = Mutex::new(None);

fn name_allowed(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
        && !name.starts_with(['.', '_'])
}

fn key_allowed(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 255
        && !key.chars().any(char::is_control)
        && !key.contains(['/', '\\'])
        && key != "."
        && key != ".."
}

fn fresh_store(jail: &Path) -> Atlas {
    let path = jail.join("store");
    let _ = std::fs::remove_dir_all(&path);
    let store = Atlas::create(&path, StoreConfig::default()).expect("create store");
    store.create_dataset("d").expect("dataset").define_array("a", ArraySpec::new(DType::Int8, [1])).expect("array");
    store.flush().expect("flush");
    store
}

fn sorted_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list dir")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Asserts the outcome of a call given whether the rules allow the name.
fn check(what: &str, name: &str, allowed: bool, outcome: Result<(), Error>) {
    match outcome {
        Ok(()) | Err(Error::AlreadyExists { .. }) => assert!(allowed, "{what} accepted {name:?}"),
        Err(Error::InvalidName { .. }) => assert!(!allowed, "{what} refused the allowed name {name:?}"),
        Err(e) => panic!("{what} with {name:?}: unexpected {e:?}"),
    }
}

fuzz_target!(
    init: {
        for name in ["run42", "..", "a/b", "C:\\x", "nul\0", ".hidden", "\u{e9}t\u{e9}", "tab\t"] {
            seed(&format!("{:x}", name.len()), name.as_bytes());
        }
    },
    |data: &[u8]| {
        let name = String::from_utf8_lossy(data);
        let mut state = STATE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (jail, store, uses) = state.get_or_insert_with(|| {
            let jail = scratch("names");
            let store = fresh_store(&jail);
            (jail, store, 0)
        });
        *uses += 1;
        if *uses % 64 == 0 {
            *store = fresh_store(jail);
        }
        let ds = store.open_dataset("d").expect("dataset d");
        let array = ds.array("a").expect("array a");
        check("create_dataset", &name, name_allowed(&name), store.create_dataset(&name).map(drop));
        let spec = ArraySpec::new(DType::Int8, [1]);
        check("define_array", &name, name_allowed(&name), ds.define_array(&name, spec).map(drop));
        for attrs in [store.attrs(), ds.attrs(), array.attrs()] {
            check("attrs().set", &name, key_allowed(&name), attrs.set(&name, 1));
        }
        store.flush().expect("flush");

        assert_eq!(sorted_names(jail), ["store"], "a file appeared outside the store");
        let inside = sorted_names(&jail.join("store"));
        assert!(inside.iter().all(|n| ["atlas.json", "atlas.lock", "data"].contains(&n.as_str())), "{inside:?}");
        assert!(sorted_names(&jail.join("store/data")).iter().all(|n| n.ends_with(".frag")));
        if name_allowed(&name) {
            let reopened = Atlas::open(jail.join("store")).expect("reopen");
            assert!(reopened.dataset_exists(&name), "{name:?} did not survive a reopen");
            let arrays = reopened.open_dataset("d").expect("d").list_arrays().expect("arrays");
            assert!(arrays.contains(&name.to_string()), "array {name:?} did not survive a reopen");
        }
    }
);
