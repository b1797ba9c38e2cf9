// Atlas's GPU kernels. Compiled to PTX by scripts/gen-ptx.py (NVRTC from the
// nvidia-cuda-nvrtc wheel); the PTX beside this file is what the crate embeds and the
// driver JIT-compiles for the GPU at hand. Keep this file plain CUDA C: no headers.

typedef unsigned long long u64;
typedef unsigned int u32;

// A 16-byte unit: rows whose addresses and lengths allow it are scattered 16 bytes at a
// time.
struct alignas(16) Wide {
    u64 lo;
    u64 hi;
};

// One shuffled chunk to move from `src` to `dst`, `len` bytes: a byte unshuffle with
// element size `elem` (docs/FORMAT.md, "Blocks"; 1 copies).
struct Move {
    u64 src;
    u64 dst;
    u64 len;
    u64 elem;
};

// Unshuffles `n` elements of K bytes, four elements a thread: K 4-byte loads (one per byte
// plane), K 4-byte stores. Needs n % 4 == 0 and both ends 4-byte aligned.
template <int K>
__device__ void unshuffle_by_fours(const unsigned char* src, unsigned char* dst, u64 n, u64 first, u64 step) {
    for (u64 g = first; g < n / 4; g += step) {
        u32 planes[K];
        for (int j = 0; j < K; ++j) planes[j] = *(const u32*)(src + j * n + 4 * g);
        for (int w = 0; w < K; ++w) {
            u32 word = 0;
            for (int b = 0; b < 4; ++b) {
                const int at = 4 * w + b;  // byte `at` of these 4 elements: byte at % K of element at / K
                word |= ((planes[at % K] >> (8 * (at / K))) & 0xFF) << (8 * b);
            }
            *(u32*)(dst + 4 * g * K + 4 * w) = word;
        }
    }
}

// grid.y strides over moves, grid.x * block.x threads over the elements of one move, four
// elements a thread where it can (the launch sizes grid.x so).
extern "C" __global__ void atlas_unshuffle(const Move* moves, u32 count) {
    for (u32 m = blockIdx.y; m < count; m += gridDim.y) {
        const Move mv = moves[m];
        const unsigned char* src = (const unsigned char*)mv.src;
        unsigned char* dst = (unsigned char*)mv.dst;
        const u64 k = mv.elem > 1 ? mv.elem : 1;
        const u64 n = mv.len / k;  // whole elements
        const u64 first = (u64)blockIdx.x * blockDim.x + threadIdx.x;
        const u64 step = (u64)gridDim.x * blockDim.x;
        const bool fours = n % 4 == 0 && (mv.src | mv.dst) % 4 == 0;
        if (k == 2 && fours) {
            unshuffle_by_fours<2>(src, dst, n, first, step);
        } else if (k == 4 && fours) {
            unshuffle_by_fours<4>(src, dst, n, first, step);
        } else if (k == 8 && fours) {
            unshuffle_by_fours<8>(src, dst, n, first, step);
        } else {
            for (u64 e = first; e < n; e += step) {
                for (u64 j = 0; j < k; ++j) {
                    dst[e * k + j] = src[j * n + e];
                }
            }
        }
        // Bytes past the last whole element stay where they are.
        for (u64 i = n * k + first; i < mv.len; i += step) {
            dst[i] = src[i];
        }
    }
}

#define MAX_DIMS 8

// One box to copy: `shape` units per dimension (last fastest), starting at byte `src` and
// `dst`, with byte strides per dimension in each buffer; a unit is `elem` bytes (1, 2, 4,
// 8 or 16), aligned to its size.
struct Part {
    u64 src;
    u64 dst;
    u64 shape[MAX_DIMS];
    u64 src_stride[MAX_DIMS];
    u64 dst_stride[MAX_DIMS];
    u32 ndim;
    u32 elem;
};

// Units a thread copies per round of `copy_part`, all loaded before any is stored so that
// their loads are in flight together (`SCATTER_UNROLL` in run.rs).
#define UNROLL 4

// The byte offsets of unit `i` of `p` in its source and its destination.
template <typename I>
__device__ void unit_offsets(const Part& p, I i, u64& s, u64& d) {
    I rem = i;
    s = 0;
    d = 0;
    for (int dim = (int)p.ndim - 1; dim >= 0; --dim) {
        const I extent = (I)p.shape[dim];
        const I idx = rem % extent;
        rem /= extent;
        s += idx * p.src_stride[dim];
        d += idx * p.dst_stride[dim];
    }
}

// Index arithmetic in `I`: 32 bits when the part has fewer than 2^31 units (64-bit division
// costs several times as much on the GPU). `R` units a round: UNROLL, or 1 for the rare
// parts of 2^31 units or more (which keeps the PTX small).
template <typename T, typename I, int R>
__device__ void copy_part(const Part& p, I count) {
    const I step = (I)(gridDim.x * blockDim.x);
    I i = (I)(blockIdx.x * blockDim.x + threadIdx.x);
    for (; R > 1 && i + (R - 1) * step < count; i += R * step) {
        T unit[R];
        u64 dst[R];
#pragma unroll
        for (int k = 0; k < R; ++k) {
            u64 src;
            unit_offsets(p, i + k * step, src, dst[k]);
            unit[k] = *(const T*)(p.src + src);
        }
#pragma unroll
        for (int k = 0; k < R; ++k) *(T*)(p.dst + dst[k]) = unit[k];
    }
    for (; i < count; i += step) {
        u64 src, dst;
        unit_offsets(p, i, src, dst);
        *(T*)(p.dst + dst) = *(const T*)(p.src + src);
    }
}

template <typename T>
__device__ void copy_units(const Part& p, u64 count) {
    // Room for `i + UNROLL * step` too (step < 2^20: at most 1024 blocks of 256 threads).
    if (count < 0x80000000ULL) {
        copy_part<T, u32, UNROLL>(p, (u32)count);
    } else {
        copy_part<T, u64, 1>(p, count);
    }
}

// grid.y strides over parts, grid.x * block.x threads over the units of one part, UNROLL
// units a thread at least (the launch sizes grid.x so).
extern "C" __global__ void atlas_scatter(const Part* parts, u32 count) {
    // The part in shared memory, loaded once a block: each thread reads it in every
    // iteration, and a copy in each thread's registers would cost 27 loads a thread.
    __shared__ Part part;
    const u32 words = sizeof(Part) / sizeof(u64);
    for (u32 m = blockIdx.y; m < count; m += gridDim.y) {
        __syncthreads();  // every thread is done with the last part
        if (threadIdx.x < words) ((u64*)&part)[threadIdx.x] = ((const u64*)&parts[m])[threadIdx.x];
        __syncthreads();
        const Part& p = part;
        u64 n = 1;
        for (u32 dim = 0; dim < p.ndim; ++dim) n *= p.shape[dim];
        switch (p.elem) {
            case 1: copy_units<unsigned char>(p, n); break;
            case 2: copy_units<unsigned short>(p, n); break;
            case 4: copy_units<u32>(p, n); break;
            case 8: copy_units<u64>(p, n); break;
            default: copy_units<Wide>(p, n); break;
        }
    }
}

// XXH3-64 (seed 0) of chunks longer than 240 bytes (XXH3's long form; the host hashes
// shorter ones), as `src/io/xxh3.rs` computes it: eight 64-bit lanes accumulate 64-byte
// stripes, each against the secret 8 bytes further on; after every 16 stripes (a 1 KiB
// block) the lanes are scrambled; then the stripes of the last, partial block, the input's
// last 64 bytes, and a merge. One thread block of 128 threads per chunk. Within a block
// every lane only adds (wrapping), and what it adds does not depend on the lanes: so the
// threads sum the terms of 16 blocks at once (thread t: lane t % 8 of block t / 8, its
// 16 stripes), and 8 threads then fold those sums in, block by block, with the scrambles.

struct Hashed {
    u64 src;  // the chunk's first byte
    u64 len;  // > 240
};

#define HASH_THREADS 128
#define GROUP_BLOCKS (HASH_THREADS / 8)
#define PRIME32_1 0x9E3779B1ULL
#define PRIME64_1 0x9E3779B185EBCA87ULL

// XXH3's default secret (kSecret of the reference xxhash.h).
__constant__ unsigned char XXH3_SECRET[192] = {
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
    0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
    0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
    0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
    0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
    0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
    0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
    0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
    0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
    0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
    0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
    0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
};

// The little-endian word at any byte of `p`.
__device__ u64 word_at(const unsigned char* p) {
    u64 w = 0;
    for (int b = 7; b >= 0; --b) w = (w << 8) | p[b];
    return w;
}

// The term a stripe word adds to its own lane.
__device__ u64 mixed_term(u64 data, u64 key) {
    const u64 mixed = data ^ key;
    return (mixed & 0xFFFFFFFFULL) * (mixed >> 32);
}

extern "C" __global__ void atlas_xxh3(const Hashed* chunks, u32 count, u64* out) {
    __shared__ unsigned char secret[192];
    __shared__ u64 keys[23];             // the secret's word at byte 8 * i: stripe s, lane l use keys[s + l]
    __shared__ u64 sums[GROUP_BLOCKS][8];  // per block of a group and lane: what its stripes add
    __shared__ u64 own[HASH_THREADS];    // the term of thread t for its own lane, t % 8
    __shared__ u64 data[HASH_THREADS];   // its input word, for lane (t % 8) ^ 1
    __shared__ u64 lanes[8];
    const u32 t = threadIdx.x, stripe = t / 8, lane = t % 8;
    for (u32 i = t; i < 192; i += HASH_THREADS) secret[i] = XXH3_SECRET[i];
    __syncthreads();
    for (u32 i = t; i < 23; i += HASH_THREADS) keys[i] = word_at(secret + 8 * i);
    const u64 scramble_key = t < 8 ? word_at(secret + 128 + 8 * t) : 0;
    for (u32 c = blockIdx.x; c < count; c += gridDim.x) {
        const Hashed chunk = chunks[c];
        const unsigned char* src = (const unsigned char*)chunk.src;
        const u64 blocks = (chunk.len - 1) / 1024;
        __syncthreads();  // `keys` written; the last chunk's lanes read
        const u64 initial[8] = {0xC2B2AE3DULL, PRIME64_1, 0xC2B2AE3D27D4EB4FULL, 0x165667B19E3779F9ULL,
                                0x85EBCA77C2B2AE63ULL, 0x85EBCA77ULL, 0x27D4EB2F165667C5ULL, PRIME32_1};
        u64 acc = t < 8 ? initial[t] : 0;  // lane t, in threads t < 8
        // Whole blocks, 16 at a time: thread t sums lane `lane` of block `stripe` of the
        // group (its own words' terms, and its neighbour lane's words, which XXH3 adds to
        // this lane); every thread of a warp takes part in the shuffle.
        const u64* words = (const u64*)src;  // staged chunks are 16-byte aligned
        for (u64 group = 0; group < blocks; group += GROUP_BLOCKS) {
            const bool mine = group + stripe < blocks;
            const u64* block = words + (group + stripe) * 128 + lane;
            u64 sum = 0;
#pragma unroll
            for (u32 s = 0; s < 16; ++s) {
                const u64 word = mine ? block[8 * s] : 0;
                sum += mixed_term(word, keys[s + lane]) + __shfl_xor_sync(0xFFFFFFFFu, word, 1);
            }
            sums[stripe][lane] = sum;
            __syncthreads();
            if (t < 8) {
                const u64 n = blocks - group < GROUP_BLOCKS ? blocks - group : GROUP_BLOCKS;
                for (u64 b = 0; b < n; ++b) {
                    acc += sums[b][t];
                    acc ^= acc >> 47;
                    acc ^= scramble_key;
                    acc *= PRIME32_1;
                }
            }
            __syncthreads();
        }
        if (t < 8) lanes[t] = acc;
        const u64 key = keys[stripe + lane];
        // The stripes of the last, partial block (all but its last byte's stripe)...
        const u64 tail = blocks * 1024;
        const u64 stripes = (chunk.len - 1 - tail) / 64;
        const u64 word = stripe < stripes ? word_at(src + tail + 64 * stripe + 8 * lane) : 0;
        own[t] = stripe < stripes ? mixed_term(word, key) : 0;
        data[t] = word;
        __syncthreads();
        if (t < 8) {
            u64 sum = lanes[t];
            for (u32 s = 0; s < 16; ++s) sum += own[8 * s + t] + data[8 * s + (t ^ 1)];
            lanes[t] = sum;
        }
        __syncthreads();
        // ...then the input's last 64 bytes, against the secret at byte 121.
        if (t < 8) {
            const u64 last = word_at(src + chunk.len - 64 + 8 * t);
            own[t] = mixed_term(last, word_at(secret + 121 + 8 * t));
            data[t] = last;
        }
        __syncthreads();
        if (t < 8) lanes[t] += own[t] + data[t ^ 1];
        __syncthreads();
        if (t == 0) {
            u64 hash = chunk.len * PRIME64_1;
            for (u32 k = 0; k < 4; ++k) {
                const u64 a = lanes[2 * k] ^ word_at(secret + 11 + 16 * k);
                const u64 b = lanes[2 * k + 1] ^ word_at(secret + 11 + 16 * k + 8);
                hash += (a * b) ^ __umul64hi(a, b);
            }
            hash ^= hash >> 37;
            hash *= 0x165667919E3779F9ULL;
            out[c] = hash ^ (hash >> 32);
        }
    }
}
