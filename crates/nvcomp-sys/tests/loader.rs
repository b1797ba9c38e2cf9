//! Loads a real libnvcomp when one is around (`ATLAS_NVCOMP_LIB`, the system loader or a
//! pip-installed wheel) and checks its version and the calls that need no GPU. Skips, saying
//! so, when none is installed. Needs no GPU and no driver.

use nvcomp_sys::{Algo, Error, Nvcomp};

fn loaded() -> Option<Nvcomp> {
    match Nvcomp::load() {
        Ok(lib) => Some(lib),
        Err(Error::NotFound { tried }) => {
            eprintln!(
                "SKIP: no libnvcomp installed (pip install nvidia-libnvcomp-cu12, or set ATLAS_NVCOMP_LIB); tried {} places",
                tried.len()
            );
            None
        }
        Err(e) => panic!("libnvcomp found but not usable: {e}"),
    }
}

#[test]
fn reports_a_supported_version() {
    let Some(lib) = loaded() else { return };
    let v = lib.version();
    assert!((4..=6).contains(&v.major), "{v}");
    assert!(lib.cudart_version() >= 11000, "cudart {}", lib.cudart_version());
    eprintln!("loaded {} version {v}", lib.origin());
}

#[test]
fn answers_size_queries_without_a_gpu() {
    let Some(lib) = loaded() else { return };
    for algo in [Algo::Zstd, Algo::Lz4, Algo::Deflate] {
        let align = lib.decompress_alignments(algo).unwrap();
        assert!(align.input.is_power_of_two() && align.output.is_power_of_two(), "{algo:?} {align:?}");
        let temp = lib.decompress_temp_bytes(algo, 16, 1 << 20, 16 << 20);
        // 4.2's zstd sizing answers InvalidValue on a machine without a GPU (seen here); 5.x
        // and 6.x answer anywhere.
        if lib.version().major >= 5 || algo != Algo::Zstd {
            temp.unwrap();
        }
    }
    for algo in [Algo::Zstd, Algo::Lz4] {
        let max = lib.compress_max_output_bytes(algo, 1 << 16).unwrap();
        assert!(max >= 1 << 16, "{algo:?}: {max}");
    }
    assert!(matches!(lib.compress_alignments(Algo::Deflate), Err(Error::Unsupported { .. })));
    assert!(!lib.status_string(nvcomp_sys::Status(12)).is_empty());
}

#[test]
fn an_explicit_path_that_is_not_nvcomp_is_refused() {
    let err = Nvcomp::load_from(std::path::Path::new("/nonexistent/libnvcomp.so.6")).unwrap_err();
    assert!(matches!(err, Error::Load { .. }), "{err}");
}
