//! The rooms of `src/` form layers: a room may use rooms below it, never above. This test
//! reads every source file and fails on any `crate::<room>` path that points upward.

use std::path::{Path, PathBuf};

/// The rooms, lowest first. `lib.rs` sits above them all.
const ROOMS: [&str; 8] = ["error", "io", "meta", "codec", "fragment", "engine", "gpu", "store"];

fn rank(room: &str) -> Option<usize> {
    ROOMS.iter().position(|r| *r == room)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The rooms a line of code names through `crate::`, in `use crate::x`, `crate::x::y`, and
/// `use crate::{x, y::z}` forms. Comments are skipped.
fn rooms_named(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut rooms = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        // `$crate::` in a macro, or an identifier ending in "crate", is not this crate's root.
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c == '$' || c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group (nested groups belong to their first segment).
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        rooms.push(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            rooms.push(first_segment(&item));
        } else {
            rooms.push(first_segment(rest));
        }
    }
    rooms.retain(|r| !r.is_empty());
    rooms
}

fn first_segment(path: &str) -> String {
    path.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

#[test]
fn rooms_parse_from_every_use_form() {
    assert_eq!(rooms_named("use crate::meta::{Codec, DType};"), ["meta"]);
    assert_eq!(rooms_named("use crate::{error::Result, io, meta::{self, X}};"), ["error", "io", "meta"]);
    assert_eq!(rooms_named("    let x = crate::codec::encode(a, crate::io::read());"), ["codec", "io"]);
    assert!(rooms_named("// see crate::store for the API").is_empty());
    assert!(rooms_named("$crate::util::x!()").is_empty());
}

#[test]
fn no_room_imports_a_room_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut references = 0;
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        if rel == Path::new("lib.rs") {
            continue;
        }
        let first = rel.components().next().unwrap().as_os_str().to_str().unwrap();
        let room = first.strip_suffix(".rs").unwrap_or(first);
        let Some(own) = rank(room) else {
            violations.push(format!("src/{}: room {room:?} is not in the layer order {ROOMS:?}", rel.display()));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for named in rooms_named(line) {
                references += 1;
                match rank(&named) {
                    Some(other) if other <= own => {}
                    Some(_) => violations.push(format!(
                        "src/{}:{}: room `{room}` uses higher room `{named}`: {}",
                        rel.display(),
                        n + 1,
                        line.trim()
                    )),
                    None => violations.push(format!(
                        "src/{}:{}: `crate::{named}` is not a room in {ROOMS:?}",
                        rel.display(),
                        n + 1
                    )),
                }
            }
        }
    }
    assert!(files.len() >= ROOMS.len() && references > 0, "scanned {} files, {references} references", files.len());
    assert!(violations.is_empty(), "layering violations:\n{}", violations.join("\n"));
}

#[test]
fn only_the_io_room_touches_the_file_system() {
    // Everything else goes through `io`, whose errors name the path and the operation and
    // whose calls the fault-injection tests reach. Test modules (at the end of a file) may.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for file in files.iter().filter(|file| !file.starts_with(src.join("io"))) {
        let text = std::fs::read_to_string(file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in code.lines().enumerate() {
            let line = line.split("//").next().unwrap_or("");
            let imports_fs = line.contains("use std::{") && line.contains("fs");
            if line.contains("std::fs") || line.contains("::fs::") || imports_fs {
                violations.push(format!("{}:{}: {}", file.strip_prefix(&src).unwrap().display(), n + 1, line.trim()));
            }
        }
    }
    assert!(violations.is_empty(), "file system calls outside src/io:\n{}", violations.join("\n"));
}
