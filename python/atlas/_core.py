"""`Atlas` and `DatasetView`: atlas-python 0.10's API over the native module, and more."""

from __future__ import annotations

import atexit
import contextlib
import datetime
import operator
import os
import threading
import time
import warnings
import weakref
from html import escape
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np

from . import _atlas, _html
from ._array import Array, AttributeMethods, Attributes, _ints, _names, refuse_pickle, shown, shuffle_arg
from ._atlas import (
    AlreadyExistsError,
    AtlasError,
    DTypeMismatchError,
    InvalidArgumentError,
    LockedError,
    NotFoundError,
    StoreNotFoundError,
)
from ._dtypes import dtype_name, for_write, is_missing_text, timestamps, unmasked

PathLike = Union[str, "os.PathLike[str]"]

# Guards every store's table of assignment locks and its count of changes.
_LOCKS_LOCK = threading.Lock()


def _new_locks_lock() -> None:
    """A forked child's own `_LOCKS_LOCK`: one held by a parent's thread at the fork would
    never be released in the child."""
    global _LOCKS_LOCK  # noqa: PLW0603 - replaced in a forked child only
    _LOCKS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_locks_lock)


def _path(source: Any) -> str:
    try:
        return os.fsdecode(os.fspath(source))  # bytes too, as `open` takes them
    except TypeError:
        raise TypeError(
            f"a store is a local directory given as str or os.PathLike, not {type(source).__name__} "
            "(object-store handles are not supported)"
        ) from None


def _sizes(
    max_meta_bytes: Optional[int],
    max_chunk_bytes: Optional[int],
    staging_bytes: Optional[int],
    chunk_cache_bytes: Optional[int],
) -> dict:
    """The limits and memory budgets given to `create` or `open`, checked, as keywords."""
    sizes = {
        "max_meta_bytes": max_meta_bytes,
        "max_chunk_bytes": max_chunk_bytes,
        "staging_bytes": staging_bytes,
        "chunk_cache_bytes": chunk_cache_bytes,
    }
    for name, size in sizes.items():
        if size is None:
            continue
        if isinstance(size, (bool, np.bool_)):
            raise TypeError(f"{name} is a number of bytes, not a bool")
        sizes[name] = operator.index(size)
        if not 0 <= sizes[name] < 2**64:
            raise ValueError(f"{name} must be from 0 to 2**64 - 1, got {size!r}")
    return sizes


#: How long `Atlas.open(create=True)` waits for a store another process is creating.
_CREATE_WAIT_SECONDS = 2.0

#: What a `create` makes: its `data/` directory, the lock, the metadata's temp file, then
#: the metadata file (one of six names).
_CREATE_ENTRIES = {"data", "atlas.lock", "atlas.meta.tmp"} | {
    f"atlas.{fmt}{ext}" for fmt in ("json", "msgpack") for ext in ("", ".zst", ".lz4")
}

def _being_created(path: str) -> bool:
    """Whether `path` holds what a `create` makes and nothing else: one under way, or one
    whose metadata file came just after an open found none."""
    try:
        return set(os.listdir(path)) <= _CREATE_ENTRIES
    except OSError:
        return False  # a file, or nothing: no create is filling it

def _store_key(name: Any) -> tuple[Any, Optional[str]]:
    """A store key split into its dataset and array names: `"run42"`, `"/run42"` and
    `"run42/"` (as `atlas ls` takes it) are `("run42", None)`, `"run42/temp"` and
    `"/run42/temp"` are `("run42", "temp")` (what follows the dataset's `/` is the array's
    name, refused as such if it holds another)."""
    if not isinstance(name, str) or "/" not in name:
        return name, None
    dataset, _, array = name.removeprefix("/").partition("/")
    return dataset, (array or None)

def _refuse_non_name(name: Any, example: str) -> None:
    """Refuses a key that is not a name (`store[...]`, `ds[0]`) in words that say what is."""
    if not isinstance(name, str):
        raise TypeError(f"keys are names (str), as in {example}; got {type(name).__name__} {name!r:.40}")


def _dataset_names(dataset_names: Any) -> list[str]:
    """The datasets a read across datasets names: at least one."""
    names = _names(dataset_names, "dataset_names")
    if not names:
        raise InvalidArgumentError("dataset_names is empty")
    return names


def _dataset_key(name: Any) -> tuple[Any, Optional[str]]:
    """`_store_key`, refusing a key that names no dataset (`"/"`, `"//x"`) in its own words."""
    _refuse_non_name(name, 'store["run42/temp"]')
    dataset, array = _store_key(name)
    if dataset == "":
        raise NotFoundError(f"{name!r} names no dataset")
    return dataset, array


#: Every handle alive, for `_flush_at_exit`.
_OPEN_HANDLES: "weakref.WeakSet[Atlas]" = weakref.WeakSet()

#: How long the exit flush waits for assignments other threads (daemons) have under way.
_EXIT_WAIT_SECONDS = 2.0


@atexit.register
def _flush_at_exit() -> None:
    """Flushes every handle with pending changes when the interpreter exits: a handle still
    referenced then is not collected before the native module is torn down (never, while
    a daemon thread is alive), so its changes would be lost without a word."""
    deadline = time.monotonic() + _EXIT_WAIT_SECONDS
    for handle in list(_OPEN_HANDLES):
        handle._flush_before_exit(deadline)


class Atlas(AttributeMethods):
    """A store: one directory of datasets, each holding arrays and attributes.

    Make one with `Atlas.create(path)` or `Atlas.open(path)`. Changes become durable at
    `flush()` (also `close()` and the end of a `with` block); a handle dropped with
    pending changes flushes them too. Handles may be used from several threads at once;
    every read, write and flush releases the GIL.
    """

    __slots__ = (
        "_native",
        "_pid",
        "_write_locks",
        "_write_locks_pid",
        "_exit_held",
        "_changes",
        "_change_lock",
        "_change_depth",
        "__weakref__",
    )

    def __init__(self, native: _atlas.Store) -> None:
        if not isinstance(native, _atlas.Store):
            raise TypeError("use Atlas.create(path) or Atlas.open(path)")
        self._native = native
        self._pid = os.getpid()
        self._write_locks: dict[tuple[str, str], threading.Lock] = {}
        self._write_locks_pid = self._pid
        # While the exit flush runs: the write locks made since it began, made held (see
        # `_write_lock`); else None.
        self._exit_held: Optional[list[threading.Lock]] = None
        # Odd while a change that leaves the generation as it is (a discard, a refresh, an
        # array or dataset deleted or defined) is under way, bumped twice by each: see
        # `_state`. Such changes run one at a time, under `_change_lock`; reentrant, as a
        # signal handler may run one inside another on the main thread (`_change_depth`).
        self._changes = 0
        self._change_lock = threading.RLock()
        self._change_depth = 0
        _OPEN_HANDLES.add(self)

    def __reduce__(self) -> Any:
        refuse_pickle(self)

    def _forked(self) -> None:
        """In a forked child, drops what the parent's threads held at the fork (they are not
        here to release a lock or finish a change). Under `_LOCKS_LOCK`."""
        if self._write_locks_pid != os.getpid():
            self._write_locks, self._write_locks_pid, self._changes = {}, os.getpid(), 0
            self._change_lock, self._change_depth = threading.RLock(), 0

    def _bump_changes(self) -> None:
        with _LOCKS_LOCK:  # `+=` is not atomic on every Python this module supports
            self._forked()
            self._changes += 1

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Marks a change that keeps the generation but may replace what a read sees."""
        with self._changes_held_off():
            # Bumped by the outermost block only: one a signal handler runs inside another
            # would leave the count even, no change under way.
            self._change_depth += 1
            if self._change_depth == 1:
                self._bump_changes()
            try:
                yield
            finally:
                self._change_depth -= 1
                if self._change_depth == 0:
                    self._bump_changes()

    def _changes_held_off(self) -> "threading.RLock":
        """The lock each `_changing` block holds: held, no such change runs (a read of
        several native calls that changes kept sending again holds it to finish)."""
        with _LOCKS_LOCK:
            self._forked()
            return self._change_lock

    def _state(self) -> Optional[tuple[int, int]]:
        """What a read of several native calls compares before and after to know it saw one
        state of the store: `None` while a change is under way."""
        with _LOCKS_LOCK:
            self._forked()
            changes = self._changes
        return None if changes % 2 else (self._native.generation, changes)

    def _write_lock(self, dataset: str, array: str) -> threading.Lock:
        """The lock that runs `arr[...] = value`, `write` and `append` on one array one at a
        time among this handle's threads: an assignment through a step reads, changes and
        writes back its boxes, and a write in between would be lost. Other handles need no
        share of it: while one has unflushed changes the others cannot write."""
        with _LOCKS_LOCK:
            self._forked()
            lock = self._write_locks.get((dataset, array))
            if lock is None:
                lock = self._write_locks[(dataset, array)] = threading.Lock()
                if self._exit_held is not None:
                    # The exit flush holds every write lock, this new one too: an assignment
                    # begun now waits until the flush has committed without it.
                    lock.acquire()
                    self._exit_held.append(lock)
            return lock

    def __del__(self) -> None:
        self._flush_when_done("collected")

    def _flush_before_exit(self, deadline: float) -> None:
        """`_flush_when_done` at the interpreter's exit, holding this handle's locks, so
        that an assignment of several writes another thread (a daemon) has under way is not
        committed half done: it may finish until `deadline`, and none begins after. One that
        does not finish leaves the changes uncommitted, with a warning."""
        if self._pid != os.getpid() or not self._native.has_pending_changes:
            return
        with _LOCKS_LOCK:
            self._forked()
            locks = [lock for _, lock in sorted(self._write_locks.items())] + [self._change_lock]
            self._exit_held = []
        with contextlib.ExitStack() as held:
            held.callback(self._release_exit_held)
            for lock in locks:  # write locks before the change lock, as reads take them
                if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    warnings.warn(
                        f"atlas: {self._native.path}: not flushed at exit: another thread's "
                        "assignment was still under way, and committing half of it would tear it",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    return
                held.callback(lock.release)
            self._flush_when_done("open at exit")

    def _release_exit_held(self) -> None:
        """Ends the exit flush's hold on the write locks made while it ran."""
        with _LOCKS_LOCK:
            made, self._exit_held = self._exit_held or [], None
        for lock in made:
            lock.release()

    def _flush_when_done(self, when: str) -> None:
        """The flush of pending changes when the handle is collected or the interpreter
        exits, made here so that a failure shows as a warning (the native drop would only
        log it) and the GIL is released while it runs. A forked child leaves the parent's
        changes to the parent."""
        try:
            if getattr(self, "_pid", None) != os.getpid() or not self._native.has_pending_changes:
                return
            self._native.flush()
        except Exception as e:  # noqa: BLE001 - nothing may escape __del__ or atexit
            try:
                warnings.warn(
                    f"atlas: flushing {self._native.path} when its handle was {when} failed: {e}",
                    RuntimeWarning,
                    stacklevel=2,
                )
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass

    @staticmethod
    def create(
        source: PathLike,
        codec: str = "zstd",
        meta_format: str = "json",
        meta_compression: str = "none",
        *,
        shuffle: Any = "auto",
        max_meta_bytes: Optional[int] = None,
        max_chunk_bytes: Optional[int] = None,
        staging_bytes: Optional[int] = None,
        chunk_cache_bytes: Optional[int] = None,
    ) -> "Atlas":
        """Creates a store in `source` (a directory, created if missing, that must be empty).

        codec: `"zstd"` (level 3), `"zstd:<level>"`, `"lz4"`, `"none"` (or `"uncompressed"`).
        meta_format: `"json"` or `"msgpack"` (`"mp"`); meta_compression: `"none"`, `"zstd"`,
        `"lz4"`. shuffle: byte shuffle before the codec, `"auto"` (on for dtypes wider than
        one byte, unless the codec is none), `"on"`, `"off"`, a bool, `"bytedelta"`
        (shuffle, then each byte plane stored as the differences between its bytes: smaller
        blocks of smooth data, a little slower to read) or `"delta"` (each element stored as
        its difference from the one before, then shuffle: for steady series such as
        timestamps, counters and coordinates). The limits and
        memory budgets are those of `Atlas.open`, for the handle returned.
        """
        sizes = _sizes(max_meta_bytes, max_chunk_bytes, staging_bytes, chunk_cache_bytes)
        return Atlas(
            _atlas.Store.create(
                _path(source), codec, shuffle_arg(shuffle) or "auto", meta_format, meta_compression, **sizes
            )
        )

    @staticmethod
    def open(
        source: PathLike,
        mode: Optional[str] = None,
        *,
        create: bool = False,
        max_meta_bytes: Optional[int] = None,
        max_chunk_bytes: Optional[int] = None,
        staging_bytes: Optional[int] = None,
        chunk_cache_bytes: Optional[int] = None,
        read_only: bool = False,
    ) -> "Atlas":
        """Opens the store in `source`; its metadata encoding is found from the file name.

        max_meta_bytes (default 1 GiB) bounds the metadata file, on disk and decompressed;
        max_chunk_bytes (default 256 MiB) bounds the raw chunk of every array. Lower them to
        open an untrusted store cheaply: a store with any file or array asking for more
        raises `LimitExceededError` at the open, before anything that large is allocated
        (the limits are on the store, not on one read).

        What the handle keeps in memory: staging_bytes (default 64 MiB) of raw chunks of
        small writes (each counted as at least 256 bytes), encoded at the flush instead of
        at each write; chunk_cache_bytes
        (default 32 MiB) of decoded chunks, so a loop of small reads decodes each chunk
        once. 0 keeps none.

        create: where `source` holds no store (nothing there, or an empty directory), make
        one with `Atlas.create`'s defaults first (h5py's and zarr's mode "a"), so that a
        notebook cell can run again.

        read_only: every change through the handle raises `ReadOnlyError` (h5py's and zarr's
        mode "r"), so that a stray assignment in a notebook changes nothing; it takes no
        writer lock and needs no write permission.

        mode, as h5py and zarr spell these: "r" is read_only, "a" is create, "r+" neither.
        """
        modes = {None: {}, "r+": {}, "r": {"read_only": True}, "a": {"create": True}}
        if mode not in modes:
            raise InvalidArgumentError(
                f"mode {mode!r}: 'r' (read-only), 'r+' (read and write) or 'a' (made if missing); "
                "Atlas.create makes a new store"
            )
        create = create or modes[mode].get("create", False)
        read_only = read_only or modes[mode].get("read_only", False)
        sizes = _sizes(max_meta_bytes, max_chunk_bytes, staging_bytes, chunk_cache_bytes)
        path = _path(source)
        if read_only and create:
            raise InvalidArgumentError("mode 'a' or create=True makes a store to write; it cannot be read-only")
        try:
            return Atlas(_atlas.Store.open(path, **sizes, read_only=read_only))
        except StoreNotFoundError:
            if not create:
                raise
        try:
            return Atlas(_atlas.Store.create(path, "zstd", "auto", "json", "none", **sizes))
        except AlreadyExistsError as taken:
            # Another process may have made it, or be making it: its metadata comes a
            # moment after `data/`.
            deadline = time.monotonic() + _CREATE_WAIT_SECONDS
            while True:
                try:
                    return Atlas(_atlas.Store.open(path, **sizes))
                except StoreNotFoundError:
                    if not _being_created(path) or time.monotonic() > deadline:
                        raise taken from None  # other entries are there
                    time.sleep(0.01)

    # --- properties ---------------------------------------------------------------------
    @property
    def path(self) -> str:
        """The store's directory, made absolute when it was opened (a later `os.chdir`
        does not move the handle)."""
        return str(self._native.path)

    @property
    def meta_file_name(self) -> str:
        """The metadata file the next commit writes, e.g. `atlas.json`."""
        return self._native.meta_file_name

    @property
    def codec(self) -> str:
        """The store's codec for new blocks, e.g. `"zstd:3"`."""
        return self._native.codec

    @property
    def shuffle(self) -> str:
        """The store's shuffle setting for new blocks: `"auto"`, `"on"`, `"off"`,
        `"bytedelta"` or `"delta"`."""
        return self._native.shuffle

    @property
    def generation(self) -> int:
        """The number of the commit this handle sees (0 for a new store)."""
        return self._native.generation

    @property
    def has_pending_changes(self) -> bool:
        """Whether changes made through this store's handles are not yet committed."""
        return self._native.has_pending_changes

    # --- datasets -----------------------------------------------------------------------
    def create_dataset(self, name: str, *h5py_args: Any, **h5py_kwargs: Any) -> "DatasetView":
        """Creates the dataset `name` (`AlreadyExistsError` if there is one). An Atlas
        dataset is a group of arrays (h5py's `create_group`); arrays are made in it with
        `ds[name] = data` or `ds.define_array`."""
        if h5py_args or h5py_kwargs:
            given = ", ".join([repr(a) for a in h5py_args] + sorted(h5py_kwargs))
            raise TypeError(
                f"create_dataset takes a name only (got {given}): an Atlas dataset is a group of arrays, as h5py's "
                "create_group makes; make an array in it with store.create_dataset(name)[array] = data"
            )
        return DatasetView(self._native.create_dataset(name), self)

    def open_dataset(self, name: str) -> "DatasetView":
        """The dataset `name`; `NotFoundError` (a `KeyError`) if there is none."""
        return DatasetView(self._native.open_dataset(name), self)

    def require_dataset(self, name: str) -> "DatasetView":
        """The dataset `name`, created if the store has none of that name (h5py's
        `require_group`), so that a notebook cell can run again."""
        try:
            return self.open_dataset(name)
        except NotFoundError:
            pass
        try:
            return self.create_dataset(name)
        except AlreadyExistsError:
            return self.open_dataset(name)  # another writer made it meanwhile

    def delete_dataset(self, name: str) -> None:
        """Deletes the dataset `name` with its arrays and attributes."""
        with self._changing():
            self._native.delete_dataset(name)

    def move(self, source: str, dest: str) -> None:
        """Renames a dataset (`store.move("run1", "run2")`) or moves an array, within its
        dataset or to another (`store.move("run1/temp", "run2/t")`), as h5py's
        `group.move`. Only the metadata changes, at the next flush: no block is copied.
        Handles on the old name (`store["run1"]`, an `Array`) go by name and raise
        `NotFoundError` afterwards. Raises `NotFoundError` for a missing source (or
        destination dataset), `AlreadyExistsError` where the destination is taken."""
        (from_dataset, from_array), (to_dataset, to_array) = _dataset_key(source), _dataset_key(dest)
        if (from_array is None) != (to_array is None):
            raise InvalidArgumentError(
                f"move {source!r} to {dest!r}: both name datasets (\"run1\") or both arrays (\"run1/temp\")"
            )
        if from_array is None:
            with self._holding_write_locks(self._dataset_write_keys(from_dataset, to_dataset)), self._changing():
                self._native.rename_dataset(from_dataset, to_dataset)
        else:
            self._move_array((from_dataset, from_array), (to_dataset, to_array))

    def _move_array(self, source: tuple[str, str], dest: tuple[str, str]) -> None:
        """Moves array `source` to `dest` (each `(dataset, array)`), not in the middle of an
        assignment to either: one of several writes must not land in another array."""
        with self._holding_write_locks([source, dest]), self._changing():
            self._native.move_array(source, dest)
            # After the move, which changes nothing if it fails.
            if source != dest:
                self._coordinate_moved(source[0], source[1], dest[1] if dest[0] == source[0] else None)

    def _coordinate_moved(self, dataset: str, name: str, new_name: Optional[str]) -> None:
        """Keeps `dataset`'s list of xarray coordinates true once its array `name` is renamed
        to `new_name` (a coordinate keeps its role under its new name) or deleted or moved
        to another dataset (`None`): a name left in the list would make a later array of
        that name a coordinate."""
        from ._xarray import COORDS_KEY

        attrs = self.open_dataset(dataset).attrs
        coords = attrs.get(COORDS_KEY)
        if isinstance(coords, list) and name in coords:
            kept = [n for n in coords if n != name or new_name is not None]
            attrs[COORDS_KEY] = [new_name if n == name else n for n in kept]

    def _dataset_write_keys(self, *datasets: str) -> list[tuple[str, str]]:
        """The `(dataset, array)` of every array of `datasets` and of every write lock made
        for one of them."""
        keys = []
        for dataset in datasets:
            with contextlib.suppress(NotFoundError):
                keys += [(dataset, array) for array in self._native.open_dataset(dataset).list_arrays()]
        with _LOCKS_LOCK:
            keys += [key for key in self._write_locks if key[0] in datasets]
        return keys

    @contextlib.contextmanager
    def _holding_write_locks(self, keys: Sequence[tuple[str, str]]) -> Iterator[None]:
        """Holds the write locks of `keys`, so that no assignment to those arrays is under
        way meanwhile. None is held while waiting for another: the exit flush (or another
        mover) may hold that one and wait for one held here. A signal handler that moves an
        array whose assignment it interrupted waits for itself, as one assigning to it would:
        the locks are plain ones, which Ctrl-C cannot leave taken."""
        locks = [self._write_lock(dataset, array) for dataset, array in sorted(set(keys))]
        while True:
            held = []
            for lock in locks:
                if not lock.acquire(blocking=False):
                    break
                held.append(lock)
            else:
                break
            for taken in held:
                taken.release()
            lock.acquire()  # until the busy one is free; then all are tried again
            lock.release()
        try:
            yield
        finally:
            for lock in held:
                lock.release()

    def copy(self, source: Union[str, Array], dest: str) -> Array:
        """Copies an array to `dest` ("run2/temp"; the dataset must exist): `source` is a
        path in this store ("run1/temp") or an `Array` of any store. See
        `DatasetView.copy` for what is copied and how."""
        array = self[source] if isinstance(source, str) else source
        if not isinstance(array, Array):
            raise InvalidArgumentError(f"copy {source!r}: copies an array (DATASET/ARRAY), not a dataset")
        dataset, name = _dataset_key(dest)
        if name is None:
            raise InvalidArgumentError(f"copy to {dest!r}: the destination is an array, DATASET/ARRAY")
        return self.open_dataset(dataset).copy(array, name)

    def list_datasets(self) -> list[str]:
        """The datasets' names, sorted."""
        return self._native.list_datasets()

    def list_arrays(self) -> list[str]:
        """Distinct array names over all datasets, sorted."""
        return self._native.list_arrays()

    def dataset_exists(self, name: str) -> bool:
        """Whether the store has a dataset `name`."""
        return self._native.dataset_exists(name)

    def __getitem__(self, name: str) -> Any:
        """`store["run42"]` is a dataset (`DatasetView`), `store["run42/temp"]` its array
        `temp` (`Array`), as h5py's `f["group/dataset"]`, a leading `/` allowed (and a
        trailing one after a dataset, `"run42/"`, as `atlas ls` takes it); names never
        hold a `/`. Typed `Any`, as h5py's is: which one depends on the text, and a union
        would make type checkers refuse `store["run42/temp"][0:10]`."""
        dataset, array = _dataset_key(name)
        return self.open_dataset(dataset) if array is None else self.open_dataset(dataset)[array]

    def __delitem__(self, name: str) -> None:
        """`del store["run42"]` (or `"run42/"`) deletes a dataset, `del store["run42/temp"]`
        an array."""
        dataset, array = _dataset_key(name)
        if array is None:
            self.delete_dataset(dataset)
        else:
            self.open_dataset(dataset).delete_array(array)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        dataset, array = _store_key(name)
        if not self._native.dataset_exists(dataset):
            return False
        return array is None or ("/" not in array and array in self.open_dataset(dataset))

    def __iter__(self):
        return iter(self._native.list_datasets())

    def __len__(self) -> int:
        return len(self._native.list_datasets())

    def keys(self) -> list[str]:
        """The datasets' names, sorted (as `list_datasets()`)."""
        return self._native.list_datasets()

    def values(self) -> list["DatasetView"]:
        """Every dataset, in name order."""
        return [self[name] for name in self.keys()]

    def items(self) -> list[tuple[str, "DatasetView"]]:
        """(name, dataset) pairs, in name order."""
        return [(name, self[name]) for name in self.keys()]

    def get(self, name: str, default: Any = None) -> Any:
        """The dataset `name`, or `default` if there is none."""
        return self[name] if name in self else default

    # --- lifecycle ----------------------------------------------------------------------
    def flush(self) -> None:
        """Commits every change atomically: the durability boundary. After an error,
        `has_pending_changes` tells whether anything was committed: `True`, nothing was
        (retry, or `discard()` and redo); `False`, the changes are committed and only
        making them durable failed (redoing them would apply them twice)."""
        self._native.flush()

    def close(self) -> None:
        """Same as `flush()` (the handle stays usable), as in atlas-python 0.10."""
        self._native.flush()

    def discard(self) -> None:
        """Drops every change since the last commit (made through any handle of this store):
        they are never committed, the writer lock is released, and reads see the last commit
        again. Does nothing without pending changes."""
        with self._changing():
            self._native.discard()

    def refresh(self) -> None:
        """Moves this handle to the newest commit on disk (other writers' flushes)."""
        with self._changing():  # it may drop a session without a new commit to show for it
            self._native.refresh()

    def compact(self) -> dict[str, int]:
        """Commits pending changes, then rewrites the live blocks into one fragment and drops
        the rest. Returns fragments and bytes before and after, blocks kept and dropped."""
        return self._native.compact()

    def verify(self) -> dict[str, Any]:
        """Decodes every live block and checks its checksum, and its index statistics against
        the chunk (what queries skipping blocks by min and max trust); a block of a chunk
        outside its array's shape is reported too. Returns `blocks_checked`, `bad_blocks`
        (array, coord, path, offset_bytes, and the error each would raise) and `bad_stats`
        (array, and the `persisted` statistics the metadata keeps where they are not the
        `merged` ones of its blocks, with `unsound`: what is wrong in them by their own
        checks, else None; a metadata file edited by hand)."""
        return self._native.verify()

    def set_codec(self, codec: str, shuffle: Any = None) -> None:
        """The codec (and, when given, shuffle) for new blocks of arrays without their own.
        Blocks already written keep theirs; every read decodes each block with its own."""
        self._native.set_codec(codec, shuffle_arg(shuffle))

    def recompress(self, codec: str, shuffle: Any = None) -> None:
        """Re-encodes every block of every array with `codec` and makes it the default (the
        arrays' own codecs are cleared); `shuffle` likewise when given, else each array
        keeps the shuffle it has."""
        self._native.recompress(codec, shuffle_arg(shuffle))

    def set_meta_format(self, meta_format: Optional[str] = None, meta_compression: Optional[str] = None) -> None:
        """Changes the metadata file's encoding at the next flush: `meta_format` `"json"` or
        `"msgpack"`, `meta_compression` `"none"`, `"zstd"` or `"lz4"`; the one not given
        stays as it is (as `atlas convert-meta` does)."""
        self._native.set_meta_format(meta_format, meta_compression)

    def __enter__(self) -> "Atlas":
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        # Also on an exception: the changes made before it are committed, as a dropped
        # handle commits them; call `discard()` in the block to drop them instead.
        self.close()

    # --- attributes ---------------------------------------------------------------------
    @property
    def attrs(self) -> Attributes:
        """The store's attributes (dict-like, writes through)."""
        return Attributes(self._native.attrs())


    # --- many datasets ------------------------------------------------------------------
    def read_array_across(
        self,
        array: str,
        dataset_names: Sequence[str],
        start: Optional[Sequence[int]] = None,
        shape: Optional[Sequence[int]] = None,
    ) -> list[Optional[np.ndarray]]:
        """One array per dataset, in order; `None` where a dataset (or its array) is missing.
        With `start`/`shape` omitted each dataset's whole array is read. A box reaching past
        an array's end raises `OutOfBoundsError`, as `read` does (`read_array_across_stacked`
        reads it as the fill value instead). Reads one box from every dataset in one
        parallel call where the boxes agree. The arrays may differ in dtype (each is read
        as its own, where the stacked read and Rust's `read_array_across` refuse a mix)."""
        names = _dataset_names(dataset_names)
        found = self._arrays_of(array, names)
        out: list[Optional[np.ndarray]] = [None] * len(names)
        if not found:
            return out
        shapes = {a.shape for _, a in found}
        dtypes = {a.atlas_dtype for _, a in found}
        first = found[0][1]
        box_start = _ints(start) if start is not None else [0] * first.ndim
        box_shape = _ints(shape) if shape is not None else [n - s for n, s in zip(first.shape, box_start)]
        # One stacked read where the box is inside every array: the stacked read fills what
        # is outside with the fill value, where a read of one array is refused.
        inside = all(
            len(a.shape) == len(box_start) == len(box_shape)
            and all(s + n <= e for s, n, e in zip(box_start, box_shape, a.shape))
            for _, a in found
        )
        # The stacked read takes one numeric dtype; strings and mixed dtypes are read one by one.
        one_numeric_dtype = len(dtypes) == 1 and "string" not in dtypes
        if one_numeric_dtype and inside and (shape is not None or (start is None and len(shapes) == 1)):
            stacked = self._native.read_across_stacked(array, [names[i] for i, _ in found], box_start, box_shape)
            for row, (i, _) in enumerate(found):
                out[i] = stacked[row, ...]  # an array also where each is 0-d
        else:
            for i, a in found:
                out[i] = a.read(start, shape)
        return out

    def read_array_across_stacked(
        self,
        array: str,
        dataset_names: Sequence[str],
        start: Optional[Sequence[int]] = None,
        shape: Optional[Sequence[int]] = None,
        device: Optional[str] = None,
    ) -> Any:
        """One array of shape `(len(dataset_names), *shape)`: row `i` is dataset `i`'s box.
        Every dataset must exist; where one lacks the array, or its array is shorter, the
        row reads as the fill value. `shape` defaults to the largest extent over the datasets.
        `device="cuda"` reads into GPU memory (a `CudaArray`; not for strings)."""
        names = _dataset_names(dataset_names)
        for name in names:
            if not self._native.dataset_exists(name):
                raise NotFoundError(f"dataset not found: {name}")
        found = self._arrays_of(array, names)
        if not found:
            raise NotFoundError(f"array not found: {array} (in none of {len(names)} datasets)")
        first = found[0][1]
        box_start = _ints(start) if start is not None else [0] * first.ndim
        if shape is None:
            if len(box_start) != first.ndim:
                raise _atlas.ShapeError(f"start {box_start} has {len(box_start)} dimensions, {array} has {first.ndim}")
            box_shape = [
                max(max(a.shape[d] - box_start[d], 0) for _, a in found if a.ndim == first.ndim)
                for d in range(first.ndim)
            ]
        else:
            box_shape = _ints(shape)
        if first.atlas_dtype != "string" or device not in (None, "cpu"):
            return self._native.read_across_stacked(array, names, box_start, box_shape, device)
        # As the native read checks the other dtypes: one dtype and rank in every dataset.
        first_label = f"{names[found[0][0]]}/{array}"
        for i, a in found:
            label = f"{names[i]}/{array}"
            if a.atlas_dtype != "string":
                raise _atlas.DTypeMismatchError(f"dtype mismatch on {label}: it holds {a.atlas_dtype}, {first_label} string")
            if a.ndim != first.ndim:
                raise _atlas.ShapeError(f"{label} has shape {a.shape}, {first_label} {first.shape}: not one rank")
        out = np.full((len(names), *box_shape), "", dtype=object)
        for i, a in found:
            clipped = [max(min(s + n, extent) - s, 0) for s, n, extent in zip(box_start, box_shape, a.shape)]
            if all(clipped):
                out[(i, *(slice(0, c) for c in clipped))] = a.read(box_start, clipped)
        return out

    def _arrays_of(self, array: str, names: list[str]) -> list[tuple[int, Array]]:
        found = []
        for i, name in enumerate(names):
            if not self._native.dataset_exists(name):
                continue
            dataset = self._native.open_dataset(name)
            if dataset.has_array(array):
                found.append((i, Array(dataset.array(array), self)))
        return found

    # --- xarray -------------------------------------------------------------------------
    def add_xarray_dataset(
        self,
        ds: Any,
        name: str,
        chunks: Optional[dict[str, Sequence[int]]] = None,
        fill_value: Any = None,
    ) -> None:
        """Writes an `xarray.Dataset` as a new dataset `name` (not flushed). `chunks` gives
        variables their chunk shapes (`{"temp": [24, 90, 180]}`; others keep their dask
        chunks or Atlas's default); `fill_value` a value for every float variable (and
        integer ones where whole) or per variable (`{"temp": -999.0}`). Keys that name no
        variable are refused."""
        from . import _xarray

        _xarray.add_xarray_dataset(self, ds, name, chunks=chunks, fill_value=fill_value)

    def open_as_xarray_dataset(self, name: str) -> Any:
        """Dataset `name` as an `xarray.Dataset` (chunked arrays dask-backed when dask is installed)."""
        from . import _xarray

        return _xarray.open_as_xarray_dataset(self, name)

    def open_as_many_xarray_dataset(
        self, names: Sequence[str], concat_dim: str = "dataset", parallel: bool = True
    ) -> Any:
        """Many datasets stacked along `concat_dim` as one `xarray.Dataset` (eager numpy).
        Each must hold the first's variables with the same shapes and coordinate values
        (`InvalidArgumentError` otherwise); attributes come from the first. `parallel` is
        accepted for compatibility: the stacked read is always parallel."""
        from . import _xarray

        return _xarray.open_as_many_xarray_dataset(self, names, concat_dim=concat_dim)

    # --- views --------------------------------------------------------------------------
    def __repr__(self) -> str:
        return (
            f"<atlas.Atlas {self.path!r} datasets={len(self._native.list_datasets())} "
            f"codec={self.codec} meta={self.meta_file_name}>"
        )

    def _repr_html_(self) -> str:
        return _html.store_html(self)


class DatasetView(AttributeMethods):
    """A dataset of a store: arrays and attributes. `ds["temp"]` is an `Array` handle."""

    __slots__ = ("_native", "_store")

    def __reduce__(self) -> Any:
        refuse_pickle(self)

    def __init__(self, native: _atlas.Dataset, store: Atlas) -> None:
        self._native = native
        self._store = store

    @property
    def name(self) -> str:
        """The dataset's name."""
        return self._native.name

    @property
    def store(self) -> Atlas:
        """The store holding the dataset."""
        return self._store

    def list_arrays(self) -> list[str]:
        """The arrays' names, sorted."""
        return self._native.list_arrays()

    def define_array(
        self,
        name: str,
        dtype: Any,
        dims: Optional[Sequence[str]] = None,
        shape: Optional[Sequence[int]] = None,
        chunk_shape: Optional[Sequence[int]] = None,
        fill_value: Any = None,
        *,
        codec: Optional[str] = None,
        shuffle: Any = None,
        chunks: Optional[Sequence[int]] = None,
    ) -> Array:
        """Defines an array and returns its handle.

        dtype: a name (`"float32"`, `"uint16"`, `"bool"`, `"timestamp_nanoseconds"`,
        `"string"`...), a numpy dtype or a Python type. dims: one name per axis (None:
        `dim_0`, `dim_1`...). shape: required, positionally after dims as in atlas-python
        0.10 or by name (`define_array("a", "f4", shape=(3, 4))`). chunk_shape (or `chunks`,
        as h5py and zarr name it, and as `Array.chunks` reads it back): default about 1 MiB
        per chunk (less under a smaller `max_chunk_bytes`). fill_value: read where nothing
        was written (default 0, NaT for timestamps; a string array's is the empty string,
        the only one it takes). codec,
        shuffle: the array's own settings for new blocks (default: follow the store's).
        """
        if shape is None:
            raise TypeError("define_array needs a shape: define_array(name, dtype, dims, shape) or shape=...")
        if chunks is not None:
            if chunk_shape is not None:
                raise TypeError("define_array takes chunk_shape or chunks (the same thing), not both")
            chunk_shape = chunks
        if isinstance(chunk_shape, (bool, str)):
            raise TypeError(
                f"chunks takes one length per axis (chunks=(100, 512)), not {chunk_shape!r}; "
                "leave it out for the default of about 1 MiB a chunk"
            )
        atlas_dtype = dtype_name(dtype)
        if atlas_dtype == "timestamp" and fill_value is not None:
            if isinstance(fill_value, int) and not -(2**63) <= fill_value < 2**63:
                text = str(fill_value)
                shown = text if len(text) <= 32 else f"{text[:32]}... ({len(text)} characters)"
                raise InvalidArgumentError(f"fill value {shown} is out of range for timestamp (int64 nanoseconds)")
            # A datetime, a date or an ISO string, as an assignment takes them.
            fill_value = timestamps(fill_value, f"{self.name}/{name}")[()]
        with self._store._changing():
            native = self._native.define_array(
                name,
                atlas_dtype,
                _ints(shape),
                dims=_dim_names(dims),
                chunk_shape=_ints(chunk_shape),
                fill_value=fill_value,
                codec=codec,
                shuffle=shuffle_arg(shuffle),
            )
        return Array(native, self._store)

    def __getitem__(self, name: str) -> Array:
        _refuse_non_name(name, 'ds["temp"]')
        return Array(self._native.array(name), self._store)

    def __delitem__(self, name: str) -> None:
        _refuse_non_name(name, 'ds["temp"]')
        self.delete_array(name)

    def __setitem__(self, name: str, data: Any) -> None:
        """`ds[name] = data`, as h5py's `group[name] = data`: a new array of `data`'s dtype
        and shape (default chunks, the store's codec), holding `data` once flushed. A 1-d
        array's axis is named after the array (netCDF's coordinate variable: it labels the
        axes of that name in other arrays, in xarray too), unless another array has an axis
        of that name and another length; an `xarray.DataArray` gives its own axis names (where
        no other array has an axis of one of those names and another length). A
        name in use is refused (`AlreadyExistsError`): assign into that array with
        `ds[name][...] = data`."""
        _refuse_non_name(name, 'ds["temp"] = data')
        given = getattr(data, "dims", None)  # an xarray.DataArray's axis names
        data = _defining(data, f"{self.name}/{name}")
        named = isinstance(given, tuple) and len(given) == data.ndim and all(isinstance(d, str) for d in given)
        if named and all(self._axis_fits(d, n) for d, n in zip(given, data.shape)):
            dims = list(given)
        else:
            dims = [name] if data.ndim == 1 and self._axis_fits(name, len(data)) else None
        exists = f"array already exists: {self.name}/{name}; assign into it with ds[{name!r}][...] = data"
        with self._making(name, exists):
            self.define_array(name, data.dtype, dims, data.shape)._assign(..., data)

    def copy(self, source: Array, name: str) -> Array:
        """A new array `name` holding what `source` (an `Array`, of this store or another)
        holds: its dtype, shape, chunks, dims, fill value, attributes and own codec and
        shuffle (where it has none, the new one follows this store's); whether it is an
        xarray coordinate is its dataset's to say, and not copied. From this store handle,
        its blocks are copied as stored (no decode, checksums kept; Rust's `copy_array`),
        as it is at that moment; from another, its written chunks are read and written
        again, one at a time (memory: a chunk, and the list of written chunks), so changes
        made to it meanwhile may show in some chunks. A never-written chunk takes nothing
        either way. Done whole or not at all: a failure leaves no array `name`.
        `AlreadyExistsError` where the name is taken; `store.move` renames without
        copying."""
        if not isinstance(source, Array):
            raise TypeError(f"copy takes an Array (store['run1/temp']), not {type(source).__name__}")
        _refuse_non_name(name, 'ds.copy(store["run1/temp"], "temp")')
        if source._store is self._store:
            keys = [(source.dataset, source.name), (self.name, name)]
            # Not in the middle of an assignment to the source: it is copied whole or not.
            with self._store._holding_write_locks(keys), self._store._changing():
                self._store._native.copy_array(keys[0], keys[1])
            return self[name]
        meta = source.meta
        with self._making(name, f"array already exists: {self.name}/{name}"):
            target = self.define_array(
                name,
                meta["dtype"],
                list(meta["dims"]),
                meta["shape"],
                meta["chunk_shape"],
                meta["fill_value"],
                codec=meta["codec"],
                shuffle=meta["shuffle"],
            )
            for key, value in source.attrs.items():
                target.attrs[key] = value
            shape, chunks = meta["shape"], meta["chunk_shape"]
            for block in source.blocks():
                start = [c * n for c, n in zip(block["coord"], chunks)]
                extent = [min(n, end - first) for n, end, first in zip(chunks, shape, start)]
                if not block["is_fill"] and all(e > 0 for e in extent):
                    # Under the new array's write lock already (`_making`): not `write`.
                    data = for_write(source.read(start, extent), meta["dtype"], f"{self.name}/{name}")
                    target._native.write(start, data)
        return target

    @contextlib.contextmanager
    def _making(self, name: str, exists: str) -> Iterator[None]:
        """Runs the making of new array `name` (its definition and first writes) as one
        change: refused (`AlreadyExistsError`, with `exists`) where the name is taken on the
        newest commit, and undone whole if it fails."""
        native = self._store._native
        try:
            hold = native.begin_change()
        except LockedError:
            if self._native.has_array(name):  # the more useful refusal, as define_array gives it
                raise AlreadyExistsError(exists) from None
            raise
        try:
            # Holding the lock, the handle is on the newest commit: a name another writer
            # freed is free here.
            if self._native.has_array(name):
                raise AlreadyExistsError(exists)
            try:
                # Under the array's write lock from before it exists, so that an exit flush
                # (which waits for write locks) commits the array with its values or not at all.
                with self._store._write_lock(self.name, name):
                    yield
            except BaseException:
                # Nothing of it was committed: as if never defined. When the changes are all
                # its own, the whole session goes (the lock, and the blocks written before the
                # failure); else the array, if defined (an interrupt may come anywhere), is
                # deleted, without hiding the failure.
                with self._store._changing():  # a discard, when it is one
                    abandoned = native.abandon(hold)
                if not abandoned and self._native.has_array(name):
                    with contextlib.suppress(AtlasError):
                        self.delete_array(name)
                raise
        finally:
            native.release_if_unchanged(hold)

    def _axis_fits(self, dim: str, length: int) -> bool:
        """Whether every axis named `dim` in this dataset's arrays is `length` long."""
        return all(n == length for n in self._native.dim_lengths(dim))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._native.has_array(name)

    def __iter__(self):
        return iter(self._native.list_arrays())

    def __len__(self) -> int:
        return len(self._native.list_arrays())

    def keys(self) -> list[str]:
        """The arrays' names, sorted (as `list_arrays()`)."""
        return self._native.list_arrays()

    def values(self) -> list[Array]:
        """Every array, in name order."""
        return [self[name] for name in self.keys()]

    def items(self) -> list[tuple[str, Array]]:
        """(name, array) pairs, in name order."""
        return [(name, self[name]) for name in self.keys()]

    def get(self, name: str, default: Any = None) -> Any:
        """The array `name`, or `default` if there is none."""
        return self[name] if name in self else default

    def _maybe(self, name: str) -> Optional[Array]:
        """The array, or None where atlas-python 0.10 returned None for a missing one."""
        try:
            return Array(self._native.array(name), self._store)
        except NotFoundError:
            self._native.list_arrays()  # raises if the dataset itself is gone
            return None

    def write_array(self, name: str, start: Sequence[int], data: Any) -> None:
        """Writes `data` with its first element at `start`, as `Array.write` does."""
        self[name].write(start, data)

    def read_array(
        self,
        name: str,
        start: Optional[Sequence[int]] = None,
        shape: Optional[Sequence[int]] = None,
        device: Optional[str] = None,
        verify_checksums: bool = True,
    ) -> Any:
        """The box `start .. start + shape` (default: the whole array, or from `start` to the
        end); `None` if the dataset has no such array. `device="cuda"` reads into GPU memory
        (see `Array.read`); `verify_checksums=False` skips each block's checksum."""
        array = self._maybe(name)
        return None if array is None else array.read(start, shape, device, verify_checksums)

    def read_arrays(
        self, names: Sequence[str], start: Optional[Sequence[int]] = None, shape: Optional[Sequence[int]] = None
    ) -> dict[str, Optional[np.ndarray]]:
        """`{name: array or None}`, the same box of each."""
        return {name: self.read_array(name, start, shape) for name in _names(names, "names")}

    def delete_array(self, name: str) -> None:
        """Deletes the array `name` and its blocks (reclaimed by `compact()`), and its name
        from the dataset's xarray coordinates."""
        with self._store._changing():
            self._native.delete_array(name)
            self._store._coordinate_moved(self.name, name, None)

    def move(self, source: str, dest: str) -> None:
        """Renames array `source` of this dataset to `dest` (`ds.move("temp", "t")`), as
        h5py's `group.move`; `store.move` moves one to another dataset. Only the metadata
        changes: see `Atlas.move`."""
        _refuse_non_name(source, 'ds.move("temp", "t")')
        _refuse_non_name(dest, 'ds.move("temp", "t")')
        self._store._move_array((self.name, source), (self.name, dest))

    def array_meta(self, name: str) -> Optional[dict[str, Any]]:
        """`{"dtype", "shape", "chunk_shape", "dimension_names", "fill_value", "codec",
        "shuffle"}`, or None if there is no such array."""
        array = self._maybe(name)
        return None if array is None else array.compat_meta()

    def array_stats(self, name: str) -> Optional[dict[str, Any]]:
        """`{"row_count", "null_count", "min", "max", "count", "sum", "mean"}` (current, no
        flush needed), or None if there is no such array."""
        array = self._maybe(name)
        return None if array is None else array.stats

    def array_fill_value(self, name: str) -> Any:
        """The array's fill value, or None if there is no such array."""
        array = self._maybe(name)
        return None if array is None else array.fill_value

    @property
    def attrs(self) -> Attributes:
        """The dataset's attributes (dict-like, writes through)."""
        return Attributes(self._native.attrs())


    def __repr__(self) -> str:
        return shown(lambda: f"<atlas.DatasetView {self.name!r} arrays={len(self._native.list_arrays())}>", self._gone())

    def _gone(self) -> str:
        return f"<atlas.DatasetView {self.name!r} (deleted)>"

    def _repr_html_(self) -> str:
        return shown(lambda: _html.dataset_html(self), escape(self._gone()))


def _defining(data: Any, label: str) -> np.ndarray:
    """`data` as `ds[name] = data` stores it: as numpy makes it an array, but where numpy
    keeps objects, text (str, bytes; None, and pandas' missing NaN or NA, as the empty
    string) makes a string array and dates and times (`datetime`, `date`, None) a timestamp
    array; other objects, and masked elements of a masked array, are refused."""
    array = np.asarray(unmasked(data, label))
    if array.dtype.kind != "O":
        return array
    values = [v for v in array.ravel() if v is not None]
    if not values and array.size:
        raise DTypeMismatchError(f"data for array {label} is all None, which makes no Atlas dtype")
    present = [v for v in values if not is_missing_text(v)]
    if present and all(isinstance(v, (str, bytes)) for v in present):
        if len(present) == len(values):
            return array
        return np.array([None if is_missing_text(v) else v for v in array.ravel()], dtype=object).reshape(array.shape)
    if values and all(isinstance(v, datetime.date) for v in values):
        return timestamps(array, label)
    kinds = sorted({type(v).__name__ for v in values})
    nulls = " (None is a null only in string and timestamp arrays: use NaN in a float array)" if len(values) < array.size else ""
    raise DTypeMismatchError(
        f"data for array {label} holds Python objects ({', '.join(kinds)}) that make no Atlas dtype{nulls}: give a "
        "numpy array of the dtype wanted, or define the array first"
    )


def _dim_names(dims: Any) -> Optional[list[str]]:
    """One name per axis (one string for a 1-d array); anything but strings is refused
    rather than turned into its repr (`b'lat'`, `None`)."""
    if dims is None or isinstance(dims, str):
        return None if dims is None else [dims]
    names = list(dims)
    for d in names:
        if not isinstance(d, str):
            raise TypeError(f"dims must be strings, one per axis; got {d!r}")
    return names
