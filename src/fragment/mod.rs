//! Room `fragment`: the bytes of fragment files. A fragment is written once by one flush
//! (header, blocks, index, footer) and never modified; its index maps (array id, chunk
//! coordinate) to a block's offset, lengths, codec, filter and checksum.
//! Layout: docs/FORMAT.md, "Fragment file".

mod entry;
mod layout;
mod reader;
mod stats;
mod writer;

pub(crate) use crate::io::{Checksummer, checksum};
pub(crate) use entry::BlockEntry;
pub(crate) use reader::FragmentReader;
pub(crate) use stats::{ChunkStats, Scan, merge, scan, scan_pieces};
pub(crate) use writer::{EncodedBlock, FragmentWriter, PendingReader, holds_dead_bytes};
