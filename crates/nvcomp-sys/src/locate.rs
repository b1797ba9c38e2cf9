//! Where libnvcomp is looked for, in order: an explicit path, `ATLAS_NVCOMP_LIB`, the system
//! loader's sonames, then the folders of pip-installed nvCOMP wheels.

use std::path::{Path, PathBuf};
use std::process::Command;

use libloading::Library;

use crate::error::{Error, Result};

/// The environment variable naming a libnvcomp to load.
pub const ENV_VAR: &str = "ATLAS_NVCOMP_LIB";

/// Sonames tried through the system loader, newest ABI first.
const SONAMES: [&str; 3] = ["libnvcomp.so.6", "libnvcomp.so.5", "libnvcomp.so.4"];

/// Where the wheels put the library, relative to a site-packages folder:
/// `nvidia-libnvcomp-cu12/13` (5.1 and later) and `nvidia-nvcomp-cu12` (4.x, 5.0).
const WHEEL_FILES: [&str; 5] = [
    "nvidia/libnvcomp/lib64/libnvcomp.so.6",
    "nvidia/libnvcomp/lib64/libnvcomp.so.5",
    "nvidia/nvcomp/libnvcomp.so.6",
    "nvidia/nvcomp/libnvcomp.so.5",
    "nvidia/nvcomp/libnvcomp.so.4",
];

/// Opens libnvcomp: `explicit` if given (no fallback), else the search order of this module.
/// Returns the library and what it was opened as.
pub(crate) fn open(explicit: Option<&Path>) -> Result<(Library, String)> {
    if let Some(path) = explicit {
        return open_path(path);
    }
    if let Some(path) = std::env::var_os(ENV_VAR).filter(|p| !p.is_empty()) {
        return open_path(Path::new(&path));
    }
    let mut tried = Vec::new();
    for name in SONAMES {
        // SAFETY: loading runs the library's initialisers; libnvcomp's only load its own
        // dependencies (it opens libcuda lazily, on first use).
        match unsafe { Library::new(name) } {
            Ok(lib) => return Ok((lib, name.to_string())),
            Err(e) => tried.push(format!("{name} ({e})")),
        }
    }
    for path in wheel_candidates() {
        if path.is_file() {
            return open_path(&path);
        }
        tried.push(format!("{} (absent)", path.display()));
    }
    Err(Error::NotFound { tried })
}

fn open_path(path: &Path) -> Result<(Library, String)> {
    // SAFETY: as in `open`; the caller named this library.
    let lib = unsafe { Library::new(path) }.map_err(|source| Error::Load { path: path.to_path_buf(), source })?;
    Ok((lib, path.display().to_string()))
}

/// Wheel library paths under every site-packages folder we can name.
pub(crate) fn wheel_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for site in site_packages() {
        for file in WHEEL_FILES {
            let path = site.join(file);
            if !out.contains(&path) {
                out.push(path);
            }
        }
    }
    out
}

/// Site-packages folders: of the active virtual or conda environment, `PYTHONPATH`, and what
/// `python3` itself reports (which covers pyenv, user and system installs).
fn site_packages() -> Vec<PathBuf> {
    let mut sites: Vec<PathBuf> = Vec::new();
    for var in ["VIRTUAL_ENV", "CONDA_PREFIX"] {
        if let Some(prefix) = std::env::var_os(var) {
            sites.extend(python_lib_dirs(&Path::new(&prefix).join("lib")));
        }
    }
    if let Some(paths) = std::env::var_os("PYTHONPATH") {
        sites.extend(std::env::split_paths(&paths));
    }
    sites.extend(interpreter_sites());
    sites
}

/// `<lib>/python3.*/site-packages` folders.
fn python_lib_dirs(lib: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(lib) else { return Vec::new() };
    entries
        .filter_map(std::result::Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join("site-packages"))
        .collect()
}

/// The site folders `python3` reports; none when there is no interpreter.
fn interpreter_sites() -> Vec<PathBuf> {
    const SCRIPT: &str = "import site\nfor p in site.getsitepackages() + [site.getusersitepackages()]: print(p)";
    let Ok(out) = Command::new("python3").args(["-c", SCRIPT]).output() else { return Vec::new() };
    if !out.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout).lines().map(PathBuf::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_explicit_path_is_a_load_error_naming_it() {
        let err = open(Some(Path::new("/nonexistent/libnvcomp.so.6"))).unwrap_err();
        assert!(matches!(&err, Error::Load { path, .. } if path.ends_with("libnvcomp.so.6")), "{err}");
    }

    #[test]
    fn wheel_candidates_cover_both_wheel_layouts() {
        let dir = tempdir_with_python_lib();
        let sites = python_lib_dirs(&dir.join("lib"));
        assert_eq!(sites, vec![dir.join("lib/python3.11/site-packages")]);
    }

    fn tempdir_with_python_lib() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nvcomp-sys-locate-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("lib/python3.11/site-packages")).unwrap();
        std::fs::create_dir_all(dir.join("lib/other")).unwrap();
        dir
    }
}
