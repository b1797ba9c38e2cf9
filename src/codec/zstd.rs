//! zstd blocks: one standard frame each, with the content size in the frame header, so any
//! zstd decoder (nvCOMP included) reads them. Contexts are kept per thread.

use std::cell::RefCell;

use zstd::bulk::{Compressor, Decompressor};

use crate::error::{Error, Result};

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
}

fn codec_err(e: &std::io::Error) -> Error {
    Error::Codec { codec: "zstd", detail: e.to_string() }
}

/// Appends one zstd frame of `input` at `level` to `out`.
pub(super) fn compress(input: &[u8], level: i32, out: &mut Vec<u8>) -> Result<()> {
    COMPRESSOR.with_borrow_mut(|slot| {
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = Some((level, Compressor::new(level).map_err(|e| codec_err(&e))?));
        }
        let (_, compressor) = slot.as_mut().expect("set above");
        out.reserve(zstd::zstd_safe::compress_bound(input.len()));
        compressor.compress_to_buffer(input, out).map_err(|e| codec_err(&e))?;
        Ok(())
    })
}

/// Decodes one frame into `out`, which must be exactly its content size.
pub(super) fn decompress(stored: &[u8], out: &mut [u8]) -> Result<()> {
    DECOMPRESSOR.with_borrow_mut(|slot| {
        if slot.is_none() {
            *slot = Some(Decompressor::new().map_err(|e| codec_err(&e))?);
        }
        let decompressor = slot.as_mut().expect("set above");
        let written = decompressor.decompress_to_buffer(stored, out).map_err(|e| codec_err(&e))?;
        super::check_len(super::CodecId::Zstd, written, out.len())
    })
}
