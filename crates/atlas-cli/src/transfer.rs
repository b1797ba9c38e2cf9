//! `atlas import` and `atlas export`: .npy files (also `.npy.zst`, `.npy.gz`) in and out of
//! an array, streamed in slabs (`slabs.rs`): whole chunk rows along axis 0, so that every
//! chunk is written once, unless one is larger than 16 slabs; memory stays near a slab
//! whatever the file's size or shape.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use atlas::{ArrayHandle, ArrayMeta, ArraySpec, Atlas, DType};
use indicatif::ProgressBar;
use ndarray::{ArrayViewD, IxDyn};

use crate::npy::{self, Compression, Header, Sink};
use crate::slabs::Slabs;
use crate::values::{Fixed, dispatch, from_le_bytes};

/// Raw bytes a slab aims at.
pub const DEFAULT_SLAB_BYTES: u64 = 64 << 20;

/// Options of an import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Chunk shape of a new array (default: Atlas's default for the shape).
    pub chunks: Option<Vec<u64>>,
    /// Dimension names of a new array.
    pub dims: Option<Vec<String>>,
    /// Write into an existing array of the same dtype and shape.
    pub overwrite: bool,
    /// Raw bytes per slab.
    pub slab_bytes: u64,
}

/// What an import or export moved.
#[derive(Debug, Clone)]
pub struct Moved {
    /// The array's dtype.
    pub dtype: DType,
    /// The array's shape.
    pub shape: Vec<u64>,
    /// Bytes of element data.
    pub data_bytes: u64,
}

/// Imports the .npy file `file` into `dataset/array`, creating both as needed, and
/// commits. The body is read straight from the (decompressing) stream.
///
/// A failed import commits nothing: the caller must discard the store's pending changes
/// instead of letting its last handle flush them on drop (see `main.rs`,
/// `DiscardUncommitted`).
pub fn import(
    store: &Atlas,
    (dataset, array): (&str, &str),
    file: &Path,
    options: &ImportOptions,
    quiet: bool,
) -> Result<Moved> {
    let mut reader = npy::open(file)?;
    let header = npy::read_header(&mut reader, file)?;
    let data_bytes = header.data_bytes().expect("checked by read_header");
    let dataset_handle =
        if store.dataset_exists(dataset) { store.open_dataset(dataset)? } else { store.create_dataset(dataset)? };
    let handle = if dataset_handle.list_arrays()?.iter().any(|a| a == array) {
        let meta = dataset_handle.array_meta(array)?;
        if !options.overwrite {
            bail!("array {dataset}/{array} already exists; pass --overwrite to write into it");
        }
        if meta.dtype != header.dtype || meta.shape != header.shape {
            bail!(
                "{}: holds {} {:?}, but array {dataset}/{array} is {} {:?}",
                file.display(),
                header.dtype,
                header.shape,
                meta.dtype,
                meta.shape
            );
        }
        dataset_handle.array(array)?
    } else {
        let mut spec = ArraySpec::new(header.dtype, header.shape.clone());
        if let Some(chunks) = &options.chunks {
            spec = spec.chunk_shape(chunks.clone());
        }
        if let Some(dims) = &options.dims {
            spec = spec.dims(dims.clone());
        }
        dataset_handle.define_array(array, spec).with_context(|| format!("cannot define array {dataset}/{array}"))?
    };
    let bar = crate::progress::bytes(data_bytes, &format!("import {dataset}/{array}"), quiet);
    dispatch!(header.dtype, |T| write_slabs::<T>(&handle, &header, &mut reader, file, options.slab_bytes, &bar)?,
        string => unreachable!(".npy headers never give string arrays"));
    bar.finish_and_clear();
    let commit = crate::progress::spinner("committing", quiet);
    store.flush()?;
    commit.finish_and_clear();
    Ok(Moved { dtype: header.dtype, shape: header.shape, data_bytes })
}

fn write_slabs<T: Fixed>(
    handle: &ArrayHandle,
    header: &Header,
    reader: &mut dyn Read,
    file: &Path,
    slab_bytes: u64,
    bar: &ProgressBar,
) -> Result<()> {
    let total = header.data_bytes().expect("checked by read_header");
    let mut done = 0u64;
    // Reads the next `len` bytes into `buf`, which grows as they come, never past what the
    // file holds: a header may claim any size.
    let mut read = |buf: &mut Vec<u8>, len: u64| -> Result<()> {
        buf.clear();
        buf.reserve(usize::try_from(len.min(slab_bytes)).unwrap_or(0));
        let ends_early =
            || anyhow!("{}: data ends early: expected {total} bytes of array data (file truncated?)", file.display());
        // A decompressor cut short says so with `UnexpectedEof`, a plain file with fewer bytes.
        let got = Read::take(&mut *reader, len).read_to_end(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                ends_early()
            } else {
                anyhow!("{}: cannot read the array data: {e}", file.display())
            }
        })?;
        if (got as u64) < len {
            return Err(ends_early());
        }
        done += len;
        bar.set_position(done);
        Ok(())
    };
    let meta = handle.meta()?;
    let mut buf = Vec::new();
    if header.shape.is_empty() {
        read(&mut buf, T::SIZE as u64)?;
        let values = from_le_bytes::<T>(&buf);
        handle.write(&[], ArrayViewD::from_shape(IxDyn(&[]), &values).expect("one element"))?;
        return Ok(());
    }
    if total == 0 {
        return Ok(());
    }
    for (start, extent) in Slabs::new(&header.shape, &meta.chunk_shape, T::SIZE as u64, slab_bytes) {
        // At most the whole data's bytes, which read_header checked fit in a u64.
        read(&mut buf, extent.iter().product::<u64>() * T::SIZE as u64)?;
        let values = from_le_bytes::<T>(&buf);
        let dims: Vec<usize> = extent.iter().map(|&n| n as usize).collect();
        let view = ArrayViewD::from_shape(IxDyn(&dims), &values).expect("slab length matches its shape");
        handle
            .write(&start, view)
            .with_context(|| format!("cannot write the box at {start:?} of {extent:?} from {}", file.display()))?;
    }
    Ok(())
}

/// Exports `dataset/array` to the .npy file `file`, compressed as `compression`. The file
/// must not exist unless `force`; a failed export removes it.
pub fn export(
    store: &Atlas,
    (dataset, array): (&str, &str),
    file: &Path,
    compression: Compression,
    force: bool,
    slab_bytes: u64,
    quiet: bool,
) -> Result<Moved> {
    let handle = store.open_dataset(dataset)?.array(array)?;
    let meta = handle.meta()?;
    if npy::descr(meta.dtype).is_none() {
        bail!("array {dataset}/{array} holds {} values, which a .npy file cannot hold as such", meta.dtype);
    }
    let mut open = OpenOptions::new();
    open.write(true);
    if force {
        open.create(true).truncate(true);
    } else {
        open.create_new(true);
    }
    let out = open.open(file).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            anyhow!("{} already exists; pass --force to replace it", file.display())
        } else {
            anyhow!("cannot create {}: {e}", file.display())
        }
    })?;
    // A failed export removes what it wrote, but never a pipe, a device or a link named as
    // the output (`/dev/stdout` is a link, whatever it points to).
    let regular = is_regular_file(file);
    let data_bytes = meta.shape.iter().product::<u64>() * meta.dtype.size_bytes() as u64;
    let bar = crate::progress::bytes(data_bytes, &format!("export {dataset}/{array}"), quiet);
    let written = write_file(&handle, &meta, out, compression, slab_bytes, &bar)
        .with_context(|| format!("cannot export {dataset}/{array} to {}", file.display()));
    bar.finish_and_clear();
    if let Err(e) = written {
        if regular {
            let _ = std::fs::remove_file(file);
        }
        return Err(e);
    }
    Ok(Moved { dtype: meta.dtype, shape: meta.shape, data_bytes })
}

/// Whether `path` itself (not what a link points to) is a regular file.
pub fn is_regular_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

fn write_file(
    handle: &ArrayHandle,
    meta: &ArrayMeta,
    file: File,
    compression: Compression,
    slab_bytes: u64,
    bar: &ProgressBar,
) -> Result<()> {
    let mut sink = Sink::new(file, compression)?;
    npy::write_header(&mut sink, meta.dtype, &meta.shape)?;
    dispatch!(meta.dtype, |T| read_slabs::<T>(handle, meta, &mut sink, slab_bytes, bar)?,
        string => unreachable!("refused by the caller"));
    sink.finish()?;
    Ok(())
}

fn read_slabs<T: Fixed>(
    handle: &ArrayHandle,
    meta: &ArrayMeta,
    sink: &mut dyn Write,
    slab_bytes: u64,
    bar: &ProgressBar,
) -> Result<()> {
    let mut bytes = Vec::new();
    if meta.shape.is_empty() {
        let value = handle.read::<T>(&[], &[])?;
        value.iter().for_each(|v| v.put_le(&mut bytes));
        sink.write_all(&bytes)?;
        return Ok(());
    }
    if meta.shape.contains(&0) {
        return Ok(());
    }
    for (start, extent) in Slabs::new(&meta.shape, &meta.chunk_shape, meta.dtype.size_bytes() as u64, slab_bytes) {
        let slab = handle.read::<T>(&start, &extent)?;
        bytes.clear();
        bytes.reserve(slab.len() * T::SIZE);
        slab.iter().for_each(|v| v.put_le(&mut bytes));
        sink.write_all(&bytes)?;
        bar.inc(bytes.len() as u64);
    }
    Ok(())
}
