//! Batch codec calls: many buffers in, one contiguous output with segment offsets out, in
//! the spirit of python-zstandard's `multi_compress_to_buffer`. Threads are used only when
//! the batch is large enough to pay for them.

use std::ops::Range;

use rayon::prelude::*;

use super::pool;
use crate::codec::{BlockEncoding, CodecId, Filter, Scratch, decode_block, encode_block};
use crate::error::{Error, Result};
use crate::meta::Codec;

/// Encodes every input with `codec`; returns the concatenated output and each input's
/// byte range in it.
pub(crate) fn compress_many(inputs: &[&[u8]], codec: Codec) -> Result<(Vec<u8>, Vec<Range<usize>>)> {
    let encode = |scratch: &mut Scratch, input: &&[u8]| {
        let mut out = Vec::new();
        encode_block(input, codec, Filter::None, None, scratch, &mut out).map(|_| out)
    };
    let total: usize = inputs.iter().map(|i| i.len()).sum();
    let encoded: Vec<Vec<u8>> = if pool::worth_parallel(inputs.len(), total as u64) {
        pool::run(|| inputs.par_iter().map_init(Scratch::default, encode).collect::<Result<_>>())?
    } else {
        let mut scratch = Scratch::default();
        inputs.iter().map(|input| encode(&mut scratch, input)).collect::<Result<_>>()?
    };
    let mut data = Vec::with_capacity(encoded.iter().map(Vec::len).sum());
    let mut segments = Vec::with_capacity(encoded.len());
    for block in encoded {
        segments.push(data.len()..data.len() + block.len());
        data.extend_from_slice(&block);
    }
    Ok((data, segments))
}

/// Decodes every input (one block of `codec` each, of `raw_lens[i]` decoded bytes) straight
/// into its segment of one output buffer.
///
/// # Panics
/// If `raw_lens` does not give one length per input (the caller checks).
pub(crate) fn decompress_many(
    inputs: &[&[u8]],
    codec: CodecId,
    raw_lens: &[usize],
) -> Result<(Vec<u8>, Vec<Range<usize>>)> {
    assert_eq!(inputs.len(), raw_lens.len(), "one decoded length per input");
    let mut segments = Vec::with_capacity(raw_lens.len());
    let mut end = 0usize;
    for len in raw_lens {
        let next = end.checked_add(*len).filter(|&n| isize::try_from(n).is_ok());
        let next = next.ok_or_else(|| Error::out_of_memory(format!("a decoded batch of {} blocks", raw_lens.len())))?;
        segments.push(end..next);
        end = next;
    }
    // A total the allocator cannot give is an error, not an abort: a fallible reservation
    // first, then the buffer itself, zeroed lazily (calloc) as the decoders write it.
    Vec::<u8>::new()
        .try_reserve_exact(end)
        .map_err(|_| Error::out_of_memory(format!("a decoded batch of {end} bytes")))?;
    let mut data = vec![0u8; end];
    // Disjoint slices of the one output, one per input.
    let mut outputs = Vec::with_capacity(inputs.len());
    let mut rest = &mut data[..];
    for len in raw_lens {
        let (head, tail) = rest.split_at_mut(*len);
        outputs.push(head);
        rest = tail;
    }
    let encoding = BlockEncoding { codec, filter: Filter::None };
    let decode =
        |scratch: &mut Scratch, input: &[u8], out: &mut [u8]| decode_block(input, encoding, None, scratch, out);
    if pool::worth_parallel(inputs.len(), end as u64) {
        pool::run(|| {
            let pairs = inputs.par_iter().zip(outputs);
            pairs.try_for_each_init(Scratch::default, |scratch, (input, out)| decode(scratch, input, out))
        })?;
    } else {
        let mut scratch = Scratch::default();
        inputs.iter().zip(outputs).try_for_each(|(input, out)| decode(&mut scratch, input, out))?;
    }
    Ok((data, segments))
}
