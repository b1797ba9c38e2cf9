//! Room `engine`: runs reads and writes of hyperslabs. A request is planned into chunk
//! operations ([`plan`](mod@plan)), which run on the engine's own rayon pool (`pool`);
//! each block is decoded straight into its place in the caller's buffer where it can be,
//! through per-worker scratch buffers otherwise. The only room that spawns threads.

mod batch;
mod block;
mod boxes;
mod cache;
mod ordered;
mod out;
mod plan;
mod pool;
mod read;
mod recode;
mod region;
mod rows;
mod strings;
mod trim;
mod verify;
mod write;

pub(crate) use batch::{compress_many, decompress_many};
pub(crate) use block::{ArrayCtx, BlockRef, Lookup, check_entry};
pub(crate) use boxes::read_boxes;
pub(crate) use cache::ChunkCache;
// The GPU room lays reads out with the engine's plan and repairs blocks with its decoder.
#[cfg(feature = "gpu")]
pub(crate) use block::{Worker, check_raw_len, corrupt_chunk, decode_chunk, stored_bytes};
#[cfg(feature = "gpu")]
pub(crate) use plan::ChunkOp;
// The store stages small writes and an append's rows by the chunks the plan lists
// (`write_raw`).
pub(crate) use plan::plan;
#[cfg(feature = "gpu")]
pub(crate) use pool::run as run_on_pool;
#[cfg(feature = "gpu")]
pub(crate) use read::outside;
pub(crate) use read::{Slot, SlotRead, read_slots};
pub(crate) use recode::recode_blocks;
pub(crate) use region::to_usize;
#[cfg(feature = "gpu")]
pub(crate) use region::{BoxCopy, Place, box_copy};
pub(crate) use strings::{read_strings, trim_string_chunks, write_strings};
pub(crate) use trim::{reaches_past, trim_chunks};
pub(crate) use verify::{check_blocks, fill_chunk_checksum};
pub(crate) use write::{EncodedChunk, RawChunkOf, Sink, WriteSettings, encode_chunks, write_raw, write_region};
