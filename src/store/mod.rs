//! Room `store`: the public API ([`Atlas`], [`Dataset`], [`ArrayHandle`], [`Attrs`]) and the
//! commit. Everything a caller does goes through here; the work itself is done by the rooms
//! below.

mod across;
mod array;
mod attrs;
mod batch;
mod boxes;
mod config;
mod copy;
mod dataset;
#[cfg(feature = "gpu")]
mod device;
mod disk;
#[cfg(all(test, feature = "gpu"))]
mod gpu_model;
mod inspect;
mod maintenance;
mod output;
mod pending;
mod rename;
mod snapshot;
mod state;
mod strings;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use array::ArrayHandle;
pub use attrs::Attrs;
pub use batch::{Batch, compress_batch, decompress_batch};
pub use config::{ArraySpec, DEFAULT_CHUNK_BYTES, Element, OpenOptions, ReadOptions, StoreConfig, default_chunk_shape};
pub use dataset::Dataset;
pub use inspect::{BadBlock, BadStats, BlockCodec, BlockInfo, BlockState, VerifyReport};
pub use maintenance::CompactReport;
pub use state::ChangeHold;

use self::attrs::AttrTarget;
use self::snapshot::Snapshot;
use self::state::{Inner, State};
use crate::error::{EntityKind, Error, Result};
use crate::io;
use crate::meta::{Codec, MetaCompression, MetaFormat, Shuffle, StoreMeta, meta_file_name, validate_name};

/// A store: one directory holding a metadata file and fragment files.
///
/// Handles are cheap to clone and share one state; `Atlas` is `Send + Sync` (as are
/// [`Dataset`], [`ArrayHandle`] and [`Attrs`]), and reads from many threads run in parallel,
/// except beside a change: a write, append, flush or compaction holds the store's state
/// for its whole encode or copy, and reads through handles of this store wait for it
/// (handles opened separately with [`Atlas::open`] do not). Dataset, array and attribute
/// handles keep the store open: pending changes and the writer lock last until the last
/// of them is dropped. Changes become durable at [`flush`](Atlas::flush); the
/// writer lock is taken at the first change and released when the flush completes.
/// Dropping the last handle flushes pending changes too, logging any error (call `flush`
/// to see it), unless a panic unwinding drops it: then they are discarded, as a crash
/// leaves them; [`discard`](Atlas::discard) drops them too.
///
/// Starting a change (the first one after a flush, in any method that changes the store)
/// takes the writer lock: [`Error::Locked`] if another handle holds it, [`Error::Io`] on the
/// lock file; when another handle committed meanwhile, it loads that commit first, which
/// can fail as [`Atlas::refresh`] does. On a handle opened with
/// [`OpenOptions::read_only`](crate::OpenOptions) every change fails with
/// [`Error::ReadOnly`] (after the checks of its arguments made without the lock). The
/// `# Errors` of changing methods list `Locked` for all of these. After a panic inside
/// Atlas discarded this handle's uncommitted changes, the next change or flush fails once
/// with [`Error::ChangesDiscarded`] and does nothing else.
#[derive(Debug, Clone)]
pub struct Atlas {
    inner: Arc<Inner>,
}

impl Atlas {
    /// Creates a new store in `path` (created if missing) and commits its empty first state.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty `path` or a zstd level zstd does not
    /// support, and [`Error::AlreadyExists`] if `path` is a file or a non-empty directory
    /// (nothing is touched then); [`Error::Io`] if the directory cannot be written. An
    /// `Io` error from the last step, the fsync that makes the new metadata file durable,
    /// leaves the store in place (another process may already have opened it):
    /// [`Atlas::open`] it to go on.
    pub fn create(path: impl AsRef<Path>, config: StoreConfig) -> Result<Self> {
        Self::create_with(path, config, &OpenOptions::default())
    }

    /// Creates a store as [`Atlas::create`] does and opens it with `options` (memory
    /// budgets and limits, as [`Atlas::open_with`] takes them).
    ///
    /// # Errors
    /// As [`Atlas::create`]; [`Error::LimitExceeded`] if the new store's metadata file
    /// would be over `options`' `max_meta_bytes` (the store directory is left empty, ready
    /// for another create, but directories it made are not removed);
    /// [`Error::InvalidArgument`] for `read_only` options.
    pub fn create_with(path: impl AsRef<Path>, config: StoreConfig, options: &OpenOptions) -> Result<Self> {
        let dir = store_dir(path.as_ref())?;
        config.codec.check().map_err(Error::invalid)?;
        if options.read_only {
            return Err(Error::invalid("a store is created to be written: create takes no read_only options"));
        }
        if io::exists(&dir) && (!io::is_dir(&dir) || !io::list_dir(&dir)?.is_empty()) {
            return Err(Error::already_exists(EntityKind::Store, dir.display().to_string()));
        }
        io::create_dir_all(&dir)?;
        // Made exclusively: of two creates racing for one empty directory, one fails here.
        io::create_dir(&dir.join(disk::DATA_DIR)).map_err(|e| match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
                Error::already_exists(EntityKind::Store, dir.display().to_string())
            }
            other => other,
        })?;
        let meta = StoreMeta::new(config.codec, config.shuffle);
        let encoding = (config.meta_format, config.meta_compression);
        if let Err(failed) = disk::write_meta(&dir, &meta, encoding, &options.limits) {
            disk::undo_create(&dir);
            return Err(failed);
        }
        // Only the rename is made durable: the new directory holds no other metadata file,
        // and removing one (what a commit does after it) would need the writer lock, since
        // another process may already have opened the store and committed.
        io::sync_dir(&dir)?;
        Self::open_with(dir, options)
    }

    /// Opens the store in `path`, finding its metadata file by name.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty `path`; [`Error::NotFound`] if `path` holds
    /// no store; [`Error::Corrupt`] or
    /// [`Error::UnsupportedVersion`] if its metadata or a fragment is not what Atlas
    /// writes; [`Error::LimitExceeded`] past the default [`Limits`](crate::Limits) (a
    /// metadata file over 1 GiB); [`Error::Io`] if a file cannot be read or mapped.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, &OpenOptions::default())
    }

    /// Opens the store in `path` with `options`, e.g. lower [`Limits`](crate::Limits) for an untrusted
    /// store.
    ///
    /// # Errors
    /// As [`Atlas::open`], and [`Error::LimitExceeded`] when a file asks for more than the
    /// limits allow (checked before allocating).
    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Self> {
        let dir = store_dir(path.as_ref())?;
        let loaded = disk::load(&dir, &options.limits, &Snapshot::default())?;
        Ok(Self { inner: Arc::new(Inner::new(dir, options, loaded)) })
    }

    /// The store's directory, made absolute (without resolving links) when the store was
    /// opened: a later change of the working directory does not move the handle.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// The name of the metadata file the next commit writes, e.g. `atlas.json`.
    #[must_use]
    pub fn meta_file_name(&self) -> &'static str {
        let (format, compression) = self.meta_encoding();
        meta_file_name(format, compression)
    }

    /// The format and compression of the metadata file the next commit writes.
    #[must_use]
    pub fn meta_encoding(&self) -> (MetaFormat, MetaCompression) {
        self.inner.read().encoding
    }

    /// The generation of the last commit this handle made or saw.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.inner.read().meta.generation
    }

    /// Creates an empty dataset. Dataset and array names are non-empty, at most 255 bytes,
    /// without `/`, `\` or control characters, and do not start with `.` or `_` (so that any
    /// name can serve as a path component).
    ///
    /// # Errors
    /// [`Error::InvalidName`] saying which rule the name breaks; [`Error::AlreadyExists`],
    /// [`Error::Locked`].
    pub fn create_dataset(&self, name: &str) -> Result<Dataset> {
        validate_name(EntityKind::Dataset, name)?;
        let mut state = self.inner.write();
        let refuse_existing = |state: &State| {
            if state.meta.datasets.contains_key(name) {
                return Err(Error::already_exists(EntityKind::Dataset, name));
            }
            Ok(())
        };
        // Refused before taking the writer lock, and again on the newest commit it loads.
        self.inner.check_before_change(&state, refuse_existing)?;
        self.inner.change(&mut state, |state| {
            refuse_existing(state)?;
            state.meta.datasets.insert(name.to_string(), Arc::default());
            Ok(())
        })?;
        Ok(Dataset::new(self.inner.clone(), name))
    }

    /// Opens an existing dataset.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is none of that name.
    pub fn open_dataset(&self, name: &str) -> Result<Dataset> {
        self.inner.read().dataset(name)?;
        Ok(Dataset::new(self.inner.clone(), name))
    }

    /// Deletes a dataset with its arrays and attributes. Their blocks become unreachable.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Locked`].
    pub fn delete_dataset(&self, name: &str) -> Result<()> {
        let mut state = self.inner.write();
        self.inner.check_before_change(&state, |state| state.dataset(name).map(drop))?;
        self.inner.change(&mut state, |state| {
            // Checked again: the change may have moved to a commit without the dataset.
            state.meta.datasets.remove(name).ok_or_else(|| Error::not_found(EntityKind::Dataset, name))?;
            Ok(())
        })
    }

    /// Names of all datasets, sorted.
    #[must_use]
    pub fn list_datasets(&self) -> Vec<String> {
        self.inner.read().meta.datasets.keys().cloned().collect()
    }

    /// Whether a dataset of that name exists.
    #[must_use]
    pub fn dataset_exists(&self, name: &str) -> bool {
        self.inner.read().meta.datasets.contains_key(name)
    }

    /// The store's attributes.
    #[must_use]
    pub fn attrs(&self) -> Attrs {
        Attrs::new(self.inner.clone(), AttrTarget::Store)
    }

    /// The store's default codec for new blocks.
    #[must_use]
    pub fn codec(&self) -> Codec {
        self.inner.read().meta.codec
    }

    /// Changes the store's default codec. New blocks of arrays without their own codec use
    /// it; existing blocks keep the codec that wrote them. The codec the store already has
    /// (on this handle's snapshot and the newest commit) changes nothing (no writer lock, nothing to commit).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zstd level zstd does not support; [`Error::Locked`];
    /// as [`Atlas::flush`] for small writes and appends held in memory, which are encoded and
    /// written first with the settings they were made under ([`Error::Codec`], [`Error::Io`]).
    pub fn set_codec(&self, codec: Codec) -> Result<()> {
        codec.check().map_err(Error::invalid)?;
        self.change_settings(|meta| meta.codec == codec, |meta| meta.codec = codec)
    }

    /// The store's default shuffle setting for new blocks.
    #[must_use]
    pub fn shuffle(&self) -> Shuffle {
        self.inner.read().meta.shuffle
    }

    /// Changes the store's default shuffle setting for new blocks (the setting it already
    /// has on the newest commit changes nothing, as for [`Atlas::set_codec`]).
    ///
    /// # Errors
    /// [`Error::Locked`]; as [`Atlas::set_codec`] for chunks held in memory.
    pub fn set_shuffle(&self, shuffle: Shuffle) -> Result<()> {
        self.change_settings(|meta| meta.shuffle == shuffle, |meta| meta.shuffle = shuffle)
    }

    /// Applies `change` to the store's settings for new blocks, unless the newest commit
    /// has them so already (`is_done`): then nothing changes and no lock is taken.
    fn change_settings(&self, is_done: impl Fn(&StoreMeta) -> bool, change: impl FnOnce(&mut StoreMeta)) -> Result<()> {
        let mut guard = self.inner.write();
        if self.inner.holds_on_newest(&guard, |state| is_done(&state.meta)) {
            return Ok(());
        }
        self.inner.change(&mut guard, |state| {
            // Staged chunks are encoded as the settings were when they were written.
            state.seal_staged()?;
            change(&mut state.meta);
            Ok(())
        })
    }

    /// Commits every change made through this store's handles: the fragment written since the
    /// last flush is completed and fsynced, then the metadata is replaced atomically (temp
    /// file, fsync, rename, directory fsync). Releases the writer lock. Without a session
    /// (nothing changed or begun since the last commit) it writes nothing, but finishes an
    /// earlier flush whose directory fsync failed (so it can still return [`Error::Io`]).
    ///
    /// # Errors
    /// [`Error::Io`] when a write, fsync or rename fails; [`Error::Codec`] if encoding a
    /// chunk a small write or an unfinished append held in memory fails;
    /// [`Error::Corrupt`] if the finished fragment does not read back as written;
    /// [`Error::InvalidArgument`] if the new metadata breaks a rule an open checks (a
    /// counter at `u64::MAX` after a damaged file); [`Error::LimitExceeded`] if the new
    /// metadata file would be over this handle's `max_meta_bytes`, or an array's chunks
    /// over its `max_chunk_bytes` (so that it could not be opened again with them; a string
    /// chunk's stored length is checked only when a store is loaded, see
    /// [`Limits`](crate::Limits));
    /// [`Error::ChangesDiscarded`] once after a panic lost the changes (see [`Atlas`]);
    /// [`Error::LockLost`] if the lock file was removed or replaced since the session took
    /// it (the changes are discarded); [`Error::Locked`] in a forked child whose parent had
    /// begun the changes (the child cannot commit them).
    ///
    /// Before the metadata rename (the commit point) the last commit stays intact and the
    /// changes stay pending, so `flush` can be called again, except after a failed fsync of
    /// the session's fragment: the kernel may have dropped bytes it could not write, so
    /// every later flush of these changes fails too (an `Io` error whose operation says
    /// so); call [`Atlas::discard`] and redo them. An error making the rename durable or
    /// removing replaced files comes after the commit point: the changes are committed and
    /// the lock released. So after an error other than `ChangesDiscarded` and `LockLost`
    /// (which mean the changes are gone: redo them), [`Atlas::has_pending_changes`] tells
    /// which: `true`, nothing was committed (retry, or discard and redo); `false`, the
    /// changes are committed (redoing them would apply them twice).
    pub fn flush(&self) -> Result<()> {
        self.inner.flush()
    }

    /// Starts a change now, as the first change of a session does: takes the writer lock and
    /// moves this handle to the newest commit (nothing happens when changes are already
    /// pending: the handle holds the lock and is current). Returns the hold to end with
    /// [`Atlas::release_if_unchanged`] ([`ChangeHold::started`]: whether it started the
    /// session). Reads that follow see every other writer's commits, and no other writer
    /// can commit until this handle flushes or discards. The way to read values, change
    /// them and write them back without writing over another writer's commit made in
    /// between (the Python module's assignments through steps, index lists and points do
    /// this). The lock is held until [`Atlas::flush`] (which commits a new generation even
    /// if nothing was changed), [`Atlas::discard`] or [`Atlas::release_if_unchanged`] (or
    /// [`Atlas::abandon`]), which each `begin_change` should be paired with; a hold dropped
    /// without either (an early return by `?`) ends as `release_if_unchanged` ends it.
    ///
    /// ```
    /// # use atlas::{ArraySpec, Atlas, DType, StoreConfig};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = Atlas::create(dir.path().join("s"), StoreConfig::default()).unwrap();
    /// # let spec = ArraySpec::new(DType::Int64, [4]);
    /// # store.create_dataset("d").unwrap().define_array("counts", spec).unwrap();
    /// # store.flush().unwrap();
    /// let counts = store.open_dataset("d")?.array("counts")?;
    /// // Add 1 to every count, over the newest commit, whatever other writers did before.
    /// let hold = store.begin_change()?;
    /// let mut values = counts.read::<i64>(&[0], &[4])?;
    /// values += 1;
    /// counts.write(&[0], values.view())?;
    /// store.release_if_unchanged(hold); // changed: the lock is kept for the flush
    /// store.flush()?;
    /// assert_eq!(counts.read::<i64>(&[0], &[4])?.into_raw_vec_and_offset().0, [1, 1, 1, 1]);
    /// # Ok::<(), atlas::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Locked`] if another handle is writing; [`Error::ReadOnly`] on a read-only
    /// handle; [`Error::ChangesDiscarded`] once after a panic lost the changes; as
    /// [`Atlas::refresh`] for loading the newest commit.
    pub fn begin_change(&self) -> Result<ChangeHold> {
        self.inner.hold_change(&mut self.inner.write())
    }

    /// Ends `hold` taking back what it changed, when that can be told apart: if the hold
    /// started the session (nothing was pending), is its only hold, and every change since
    /// was made on the thread that took it, the session is discarded (as
    /// [`Atlas::discard`]); otherwise the hold ends as [`Atlas::release_if_unchanged`] ends
    /// it and the changes stay pending. For a change of several writes that fails or is
    /// interrupted midway (the Python module's assignments on Ctrl-C). Returns whether it
    /// discarded. Changes are told apart by thread: two tasks interleaved on one thread (an
    /// async executor's) count as one, so use it only where one task changes the store per
    /// thread.
    pub fn abandon(&self, hold: ChangeHold) -> bool {
        if !hold.is_of(&self.inner) {
            return false; // Another store's: dropped, it ends there.
        }
        self.inner.abandon(&mut self.inner.write(), hold)
    }

    /// Ends one [`Atlas::begin_change`] (call it once for each, when the read-modify-write is
    /// done or has failed), and gives the writer lock back if that was the last one not
    /// ended and the session has changed nothing (no block written or staged, no schema,
    /// attribute or setting changed): a caller that then failed before writing, or found
    /// nothing to write, leaves no lock behind. The handle stays on the commit it moved
    /// to. With changes pending, or another `begin_change` not ended (another thread's
    /// read-modify-write under way), the lock is kept. A hold whose session has ended (a
    /// flush or a discard from another thread ended it, and its holds) ends nothing: not
    /// the hold of a session begun since; a hold of another store ends there, as dropped.
    /// Returns whether it gave the lock back.
    pub fn release_if_unchanged(&self, hold: ChangeHold) -> bool {
        if !hold.is_of(&self.inner) {
            return false; // Another store's: dropped, it ends there.
        }
        self.inner.release_if_unchanged(&mut self.inner.write(), hold)
    }

    /// Drops every change made through this store's handles since the last commit: the
    /// handles see the last commit again, the writer lock is released and the pending
    /// fragment removed. Without pending changes it does nothing. The way out after a flush
    /// that cannot succeed (a failed fsync of the pending fragment), or to undo changes
    /// before they are committed. A loss not yet reported ([`Error::ChangesDiscarded`]) is
    /// forgotten too: this asks for the last commit anyway.
    pub fn discard(&self) {
        let mut state = self.inner.write();
        self.inner.discard(&mut state);
        state.changes_discarded = false;
    }

    /// Whether this store has changes that are not yet committed.
    #[must_use]
    pub fn has_pending_changes(&self) -> bool {
        self.inner.read().session.is_some()
    }

    /// Moves this handle to the newest commit on disk, to see other writers' flushes.
    /// A handle with pending changes holds the writer lock and is already current.
    ///
    /// # Errors
    /// As [`Atlas::open`].
    pub fn refresh(&self) -> Result<()> {
        self.inner.refresh()
    }
}

/// A store's directory, absolute; an empty path is refused (it would stand for the current
/// directory, whatever that holds).
fn store_dir(path: &Path) -> Result<PathBuf> {
    if path.as_os_str().is_empty() {
        return Err(Error::invalid("the store path is empty"));
    }
    // Absolute from the start: a relative path would be looked up again from the working
    // directory of each later call, so a `chdir` would move the handle onto another store.
    std::path::absolute(path).map_err(|source| Error::Io { path: path.to_path_buf(), op: "resolve", source })
}
