//! The shared state behind every handle of one opened store: the working metadata (last
//! commit plus this handle's uncommitted changes), the committed block index, and the write
//! session. Handles (`Atlas`, `Dataset`, `ArrayHandle`) all point at one [`Inner`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use super::config::OpenOptions;
use super::disk::{self, DATA_DIR, LOCK_FILE, MetaFileStamp, NewestMeta};
use super::pending::{PendingBlocks, PendingFragment, RawChunk, WriteSession, append_chunk};
use super::snapshot::Snapshot;
use crate::codec::ZstdDict;
use crate::engine::{
    ArrayCtx, BlockRef, ChunkCache, Lookup, RawChunkOf, Sink, WriteSettings, encode_chunks, plan, write_raw,
};
use crate::error::{EntityKind, Error, Result};
use crate::fragment::FragmentReader;
use crate::fragment::{BlockEntry, ChunkStats, merge};
use crate::io::{self, WriterLock};
use crate::meta::{
    ArrayMeta, ArrayStats, DatasetMeta, Limits, MetaCompression, MetaFormat, StoreMeta, checked_product,
};

/// One [`Atlas::begin_change`](crate::Atlas::begin_change), to be ended (once: ending it
/// consumes it) by [`Atlas::release_if_unchanged`](crate::Atlas::release_if_unchanged) or
/// [`Atlas::abandon`](crate::Atlas::abandon): it names the session it holds, so that it
/// cannot end another. One dropped without being ended (an early return by `?` between
/// `begin_change` and its end) ends as `release_if_unchanged` ends it, so that it leaves
/// no writer lock behind when nothing was changed.
#[derive(Debug)]
#[must_use = "end it with Atlas::release_if_unchanged or Atlas::abandon"]
pub struct ChangeHold {
    session: u64,
    started: bool,
    /// The store, for a drop to end the hold; `None` once it was ended. Weak, so that a
    /// hold kept does not keep the store open (nor delay the last handle's flush).
    store: Option<Weak<Inner>>,
}

/// Holds are the same when they hold the same session and started it alike.
impl PartialEq for ChangeHold {
    fn eq(&self, other: &Self) -> bool {
        (self.session, self.started) == (other.session, other.started)
    }
}

impl Eq for ChangeHold {}

impl Drop for ChangeHold {
    fn drop(&mut self) {
        if let Some(inner) = self.store.take().and_then(|store| store.upgrade()) {
            inner.end_hold(&mut inner.write(), self);
        }
    }
}

impl ChangeHold {
    /// Whether this hold was taken on `inner` (and not ended).
    pub(crate) fn is_of(&self, inner: &Inner) -> bool {
        self.store.as_ref().is_some_and(|store| std::ptr::eq(store.as_ptr(), inner))
    }
}

impl ChangeHold {
    /// Whether this `begin_change` started the session (took the writer lock and moved the
    /// handle to the newest commit); `false` when changes were already pending.
    #[must_use]
    pub fn started(&self) -> bool {
        self.started
    }
}

/// One opened store, shared by all its handles. Its `Debug` shows the directory only: every
/// handle's `{:?}` (a log line) would otherwise print the whole metadata and block index.
pub(crate) struct Inner {
    pub dir: PathBuf,
    /// What reading this store's files may cost.
    pub limits: Limits,
    /// What the staged chunks of a session may count for at most (`OpenOptions::staging_bytes`;
    /// `pending::staging_cost` of each).
    pub staging_bytes: u64,
    /// Opened read-only (`OpenOptions::read_only`): every change is refused.
    read_only: bool,
    /// Decoded chunks of reads that use part of a chunk (`OpenOptions::chunk_cache_bytes`);
    /// reached through [`Inner::chunk_cache`], which a forked child gets none of.
    cache: ChunkCache,
    state: RwLock<State>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub(crate) struct State {
    /// The last commit with this handle's uncommitted changes applied.
    pub meta: StoreMeta,
    /// Encoding of the metadata file the next commit writes.
    pub encoding: (MetaFormat, MetaCompression),
    /// The metadata file of the last commit this handle read or made.
    pub meta_file: MetaFileStamp,
    /// Blocks of the last commit this handle saw.
    pub committed: Snapshot,
    /// Present from the first change until the flush that commits it.
    pub session: Option<WriteSession>,
    /// The last commit's rename is not known durable: the directory fsync after it failed.
    /// The next flush retries it (and reports its error) instead of finding nothing to do.
    pub unsynced_commit: bool,
    /// A panic discarded uncommitted changes and no call has reported it yet
    /// ([`Error::ChangesDiscarded`]).
    pub changes_discarded: bool,
}

impl Inner {
    pub(crate) fn new(dir: PathBuf, options: &OpenOptions, loaded: disk::Loaded) -> Self {
        let state = State {
            meta: loaded.newest.meta,
            encoding: loaded.newest.encoding,
            meta_file: loaded.newest.meta_file,
            committed: loaded.snapshot,
            session: None,
            unsynced_commit: false,
            changes_discarded: false,
        };
        Self {
            dir,
            limits: options.limits,
            staging_bytes: options.staging_bytes,
            read_only: options.read_only,
            cache: ChunkCache::new(options.chunk_cache_bytes),
            state: RwLock::new(state),
        }
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, State> {
        loop {
            match self.state.read() {
                Ok(guard) => return guard,
                // Mended by `write`, then read again: also when the panic came while this
                // call waited for the lock.
                Err(poisoned) => {
                    drop(poisoned.into_inner());
                    drop(self.write());
                }
            }
        }
    }

    /// The state, to change. After a panic while it was held for a change (an Atlas bug),
    /// this session's changes may be half made (a staged chunk taken out and not put
    /// back, say): they are discarded, as a failed first change's are, and the handle goes
    /// on from its last commit. What is committed is never touched by a change. The next
    /// change or commit reports the loss ([`Inner::report_discarded`]).
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|poisoned| {
            let mut state = poisoned.into_inner();
            if state.session.is_some() {
                log::error!("atlas: a panic during a change; this handle's uncommitted changes are discarded");
                self.discard(&mut state);
                state.changes_discarded = true;
            }
            self.state.clear_poison();
            state
        })
    }

    /// The chunk cache, for one read (`None` in a forked child, see
    /// [`ChunkCache::in_this_process`]).
    pub(crate) fn chunk_cache(&self) -> Option<&ChunkCache> {
        self.cache.in_this_process()
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.join(DATA_DIR)
    }

    /// Starts a change: takes the writer lock if this handle does not hold it yet, and if
    /// another writer committed since this handle's snapshot, moves to the newest commit
    /// first (and removes what a crashed writer left behind).
    ///
    /// # Errors
    /// [`Error::Locked`] when another handle is writing, or when this handle's session was
    /// started by the process this one was forked from; [`Error::ReadOnly`] on a handle
    /// opened read-only (every change comes here first).
    pub(crate) fn begin_change(&self, state: &mut State) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly { path: self.dir.clone() });
        }
        self.report_discarded(state)?;
        self.refuse_inherited_session(state)?;
        if state.session.is_none() {
            let lock = WriterLock::try_acquire(&self.dir.join(LOCK_FILE), &self.dir)?;
            self.move_to_newest_commit(state)?;
            disk::remove_orphans(&self.dir, &state.meta, state.meta_file.name())?;
            state.session = Some(WriteSession::new(lock, (state.meta.clone(), state.encoding)));
        }
        state.session.as_mut().expect("started above").note_change();
        Ok(())
    }

    /// A check of a change's arguments made before the change takes the writer lock, so that
    /// a bad call is refused without it. A refusal counts only on the newest commit: when
    /// this handle has no session and another writer has committed since its snapshot, the
    /// check is made again on that commit (read, not moved to), and passes if it passes
    /// there: an array another writer grew, or a name it freed, is there to use. The change
    /// then moves to that commit and checks again.
    pub(crate) fn check_before_change<T>(&self, state: &State, check: impl Fn(&State) -> Result<T>) -> Result<()> {
        let Err(refused) = check(state) else { return Ok(()) };
        if state.session.is_some() {
            return Err(refused);
        }
        let Ok(Some(newest)) = self.newer_commit(state) else { return Err(refused) };
        check(&newest).map(drop)
    }

    /// Whether `holds` is true on the newest commit, told without the writer lock: on this
    /// handle's snapshot when no other writer has committed since, else on the newest
    /// metadata (false when that cannot be read, and with a session: the session is the
    /// newest, and what it changed is pending). Always false on a read-only handle, so that
    /// a change it already holds is refused like any other.
    pub(crate) fn holds_on_newest(&self, state: &State, holds: impl Fn(&State) -> bool) -> bool {
        if self.read_only || state.session.is_some() || !holds(state) {
            return false;
        }
        match self.newer_commit(state) {
            Ok(None) => true,
            Ok(Some(newest)) => holds(&newest),
            Err(_) => false,
        }
    }

    /// The newest commit's schemas when another writer has committed since this handle's
    /// snapshot (the metadata only, without the fragments it names), else `None`.
    fn newer_commit(&self, state: &State) -> Result<Option<State>> {
        let Some(NewestMeta { meta, encoding, meta_file }) = self.read_if_changed(state)? else { return Ok(None) };
        if disk::commit_id(&meta) == disk::commit_id(&state.meta) {
            return Ok(None);
        }
        Ok(Some(State {
            meta,
            encoding,
            meta_file,
            committed: Snapshot::default(),
            session: None,
            unsynced_commit: false,
            changes_discarded: false,
        }))
    }

    /// Runs `body` as a change (after [`Inner::begin_change`]). When this call started the
    /// session and `body` fails (a change refused against a newer commit, a write that
    /// failed), the session is discarded ([`Inner::discard`]), so a failed first change
    /// leaves no lock behind and nothing for a later flush to commit; when it fails in a
    /// session begun earlier, the blocks it appended and did not record are given back.
    pub(crate) fn change<R>(&self, state: &mut State, body: impl FnOnce(&mut State) -> Result<R>) -> Result<R> {
        let started = state.session.is_none();
        self.begin_change(state)?;
        body(state).inspect_err(|_| {
            if started {
                self.discard(state);
            } else {
                state.drop_unrecorded();
            }
        })
    }

    /// Starts a change held by a caller until [`Inner::release_if_unchanged`] (see
    /// [`Atlas::begin_change`](crate::Atlas::begin_change)).
    pub(crate) fn hold_change(self: &Arc<Self>, state: &mut State) -> Result<ChangeHold> {
        let started = state.session.is_none();
        self.begin_change(state)?;
        let session = state.session.as_mut().expect("begin_change starts a session");
        session.holds += 1;
        Ok(ChangeHold { session: session.id, started, store: Some(Arc::downgrade(self)) })
    }

    /// Ends `hold` (of [`Inner::hold_change`]), and the session with the last hold if it has
    /// changed nothing (see
    /// [`Atlas::release_if_unchanged`](crate::Atlas::release_if_unchanged)); returns whether
    /// it ended the session.
    pub(crate) fn release_if_unchanged(&self, state: &mut State, mut hold: ChangeHold) -> bool {
        hold.store = None; // Ended here, not again by its drop.
        self.end_hold(state, &hold)
    }

    /// [`Inner::release_if_unchanged`] of a hold not consumed (as its drop ends it). A hold
    /// of a session that has ended (a flush or a discard ended its holds with it) ends
    /// nothing. The metadata is compared as it is written (NaN fill values compare equal);
    /// a fragment file that holds no block (a write that failed after making it) is no
    /// change.
    fn end_hold(&self, state: &mut State, hold: &ChangeHold) -> bool {
        let Some(session) = state.session.as_mut().filter(|s| s.id == hold.session) else { return false };
        session.holds = session.holds.saturating_sub(1);
        let unchanged = session.holds == 0
            && !session.is_inherited()
            && session.fragment.as_ref().is_none_or(|f| f.blocks.is_empty())
            && session.reshaped.is_empty()
            && session.base.1 == state.encoding
            && same_meta(&session.base.0, &state.meta);
        if unchanged {
            self.discard(state);
        }
        unchanged
    }

    /// Ends `hold` (of [`Inner::hold_change`]), discarding the session first if the hold
    /// started it, is its only one, and every change in it came from the thread that took
    /// it: then they are all the hold's own. Otherwise ends it as
    /// [`Inner::release_if_unchanged`] does. Returns whether it discarded.
    pub(crate) fn abandon(&self, state: &mut State, mut hold: ChangeHold) -> bool {
        hold.store = None; // Ended here, not again by its drop.
        let own = state.session.as_ref().is_some_and(|session| {
            hold.started
                && session.id == hold.session
                && session.holds == 1
                && !session.changed_elsewhere
                && !session.is_inherited()
        });
        if own {
            self.discard(state);
            return true;
        }
        self.end_hold(state, &hold);
        false
    }

    /// Drops the uncommitted changes: the working metadata goes back to the commit the
    /// session started from, and the writer lock and the session's fragment file are
    /// released. Does nothing without a session.
    /// A forked child forgets a session its parent started, leaving the parent's fragment
    /// (and lock) alone.
    pub(crate) fn discard(&self, state: &mut State) {
        let Some(session) = state.session.take() else { return };
        let inherited = session.is_inherited();
        (state.meta, state.encoding) = session.base;
        if let Some(fragment) = session.fragment.as_ref().filter(|_| !inherited)
            && let Err(e) = io::remove_file(&self.data_dir().join(&fragment.name))
        {
            // Left as an orphan, which the next writer removes when it starts.
            log::warn!("atlas: cannot remove the fragment of discarded changes: {e}");
        }
    }

    /// Fails once, with [`Error::ChangesDiscarded`], after a panic discarded this handle's
    /// changes: a caller that goes on writing would otherwise commit its later changes
    /// without the lost ones, never told.
    fn report_discarded(&self, state: &mut State) -> Result<()> {
        if std::mem::take(&mut state.changes_discarded) {
            return Err(Error::ChangesDiscarded { path: self.dir.clone() });
        }
        Ok(())
    }

    /// Discards the session and fails with [`Error::LockLost`] if its lock file was removed
    /// or replaced: another writer may have locked the new file and committed (this
    /// session's commit would replace that one, its blocks left for a later writer to
    /// remove as orphans), or removed this session's fragment as an orphan. Going on under
    /// a new lock would have to rule out both; the file is never removed by Atlas, so the
    /// session is given up instead.
    fn check_lock_held(&self, state: &mut State) -> Result<()> {
        let Some(session) = &state.session else { return Ok(()) };
        if session.holds_lock()? {
            return Ok(());
        }
        self.discard(state);
        Err(Error::LockLost { path: self.dir.clone() })
    }

    /// Refuses to go on with a session another process started: a child forked with one
    /// shares the parent's fragment file and lock, and writing or committing through it
    /// would overwrite or publish the parent's changes behind its back.
    fn refuse_inherited_session(&self, state: &State) -> Result<()> {
        match &state.session {
            Some(session) if session.is_inherited() => Err(Error::Locked { path: self.dir.clone() }),
            _ => Ok(()),
        }
    }

    /// Moves an idle handle to the newest commit. A handle with uncommitted changes holds the
    /// writer lock, so nothing newer can exist and this is a no-op. A forked child's copy of
    /// its parent's changes is not its own to keep (nor to commit): it is forgotten, as
    /// `discard` forgets it, and the child moves to the newest commit.
    pub(crate) fn refresh(&self) -> Result<()> {
        let mut state = self.write();
        if state.session.as_ref().is_some_and(WriteSession::is_inherited) {
            self.discard(&mut state);
        }
        if state.session.is_none() {
            self.move_to_newest_commit(&mut state)?;
        }
        Ok(())
    }

    /// The newest metadata on disk, unless it is still the file this handle read or made
    /// (told without decoding it: [`disk::is_unchanged`]).
    fn read_if_changed(&self, state: &State) -> Result<Option<NewestMeta>> {
        if disk::is_unchanged(&self.dir, &self.limits, &state.meta_file) {
            return Ok(None);
        }
        disk::read_newest_meta(&self.dir, &self.limits).map(Some)
    }

    /// Moves `state` to the newest commit on disk: nothing while its metadata file is still
    /// the store's only one; for the same commit in another file (a store made again at this
    /// path with another metadata compression starts from the same generation 0) only that
    /// file and its encoding (the one a change keeps, and the next commit writes); for a
    /// commit that only added fragments (other writers' flushes), the snapshot extended by
    /// them; else a full load.
    fn move_to_newest_commit(&self, state: &mut State) -> Result<()> {
        let Some(newest) = self.read_if_changed(state)? else { return Ok(()) };
        if disk::commit_id(&newest.meta) == disk::commit_id(&state.meta) {
            (state.encoding, state.meta_file) = (newest.encoding, newest.meta_file);
            return Ok(());
        }
        let (dir, max_chunk_bytes) = (&self.dir, self.limits.max_chunk_bytes);
        if disk::extend_snapshot(dir, &state.meta, &newest.meta, max_chunk_bytes, &mut state.committed) {
            state.adopt(newest);
            return Ok(());
        }
        let loaded = disk::load_from(dir, &self.limits, newest, &state.committed)?;
        state.committed = loaded.snapshot;
        state.adopt(loaded.newest);
        Ok(())
    }

    /// Commits this handle's changes (docs/FORMAT.md, "Commit protocol") and releases the
    /// writer lock. Without changes it does nothing.
    pub(crate) fn flush(&self) -> Result<()> {
        self.commit(&mut self.write(), FragmentChange::Append)
    }

    /// Commits the session in `state` (docs/FORMAT.md, "Commit protocol") and releases the
    /// writer lock; without a session it does nothing. With [`FragmentChange::Replace`] the
    /// session's fragment (or none) becomes the only committed fragment, and the files of the
    /// fragments it replaces are removed after the commit point, before the lock is released.
    ///
    /// An error before the commit point leaves `state` and the session as they were, so the
    /// commit can be retried (but [`Error::LockLost`], which discards the session: see
    /// `check_lock_held`); an error after it (making the rename durable, removing files)
    /// comes with the handle already on the new commit and the session gone. A commit whose
    /// rename was not made durable is retried that far by the next call, session or not.
    pub(crate) fn commit(&self, state: &mut State, change: FragmentChange) -> Result<()> {
        self.report_discarded(state)?;
        self.refuse_inherited_session(state)?;
        if state.session.is_none() {
            return self.sync_commit(state);
        }
        self.check_lock_held(state)?;
        state.seal_staged()?;
        let Some(session) = &state.session else { return Ok(()) };
        let mut next = state.meta.clone();
        next.generation += 1;
        // What this commit writes has no stats that fail their checks.
        next.unsound_stats.clear();
        // What every open checks, so that no commit makes a store that does not open (a
        // counter reaching u64::MAX, say, from a damaged file); datasets the session left
        // as the commit it started from had (checked when read or committed) are not
        // checked again.
        next.check(Some(&session.base.0)).map_err(|detail| {
            Error::invalid(format!("{}: cannot commit generation {}: {detail}", self.dir.display(), next.generation))
        })?;
        let replaced = match change {
            FragmentChange::Append => {
                // Refresh the persisted stats of every array this session changed.
                let changed = |ds: &DatasetMeta| ds.arrays.values().any(|array| session.changed_array(array.id));
                for ds in next.datasets.values_mut().filter(|ds| changed(ds)) {
                    for array in Arc::make_mut(ds).arrays.values_mut().filter(|array| session.changed_array(array.id)) {
                        // Unsound entry stats persist none: merged again (and refused) when asked for.
                        array.stats = state.array_stats(array).ok();
                    }
                }
                Vec::new()
            }
            // Compaction copies blocks with their stats: no array's stats change.
            FragmentChange::Replace => std::mem::take(&mut next.fragments),
        };
        let session = state.session.as_mut().expect("checked above");
        // The finished fragment is mapped and checked before the commit names it, so once
        // the metadata is renamed nothing can fail and this handle's view matches the disk.
        // A fragment that got no block (a write that failed before its first one, a
        // recompression that left every block where it was) is not named: its file is
        // removed after the commit point, with those a compaction replaced.
        let new_fragment = match session.fragment.as_mut().filter(|fragment| !fragment.blocks.is_empty()) {
            Some(fragment) => {
                let fragment_meta = fragment.finish()?; // durable, its directory entry too
                let opened = FragmentReader::open(&self.data_dir().join(&fragment_meta.name), fragment_meta.len_bytes)?;
                next.fragments.push(fragment_meta);
                Some(opened)
            }
            None => None,
        };
        self.check_lock_held(state)?;
        let (checksum, meta_file) = disk::write_meta(&self.dir, &next, state.encoding, &self.limits)?;
        next.checksum = Some(checksum);
        // Committed: the new metadata is in place, so this handle's view moves to it even if
        // making the rename durable fails below (that error is still returned).
        state.meta = next;
        state.meta_file = meta_file;
        state.unsynced_commit = true;
        // Kept until the end: only a writer-lock holder removes files from the store.
        let session = state.session.take();
        if change == FragmentChange::Replace {
            state.committed = Snapshot::default();
        }
        if let Some((reader, entries)) = new_fragment {
            // Its index was written by this session, which indexes each chunk once.
            let repeated = state.committed.insert_fragment(Arc::new(reader), entries);
            debug_assert!(repeated.is_none(), "a session's fragment indexes a chunk twice");
        }
        let mut removed: Vec<String> = replaced.into_iter().map(|fragment| fragment.name).collect();
        let empty = session.as_ref().and_then(|s| s.fragment.as_ref()).filter(|f| f.blocks.is_empty());
        removed.extend(empty.map(|fragment| fragment.name.clone()));
        let settled = self
            .sync_commit(state)
            .and_then(|()| disk::remove_other_meta_files(&self.dir, state.encoding))
            .and_then(|()| disk::remove_fragments(&self.data_dir(), &removed));
        drop(session);
        settled
    }

    /// Makes the last commit's rename durable (a directory fsync) if that is still owed.
    fn sync_commit(&self, state: &mut State) -> Result<()> {
        if state.unsynced_commit {
            io::sync_dir(&self.dir)?;
            state.unsynced_commit = false;
        }
        Ok(())
    }
}

/// Whether `a` and `b` are written alike: floats compared as written (NaN equals NaN, -0.0
/// differs from 0.0), where `==` compares them as numbers.
pub(crate) fn same_text(a: &impl serde::Serialize, b: &impl serde::Serialize) -> bool {
    matches!((serde_json::to_vec(a), serde_json::to_vec(b)), (Ok(a), Ok(b)) if a == b)
}

/// Whether two commits' metadata are written alike (NaN fill values and attributes compare
/// equal, as their text does). Datasets the two share (all but those changed, in a registry
/// of many) are not serialised to tell.
fn same_meta(a: &StoreMeta, b: &StoreMeta) -> bool {
    // Taken apart whole, so that a field added later is not left out here.
    let StoreMeta {
        format_version,
        generation,
        codec,
        shuffle,
        next_array_id,
        attributes,
        datasets,
        fragments,
        checksum,
        unsound_stats: _, // what was read, not what is written
    } = a;
    *format_version == b.format_version
        && *generation == b.generation
        && *codec == b.codec
        && *shuffle == b.shuffle
        && *next_array_id == b.next_array_id
        && same_text(attributes, &b.attributes)
        && *fragments == b.fragments
        && *checksum == b.checksum
        && datasets.len() == b.datasets.len()
        && datasets
            .iter()
            .zip(&b.datasets)
            .all(|((name_a, a), (name_b, b))| name_a == name_b && (Arc::ptr_eq(a, b) || same_text(a, b)))
}

/// How a commit's fragment joins the committed ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FragmentChange {
    /// Listed after the committed fragments (a flush).
    Append,
    /// Replaces every committed fragment (compaction: the fragment holds every live block).
    Replace,
}

impl State {
    /// Takes `newest` as the last commit (its blocks already in `committed`).
    fn adopt(&mut self, newest: NewestMeta) {
        (self.meta, self.encoding, self.meta_file) = (newest.meta, newest.encoding, newest.meta_file);
    }

    pub(crate) fn dataset(&self, name: &str) -> Result<&DatasetMeta> {
        self.meta.datasets.get(name).map(Arc::as_ref).ok_or_else(|| Error::not_found(EntityKind::Dataset, name))
    }

    pub(crate) fn dataset_mut(&mut self, name: &str) -> Result<&mut DatasetMeta> {
        self.meta.datasets.get_mut(name).map(Arc::make_mut).ok_or_else(|| Error::not_found(EntityKind::Dataset, name))
    }

    pub(crate) fn array(&self, dataset: &str, name: &str) -> Result<&ArrayMeta> {
        self.dataset(dataset)?
            .arrays
            .get(name)
            .ok_or_else(|| Error::not_found(EntityKind::Array, format!("{dataset}/{name}")))
    }

    pub(crate) fn array_mut(&mut self, dataset: &str, name: &str) -> Result<&mut ArrayMeta> {
        self.dataset_mut(dataset)?
            .arrays
            .get_mut(name)
            .ok_or_else(|| Error::not_found(EntityKind::Array, format!("{dataset}/{name}")))
    }

    /// Every live block of an array: this session's newest per chunk, else the committed one.
    pub(crate) fn live_blocks(&self, array_id: u64) -> Vec<BlockRef<'_>> {
        live_blocks(self.pending_blocks(), &self.committed, array_id)
    }

    /// A new array id: the next one, which moves on.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when none is left (`next_array_id` at `u64::MAX`).
    pub(crate) fn allocate_array_id(&mut self, dir: &Path) -> Result<u64> {
        let id = self.meta.next_array_id;
        self.meta.next_array_id = id
            .checked_add(1)
            .ok_or_else(|| Error::invalid(format!("no array id is left in store {}", dir.display())))?;
        Ok(id)
    }

    /// The index entries of [`State::live_blocks`].
    pub(crate) fn live_entries(&self, array_id: u64) -> Vec<&BlockEntry> {
        self.live_blocks(array_id).into_iter().map(|b| b.entry()).collect()
    }

    /// Current statistics of an array: the persisted ones unless this session changed the
    /// array, else merged from its live blocks' index entries (no data read).
    pub(crate) fn current_stats(&self, meta: &ArrayMeta) -> Result<ArrayStats> {
        match (&meta.stats, self.session.as_ref().is_some_and(|s| s.changed_array(meta.id))) {
            (Some(stats), false) => Ok(*stats),
            _ => self.array_stats(meta),
        }
    }

    /// Statistics of an array merged from its live blocks' index entries (no data read but
    /// that of staged chunks, whose statistics are made when they are sealed).
    ///
    /// # Errors
    /// [`Error::Corrupt`] if an entry's statistics cannot describe its block.
    pub(crate) fn array_stats(&self, meta: &ArrayMeta) -> Result<ArrayStats> {
        let elems = checked_product(&meta.shape).expect("checked when the schema was accepted");
        let live = self.live_stats(meta)?;
        Ok(merge(meta.dtype, elems, live.iter().map(|(_, stats)| stats)))
    }

    /// Each live block inside the array's grid (as [`ArrayMeta::holds_chunk`] tells: not the
    /// fill entries a shrink leaves past it) with its statistics ([`BlockRef::stats`]), in chunk
    /// coordinate order.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if an entry's statistics cannot describe its block.
    pub(crate) fn live_stats(&self, meta: &ArrayMeta) -> Result<Vec<(&BlockEntry, ChunkStats)>> {
        let blocks = self.live_blocks_in_grid(meta);
        blocks.into_iter().map(|block| Ok((block.entry(), block.stats(meta)?))).collect()
    }

    /// [`State::live_blocks`] of the array's grid, in chunk coordinate order. The blocks are
    /// sorted by their chunk's place in the grid (row-major: coordinate order, as one number,
    /// which fits a u64 as the element count does), and the session's blocks are merged
    /// into the committed ones in that order, winning where both have a chunk: no hash
    /// lookup per committed block, no comparison of coordinates (a commit merges the
    /// statistics of every chunk of each array it changed).
    fn live_blocks_in_grid(&self, meta: &ArrayMeta) -> Vec<BlockRef<'_>> {
        let grid = meta.chunk_grid();
        let newer = in_grid_order(&grid, self.pending_blocks().into_iter().flat_map(|p| p.blocks_of(meta.id)));
        let committed = self.committed.blocks_of(meta.id).map(|(reader, entry)| BlockRef::Committed { reader, entry });
        let older = in_grid_order(&grid, committed);
        let mut live = Vec::with_capacity(newer.len() + older.len());
        let mut newer = newer.into_iter().peekable();
        for (place, block) in older {
            while let Some((_, block)) = newer.next_if(|(p, _)| *p < place) {
                live.push(block);
            }
            // The session's block of a chunk wins over the committed one.
            live.push(newer.next_if(|(p, _)| *p == place).map_or(block, |(_, newer)| newer));
        }
        live.extend(newer.map(|(_, block)| block));
        live
    }

    /// The current block of a chunk: this session's newest, else the committed one.
    pub(crate) fn find_block(&self, array_id: u64, coord: &[u64]) -> Option<BlockRef<'_>> {
        let pending = self.pending_blocks();
        find_block(pending, &self.committed, array_id, coord)
    }
}

/// The `blocks` inside `grid` (an array's chunk grid), each with its chunk's place in the
/// grid in row-major order, sorted by it.
fn in_grid_order<'a>(grid: &[u64], blocks: impl Iterator<Item = BlockRef<'a>>) -> Vec<(u64, BlockRef<'a>)> {
    // Inside the grid on every axis, no extent is 0, and the place is under the product of
    // the grid, at most the array's element count: a u64. (With an axis of extent 0, the
    // others may be of any length, and no chunk is inside.)
    let place = |coord: &[u64]| -> Option<u64> {
        let inside = coord.len() == grid.len() && coord.iter().zip(grid).all(|(c, n)| c < n);
        inside.then(|| coord.iter().zip(grid).fold(0, |place, (&c, &n)| place * n + c))
    };
    let mut placed: Vec<_> = blocks.filter_map(|block| Some((place(&block.entry().coord)?, block))).collect();
    placed.sort_unstable_by_key(|(place, _)| *place);
    placed
}

impl Drop for Inner {
    /// Uncommitted changes are flushed when the last handle goes away (and a commit whose
    /// rename is not known durable is made so); a failure is logged, since `drop` cannot
    /// return it. Call `flush` to see errors. A forked child never flushes a session its
    /// parent started: the changes and the fragment are the parent's. A handle dropped by
    /// a panic unwinding discards them instead: the panic may have cut a caller's sequence
    /// of changes short, and committing its first half is what a crash never does.
    fn drop(&mut self) {
        let (session, unsynced) = {
            let state = self.read();
            (state.session.as_ref().map(WriteSession::is_inherited), state.unsynced_commit)
        };
        let Some(inherited) = session else {
            // Only the directory fsync: a loss a panic left unreported has no one to tell.
            if unsynced && let Err(e) = self.sync_commit(&mut self.write()) {
                log::error!("atlas: {}: the last commit may not survive a power loss: {e}", self.dir.display());
            }
            return;
        };
        if inherited {
            log::warn!("atlas: {}: a forked child leaves its parent's uncommitted changes alone", self.dir.display());
        } else if std::thread::panicking() {
            log::warn!("atlas: {}: dropped by a panic: the uncommitted changes are discarded", self.dir.display());
            self.discard(&mut self.write());
        } else if let Err(e) = self.flush() {
            log::error!("atlas: flush on drop of {} failed, uncommitted changes are lost: {e}", self.dir.display());
        }
    }
}

impl State {
    /// Appends the blocks `produce` hands to its sink (given the chunk lookup of this
    /// session) to the session's fragment for array `array_id`, and returns their entries
    /// without recording them: the caller records them ([`State::record`]) once every block
    /// it wants succeeded; a failed change gives them back (`Inner::change`).
    pub(crate) fn append_unrecorded(
        &mut self,
        data_dir: &Path,
        array_id: u64,
        produce: impl for<'l> FnOnce(&'l Lookup<'l, 'l>, &mut Sink<'_>) -> Result<()>,
    ) -> Result<Vec<BlockEntry>> {
        let generation = self.meta.generation + 1;
        let State { session, committed, .. } = self;
        let session = session.as_mut().expect("blocks are appended within a session");
        let PendingFragment { writer, blocks, .. } = session.fragment(data_dir, generation)?;
        let blocks = &*blocks;
        let lookup = |coord: &[u64]| find_block(Some(blocks), committed, array_id, coord);
        let mut written = Vec::new();
        produce(&lookup, &mut |chunk| {
            written.push(append_chunk(writer, array_id, chunk)?);
            Ok(())
        })?;
        Ok(written)
    }

    /// Writes `input` (a C-order buffer of `shape`) at `start` of an array into staged
    /// chunks: raw chunk buffers kept in memory as this session's newest blocks, each
    /// continued from its staged bytes, else from its current block or the fill value.
    /// [`State::seal_staged`] encodes them into blocks.
    pub(crate) fn stage(
        &mut self,
        data_dir: &Path,
        ctx: ArrayCtx<'_>,
        start: &[u64],
        shape: &[u64],
        input: &[u8],
    ) -> Result<()> {
        let (generation, array_id) = (self.meta.generation + 1, ctx.meta.id);
        let State { session, committed, .. } = self;
        let session = session.as_mut().expect("chunks are staged within a session");
        let blocks = &mut session.fragment(data_dir, generation)?.blocks;
        let ops = plan(&ctx.meta.chunk_shape, start, shape);
        let mut chunks: Vec<Option<Vec<u8>>> = ops.iter().map(|op| blocks.take_staged(array_id, &op.coord)).collect();
        let taken: Vec<bool> = chunks.iter().map(Option::is_some).collect();
        let written = {
            let blocks = &*blocks;
            let lookup = |coord: &[u64]| find_block(Some(blocks), committed, array_id, coord);
            write_raw(ctx, &lookup, &ops, shape, input, &mut chunks)
        };
        // On an error, only the staged bytes taken out go back (unchanged).
        for ((op, raw), taken) in ops.iter().zip(chunks).zip(taken) {
            if let Some(raw) = raw.filter(|_| written.is_ok() || taken) {
                blocks.stage(array_id, &op.coord, raw);
            }
        }
        written
    }

    /// What this session's staged chunks count for against the budget (`pending::staging_cost`).
    pub(crate) fn staged_bytes(&self) -> usize {
        self.pending_blocks().map_or(0, PendingBlocks::staged_bytes)
    }

    /// Whether this session holds the chunk of `array_id` at `coord` staged.
    pub(crate) fn is_staged(&self, array_id: u64, coord: &[u64]) -> bool {
        self.pending_blocks().is_some_and(|blocks| blocks.is_staged(array_id, coord))
    }

    /// What this session's staged chunks of `array_id` in chunk row `row` count for.
    pub(crate) fn staged_bytes_in_row(&self, array_id: u64, row: u64) -> usize {
        self.pending_blocks().map_or(0, |blocks| blocks.staged_bytes_in_row(array_id, row))
    }

    fn pending_blocks(&self) -> Option<&PendingBlocks> {
        self.session.as_ref().and_then(|s| s.fragment.as_ref()).map(|f| &f.blocks)
    }

    /// Encodes every staged chunk with its array's settings and appends it to the session's
    /// fragment, where it replaces the staged one. Chunks of arrays deleted since they were
    /// staged are dropped. On an error the staged chunks stay as they were.
    pub(crate) fn seal_staged(&mut self) -> Result<()> {
        let State { meta, session, .. } = self;
        let Some(fragment) = session.as_mut().and_then(|s| s.fragment.as_mut()) else {
            return Ok(());
        };
        let PendingFragment { writer, blocks, .. } = fragment;
        // Called before every codec change: no work for a store of many arrays when nothing
        // is staged (the maps of arrays whose staged chunks were all taken back go).
        if blocks.staged_bytes() == 0 {
            blocks.drop_staged();
            return Ok(());
        }
        // Every array's staged chunks are encoded in one go on the pool: a session that
        // staged one small chunk in each of many arrays encodes them side by side.
        let arrays: HashMap<u64, &ArrayMeta> =
            meta.datasets.values().flat_map(|ds| ds.arrays.values()).map(|a| (a.id, a)).collect();
        // In order of array and chunk, so that the same writes give the same fragment.
        let mut staged: Vec<(&ArrayMeta, Vec<RawChunk<'_>>)> =
            blocks.staged().filter_map(|(array_id, chunks)| Some((*arrays.get(&array_id)?, chunks))).collect();
        staged.sort_unstable_by_key(|(array, _)| array.id);
        for (_, chunks) in &mut staged {
            chunks.sort_unstable_by_key(|&(coord, _)| coord);
        }
        let dicts: Vec<Option<ZstdDict>> = staged.iter().map(|(array, _)| dictionary(array)).collect();
        let chunks: Vec<RawChunkOf<'_>> = staged
            .iter()
            .zip(&dicts)
            .flat_map(|((array, chunks), dict)| {
                let settings = write_settings(meta, array, dict.as_ref());
                chunks.iter().map(move |&(coord, raw)| RawChunkOf { meta: array, settings, coord, raw })
            })
            .collect();
        // `encode_chunks` hands them over in the order given.
        let mut owners = chunks.iter().map(|chunk| chunk.meta.id);
        let mut written = Vec::new();
        let encoded = encode_chunks(&chunks, &mut |chunk| {
            let array_id = owners.next().expect("one chunk handed over per chunk given");
            written.push(append_chunk(writer, array_id, chunk)?);
            Ok(())
        });
        if let Err(e) = encoded {
            writer.drop_unkept();
            return Err(e);
        }
        fragment.record(written);
        fragment.blocks.drop_staged();
        Ok(())
    }

    /// Records appended blocks in the session's pending index (newest wins).
    pub(crate) fn record(&mut self, entries: Vec<BlockEntry>) {
        if entries.is_empty() {
            return;
        }
        let session = self.session.as_mut().expect("blocks are appended within a session");
        session.fragment.as_mut().expect("blocks were appended to it").record(entries);
    }

    /// Gives back the blocks appended to the session's fragment and not recorded: those of
    /// a change that failed (`FragmentWriter::drop_unkept`).
    pub(crate) fn drop_unrecorded(&mut self) {
        if let Some(fragment) = self.session.as_mut().and_then(|s| s.fragment.as_mut()) {
            fragment.writer.drop_unkept();
        }
    }
}

/// How new blocks of `array` are encoded: its own codec and shuffle, else the store's.
pub(crate) fn write_settings<'d>(
    store: &StoreMeta,
    array: &ArrayMeta,
    dict: Option<&'d ZstdDict>,
) -> WriteSettings<'d> {
    WriteSettings::new(array.codec.unwrap_or(store.codec), array.shuffle.unwrap_or(store.shuffle), array.dtype, dict)
}

/// The zstd dictionary of an array, if it has one.
pub(crate) fn dictionary(meta: &ArrayMeta) -> Option<ZstdDict> {
    meta.zstd_dictionary.clone().map(ZstdDict::new)
}

/// Every live block of an array: the newest `pending` holds per chunk, else the committed one.
pub(crate) fn live_blocks<'a>(
    pending: Option<&'a PendingBlocks>,
    committed: &'a Snapshot,
    array_id: u64,
) -> Vec<BlockRef<'a>> {
    let mut blocks: Vec<BlockRef<'_>> = pending.into_iter().flat_map(|p| p.blocks_of(array_id)).collect();
    let overridden = |coord: &[u64]| pending.is_some_and(|p| p.find(array_id, coord).is_some());
    let committed = committed.blocks_of(array_id).map(|(reader, entry)| BlockRef::Committed { reader, entry });
    blocks.extend(committed.filter(|b| !overridden(&b.entry().coord)));
    blocks
}

/// The current block of a chunk: the newest written by this session, else the committed one.
pub(crate) fn find_block<'a>(
    pending: Option<&'a PendingBlocks>,
    committed: &'a Snapshot,
    array_id: u64,
    coord: &[u64],
) -> Option<BlockRef<'a>> {
    pending.and_then(|p| p.find(array_id, coord)).or_else(|| committed.find(array_id, coord))
}
