// Atlas's GPU kernels. Compiled to PTX by scripts/gen-ptx.py (NVRTC from the
// nvidia-cuda-nvrtc wheel); the PTX beside this file is what the crate embeds and the
// driver JIT-compiles for the GPU at hand. Keep this file plain CUDA C: no headers.

typedef unsigned long long u64;
typedef unsigned int u32;

// One chunk to move from `src` to `dst`, `len` bytes: a byte unshuffle with element size
// `elem` (docs/FORMAT.md, "Blocks"), or a plain copy when `elem` <= 1.
struct Move {
    u64 src;
    u64 dst;
    u64 len;
    u64 elem;
};

// grid.y strides over moves, grid.x * block.x threads over the elements of one move.
extern "C" __global__ void atlas_unshuffle(const Move* moves, u32 count) {
    for (u32 m = blockIdx.y; m < count; m += gridDim.y) {
        const Move mv = moves[m];
        const unsigned char* src = (const unsigned char*)mv.src;
        unsigned char* dst = (unsigned char*)mv.dst;
        const u64 k = mv.elem > 1 ? mv.elem : 1;
        const u64 n = mv.len / k;  // whole elements
        const u64 step = (u64)gridDim.x * blockDim.x;
        for (u64 e = (u64)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += step) {
            for (u64 j = 0; j < k; ++j) {
                dst[e * k + j] = src[j * n + e];
            }
        }
        // Bytes past the last whole element stay where they are.
        for (u64 i = n * k + (u64)blockIdx.x * blockDim.x + threadIdx.x; i < mv.len; i += step) {
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

// A 16-byte unit: rows whose addresses and lengths allow it are copied 16 bytes at a time.
struct alignas(16) Wide {
    u64 lo;
    u64 hi;
};

template <typename T>
__device__ void copy_part(const Part& p, u64 count) {
    const u64 step = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += step) {
        u64 rem = i, s = 0, d = 0;
        for (int dim = (int)p.ndim - 1; dim >= 0; --dim) {
            const u64 idx = rem % p.shape[dim];
            rem /= p.shape[dim];
            s += idx * p.src_stride[dim];
            d += idx * p.dst_stride[dim];
        }
        *(T*)(p.dst + d) = *(const T*)(p.src + s);
    }
}

// grid.y strides over parts, grid.x * block.x threads over the elements of one part.
extern "C" __global__ void atlas_scatter(const Part* parts, u32 count) {
    for (u32 m = blockIdx.y; m < count; m += gridDim.y) {
        const Part p = parts[m];  // in registers: no reload through a possibly aliased pointer
        u64 n = 1;
        for (u32 dim = 0; dim < p.ndim; ++dim) n *= p.shape[dim];
        switch (p.elem) {
            case 1: copy_part<unsigned char>(p, n); break;
            case 2: copy_part<unsigned short>(p, n); break;
            case 4: copy_part<u32>(p, n); break;
            case 8: copy_part<u64>(p, n); break;
            default: copy_part<Wide>(p, n); break;
        }
    }
}
