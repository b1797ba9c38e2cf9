//! The store directory on disk: its fixed names, finding and loading the newest metadata
//! file, writing a commit's metadata, and cleaning up what a crashed writer left behind.

use std::path::Path;

use super::snapshot::Snapshot;
use crate::error::{EntityKind, Error, Result};
use crate::fragment::BlockEntry;
use crate::io;
use crate::meta::{
    self, ALL_ENCODINGS, DType, Limits, MAX_CHUNK_BYTES, MetaCompression, MetaDecodeError, MetaFormat, StoreMeta,
    decode_meta, encode_meta, meta_file_name, parse_meta_file_name,
};

/// Folder of fragment files inside a store.
pub(crate) const DATA_DIR: &str = "data";
/// The writer lock file.
pub(crate) const LOCK_FILE: &str = "atlas.lock";
/// Temp file a commit writes before renaming it over the metadata file.
const META_TMP_FILE: &str = "atlas.meta.tmp";

/// A commit as read from disk: its metadata file, decoded, and its blocks.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub newest: NewestMeta,
    pub snapshot: Snapshot,
}

/// The newest metadata file as read: the commit, the file's encoding and its stamp.
#[derive(Debug)]
pub(crate) struct NewestMeta {
    pub meta: StoreMeta,
    pub encoding: (MetaFormat, MetaCompression),
    pub meta_file: MetaFileStamp,
}

/// Which metadata file a handle's commit came from (or went to): its name and an xxh3 of
/// its bytes. A check that finds that file alone in the store, with those bytes, knows no
/// writer has committed since without decoding it ([`is_unchanged`]): the decode of a
/// registry of many datasets takes far longer (about 40 ms for 2 MB of JSON) than
/// reading and hashing the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetaFileStamp {
    name: &'static str,
    hash: u64,
}

impl MetaFileStamp {
    fn of(name: &'static str, bytes: &[u8]) -> Self {
        Self { name, hash: io::checksum(bytes) }
    }

    /// The file's name in the store directory.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }
}

/// Whether the store's only metadata file is still the one `stamp` was taken of, byte for
/// byte. `false` whenever that cannot be told (another metadata file beside it, one gone
/// or unreadable meanwhile): the caller then reads the newest commit the full way, which
/// reports what went wrong.
pub(crate) fn is_unchanged(dir: &Path, limits: &Limits, stamp: &MetaFileStamp) -> bool {
    let Ok(names) = io::list_dir(dir) else { return false };
    let mut meta_files = names.iter().filter(|name| parse_meta_file_name(name).is_some());
    let (Some(only), None) = (meta_files.next(), meta_files.next()) else { return false };
    only == stamp.name
        && io::read_file(&dir.join(only), limits.max_meta_bytes)
            .is_ok_and(|bytes| MetaFileStamp::of(stamp.name, &bytes) == *stamp)
}

/// Reads the newest commit of the store in `dir`, sharing the fragment readers of
/// `previous` (the commit a handle had) that it lists too (see [`Snapshot::load`]).
///
/// # Errors
/// [`Error::NotFound`] when `dir` holds no metadata file; [`Error::Corrupt`] or
/// [`Error::UnsupportedVersion`] when any metadata file present does not decode.
pub(crate) fn load(dir: &Path, limits: &Limits, previous: &Snapshot) -> Result<Loaded> {
    load_from(dir, limits, read_newest_meta(dir, limits)?, previous)
}

/// [`load`] of the commit `newest` (just read by [`read_newest_meta`]); a newer one if a
/// compaction removed its fragments meanwhile.
///
/// # Errors
/// As [`load`].
pub(crate) fn load_from(dir: &Path, limits: &Limits, newest: NewestMeta, previous: &Snapshot) -> Result<Loaded> {
    let mut attempt = 1;
    let mut next = Some(newest);
    loop {
        let newest = match next.take() {
            Some(newest) => newest,
            None => read_newest_meta(dir, limits)?,
        };
        let meta = &newest.meta;
        match Snapshot::load(&dir.join(DATA_DIR), &meta.fragments, meta.next_array_id, previous) {
            Ok(snapshot) => {
                check_string_blocks(meta, &snapshot, limits.max_chunk_bytes)?;
                return Ok(Loaded { newest, snapshot });
            }
            // A compaction committed after the metadata was read and removed the fragments
            // it listed: load the newer commit instead.
            Err(e)
                if is_not_found(&e)
                    && attempt < LOAD_ATTEMPTS
                    && newest_commit_id(dir, limits).is_ok_and(|id| id != commit_id(meta)) =>
            {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// How often [`load`] and [`read_newest_meta`] start over when a file they were about to
/// read was removed by a writer's newer commit meanwhile. Each retry needs another commit
/// to land during the previous attempt, so a few suffice.
const LOAD_ATTEMPTS: u32 = 8;

fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// What tells one commit from another: its generation, and its metadata's checksum (`None`
/// in a hand-written file), since a store removed and made again at the same path counts
/// its generations from 0 again.
pub(crate) fn commit_id(meta: &StoreMeta) -> (u64, Option<u64>) {
    (meta.generation, meta.checksum)
}

/// The [`commit_id`] of the newest commit on disk (cheaper than [`load`]: no fragments).
pub(crate) fn newest_commit_id(dir: &Path, limits: &Limits) -> Result<(u64, Option<u64>)> {
    Ok(commit_id(&read_newest_meta(dir, limits)?.meta))
}

/// Decodes every metadata file present and keeps the highest generation. Two files exist only
/// after a crash during a format change; the higher generation is the newer commit. A file
/// that does not decode is an error even when another one does: it may be the newer commit
/// (from a newer build, or damaged), and silently opening the older one would roll back.
///
/// A listed file that is gone when it is read was removed by a writer after committing a
/// newer file under another name (a format change): the listing starts over. So does a
/// listing of an existing directory that found no metadata file at all, since POSIX lets a
/// listing made during that change miss both the file just renamed in and the one removed.
pub(crate) fn read_newest_meta(dir: &Path, limits: &Limits) -> Result<NewestMeta> {
    let mut attempt = 1;
    loop {
        match read_newest_meta_once(dir, limits) {
            Err(e) if (is_not_found(&e) || is_missing_store(&e, dir)) && attempt < LOAD_ATTEMPTS => attempt += 1,
            result => return result,
        }
    }
}

/// True when `e` says the existing directory `dir` holds no metadata file.
fn is_missing_store(e: &Error, dir: &Path) -> bool {
    matches!(e, Error::NotFound { kind: EntityKind::Store, .. }) && io::is_dir(dir)
}

fn read_newest_meta_once(dir: &Path, limits: &Limits) -> Result<NewestMeta> {
    if !io::is_dir(dir) {
        return Err(Error::not_found(EntityKind::Store, dir.display().to_string()));
    }
    let mut newest: Option<NewestMeta> = None;
    for name in io::list_dir(dir)? {
        let Some((format, compression)) = parse_meta_file_name(&name) else { continue };
        let path = dir.join(&name);
        let bytes = io::read_file(&path, limits.max_meta_bytes)?;
        let meta = decode_meta(&bytes, format, compression, limits.max_meta_bytes).map_err(|e| match e {
            MetaDecodeError::Corrupt(detail) => Error::corrupt(&path, detail),
            MetaDecodeError::Unsupported(found) => {
                Error::UnsupportedVersion { path: path.clone(), found, max: meta::FORMAT_VERSION }
            }
            MetaDecodeError::TooLarge { limit, found } => {
                let what = "decompressed metadata length".to_string();
                Error::LimitExceeded { path: path.clone(), what, limit, found }
            }
        })?;
        if let Some(other) = &newest
            && other.meta.generation == meta.generation
        {
            // No writer makes two commits of one generation: which one is newer cannot be
            // told, and opening either could roll the other back.
            let detail = format!("generation {} is also that of {}", meta.generation, other.meta_file.name);
            return Err(Error::corrupt(&path, detail));
        }
        if newest.as_ref().is_none_or(|other| meta.generation > other.meta.generation) {
            let meta_file = MetaFileStamp::of(meta_file_name(format, compression), &bytes);
            newest = Some(NewestMeta { meta, encoding: (format, compression), meta_file });
        }
    }
    let newest = newest.ok_or_else(|| Error::not_found(EntityKind::Store, dir.display().to_string()))?;
    // Only the commit opened is held to the chunk limit: a superseded file (left by an
    // interrupted format change) may name arrays that commit no longer has.
    check_chunk_limit(&newest.meta, limits.max_chunk_bytes).map_err(|(what, found)| Error::LimitExceeded {
        path: dir.join(newest.meta_file.name),
        what,
        limit: limits.max_chunk_bytes,
        found,
    })?;
    Ok(newest)
}

/// Refuses a commit with an array whose [`ArrayMeta::raw_chunk_bytes`] are over
/// `max_chunk_bytes`; returns what and how much.
pub(crate) fn check_chunk_limit(meta: &StoreMeta, max_chunk_bytes: u64) -> std::result::Result<(), (String, u64)> {
    for (ds_name, ds) in &meta.datasets {
        for (name, array) in &ds.arrays {
            // Schemas from disk were checked: under MAX_CHUNK_BYTES.
            let raw = array.raw_chunk_bytes().unwrap_or(u64::MAX);
            if raw > max_chunk_bytes {
                return Err((format!("raw chunk length of array {ds_name}/{name}"), raw));
            }
        }
    }
    Ok(())
}

/// Moves `snapshot`, that of the commit `old`, to the commit `new` when that only added
/// fragments to it (see [`Snapshot::extend_to`]), with the checks [`load`] makes of their
/// blocks; false, leaving it as it was, when it cannot. The blocks held already were
/// checked against `old`: that holds for `new` where it allocated no fewer array ids and
/// made no string array of an id `old` had for another (both only by hand or damage).
pub(crate) fn extend_snapshot(
    dir: &Path,
    old: &StoreMeta,
    new: &StoreMeta,
    max_chunk_bytes: u64,
    snapshot: &mut Snapshot,
) -> bool {
    let string_ids = |commit: &StoreMeta| -> std::collections::HashSet<u64> {
        let arrays = commit.datasets.values().flat_map(|ds| ds.arrays.values());
        arrays.filter(|array| array.dtype == DType::String).map(|array| array.id).collect()
    };
    let (strings, old_strings) = (string_ids(new), string_ids(old));
    let held_blocks_still_valid = new.next_array_id >= old.next_array_id
        && strings.iter().all(|id| *id >= old.next_array_id || old_strings.contains(id));
    let accept = |e: &BlockEntry| !strings.contains(&e.array_id) || !is_over_string_limit(e, max_chunk_bytes);
    held_blocks_still_valid && snapshot.extend_to(&dir.join(DATA_DIR), &new.fragments, new.next_array_id, accept)
}

/// Whether a string block's raw length is over `max_chunk_bytes` (but within
/// `MAX_CHUNK_BYTES`, past which reading it is `Corrupt`). Fill entries allocate nothing
/// whatever they claim.
fn is_over_string_limit(e: &BlockEntry, max_chunk_bytes: u64) -> bool {
    !e.is_fill && e.raw_len_bytes > max_chunk_bytes && e.raw_len_bytes <= MAX_CHUNK_BYTES
}

/// Refuses a commit with a live string block whose raw length is over `max_chunk_bytes`:
/// unlike a numeric chunk's, it is not fixed by the schema, so [`check_chunk_limit`] cannot
/// bound it. (Past `MAX_CHUNK_BYTES` the block breaks the format: reading it is `Corrupt`.)
fn check_string_blocks(meta: &StoreMeta, snapshot: &Snapshot, max_chunk_bytes: u64) -> Result<()> {
    for (ds_name, ds) in &meta.datasets {
        for (name, array) in ds.arrays.iter().filter(|(_, a)| a.dtype == DType::String) {
            if let Some((reader, entry)) =
                snapshot.blocks_of(array.id).find(|(_, e)| is_over_string_limit(e, max_chunk_bytes))
            {
                return Err(Error::LimitExceeded {
                    path: reader.path().to_path_buf(),
                    what: format!("raw length of a block of string array {ds_name}/{name}"),
                    limit: max_chunk_bytes,
                    found: entry.raw_len_bytes,
                });
            }
        }
    }
    Ok(())
}

/// Writes `meta` as the store's metadata file (temp, fsync, rename) and returns its
/// checksum and the file's stamp. Returning `Ok` is the commit point: from here on,
/// readers that open the store see this commit.
///
/// # Errors
/// [`Error::LimitExceeded`] when the file, or its decompressed length, would be over
/// `limits.max_meta_bytes`, or an array's chunks over `limits.max_chunk_bytes`: a store
/// this handle (and any open with those limits) could not open again. Nothing is written
/// then.
pub(crate) fn write_meta(
    dir: &Path,
    meta: &StoreMeta,
    encoding: (MetaFormat, MetaCompression),
    limits: &Limits,
) -> Result<(u64, MetaFileStamp)> {
    let name = meta_file_name(encoding.0, encoding.1);
    if let Err((what, found)) = check_chunk_limit(meta, limits.max_chunk_bytes) {
        return Err(Error::LimitExceeded { path: dir.join(name), what, limit: limits.max_chunk_bytes, found });
    }
    let encoded = encode_meta(meta, encoding.0, encoding.1);
    let checksum = encoded.checksum;
    let found = encoded.plain_len.max(encoded.bytes.len() as u64);
    if found > limits.max_meta_bytes {
        let what = "metadata length of the commit".to_string();
        return Err(Error::LimitExceeded { path: dir.join(name), what, limit: limits.max_meta_bytes, found });
    }
    io::replace_file(dir, name, META_TMP_FILE, &encoded.bytes)?;
    Ok((checksum, MetaFileStamp::of(name, &encoded.bytes)))
}

/// Takes back a [`write_meta`] that failed in a store's create: its temporary file and the
/// empty data directory, so the directory is as empty as the create found it and a retry
/// can succeed. Best effort: the caller reports the write's error.
pub(crate) fn undo_create(dir: &Path) {
    let _ = io::remove_file(&dir.join(META_TMP_FILE));
    let _ = io::remove_empty_dir(&dir.join(DATA_DIR));
}

/// After [`write_meta`] and the directory fsync that makes its rename durable: removes
/// the metadata files of other encodings than `encoding` that the commit supersedes.
pub(crate) fn remove_other_meta_files(dir: &Path, encoding: (MetaFormat, MetaCompression)) -> Result<()> {
    let keep = meta_file_name(encoding.0, encoding.1);
    let mut removed = false;
    for name in io::list_dir(dir)? {
        if name != keep && parse_meta_file_name(&name).is_some() {
            io::remove_file(&dir.join(&name))?;
            removed = true;
        }
    }
    if removed {
        io::sync_dir(dir)?;
    }
    Ok(())
}

/// Removes fragment files after a commit that does not name them (those a compaction
/// replaced, a session's fragment that got no block), while holding the writer lock;
/// readers that mapped them keep their maps.
pub(crate) fn remove_fragments(data_dir: &Path, names: &[String]) -> Result<()> {
    for name in names {
        io::remove_file(&data_dir.join(name))?;
    }
    if !names.is_empty() {
        io::sync_dir(data_dir)?;
    }
    Ok(())
}

/// Refuses a `data` that is another store's: a writer removes the files in it no commit of
/// its own names. Only a link can make it so: one to a directory beside another store's
/// metadata file (a store copied or unpacked with its link, say) is refused, as is one to
/// what is not a directory; a link to a directory elsewhere (data kept on another disk) is
/// written through. Two stores linking to one directory of their own are not told apart
/// (docs/GUARANTEES.md, "One store per directory"). Readers follow any link.
fn refuse_shared_data_dir(dir: &Path, data_dir: &Path) -> Result<()> {
    if !io::is_symlink(data_dir) {
        return Ok(());
    }
    let target = io::canonicalize(data_dir)?;
    if !io::is_dir(&target) {
        return Err(Error::corrupt(data_dir, format!("links to {}, which is not a directory", target.display())));
    }
    // Told apart by device and inode: a bind mount or another link gives the store a
    // second path. Metadata files are looked for by name: the directory may be one this
    // user can enter but not list.
    let is_store = |path: &Path| ALL_ENCODINGS.iter().any(|&(f, c)| io::exists(&path.join(meta_file_name(f, c))));
    if let Some(owner) = target.parent().filter(|parent| !io::same_file(parent, dir) && is_store(parent)) {
        let detail = format!(
            "links to {}, the data directory of the store {}: a writer would remove that store's fragment files \
             as its own orphans (readers follow the link)",
            target.display(),
            owner.display()
        );
        return Err(Error::corrupt(data_dir, detail));
    }
    Ok(())
}

/// Removes what no commit names: fragments of writers that died before committing and a
/// stale metadata temp file. Only called while holding the writer lock, so no live writer's
/// files are touched; readers only ever open fragments a commit names. A missing data
/// directory is made again: a store whose commits name no fragment opens without one (a
/// copy through git, which keeps no empty directory), and the next change needs it.
/// `keep` names the metadata file of the newest commit, the one `meta` was read from.
pub(crate) fn remove_orphans(dir: &Path, meta: &StoreMeta, keep: &str) -> Result<()> {
    let data_dir = dir.join(DATA_DIR);
    if !io::exists(&data_dir) {
        io::create_dir_all(&data_dir)?;
    }
    refuse_shared_data_dir(dir, &data_dir)?;
    let mut orphans: Vec<_> = io::list_dir(dir)?
        .into_iter()
        .filter(|name| name == META_TMP_FILE || (name != keep && parse_meta_file_name(name).is_some()))
        .map(|name| dir.join(name))
        .collect();
    // A set: a store flushed thousands of times without a compaction lists as many
    // fragments, and each change's first call compares every file with them.
    let listed: std::collections::HashSet<&str> = meta.fragments.iter().map(|f| f.name.as_str()).collect();
    orphans.extend(
        io::list_dir(&data_dir)?
            .into_iter()
            .filter(|name| meta::is_fragment_name(name) && !listed.contains(name.as_str()))
            .map(|name| data_dir.join(name)),
    );
    if orphans.is_empty() {
        return Ok(());
    }
    // The newest commit may be a rename a crashed writer never made durable: the files it
    // supersedes are removed only once it is.
    io::sync_dir(dir)?;
    for orphan in &orphans {
        // Garbage either way: one that cannot be removed (permissions) must not stop every
        // later change of the store.
        if let Err(e) = io::remove_file(orphan) {
            log::warn!("atlas: cannot remove a file no commit names: {e}");
        }
    }
    Ok(())
}
