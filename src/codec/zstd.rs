//! zstd blocks: one standard frame each, with the content size in the frame header, so any
//! zstd decoder (nvCOMP included) reads them. Contexts are kept per thread.

use std::cell::RefCell;

use zstd::bulk::{Compressor, Decompressor};

use crate::error::{Error, Result};

use super::dict::ZstdDict;

// One context per thread, rebuilt when the level or the dictionary (by key; 0 for none)
// changes.
thread_local! {
    static COMPRESSOR: RefCell<Option<((i32, u64), Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<(u64, Decompressor<'static>)>> = const { RefCell::new(None) };
}

fn codec_err(e: &std::io::Error) -> Error {
    Error::Codec { codec: "zstd", detail: e.to_string() }
}

/// Appends one zstd frame of `input` at `level` (with `dict`, if any) to `out`.
pub(super) fn compress(input: &[u8], level: i32, dict: Option<&ZstdDict>, out: &mut Vec<u8>) -> Result<()> {
    let wanted = (level, dict.map_or(0, ZstdDict::key));
    COMPRESSOR.with_borrow_mut(|slot| {
        if slot.as_ref().is_none_or(|(have, _)| *have != wanted) {
            let compressor = match dict {
                Some(dict) => Compressor::with_dictionary(level, dict.bytes()),
                None => Compressor::new(level),
            };
            *slot = Some((wanted, compressor.map_err(|e| codec_err(&e))?));
        }
        let (_, compressor) = slot.as_mut().expect("set above");
        out.reserve(zstd::zstd_safe::compress_bound(input.len()));
        compressor.compress_to_buffer(input, out).map_err(|e| codec_err(&e))?;
        Ok(())
    })
}

/// Decodes one frame (written with `dict`, if any) into `out`, which must be exactly its
/// content size.
pub(super) fn decompress(stored: &[u8], dict: Option<&ZstdDict>, out: &mut [u8]) -> Result<()> {
    let wanted = dict.map_or(0, ZstdDict::key);
    DECOMPRESSOR.with_borrow_mut(|slot| {
        if slot.as_ref().is_none_or(|(have, _)| *have != wanted) {
            let decompressor = match dict {
                Some(dict) => Decompressor::with_dictionary(dict.bytes()),
                None => Decompressor::new(),
            };
            *slot = Some((wanted, decompressor.map_err(|e| codec_err(&e))?));
        }
        let (_, decompressor) = slot.as_mut().expect("set above");
        let written = decompressor.decompress_to_buffer(stored, out).map_err(|e| codec_err(&e))?;
        super::check_len(super::CodecId::Zstd, written, out.len())
    })
}
