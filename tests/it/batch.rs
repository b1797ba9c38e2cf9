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
