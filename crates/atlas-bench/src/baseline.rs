//! The raw codec baseline ("codec limit"): the same chunk bytes Atlas stores, encoded and
//! decoded with the same codec crates, level and shuffle, in memory, on all cores with rayon.
//! No planning, no files, no checksums, no copies between array and chunk layout.
//!
//! The shuffle is the same byte transpose Atlas uses (k-th byte of every element into the
//! k-th plane), the same code run the same way (compiled for AVX2 where the CPU has it), so
//! the baseline measures the codec chain and not a better shuffle.

use std::cell::RefCell;

use atlas::Codec;
use rayon::prelude::*;

/// A codec chain: optional shuffle of `elem_bytes`, then `codec`.
#[derive(Debug, Clone, Copy)]
pub struct RawCodec {
    pub codec: Codec,
    /// Element size when shuffled, `None` when not.
    pub shuffle_elem_bytes: Option<usize>,
}

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl RawCodec {
    /// Encodes one chunk into `out` (cleared first).
    pub fn encode(&self, raw: &[u8], out: &mut Vec<u8>) {
        SCRATCH.with_borrow_mut(|scratch| {
            let input = match self.shuffle_elem_bytes {
                Some(k) => {
                    scratch.resize(raw.len(), 0);
                    shuffle(raw, k, scratch);
                    &scratch[..]
                }
                None => raw,
            };
            out.clear();
            match self.codec {
                Codec::None => out.extend_from_slice(input),
                Codec::Zstd { level } => COMPRESSOR.with_borrow_mut(|slot| {
                    if slot.as_ref().is_none_or(|(l, _)| *l != level) {
                        *slot = Some((level, zstd::bulk::Compressor::new(level).expect("zstd context")));
                    }
                    let (_, compressor) = slot.as_mut().expect("set above");
                    out.reserve(zstd::zstd_safe::compress_bound(input.len()));
                    compressor.compress_to_buffer(input, out).expect("zstd compresses");
                }),
                Codec::Lz4 => {
                    out.resize(lz4_flex::block::get_maximum_output_size(input.len()), 0);
                    let written = lz4_flex::block::compress_into(input, out).expect("sized above");
                    out.truncate(written);
                }
                other => panic!("codec {other:?} is not benchmarked"),
            }
        });
    }

    /// Decodes one chunk into `out`, exactly its raw length.
    pub fn decode(&self, stored: &[u8], out: &mut [u8]) {
        match self.shuffle_elem_bytes {
            None => self.decompress(stored, out),
            Some(k) => SCRATCH.with_borrow_mut(|scratch| {
                scratch.resize(out.len(), 0);
                self.decompress(stored, scratch);
                unshuffle(scratch, k, out);
            }),
        }
    }

    fn decompress(&self, stored: &[u8], out: &mut [u8]) {
        let written = match self.codec {
            Codec::None => {
                out.copy_from_slice(stored);
                stored.len()
            }
            Codec::Zstd { .. } => DECOMPRESSOR.with_borrow_mut(|slot| {
                let d = slot.get_or_insert_with(|| zstd::bulk::Decompressor::new().expect("zstd context"));
                d.decompress_to_buffer(stored, out).expect("zstd decodes")
            }),
            Codec::Lz4 => lz4_flex::block::decompress_into(stored, out).expect("lz4 decodes"),
            other => panic!("codec {other:?} is not benchmarked"),
        };
        assert_eq!(written, out.len(), "decoded length");
    }

    /// Encodes every chunk on all cores (the "encode-only" limit of a write).
    pub fn encode_all(&self, chunks: &[Vec<u8>]) -> Vec<Vec<u8>> {
        chunks
            .par_iter()
            .map(|raw| {
                let mut out = Vec::new();
                self.encode(raw, &mut out);
                out
            })
            .collect()
    }

    /// Decodes every chunk on all cores into `out`, chunk `i` at `i * chunk_bytes` (the
    /// "decode-only" limit of a read).
    pub fn decode_all(&self, encoded: &[Vec<u8>], chunk_bytes: usize, out: &mut [u8]) {
        assert_eq!(out.len(), encoded.len() * chunk_bytes, "one chunk per slot");
        out.par_chunks_mut(chunk_bytes).zip(encoded).for_each(|(dst, stored)| self.decode(stored, dst));
    }

    /// Decodes `encoded[i]` for every `i` in `picks` on all cores, each into a per-thread
    /// buffer (the decode work of a set of box reads, without the copy out).
    pub fn decode_picks(&self, encoded: &[Vec<u8>], chunk_bytes: usize, picks: &[usize]) {
        picks.par_iter().for_each_init(
            || vec![0u8; chunk_bytes],
            |buffer, &i| {
                self.decode(&encoded[i], buffer);
                std::hint::black_box(&buffer);
            },
        );
    }
}

/// Cuts a C-order array of `shape` into its chunks of `chunk` (which must divide it), in C
/// order of chunk coordinates, each chunk's bytes in C order: the raw bytes of Atlas's blocks.
pub fn split_chunks(data: &[u8], shape: &[u64], chunk: &[u64], elem_bytes: usize) -> Vec<Vec<u8>> {
    let ndim = shape.len();
    assert!(shape.iter().zip(chunk).all(|(s, c)| s % c == 0), "chunks divide the shape");
    let grid: Vec<u64> = shape.iter().zip(chunk).map(|(s, c)| s / c).collect();
    let count = grid.iter().product::<u64>();
    let row_bytes = chunk[ndim - 1] as usize * elem_bytes;
    let rows_per_chunk = chunk[..ndim - 1].iter().product::<u64>();
    (0..count)
        .into_par_iter()
        .map(|flat| {
            let coord = unravel(flat, &grid);
            let mut out = Vec::with_capacity(rows_per_chunk as usize * row_bytes);
            for row in 0..rows_per_chunk {
                // Element index of this row's first element in the array.
                let in_chunk = unravel(row, &chunk[..ndim - 1]);
                let mut index = 0u64;
                for d in 0..ndim {
                    let pos = coord[d] * chunk[d] + if d < ndim - 1 { in_chunk[d] } else { 0 };
                    index = index * shape[d] + pos;
                }
                let start = index as usize * elem_bytes;
                out.extend_from_slice(&data[start..start + row_bytes]);
            }
            out
        })
        .collect()
}

/// The C-order coordinate of flat index `flat` in a grid of `grid`.
pub fn unravel(mut flat: u64, grid: &[u64]) -> Vec<u64> {
    let mut coord = vec![0; grid.len()];
    for d in (0..grid.len()).rev() {
        coord[d] = flat % grid[d];
        flat /= grid[d];
    }
    coord
}

fn shuffle(input: &[u8], k: usize, out: &mut [u8]) {
    match k {
        2 => avx2::shuffle_k::<2>(input, out),
        4 => avx2::shuffle_k::<4>(input, out),
        8 => avx2::shuffle_k::<8>(input, out),
        _ => panic!("element size {k} is not benchmarked"),
    }
}

fn unshuffle(input: &[u8], k: usize, out: &mut [u8]) {
    match k {
        2 => avx2::unshuffle_k::<2>(input, out),
        4 => avx2::unshuffle_k::<4>(input, out),
        8 => avx2::unshuffle_k::<8>(input, out),
        _ => panic!("element size {k} is not benchmarked"),
    }
}

/// The kernels compiled for AVX2 where the CPU has it, as Atlas's `codec::simd::dispatch`
/// runs its own.
mod avx2 {
    macro_rules! entry {
        ($name:ident) => {
            pub fn $name<const K: usize>(input: &[u8], out: &mut [u8]) {
                #[target_feature(enable = "avx2")]
                fn run<const K: usize>(input: &[u8], out: &mut [u8]) {
                    super::$name::<K>(input, out);
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2 (checked just above).
                    unsafe { run::<K>(input, out) }
                } else {
                    super::$name::<K>(input, out);
                }
            }
        };
    }
    entry!(shuffle_k);
    entry!(unshuffle_k);
}

// Atlas's kernels (`codec/shuffle.rs`), the same code: byte `j` of element `i` to
// `j * n + i` (shuffle) or back, walking `[u8; K]` elements and the K planes. Always
// inlined, so that the AVX2 entry points above compile them for AVX2.
#[allow(clippy::inline_always)]
#[inline(always)]
fn shuffle_k<const K: usize>(input: &[u8], out: &mut [u8]) {
    let (elems, tail) = input.as_chunks::<K>();
    let n = elems.len();
    let (body, out_tail) = out.split_at_mut(n * K);
    for (j, plane) in body.chunks_exact_mut(n.max(1)).enumerate().take(K) {
        for (dst, elem) in plane.iter_mut().zip(elems) {
            *dst = elem[j];
        }
    }
    out_tail.copy_from_slice(tail);
}

#[allow(clippy::inline_always)]
#[inline(always)]
fn unshuffle_k<const K: usize>(planes: &[u8], out: &mut [u8]) {
    let n = planes.len() / K;
    let (elems, tail) = out.as_chunks_mut::<K>();
    let sources: [&[u8]; K] = std::array::from_fn(|j| &planes[j * n..][..n]);
    for (i, elem) in elems.iter_mut().enumerate() {
        *elem = std::array::from_fn(|j| sources[j][i]);
    }
    tail.copy_from_slice(&planes[n * K..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_c_order_boxes_of_the_array() {
        // 4x4 array of u8 values 0..16, chunks 2x2.
        let data: Vec<u8> = (0..16).collect();
        let chunks = split_chunks(&data, &[4, 4], &[2, 2], 1);
        assert_eq!(chunks, vec![vec![0, 1, 4, 5], vec![2, 3, 6, 7], vec![8, 9, 12, 13], vec![10, 11, 14, 15]]);
    }

    #[test]
    fn every_chain_round_trips() {
        let raw: Vec<u8> = (0..4096u32).flat_map(|i| (i / 7).to_le_bytes()).collect();
        for codec in [Codec::None, Codec::Lz4, Codec::Zstd { level: 3 }] {
            for shuffle_elem_bytes in [None, Some(2), Some(4)] {
                let chain = RawCodec { codec, shuffle_elem_bytes };
                let mut stored = Vec::new();
                chain.encode(&raw, &mut stored);
                let mut back = vec![0; raw.len()];
                chain.decode(&stored, &mut back);
                assert_eq!(back, raw);
            }
        }
    }
}
