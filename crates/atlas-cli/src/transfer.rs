//! `atlas import` and `atlas export`: .npy files (also `.npy.zst`, `.npy.gz`) in and out of
//! an array, streamed in slabs (`slabs.rs`): whole chunk rows along axis 0, so that every
//! chunk is written once, unless one is larger than 16 slabs (imports pick chunks whose rows
//! fit a slab unless told otherwise); memory stays within a few chunk rows whatever the
//! file's size or shape.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use atlas::{ArrayHandle, ArrayMeta, ArraySpec, Atlas, Codec, DType, Dataset, Error, Shuffle};
use indicatif::ProgressBar;
use ndarray::{ArrayViewD, IxDyn};

use crate::npy::{self, Compression, Header, Sink};
use crate::slabs::Slabs;
use crate::values::FillArg;
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
    /// Fill value of a new array (default 0; for timestamps not-a-time).
    pub fill_value: Option<FillArg>,
    /// The array's own codec (default: the store's), for a new or overwritten array.
    pub codec: Option<Codec>,
    /// The array's own shuffle (default: the store's), for a new or overwritten array.
    pub shuffle: Option<Shuffle>,
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

/// A .npy file opened for an import: its header read, its body next in the stream.
pub struct Source {
    reader: Box<dyn Read>,
    header: Header,
}

/// Opens `file` (decompressing `.npy.zst` and `.npy.gz`; `-` is standard input) and reads
/// its header, before anything is done to a store.
pub fn open_source(file: &Path) -> Result<Source> {
    let mut reader = npy::open(file)?;
    // Standard input is decompressed when its first bytes show a compression, so a stream
    // still compressed inside it was compressed twice.
    let decompressed = file == Path::new("-") || npy::Compression::of_path(file) != npy::Compression::None;
    let header = npy::read_header(&mut reader, source_name(file), decompressed)?;
    Ok(Source { reader, header })
}

/// How messages name an import's source: `-` is "standard input".
pub fn source_name(file: &Path) -> &Path {
    if file == Path::new("-") { Path::new("standard input") } else { file }
}

/// Imports the .npy file `file` (opened as `source`) into `dataset/array`, creating both
/// as needed, and commits. The body is read straight from the (decompressing) stream, and
/// must end where the header says.
///
/// A failed import commits nothing: the caller must discard the store's pending changes
/// instead of letting its last handle flush them on drop (see `main.rs`,
/// `DiscardUncommitted`).
pub fn import(
    store: &Atlas,
    (dataset, array): (&str, &str),
    file: &Path,
    source: Source,
    options: &ImportOptions,
    quiet: bool,
) -> Result<Moved> {
    let Source { mut reader, header } = source;
    let data_bytes = header.data_bytes().expect("checked by read_header");
    // Creating the dataset and defining the array take the writer lock and check the newest
    // commit: one that another process made after this store was opened is found there,
    // and used, not refused.
    let dataset_handle = match store.create_dataset(dataset) {
        Err(Error::AlreadyExists { .. }) => store.open_dataset(dataset)?,
        created => created?,
    };
    let handle = if dataset_handle.list_arrays()?.iter().any(|a| a == array) {
        existing_array(&dataset_handle, (dataset, array), file, &header, options)?
    } else {
        // Told in the flags' terms (the library would name `chunk_shape` and `dims`).
        let lengths =
            [("--chunks", options.chunks.as_ref().map(Vec::len)), ("--dims", options.dims.as_ref().map(Vec::len))];
        for (flag, len) in lengths {
            if let Some(len) = len.filter(|&len| len != header.shape.len()) {
                let axes =
                    if header.shape.len() == 1 { "1 axis".to_string() } else { format!("{} axes", header.shape.len()) };
                bail!(
                    "{flag} gives {} for {}, whose array has {axes} (shape {:?})",
                    crate::report::counted(len as u64, "value"),
                    source_name(file).display(),
                    header.shape
                );
            }
        }
        let chunks = options.chunks.clone().unwrap_or_else(|| import_chunk_shape(&header, options.slab_bytes));
        let mut spec = ArraySpec::new(header.dtype, header.shape.clone()).chunk_shape(chunks);
        if let Some(dims) = &options.dims {
            spec = spec.dims(dims.clone());
        }
        if let Some(fill) = options.fill_value {
            spec = spec.fill_value(fill.for_dtype(header.dtype).map_err(|e| anyhow!("--fill-value: {e}"))?);
        }
        if let Some(codec) = options.codec {
            spec = spec.codec(codec);
        }
        if let Some(shuffle) = options.shuffle {
            spec = spec.shuffle(shuffle);
        }
        match dataset_handle.define_array(array, spec) {
            Err(Error::AlreadyExists { .. }) => {
                existing_array(&dataset_handle, (dataset, array), file, &header, options)?
            }
            // The library's errors name the array ("cannot define d/a: ...").
            defined => defined?,
        }
    };
    let bar = crate::progress::bytes(data_bytes, &format!("import {dataset}/{array}"), quiet);
    dispatch!(header.dtype, |T| write_slabs::<T>(&handle, &header, &mut reader, file, options.slab_bytes, &bar)?,
        string => unreachable!(".npy headers never give string arrays"));
    bar.finish_and_clear();
    // Read to the end: a gzip stream checks its CRC there, and a file longer than its
    // header says is not the array it claims to be.
    let mut extra = Vec::new();
    match Read::take(&mut reader, 1 << 16).read_to_end(&mut extra) {
        Ok(0) => {}
        Ok(n) => bail!(
            "{}: {n}{} bytes after the {data_bytes} bytes of array data the header announces",
            file.display(),
            if n == 1 << 16 { " or more" } else { "" }
        ),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            bail!(
                "{}: the compressed stream ends in an incomplete part after the array data (the file cut short, or \
                 bytes after the stream)",
                file.display()
            )
        }
        Err(e) => bail!(
            "{}: the stream does not end cleanly after the array data: {e} (bytes after the compressed \
             stream, or a damaged one)",
            file.display()
        ),
    }
    let commit = crate::progress::spinner("committing", quiet);
    // The import holds the writer lock here: only its own flush moves the generation, which
    // a flush failing after its commit point (making the rename durable) has done.
    let base = store.generation();
    if let Err(e) = store.flush() {
        let committed = store.generation() != base;
        return Err(if committed { anyhow::Error::new(e).context(CommittedThenFailed) } else { e.into() });
    }
    commit.finish_and_clear();
    Ok(Moved { dtype: header.dtype, shape: header.shape, data_bytes })
}

/// The existing array `dataset/array` to import `file` into: refused unless `--overwrite`
/// is given and it has the file's dtype and shape (and the chunks and dims asked for, if
/// any).
fn existing_array(
    dataset_handle: &Dataset,
    (dataset, array): (&str, &str),
    file: &Path,
    header: &Header,
    options: &ImportOptions,
) -> Result<ArrayHandle> {
    if !options.overwrite {
        bail!("array {dataset}/{array} already exists; pass --overwrite to write into it");
    }
    let meta = dataset_handle.array_meta(array)?;
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
    if options.chunks.as_ref().is_some_and(|chunks| *chunks != meta.chunk_shape)
        || options.dims.as_ref().is_some_and(|dims| *dims != meta.dims)
        || options.fill_value.is_some_and(|fill| {
            fill.for_dtype(meta.dtype).map(|fill| fill.to_le_bytes(meta.dtype))
                != Ok(meta.fill_value.to_le_bytes(meta.dtype))
        })
    {
        bail!(
            "array {dataset}/{array} exists with chunks {:?}, dims {:?} and fill value {}: --chunks, --dims and \
             --fill-value only shape a new array",
            meta.chunk_shape,
            meta.dims,
            crate::report::fill_text(&meta)
        );
    }
    let handle = dataset_handle.array(array)?;
    // Every block is written again: with the codec asked for, which the array keeps.
    if options.codec.is_some() {
        handle.set_codec(options.codec)?;
    }
    if options.shuffle.is_some() {
        handle.set_shuffle(options.shuffle)?;
    }
    Ok(handle)
}

/// The context of an import's error when its flush failed after its commit point: the data
/// is in the store.
#[derive(Debug)]
pub struct CommittedThenFailed;

impl std::fmt::Display for CommittedThenFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the flush failed after its commit point")
    }
}

/// Chunks for a new array when `--chunks` is not given: Atlas's default, unless a chunk row
/// of axis 0 holds more than one slab. Then a chunk takes as many indices of axis 0 as a
/// slab holds, and its inner axes grow by what axis 0 gave up (from the last, up to their
/// extent), so that each slab writes whole chunk rows, every chunk once, and chunks keep
/// their size.
fn import_chunk_shape(header: &Header, slab_bytes: u64) -> Vec<u64> {
    let shape = &header.shape;
    let mut chunk = atlas::default_chunk_shape(shape, header.dtype);
    if shape.len() < 2 || shape.contains(&0) {
        return chunk;
    }
    let index_bytes = shape[1..].iter().fold(header.dtype.size_bytes() as u64, |acc, &n| acc.saturating_mul(n));
    let fit = (slab_bytes / index_bytes).max(1);
    if chunk[0] <= fit {
        return chunk;
    }
    let mut widen = chunk[0].div_ceil(fit);
    chunk[0] = fit;
    for d in (1..shape.len()).rev() {
        let grown = chunk[d].saturating_mul(widen).min(shape[d]);
        widen = widen.div_ceil(grown / chunk[d]);
        chunk[d] = grown;
        if widen <= 1 {
            break;
        }
    }
    chunk
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
        // Reserved up to 64 MiB at first: a header (and a large --slab-bytes) may claim more
        // than memory holds; the buffer grows past it as the bytes come.
        buf.reserve(usize::try_from(len.min(slab_bytes).min(64 << 20)).unwrap_or(0));
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

/// Exports `dataset/array` to the .npy file `file`, compressed as `compression`. A regular
/// file (new, or an existing one with `force`) is written as a file without a name and put
/// in place once whole, so a failed, interrupted or killed export leaves the old file, or
/// none; where the filesystem makes no unnamed files, under a temporary name, which only a
/// kill or Ctrl-C leaves behind; a pipe or a device (`/dev/stdout`) is written as it is, `force` or not.
pub fn export(
    handle: &ArrayHandle,
    label: &str,
    file: &Path,
    compression: Compression,
    force: bool,
    slab_bytes: u64,
    quiet: bool,
) -> Result<Moved> {
    let meta = handle.meta()?;
    if npy::descr(meta.dtype).is_none() {
        bail!("array {label} holds {} values, which a .npy file cannot hold as such", meta.dtype);
    }
    let target = Target::open(file, force)?;
    let data_bytes = meta.shape.iter().product::<u64>() * meta.dtype.size_bytes() as u64;
    let bar = crate::progress::bytes(data_bytes, &format!("export {label}"), quiet);
    let out = target.file.try_clone().with_context(|| format!("cannot write {}", file.display()))?;
    let written = write_file(handle, &meta, out, compression, slab_bytes, &bar)
        .map_err(|e| {
            // Not the success it is for `atlas cat | head`: the reader got part of a file.
            if crate::is_broken_pipe(&e) {
                anyhow!("the reader closed the pipe before the end: what it read is not a whole .npy file")
            } else {
                e
            }
        })
        .and_then(|()| target.finish(force))
        .with_context(|| format!("cannot export {label} to {}", file.display()));
    bar.finish_and_clear();
    written?;
    Ok(Moved { dtype: meta.dtype, shape: meta.shape, data_bytes })
}

/// `name`'s first `max` bytes or fewer, cut at a character boundary.
fn cut_to_bytes(name: &str, max: usize) -> &str {
    let end = (0..=max.min(name.len())).rev().find(|&i| name.is_char_boundary(i)).unwrap_or(0);
    &name[..end]
}

/// Whether `path` is (or links to) a regular file other than standard output.
pub fn is_regular_file(path: &Path) -> bool {
    !is_stdout(path) && std::fs::metadata(path).is_ok_and(|found| found.is_file())
}

/// Whether `path` is this process's standard output, whatever it is connected to: `-`, one
/// of its names, or (through links) the file or device it was redirected to.
pub fn is_stdout(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if ["-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"].iter().any(|name| path == Path::new(name)) {
        return true;
    }
    let stdout = io::stdout().as_fd().try_clone_to_owned().map(File::from).and_then(|out| out.metadata());
    match (std::fs::metadata(path), stdout) {
        (Ok(found), Ok(out)) => (found.dev(), found.ino()) == (out.dev(), out.ino()),
        _ => false,
    }
}

/// Where an export writes: a stream (standard output, a pipe or a device) as it is, or a
/// new file put in place of the destination once whole.
struct Target {
    file: File,
    place: Place,
}

/// How a whole export reaches its destination.
enum Place {
    /// Nowhere else: the stream was written.
    Stream,
    /// The file has no name yet (`O_TMPFILE`, in the destination's directory) and is linked
    /// to it once whole, so an export killed or stopped by Ctrl-C midway leaves nothing.
    Unnamed { dest: PathBuf },
    /// The file has a temporary name beside the destination (where the filesystem makes no
    /// unnamed files): removed if the export fails, left behind if it is killed.
    Named { temp: PathBuf, dest: PathBuf },
}

impl Target {
    fn open(path: &Path, force: bool) -> Result<Self> {
        let target = Self::open_any(path, force)?;
        // As zstd and gzip refuse to: binary bytes would garble the terminal.
        if matches!(target.place, Place::Stream) && target.file.is_terminal() {
            bail!(
                "{} is a terminal, and a .npy file is binary: redirect it (> out.npy) or name a file",
                path.display()
            );
        }
        Ok(target)
    }

    fn open_any(path: &Path, force: bool) -> Result<Self> {
        // Standard output is written through its own descriptor: redirected to a file
        // (`> out.npy`, `>> log`), that file is written where the shell opened it.
        if is_stdout(path) {
            let stdout = io::stdout().as_fd().try_clone_to_owned().context("cannot use standard output")?;
            return Ok(Self { file: File::from(stdout), place: Place::Stream });
        }
        if std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()).ends_with(b"/") {
            bail!("{} names a directory (it ends with /), not a file to write", path.display());
        }
        // Followed through links: a link to a pipe, a terminal or a device is written as it is.
        match std::fs::metadata(path) {
            Ok(found) if !found.is_file() => {
                let file = OpenOptions::new().write(true).open(path);
                return Ok(Self {
                    file: file.with_context(|| format!("cannot open {}", path.display()))?,
                    place: Place::Stream,
                });
            }
            Ok(_) if !force => bail!("{} already exists; pass --force to replace it", path.display()),
            Ok(_) => {}
            Err(_) => {
                if let Ok(link) = std::fs::read_link(path) {
                    bail!("{} is a symbolic link to {}, which does not exist", path.display(), link.display());
                }
            }
        }
        // An existing file is replaced where its links lead, as writing through them would.
        let dest = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let dir = directory_of(&dest);
        let unnamed =
            unnamed_file(dir).with_context(|| format!("cannot write {} (in {})", path.display(), dir.display()))?;
        let target = match unnamed {
            Some(file) => Self { file, place: Place::Unnamed { dest } },
            None => Self::named(dest, path)?,
        };
        // A replaced file keeps its permissions, as writing over it would.
        if let Ok(replaced) = std::fs::metadata(path) {
            let permissions = replaced.permissions();
            target
                .file
                .set_permissions(permissions)
                .with_context(|| format!("cannot give the file replacing {} its permissions", path.display()))?;
        }
        Ok(target)
    }

    /// A new file with a temporary name beside `dest` (`path` as the user gave it, for errors).
    fn named(dest: PathBuf, path: &Path) -> Result<Self> {
        let temp = temporary_name(&dest);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .with_context(|| format!("cannot write {} (its temporary file {})", path.display(), temp.display()))?;
        Ok(Self { file, place: Place::Named { temp, dest } })
    }

    /// Puts a whole export in place (the data is already flushed and fsynced): with `force`
    /// renamed over the destination (an unnamed file given a temporary name first); else
    /// linked to its name, which fails instead of replacing a file of that name made
    /// meanwhile (a named file is renamed where links are not supported).
    fn finish(mut self, force: bool) -> Result<()> {
        let appeared =
            |dest: &Path| anyhow!("{} appeared during the export; pass --force to replace it", dest.display());
        let (dest, unnamed) = match &self.place {
            Place::Stream => return Ok(()),
            Place::Unnamed { dest } => (dest.clone(), true),
            Place::Named { dest, .. } => (dest.clone(), false),
        };
        if unnamed && !force {
            match link_unnamed(&self.file, &dest) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(appeared(&dest)),
                linked => linked.with_context(|| format!("cannot link the export to {}", dest.display()))?,
            }
        } else {
            if unnamed {
                // A name of its own first, to be renamed over the file it replaces.
                let temp = temporary_name(&dest);
                link_unnamed(&self.file, &temp)
                    .with_context(|| format!("cannot link the export to {}", temp.display()))?;
                self.place = Place::Named { temp, dest: dest.clone() };
            }
            let Place::Named { temp, .. } = &self.place else { unreachable!("named above") };
            match (!force).then(|| std::fs::hard_link(temp, &dest)) {
                Some(Ok(())) => {}
                Some(Err(e)) if e.kind() == io::ErrorKind::AlreadyExists => return Err(appeared(&dest)),
                None | Some(Err(_)) => std::fs::rename(temp, &dest)
                    .with_context(|| format!("cannot rename {} to {}", temp.display(), dest.display()))?,
            }
        }
        let dir = directory_of(&dest);
        File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("cannot fsync {}", dir.display()))
    }
}

impl Drop for Target {
    /// A temporary file left by a failed export is removed (an unnamed one goes by itself).
    fn drop(&mut self) {
        if let Place::Named { temp, .. } = &self.place {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// The directory `path` is in (a bare file name's is the current one).
fn directory_of(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// A new file without a name in `dir` (Linux's `O_TMPFILE`), named once whole by
/// [`link_unnamed`]; `None` where the filesystem or the kernel makes none, or `/proc` could
/// not name it.
#[cfg(target_os = "linux")]
fn unnamed_file(dir: &Path) -> io::Result<Option<File>> {
    use rustix::io::Errno;
    if !Path::new("/proc/self/fd").is_dir() {
        return Ok(None);
    }
    let flags = rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::TMPFILE | rustix::fs::OFlags::CLOEXEC;
    match rustix::fs::open(dir, flags, rustix::fs::Mode::from_raw_mode(0o666)) {
        Ok(fd) => Ok(Some(File::from(fd))),
        // Not supported by the filesystem, or by the kernel (before 3.11 the flag reads as
        // a directory open).
        Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL | Errno::NOSYS) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn unnamed_file(_dir: &Path) -> io::Result<Option<File>> {
    Ok(None)
}

/// Gives the unnamed `file` the name `to` (failing if `to` exists).
#[cfg(target_os = "linux")]
fn link_unnamed(file: &File, to: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let from = format!("/proc/self/fd/{}", file.as_raw_fd());
    let (cwd, follow) = (rustix::fs::CWD, rustix::fs::AtFlags::SYMLINK_FOLLOW);
    rustix::fs::linkat(cwd, from.as_str(), cwd, to, follow).map_err(io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn link_unnamed(_file: &File, _to: &Path) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// A temporary name beside `dest`: `.NAME.PID.RANDOM.tmp`, NAME cut so that the whole stays
/// within the 255 bytes a file name may take. The process id and a random number: a killed
/// export's file (never removed) cannot be in the way of a later one whose process got the
/// same id.
fn temporary_name(dest: &Path) -> PathBuf {
    let name = dest.file_name().map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
    let name = cut_to_bytes(&name, 255 - ".PID_OF_10.12345678.tmp.".len());
    let nonce = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), std::time::SystemTime::now());
    dest.with_file_name(format!(".{name}.{}.{:08x}.tmp", std::process::id(), nonce as u32))
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

#[cfg(test)]
mod tests {
    use super::*;
    use atlas::StoreConfig;

    /// A .npy file of the int32 values `0 .. n`.
    fn npy_of(dir: &Path, n: i32) -> PathBuf {
        let path = dir.join(format!("{n}.npy"));
        let mut bytes = Vec::new();
        npy::write_header(&mut bytes, DType::Int32, &[u64::try_from(n).unwrap()]).unwrap();
        bytes.extend((0..n).flat_map(i32::to_le_bytes));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn import_into(store: &Atlas, target: (&str, &str), file: &Path, overwrite: bool) -> Result<Moved> {
        let options = ImportOptions {
            chunks: None,
            dims: None,
            fill_value: None,
            codec: None,
            shuffle: None,
            overwrite,
            slab_bytes: 1 << 20,
        };
        let imported = import(store, target, file, open_source(file)?, &options, true);
        store.discard();
        imported
    }

    /// The files in `dir`, by name.
    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    /// Where the filesystem makes no unnamed files, an export goes through a named temporary
    /// file: linked to a new destination, refused where one appeared, renamed over it with
    /// `force`, and removed when the export fails.
    #[test]
    fn a_named_temporary_file_is_put_in_place_or_removed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.npy");
        let written = |contents: &str| {
            let mut target = Target::named(dest.clone(), &dest).unwrap();
            target.file.write_all(contents.as_bytes()).unwrap();
            target
        };

        written("first").finish(false).unwrap();
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "first");
        assert_eq!(files_in(dir.path()), ["out.npy"], "the temporary name is gone");

        let refused = written("second").finish(false).unwrap_err();
        assert!(refused.to_string().contains("appeared during the export"), "{refused:#}");
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "first");
        assert_eq!(files_in(dir.path()), ["out.npy"], "the refused export's file is removed");

        written("third").finish(true).unwrap();
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "third");
        assert_eq!(files_in(dir.path()), ["out.npy"]);

        drop(written("failed"));
        assert_eq!(files_in(dir.path()), ["out.npy"], "a failed export leaves nothing");
    }

    #[test]
    fn names_are_cut_at_a_character_boundary() {
        assert_eq!(cut_to_bytes("abc", 10), "abc");
        assert_eq!(cut_to_bytes("abc", 2), "ab");
        assert_eq!(cut_to_bytes("aé", 2), "a", "é is two bytes");
    }

    #[test]
    fn an_import_finds_what_another_process_made_after_its_store_was_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        drop(Atlas::create(&path, StoreConfig::default()).unwrap());
        let stale = Atlas::open(&path).unwrap();
        // Another process makes the dataset and an array in it.
        let other = Atlas::open(&path).unwrap();
        let made = other.create_dataset("d").unwrap();
        made.define_array("a", ArraySpec::new(DType::Int32, vec![5])).unwrap();
        other.flush().unwrap();
        drop((made, other));

        let file = npy_of(dir.path(), 5);
        import_into(&stale, ("d", "b"), &file, false).unwrap();
        let refused = import_into(&stale, ("d", "a"), &file, false).unwrap_err();
        assert!(format!("{refused:#}").contains("pass --overwrite"), "{refused:#}");
        import_into(&stale, ("d", "a"), &file, true).unwrap();

        let reopened = Atlas::open(&path).unwrap().open_dataset("d").unwrap();
        for array in ["a", "b"] {
            assert_eq!(
                reopened.array(array).unwrap().read::<i32>(&[0], &[5]).unwrap().into_raw_vec_and_offset().0,
                [0, 1, 2, 3, 4]
            );
        }
    }
}
