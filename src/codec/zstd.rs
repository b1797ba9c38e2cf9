//! zstd blocks: one standard frame each, with the content size in the frame header, so any
//! zstd decoder (nvCOMP included) reads them. Contexts are kept per thread.

use std::cell::RefCell;

use zstd::bulk::{Compressor, Decompressor};
use zstd::zstd_safe::{DCtx, InBuffer, OutBuffer, ResetDirective, zstd_sys::ZSTD_EndDirective};

use crate::error::{Error, Result};

use super::dict::ZstdDict;

// One context per thread, rebuilt when the level or the dictionary changes, which is told by
// the dictionary's id or its bytes, never by a hash of them: a store may hold a dictionary
// crafted to collide with another's, and a context made for one would then encode blocks
// that other dictionary cannot decode, or decode bytes wrongly (unverified reads return them).
thread_local! {
    static COMPRESSOR: RefCell<Option<((i32, DictSetup), Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<(DictSetup, Decompressor<'static>)>> = const { RefCell::new(None) };
}

/// The dictionary a context was set up with: the id of the one it last served (0 for none),
/// and the bytes it was made with.
struct DictSetup {
    id: u64,
    bytes: Option<Vec<u8>>,
}

impl DictSetup {
    fn new(dict: Option<&ZstdDict>) -> Self {
        Self { id: dict.map_or(0, ZstdDict::id), bytes: dict.map(|dict| dict.bytes().to_vec()) }
    }

    /// Whether a context set up so serves `dict`: the dictionary it last served, or no
    /// dictionary either time, or another instance of the same bytes (each read and write
    /// makes its own), compared once and then known by its id.
    fn serves(&mut self, dict: Option<&ZstdDict>) -> bool {
        let wanted_id = dict.map_or(0, ZstdDict::id);
        if self.id != wanted_id && self.bytes.as_deref() == dict.map(ZstdDict::bytes) {
            self.id = wanted_id;
        }
        self.id == wanted_id
    }
}

fn codec_err(e: &std::io::Error) -> Error {
    Error::Codec { codec: "zstd", detail: e.to_string() }
}

/// Runs `f` with this thread's compressor for `level` and `dict` (made when missing or
/// set up differently).
fn with_compressor<R>(
    level: i32,
    dict: Option<&ZstdDict>,
    f: impl FnOnce(&mut Compressor<'static>) -> Result<R>,
) -> Result<R> {
    COMPRESSOR.with_borrow_mut(|slot| {
        if slot.as_mut().is_none_or(|((have_level, setup), _)| *have_level != level || !setup.serves(dict)) {
            let compressor = match dict {
                Some(dict) => Compressor::with_dictionary(level, dict.bytes()),
                None => Compressor::new(level),
            };
            *slot = Some(((level, DictSetup::new(dict)), compressor.map_err(|e| codec_err(&e))?));
        }
        let (_, compressor) = slot.as_mut().expect("set above");
        let result = f(compressor);
        if result.is_err() {
            // A context that failed mid-frame is not used again.
            *slot = None;
        }
        result
    })
}

/// Writes one zstd frame of `input` at `level` (with `dict`, if any) into `out`, which it
/// replaces: what `out` held is gone.
pub(super) fn compress(input: &[u8], level: i32, dict: Option<&ZstdDict>, out: &mut Vec<u8>) -> Result<()> {
    with_compressor(level, dict, |compressor| {
        out.reserve(zstd::zstd_safe::compress_bound(input.len()));
        compressor.compress_to_buffer(input, out).map_err(|e| codec_err(&e))?;
        Ok(())
    })
}

/// Appends to `out` the kind of frame [`compress`] writes, of `len` bytes that `produce`
/// hands over in pieces through the function it is given, so that they never need to
/// exist whole. The frame declares `len` as its content size; any other total is an error.
pub(super) fn compress_pieces(
    len: usize,
    level: i32,
    dict: Option<&ZstdDict>,
    out: &mut Vec<u8>,
    produce: impl FnOnce(&mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()>,
) -> Result<()> {
    with_compressor(level, dict, |compressor| {
        let cctx = compressor.context_mut();
        cctx.reset(ResetDirective::SessionOnly).map_err(stream_err)?;
        cctx.set_pledged_src_size(Some(len as u64)).map_err(stream_err)?;
        // Reserved, not touched: the frame's pages become resident only as it is written.
        out.reserve(zstd::zstd_safe::compress_bound(len));
        let mut step = |piece: &[u8], directive| {
            let mut input = InBuffer::around(piece);
            loop {
                let mut output = OutBuffer::around_pos(out, out.len());
                let left = cctx.compress_stream2(&mut output, &mut input, directive).map_err(stream_err)?;
                let done = match directive {
                    ZSTD_EndDirective::ZSTD_e_end => left == 0,
                    _ => input.pos() == piece.len(),
                };
                if done {
                    return Ok(());
                }
            }
        };
        produce(&mut |piece| step(piece, ZSTD_EndDirective::ZSTD_e_continue))?;
        step(&[], ZSTD_EndDirective::ZSTD_e_end)
    })
}

/// A zstd context for frames decoded in order, a piece at a time ([`FrameStream`]), kept
/// by its owner so that its window is allocated once, not per frame.
#[derive(Default)]
pub(crate) struct StreamContext(Option<DCtx<'static>>);

impl StreamContext {
    /// Drops the decoder if it holds more than `bytes` (its window grows with the frames
    /// it decoded, up to a block's size).
    pub(super) fn free_above(&mut self, bytes: usize) {
        if self.0.as_ref().is_some_and(|dctx| dctx.sizeof() > bytes) {
            self.0 = None;
        }
    }
}

impl std::fmt::Debug for StreamContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "StreamContext(ready)" } else { "StreamContext(none)" })
    }
}

/// One frame (without a dictionary) being decoded in order, a piece at a time: only the
/// decoder's window is held, not the whole content.
pub(super) struct FrameStream<'a> {
    dctx: &'a mut DCtx<'static>,
    stored: &'a [u8],
    /// Bytes of `stored` consumed so far.
    pos: usize,
    /// The decoder said the frame is complete.
    ended: bool,
}

fn frame_err(detail: &str) -> Error {
    Error::Codec { codec: "zstd", detail: detail.into() }
}

impl<'a> FrameStream<'a> {
    /// Starts decoding `stored` with `context`'s decoder.
    pub(super) fn open(context: &'a mut StreamContext, stored: &'a [u8]) -> Result<Self> {
        let dctx = context.0.get_or_insert_with(DCtx::create);
        dctx.reset(ResetDirective::SessionOnly).map_err(stream_err)?;
        Ok(Self { dctx, stored, pos: 0, ended: false })
    }

    /// One step of the decoder into `out` from `filled` on; returns the new fill.
    fn step(&mut self, out: &mut [u8], filled: usize) -> Result<usize> {
        let mut input = InBuffer::around(self.stored);
        input.set_pos(self.pos);
        let mut output = OutBuffer::around_pos(out, filled);
        let hint = self.dctx.decompress_stream(&mut output, &mut input).map_err(stream_err)?;
        let progress = output.pos() > filled || input.pos() > self.pos;
        (self.pos, self.ended) = (input.pos(), hint == 0);
        if !progress && !self.ended {
            return Err(frame_err("the frame ends before its content does"));
        }
        Ok(output.pos())
    }

    /// Fills `out` with the frame's next decoded bytes.
    pub(super) fn read(&mut self, out: &mut [u8]) -> Result<()> {
        let mut filled = 0;
        while filled < out.len() {
            if self.ended {
                return Err(frame_err("the frame holds fewer bytes than the block"));
            }
            filled = self.step(out, filled)?;
        }
        Ok(())
    }

    /// Checks that the frame ends where the bytes read so far do, and nothing follows it.
    pub(super) fn finish(mut self) -> Result<()> {
        let mut probe = [0u8; 1];
        while !self.ended {
            if self.step(&mut probe, 0)? > 0 {
                return Err(frame_err("the frame holds more bytes than the block"));
            }
        }
        if self.pos != self.stored.len() {
            return Err(frame_err("bytes follow the frame"));
        }
        Ok(())
    }
}

fn stream_err(code: usize) -> Error {
    Error::Codec { codec: "zstd", detail: zstd::zstd_safe::get_error_name(code).into() }
}

/// The error for a block that is not one zstd frame declaring `raw_len` bytes.
pub(super) fn not_one_frame_of(raw_len: usize) -> Error {
    frame_err(&format!("the block is not one frame declaring {raw_len} bytes"))
}

/// Decodes one frame (written with `dict`, if any) into `out`, which must be exactly its
/// content size.
pub(super) fn decompress(stored: &[u8], dict: Option<&ZstdDict>, out: &mut [u8]) -> Result<()> {
    if !super::is_one_zstd_frame_of(stored, out.len()) {
        return Err(not_one_frame_of(out.len()));
    }
    DECOMPRESSOR.with_borrow_mut(|slot| {
        if slot.as_mut().is_none_or(|(setup, _)| !setup.serves(dict)) {
            let decompressor = match dict {
                Some(dict) => Decompressor::with_dictionary(dict.bytes()),
                None => Decompressor::new(),
            };
            *slot = Some((DictSetup::new(dict), decompressor.map_err(|e| codec_err(&e))?));
        }
        let (_, decompressor) = slot.as_mut().expect("set above");
        let written = decompressor.decompress_to_buffer(stored, out).map_err(|e| codec_err(&e))?;
        super::check_len(super::CodecId::Zstd, written, out.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Raw-content dictionaries: any bytes serve zstd as a prefix.
    fn dict(fill: u8) -> ZstdDict {
        ZstdDict::new((0..4096u32).map(|i| fill ^ (i % 251) as u8).collect())
    }

    #[test]
    fn contexts_follow_the_dictionary_bytes_whatever_instance_or_order() {
        // The input is the first dictionary's content: encoded with it, the frame refers to it.
        let input: Vec<u8> = (0..8192u32).map(|i| 1 ^ (i % 251) as u8).collect();
        let (first, second) = (dict(1), dict(7));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        compress(&input, 3, Some(&first), &mut a).unwrap();
        compress(&input, 3, Some(&second), &mut b).unwrap();
        assert!(a.len() < b.len() / 4, "each frame was encoded with its own dictionary");
        // Decoded in turns on one thread's context, with new instances of the same bytes
        // (as each read makes), with the other dictionary in between, and with none.
        let mut out = vec![0; input.len()];
        for (frame, bytes) in [(&a, &first), (&b, &second), (&a, &first), (&a, &first), (&b, &second)] {
            out.fill(0);
            decompress(frame, Some(&ZstdDict::new(bytes.bytes().to_vec())), &mut out).unwrap();
            assert_eq!(out, input);
        }
        assert!(decompress(&a, None, &mut out).is_err(), "a dictionary frame needs its dictionary");
        out.fill(0);
        decompress(&b, Some(&second), &mut out).unwrap();
        assert_eq!(out, input);
        assert!(decompress(&a, Some(&second), &mut out).is_err() || out != input, "the wrong dictionary");
        // Encoded again in turns: each frame with the dictionary asked for, whichever the
        // context was made for, and one without any.
        for (bytes, frame) in [(&first, &a), (&second, &b), (&first, &a)] {
            let mut again = Vec::new();
            compress(&input, 3, Some(&ZstdDict::new(bytes.bytes().to_vec())), &mut again).unwrap();
            assert_eq!(&again, frame);
        }
        let mut plain = Vec::new();
        compress(&input, 3, None, &mut plain).unwrap();
        decompress(&plain, None, &mut out).unwrap();
        assert_eq!(out, input);
    }

    #[test]
    fn a_setup_serves_its_dictionary_by_id_or_equal_bytes_and_nothing_else() {
        let (first, second) = (dict(1), dict(7));
        let mut setup = DictSetup::new(Some(&first));
        assert!(setup.serves(Some(&first)) && !setup.serves(Some(&second)) && !setup.serves(None));
        let same_bytes = ZstdDict::new(first.bytes().to_vec());
        assert!(setup.serves(Some(&same_bytes)));
        assert_eq!(setup.id, same_bytes.id(), "known by its id from then on");
        let mut plain = DictSetup::new(None);
        assert!(plain.serves(None) && !plain.serves(Some(&first)));
    }
}
