//! The batch codec API: many buffers in, one buffer with segment offsets out.

use atlas::{Codec, Error, compress_batch, decompress_batch};

fn inputs(count: usize, len: usize) -> Vec<Vec<u8>> {
    (0..count).map(|i| (0..len + i).map(|j| ((i * 7 + j / 3) % 251) as u8).collect()).collect()
}

#[test]
fn every_codec_round_trips_small_and_large_batches() {
    for (count, len) in [(0, 0), (5, 100), (64, 40_000)] {
        let inputs = inputs(count, len);
        let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        let lens: Vec<usize> = inputs.iter().map(Vec::len).collect();
        for codec in [Codec::Zstd { level: 3 }, Codec::Lz4, Codec::None] {
            let packed = compress_batch(&refs, codec).unwrap();
            assert_eq!(packed.len(), count);
            let stored: Vec<&[u8]> = (0..count).map(|i| packed.segment(i)).collect();
            let raw_lens = if matches!(codec, Codec::Zstd { .. }) { None } else { Some(&lens[..]) };
            let back = decompress_batch(&stored, codec, raw_lens).unwrap();
            for (i, input) in inputs.iter().enumerate() {
                assert_eq!(back.segment(i), &input[..], "{codec:?} segment {i}");
            }
            assert_eq!(back.data.len(), lens.iter().sum::<usize>(), "one contiguous output");
        }
    }
}

#[test]
fn missing_or_wrong_lengths_and_bad_input_are_errors() {
    let data = [b"abc".as_slice()];
    assert!(matches!(decompress_batch(&data, Codec::Lz4, None), Err(Error::InvalidArgument { .. })));
    assert!(matches!(decompress_batch(&data, Codec::None, Some(&[1, 2])), Err(Error::InvalidArgument { .. })));
    assert!(matches!(decompress_batch(&data, Codec::None, Some(&[4])), Err(Error::Codec { .. })));
    assert!(matches!(decompress_batch(&data, Codec::Zstd { level: 3 }, None), Err(Error::InvalidArgument { .. })));
    assert!(matches!(compress_batch(&data, Codec::Zstd { level: 999 }), Err(Error::InvalidArgument { .. })));
}

#[test]
fn lengths_no_input_can_decode_to_are_refused_before_any_allocation() {
    let data = [b"abc".as_slice(), b"def".as_slice()];
    for lens in [[1 << 62, 3], [usize::MAX, usize::MAX], [3, 1 << 40]] {
        let result = decompress_batch(&data, Codec::Lz4, Some(&lens));
        assert!(matches!(result, Err(Error::InvalidArgument { .. })), "{lens:?}: {result:?}");
    }
    // A 14-byte zstd frame header claiming 2^62 bytes of content.
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0xe0];
    frame.extend_from_slice(&(1u64 << 62).to_le_bytes());
    frame.push(0);
    let result = decompress_batch(&[&frame], Codec::Zstd { level: 3 }, None);
    assert!(matches!(result, Err(Error::InvalidArgument { .. })), "{result:?}");
    // What a 4-byte RLE block can hold is still allowed: it decodes or fails as a codec error.
    let zeros = compress_batch(&[&vec![0u8; 1 << 20]], Codec::Zstd { level: 3 }).unwrap();
    assert_eq!(decompress_batch(&[zeros.segment(0)], Codec::Zstd { level: 3 }, None).unwrap().data, vec![0u8; 1 << 20]);
}
