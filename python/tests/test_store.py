"""Stores: create/open, the six metadata encodings, datasets, lifecycle, views."""

import gc
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

import atlas

def meta_files(path):
    return sorted(f for f in os.listdir(path) if f.startswith("atlas.") and f != "atlas.lock")


META = [(f, c) for f in ("json", "msgpack") for c in ("none", "zstd", "lz4")]


@pytest.mark.parametrize("meta_format,meta_compression", META)
def test_each_metadata_encoding_reopens_without_naming_it(tmp_path, meta_format, meta_compression):
    path = tmp_path / "s"
    with atlas.Atlas.create(path, meta_format=meta_format, meta_compression=meta_compression) as store:
        ds = store.create_dataset("p")
        ds.define_array("t", "float32", ["z"], [10]).write([0], np.arange(10, dtype=np.float32))
        ds.set_attribute("station", "ST01")
        store.set_attribute("title", "x")
    ext = {"none": "", "zstd": ".zst", "lz4": ".lz4"}[meta_compression]
    assert meta_files(path) == [f"atlas.{meta_format}{ext}"]
    assert (path / f"atlas.{meta_format}{ext}").exists()
    reopened = atlas.Atlas.open(str(path))
    assert reopened.meta_file_name == f"atlas.{meta_format}{ext}"
    assert reopened["p"].read_array("t").tolist() == list(range(10))
    assert reopened["p"].get_attribute("station") == "ST01"
    assert reopened.get_attribute("title") == "x"


def test_aliases_of_atlas_python_010_are_accepted(tmp_path):
    a = atlas.Atlas.create(tmp_path / "a", codec="uncompressed", meta_format="mp", meta_compression="uncompressed")
    assert a.codec == "none" and a.meta_file_name == "atlas.msgpack"
    b = atlas.Atlas.create(tmp_path / "b", codec="zstd:9")
    assert b.codec == "zstd:9"
    with pytest.raises(atlas.InvalidArgumentError):
        atlas.Atlas.create(tmp_path / "c", codec="brotli")
    with pytest.raises(ValueError):
        atlas.Atlas.create(tmp_path / "d", meta_format="xml")
    with pytest.raises(ValueError):
        atlas.Atlas.create(tmp_path / "e", meta_compression="gzip")
    with pytest.raises(ValueError):
        atlas.Atlas.create(tmp_path / "f", codec="zstd:99")


def test_create_refuses_an_existing_store_and_open_a_missing_one(tmp_path):
    atlas.Atlas.create(tmp_path / "s")
    with pytest.raises(atlas.AlreadyExistsError):
        atlas.Atlas.create(tmp_path / "s")
    with pytest.raises(FileExistsError):  # atlas-python 0.10 callers catch this
        atlas.Atlas.create(tmp_path / "s")
    with pytest.raises(atlas.NotFoundError):
        atlas.Atlas.open(tmp_path / "missing")
    with pytest.raises(TypeError):
        atlas.Atlas.open(42)
    assert atlas.Atlas.open(bytes(tmp_path / "s")).path == str(tmp_path / "s"), "a bytes path, as open() takes"


def test_the_chunk_cache_serves_repeated_small_reads_unless_turned_off(tmp_path):
    with atlas.Atlas.create(tmp_path / "s") as store:
        store.create_dataset("d").define_array("x", "int64", None, [64], chunk_shape=[8])[:] = np.arange(64)
    for budgets, cached in (({}, True), ({"chunk_cache_bytes": 0}, False)):
        x = atlas.Atlas.open(tmp_path / "s", **budgets)["d/x"]
        assert x[0:4].tolist() == [0, 1, 2, 3]  # part of a chunk: decoded once, kept if cached
        block = x.blocks()[0]
        good = pathlib.Path(block["path"]).read_bytes()
        damaged = bytearray(good)
        damaged[block["offset_bytes"] + block["stored_bytes"] // 2] ^= 0xFF
        pathlib.Path(block["path"]).write_bytes(damaged)
        try:
            if cached:
                assert x[1:5].tolist() == [1, 2, 3, 4], "served from the cache"
            else:
                with pytest.raises((atlas.ChecksumMismatchError, atlas.CorruptError)):
                    x[1:5]
        finally:
            pathlib.Path(block["path"]).write_bytes(good)


def test_open_sets_what_the_handle_keeps_in_memory(tmp_path):
    atlas.Atlas.create(tmp_path / "s").create_dataset("d").define_array("x", "int32", None, [64], chunk_shape=[8])

    def first_block_after_a_small_write(**budgets):
        store = atlas.Atlas.open(tmp_path / "s", **budgets)
        x = store["d"]["x"]
        x[3] = 7
        assert x[0:8].tolist() == [0, 0, 0, 7, 0, 0, 0, 0]  # read back through the cache or not
        block = x.blocks()[0]
        store.discard()
        return block["staged"], block["pending"]

    assert first_block_after_a_small_write() == (True, True)
    assert first_block_after_a_small_write(chunk_cache_bytes=0) == (True, True)
    # With no staging budget the write encodes its block at once.
    assert first_block_after_a_small_write(staging_bytes=0, chunk_cache_bytes=0) == (False, True)
    for name in ("staging_bytes", "chunk_cache_bytes"):
        with pytest.raises(ValueError, match=name):
            atlas.Atlas.open(tmp_path / "s", **{name: -1})
        with pytest.raises(TypeError):
            atlas.Atlas.open(tmp_path / "s", **{name: 1.5})
        with pytest.raises(TypeError, match="not a bool"):
            atlas.Atlas.open(tmp_path / "s", **{name: True})
    assert first_block_after_a_small_write(staging_bytes=np.uint8(0), chunk_cache_bytes=0) == (False, True)


def test_create_takes_the_limits_and_budgets_open_takes(tmp_path):
    store = atlas.Atlas.create(tmp_path / "s", staging_bytes=0, max_meta_bytes=4096)
    x = store.create_dataset("d").define_array("x", "int32", None, [64], chunk_shape=[8])
    x[3] = 7
    assert x.blocks()[0]["staged"] is False  # encoded at once: no staging budget
    store.create_dataset("big").attrs["text"] = "x" * 8192
    with pytest.raises(atlas.LimitExceededError):  # the metadata would be over 4096 bytes
        store.flush()
    store.discard()
    with pytest.raises(ValueError, match="max_chunk_bytes"):
        atlas.Atlas.create(tmp_path / "t", max_chunk_bytes=-1)
    assert not (tmp_path / "t").exists()  # checked before anything was made


def test_datasets_list_exist_delete(store):
    for name in ["b", "a", "c"]:
        store.create_dataset(name)
    assert store.list_datasets() == ["a", "b", "c"]
    assert store.dataset_exists("a") and "a" in store and "zz" not in store
    assert list(store) == ["a", "b", "c"] and len(store) == 3
    store.delete_dataset("b")
    assert store.list_datasets() == ["a", "c"]
    with pytest.raises(KeyError):
        store.open_dataset("b")
    with pytest.raises(atlas.NotFoundError):
        store["b"]
    with pytest.raises(atlas.NotFoundError):
        store.delete_dataset("b")
    del store["c"]
    assert list(store) == ["a"]
    with pytest.raises(atlas.NotFoundError):
        del store["c"]
    with pytest.raises(atlas.AlreadyExistsError):
        store.create_dataset("a")
    assert store.open_dataset("a").name == "a"


def test_move_renames_datasets_and_moves_arrays_without_copying_blocks(tmp_path):
    path = tmp_path / "s"
    store = atlas.Atlas.create(path)
    run1 = store.create_dataset("run1")
    run1["temp"] = np.arange(1000, dtype="float32")
    run1["temp"].attrs["units"] = "degC"
    store.create_dataset("run2")
    store.flush()
    fragments = sorted(p.name for p in (path / "data").iterdir())

    old = store["run1/temp"]
    store.move("run1/temp", "/run2/t")
    with pytest.raises(atlas.NotFoundError):
        old[0]  # handles go by name
    store["run2"].move("t", "temperature")
    store.move("run2", "run3")
    with pytest.raises(atlas.NotFoundError):
        store["run2"]
    store.flush()
    assert sorted(p.name for p in (path / "data").iterdir()) == fragments, "no block was written"
    reopened = atlas.Atlas.open(path)
    assert list(reopened) == ["run1", "run3"] and list(reopened["run1"]) == []
    moved = reopened["run3/temperature"]
    assert moved[:].tolist() == list(range(1000)) and moved.attrs["units"] == "degC"

    refusals = [
        (("run1", "run3"), atlas.AlreadyExistsError),
        (("nope", "x"), atlas.NotFoundError),
        (("run1/nope", "run1/x"), atlas.NotFoundError),
        (("run3/temperature", "nope/t"), atlas.NotFoundError),
        (("run3/temperature", "run1"), atlas.InvalidArgumentError),
        (("run3", "run1/x"), atlas.InvalidArgumentError),
        (("run3", "a/b/c"), atlas.InvalidArgumentError),
        (("run3/temperature", "run3/a/b"), atlas.InvalidNameError),
    ]
    for (source, dest), error in refusals:
        with pytest.raises(error):
            reopened.move(source, dest)
    with pytest.raises(TypeError, match="keys are names"):
        reopened["run3"].move(0, "x")
    assert not reopened.has_pending_changes


def test_a_move_waits_for_an_assignment_of_several_writes_to_end(store):
    ds = store.create_dataset("d")
    a = ds.define_array("a", "int32", None, [100], chunk_shape=[10])
    x = ds.define_array("x", "int32", None, [100], chunk_shape=[10])
    x[:] = -5
    real, moves, writes = a._native, [], []

    class SlowWrites:  # the assignment's first write starts another thread's moves
        def __getattr__(self, name):
            return getattr(real, name)

        def write(self, start, data):
            real.write(start, data)
            writes.append(start)
            if len(writes) == 1:
                moves.append(threading.Thread(target=lambda: (store.move("d/a", "d/b"), store.move("d/x", "d/a"))))
                moves[0].start()
                moves[0].join(0.3)
                assert moves[0].is_alive(), "the move waits for the assignment"

    a._native = SlowWrites()
    a[[0, 50]] = [1, 2]  # two boxes, two writes
    moves[0].join()
    assert len(writes) == 2
    assert store["d/b"][[0, 50]].tolist() == [1, 2], "the whole assignment went to the array it named"
    assert store["d/a"][[0, 50]].tolist() == [-5, -5]


def test_a_moved_xarray_coordinate_keeps_its_role_in_its_dataset_only(store):
    xr = pytest.importorskip("xarray")
    data = xr.Dataset({"v": ("time", np.arange(3.0))}, coords={"time": np.arange(3)})
    store.add_xarray_dataset(data, "r")
    store.move("r/time", "r/t")
    assert store["r"].attrs["_xarray_coords"] == ["t"]
    assert list(store.open_as_xarray_dataset("r").coords) == ["t"]
    store.create_dataset("q")
    store.move("r/t", "q/t")
    assert store["r"].attrs["_xarray_coords"] == []
    store["r"].define_array("t", "int64", ["time"], [3])  # a new array of the old name
    assert "t" in store.open_as_xarray_dataset("r").data_vars, "is no coordinate"


def test_a_deleted_xarray_coordinate_leaves_the_list_of_coordinates(store):
    xr = pytest.importorskip("xarray")
    data = xr.Dataset({"v": ("time", np.arange(3.0))}, coords={"time": np.arange(3), "lat": ("time", np.ones(3))})
    store.add_xarray_dataset(data, "r")
    del store["r"]["time"]
    assert store["r"].attrs["_xarray_coords"] == ["lat"]
    del store["r/lat"]
    assert store["r"].attrs["_xarray_coords"] == []
    store["r"].define_array("lat", "float64", ["time"], [3])  # a new array of the old name
    assert "lat" in store.open_as_xarray_dataset("r").data_vars, "is no coordinate"


def test_copy_keeps_the_schema_and_copies_only_written_chunks_or_nothing(tmp_path, monkeypatch):
    store = atlas.Atlas.create(tmp_path / "s")
    run1, run2 = store.create_dataset("run1"), store.create_dataset("run2")
    temp = run1.define_array("temp", "float32", ["time"], [10**7], chunks=[10**5], fill_value=np.nan)
    temp[5], temp[-1] = 1.5, 2.5
    temp.attrs["units"] = "degC"
    temp.set_codec("lz4", "delta")
    copied = store.copy("run1/temp", "run2/t")
    same = lambda m: {k: v for k, v in m.items() if k != "fill_value"}  # noqa: E731 (NaN != NaN)
    assert same(copied.meta) == same(temp.meta) and np.isnan(copied.fill_value)
    assert copied.attrs.to_dict() == {"units": "degC"}
    assert len(copied.blocks()) == 2, "only the written chunks"
    assert np.array_equal(copied[:], temp[:], equal_nan=True)
    # Strings, timestamps, 0-d, and an array of another store.
    other = atlas.Atlas.create(tmp_path / "other")
    src = other.create_dataset("d")
    src["names"] = np.array(["a", "", "ccc"], dtype=object)
    src["when"] = np.array(["2020-01-01", "NaT"], dtype="datetime64[ns]")
    scalar = src.define_array("k", "int16", None, [])
    scalar[()] = 7
    for name in ["names", "when", "k"]:
        copy = run2.copy(other[f"d/{name}"], name)
        assert copy[...].tolist() == src[name][...].tolist() and str(copy.meta) == str(src[name].meta), name
    store.flush()
    reopened = atlas.Atlas.open(tmp_path / "s")
    assert reopened["run2/t"][5] == 1.5 and reopened["run2/names"][:].tolist() == ["a", "", "ccc"]

    with pytest.raises(atlas.AlreadyExistsError, match="run2/t"):
        store.copy(temp, "run2/t")
    with pytest.raises(atlas.InvalidArgumentError, match="not a dataset"):
        store.copy("run1", "run2/x")
    with pytest.raises(atlas.InvalidArgumentError, match="DATASET/ARRAY"):
        store.copy("run1/temp", "run2")
    with pytest.raises(atlas.NotFoundError):
        store.copy("run1/temp", "nope/x")
    with pytest.raises(TypeError, match="takes an Array"):
        run2.copy(np.zeros(3), "x")
    # A copy that fails midway leaves no array behind, and no change.
    real_read, reads = atlas.Array.read, []

    def failing_read(self, start=None, shape=None):
        if reads:  # the second chunk
            raise OSError("disk gone")
        reads.append(start)
        return real_read(self, start, shape)

    monkeypatch.setattr(atlas.Array, "read", failing_read)
    far = other.create_dataset("far").define_array("t", "float32", None, [20], chunks=[5])
    far[:] = np.arange(20, dtype="float32")
    with pytest.raises(OSError, match="disk gone"):
        run2.copy(far, "broken")  # from another store: chunk by chunk
    assert "broken" not in store["run2"] and not store.has_pending_changes


def test_open_with_create_and_require_dataset_let_a_cell_run_again(tmp_path):
    path = tmp_path / "nb" / "s"
    for run in range(2):
        store = atlas.Atlas.open(path, create=True)
        ds = store.require_dataset("d")
        if run == 0:
            ds["x"] = np.arange(3.0)
        store.flush()
        assert store.list_datasets() == ["d"] and np.array_equal(store["d/x"][...], np.arange(3.0))
    with pytest.raises(atlas.StoreNotFoundError):
        atlas.Atlas.open(tmp_path / "elsewhere")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("not a store")
    started = time.monotonic()
    with pytest.raises(atlas.AlreadyExistsError, match="other entries"):
        atlas.Atlas.open(tmp_path / "full", create=True)
    assert time.monotonic() - started < 1.0, "no create fills that directory: refused at once"


def test_open_with_create_finds_a_store_whose_metadata_came_just_after_its_open_failed(tmp_path, monkeypatch):
    # Another process's create renames its metadata file into place between this open's
    # failed open and its look at the directory: it opens again, not refuses the store.
    path = tmp_path / "s"
    atlas.Atlas.create(path).flush()
    native_open, failures = atlas._atlas.Store.open, [2]

    def open_late(*args, **kwargs):
        if failures[0]:
            failures[0] -= 1
            raise atlas.StoreNotFoundError(f"no store at {path}")
        return native_open(*args, **kwargs)

    monkeypatch.setattr(atlas._atlas.Store, "open", open_late)
    assert atlas.Atlas.open(path, create=True).generation == 0


def test_a_read_only_handle_reads_and_refuses_every_change(tmp_path):
    path = tmp_path / "s"
    with atlas.Atlas.create(path) as writer:
        writer.create_dataset("d")["x"] = np.arange(4.0)
    store = atlas.Atlas.open(path, read_only=True)
    ds = store["d"]
    x = ds["x"]
    assert np.array_equal(x[...], np.arange(4.0))
    changes = [
        lambda: x.__setitem__(0, 9.0),
        lambda: ds.__setitem__("y", np.arange(2)),
        lambda: store.attrs.__setitem__("k", 1),
        lambda: x.attrs.__setitem__("k", 1),
        lambda: store.create_dataset("e"),
        lambda: x.resize([8]),
        lambda: store.compact(),
    ]
    for change in changes:
        with pytest.raises(atlas.ReadOnlyError, match="read-only"):
            change()
    assert not store.has_pending_changes and "y" not in ds
    store.close()
    with pytest.raises(atlas.InvalidArgumentError, match="read-only"):
        atlas.Atlas.open(path, create=True, read_only=True)
    # h5py's and zarr's spelling.
    with pytest.raises(atlas.ReadOnlyError):
        atlas.Atlas.open(path, "r").attrs["k"] = 1
    atlas.Atlas.open(path, "r+").attrs["k"] = 1
    assert atlas.Atlas.open(tmp_path / "new", "a").list_datasets() == []
    with pytest.raises(atlas.InvalidArgumentError, match="Atlas.create"):
        atlas.Atlas.open(path, "w")


def test_paths_name_a_dataset_s_array_as_in_h5py(store):
    ds = store.create_dataset("run42")
    ds["temp"] = np.arange(4.0)
    assert np.array_equal(store["run42/temp"][...], np.arange(4.0))
    assert store["run42/temp"].name == "temp"
    assert "run42/temp" in store and "run42" in store
    assert "/run42/temp" in store and "/run42" in store and store["/run42"].name == "run42"
    assert np.array_equal(store["/run42/temp"][...], np.arange(4.0))
    # A trailing `/` names the dataset, as `atlas ls` and h5py take it.
    assert "run42/" in store and store["run42/"].name == "run42" and store["/run42/"].name == "run42"
    for missing in ["run42/depth", "run7/temp", "run42/temp/x", "run7/", "/temp/x", "//temp"]:
        assert missing not in store
        with pytest.raises(atlas.NotFoundError):
            store[missing]
    for root in ["/", "//temp"]:
        with pytest.raises(atlas.NotFoundError, match="names no dataset"):
            store[root]
    del store["run42/temp"]
    assert "run42/temp" not in store and "run42" in store and list(store["run42"]) == []
    with pytest.raises(atlas.NotFoundError):
        del store["run42/temp"]


def test_list_arrays_gives_distinct_names_over_datasets(store):
    store.create_dataset("x").define_array("temp", "float32", ["z"], [3])
    y = store.create_dataset("y")
    y.define_array("temp", "float32", ["z"], [4])
    y.define_array("psal", "float32", ["z"], [4])
    assert store.list_arrays() == ["psal", "temp"]


def test_context_manager_flushes_and_close_is_flush(tmp_path):
    path = tmp_path / "s"
    with atlas.Atlas.create(path) as store:
        store.create_dataset("d").define_array("a", "int32", ["x"], [2]).write([0], np.array([1, 2], np.int32))
        assert store.has_pending_changes
    assert not store.has_pending_changes
    assert atlas.Atlas.open(path)["d"].read_array("a").tolist() == [1, 2]
    store["d"].write_array("a", [0], np.array([5, 6], np.int32))
    store.close()
    assert atlas.Atlas.open(path)["d"].read_array("a").tolist() == [5, 6]
    store["d"]["a"][0] = 9  # still usable after close
    store.flush()
    assert atlas.Atlas.open(path)["d"]["a"][0] == 9


def test_exit_flushes_even_when_the_block_raises(tmp_path):
    path = tmp_path / "s"
    with pytest.raises(RuntimeError):
        with atlas.Atlas.create(path) as store:
            store.create_dataset("kept")
            raise RuntimeError("boom")
    assert atlas.Atlas.open(path).list_datasets() == ["kept"]


def test_discard_drops_pending_changes_and_frees_the_lock(tmp_path):
    path = tmp_path / "s"
    store = atlas.Atlas.create(path)
    arr = store.create_dataset("d").define_array("a", "int32", ["x"], [3])
    store.flush()
    arr[:] = np.array([1, 2, 3], np.int32)
    store.create_dataset("dropped")
    store.attrs["k"] = "v"
    store.discard()
    assert not store.has_pending_changes
    assert store.list_datasets() == ["d"]
    assert "k" not in store.attrs
    assert arr[:].tolist() == [0, 0, 0]
    other = atlas.Atlas.open(path)
    other.create_dataset("other")  # the writer lock is free
    other.flush()
    assert atlas.Atlas.open(path).list_datasets() == ["d", "other"]


def test_a_collected_handle_flushes_and_warns_when_that_fails(tmp_path):
    path = tmp_path / "s"
    store = atlas.Atlas.create(path)
    store.create_dataset("kept")
    del store
    gc.collect()
    assert atlas.Atlas.open(path).list_datasets() == ["kept"]

    store = atlas.Atlas.open(path)
    store.create_dataset("lost")
    os.mkdir(path / "atlas.meta.tmp")  # the commit's temp file cannot be written
    with pytest.warns(RuntimeWarning, match="when its handle was collected failed"):
        del store
        gc.collect()
    os.rmdir(path / "atlas.meta.tmp")
    assert atlas.Atlas.open(path).list_datasets() == ["kept"]


def _run_script(script: str, *args) -> subprocess.CompletedProcess:
    """Runs `script` in a new interpreter that imports this `atlas`, with `args` as its argv."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], env=env, capture_output=True, timeout=60)


def test_a_handle_still_referenced_at_exit_is_flushed_even_with_a_daemon_thread_alive(tmp_path):
    # A script's module-level handle is not collected before the native module goes, and
    # never while a daemon thread is alive: the exit hook flushes it.
    path = tmp_path / "s"
    atlas.Atlas.create(path).create_dataset("d").define_array("x", "float64", None, [10])
    script = (
        "import sys, threading, time, atlas\n"
        "store = atlas.Atlas.open(sys.argv[1])\n"
        "store['d/x'][0:10] = 7.0\n"
        "threading.Thread(target=lambda: time.sleep(60), daemon=True).start()\n"
    )
    done = _run_script(script, path)
    assert done.returncode == 0, done.stderr.decode()
    assert (atlas.Atlas.open(path)["d/x"][...] == 7.0).all(), "the changes were lost at exit"


def test_the_exit_flush_lets_another_threads_assignment_finish_and_never_commits_half(tmp_path):
    # A daemon thread holds an array's assignment lock between two of its writes (as a
    # multi-write assignment does) when the script ends: one that finishes within the wait
    # is committed whole; one that does not is not committed at all, with a warning.
    script = """
import sys, threading, time, atlas
store = atlas.Atlas.open(sys.argv[1])
x = store["d/x"]
started = threading.Event()
def assignment(pause):
    with store._write_lock("d", "x"):
        x._native.write([0], [1.0])
        started.set()
        time.sleep(pause)
        x._native.write([3], [1.0])
threading.Thread(target=assignment, args=(float(sys.argv[2]),), daemon=True).start()
started.wait()
"""
    for pause, committed in [(0.3, [1.0, 0.0, 0.0, 1.0]), (60, [0.0, 0.0, 0.0, 0.0])]:
        path = tmp_path / f"s{pause}"
        atlas.Atlas.create(path).create_dataset("d").define_array("x", "float64", None, [4])
        done = _run_script(script, path, pause)
        assert done.returncode == 0, done.stderr.decode()
        assert atlas.Atlas.open(path)["d/x"][...].tolist() == committed, pause
        assert ("assignment was still under way" in done.stderr.decode()) == (pause == 60)


def test_a_daemon_moving_arrays_at_exit_does_not_keep_the_exit_flush_from_committing(tmp_path):
    # A move holds two write locks; one it would make during the exit flush is the flush's:
    # holding the first while waiting for it kept the flush waiting until it gave up.
    script = """
import sys, threading, time, atlas, numpy as np
store = atlas.Atlas.open(sys.argv[1])
store["d"]["x0"] = np.arange(3)
store["d"]["keep"] = np.arange(5)
def mover():
    i = 0
    while True:
        store.move(f"d/x{i}", f"d/x{i + 1}")
        i += 1
threading.Thread(target=mover, daemon=True).start()
time.sleep(0.3)
"""
    path = tmp_path / "s"
    atlas.Atlas.create(path).create_dataset("d")
    done = _run_script(script, path)
    assert done.returncode == 0, done.stderr.decode()
    assert "not flushed at exit" not in done.stderr.decode()
    assert atlas.Atlas.open(path)["d/keep"][...].tolist() == [0, 1, 2, 3, 4]


def test_a_failed_move_of_an_xarray_coordinate_changes_nothing(store):
    ds = store.create_dataset("d")
    ds.define_array("lat", "float32", None, [2])
    ds.define_array("t", "float32", None, [2])
    ds.attrs["_xarray_coords"] = ["lat"]
    store.flush()
    with pytest.raises(atlas.AlreadyExistsError):
        store.move("d/lat", "d/t")
    assert not store.has_pending_changes, "no session left holding the writer lock"
    assert ds.attrs["_xarray_coords"] == ["lat"]


def test_the_exit_flush_never_commits_an_array_defined_by_an_assignment_without_its_values(tmp_path):
    # `ds[name] = data` defines the array, then writes it: a daemon thread paused between
    # the two when the script ends leaves nothing committed, not an array of fill values.
    script = """
import sys, threading, time, atlas
store = atlas.Atlas.open(sys.argv[1])
started = threading.Event()
define_array = atlas.DatasetView.define_array
def define_and_pause(*args, **kwargs):
    array = define_array(*args, **kwargs)
    started.set()
    time.sleep(60)
    return array
atlas.DatasetView.define_array = define_and_pause
threading.Thread(target=lambda: store["d"].__setitem__("y", [1.0, 2.0]), daemon=True).start()
started.wait()
"""
    path = tmp_path / "s"
    atlas.Atlas.create(path).create_dataset("d")
    done = _run_script(script, path)
    assert done.returncode == 0, done.stderr.decode()
    assert "y" not in atlas.Atlas.open(path)["d"], "the array was committed without its values"
    assert "assignment was still under way" in done.stderr.decode()


def test_an_assignment_begun_during_the_exit_flush_waits_for_it_to_commit(tmp_path):
    # The exit flush waits for an assignment under way (here the held lock of `a`); one
    # `ds[name] = data` begun meanwhile makes a new lock, which must not let it define its
    # array before that flush commits, or the array would be committed without its values.
    path = tmp_path / "s"
    store = atlas.Atlas.create(path)
    store.create_dataset("d")["a"] = [1.0]
    under_way = store._write_lock("d", "a")
    under_way.acquire()
    flush = threading.Thread(target=store._flush_before_exit, args=(time.monotonic() + 30,))
    flush.start()
    while store._exit_held is None:
        time.sleep(0.001)
    late = threading.Thread(target=lambda: store["d"].__setitem__("late", [2.0]))
    late.start()
    while ("d", "late") not in store._write_locks:
        time.sleep(0.001)
    under_way.release()
    flush.join()
    late.join()
    committed = atlas.Atlas.open(path)["d"]
    assert "a" in committed and "late" not in committed
    store.flush()
    assert atlas.Atlas.open(path)["d"]["late"][:].tolist() == [2.0]


def test_a_change_run_inside_another_on_the_same_thread_does_not_wait_on_itself(store):
    # A signal handler runs on the main thread between its bytecodes: a `refresh()` in one,
    # landing inside the main thread's own `discard()`, must not wait for that to end.
    store.create_dataset("d")
    store.flush()
    with store._changing():
        assert store._state() is None
        store.refresh()
        assert store._state() is None, "still inside the outer change"
    assert store._state() is not None


def _fork() -> int:
    """`os.fork()`, without the warning Python gives for forking with threads running."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_dropping_a_handle_leaves_the_parents_changes_alone(tmp_path):
    path = tmp_path / "s"
    store = atlas.Atlas.create(path)
    store.create_dataset("pending")
    pid = _fork()
    if pid == 0:  # the child drops its copy of the handle, then exits at once
        try:
            del store
            gc.collect()
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    assert atlas.Atlas.open(path).generation == 0, "the child committed the parent's changes"
    store.flush()
    assert atlas.Atlas.open(path).list_datasets() == ["pending"]
    # Changes a child starts itself through the handle it inherited are its own to commit.
    pid = _fork()
    if pid == 0:
        code = 1
        try:
            store.create_dataset("from_child")
            del store
            gc.collect()
            code = 0
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
    assert atlas.Atlas.open(path).list_datasets() == ["from_child", "pending"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("end", ["flush", "discard"])
def test_a_child_forked_while_changes_were_pending_does_not_keep_the_lock_after_a_flush_or_discard(tmp_path, end):
    # The child holds a copy of the lock file's descriptor (as a fork pool's workers do);
    # the parent's flush or discard releases the lock all the same.
    path = tmp_path / "s"
    store = atlas.Atlas.create(path)
    arr = store.create_dataset("d").define_array("a", "int32", None, [8], chunk_shape=[2])
    arr[0] = 1
    child_may_exit, _ = os.pipe()
    pid = _fork()
    if pid == 0:
        try:
            os.read(child_may_exit, 1)
        finally:
            os._exit(0)
    try:
        getattr(store, end)()
        if end == "discard":
            store.create_dataset("d").define_array("a", "int32", None, [8], chunk_shape=[2])
            arr = store["d"]["a"]
        arr[1] = 2  # the parent's next change takes the lock again
        store.flush()
        other = atlas.Atlas.open(path)
        other["d"]["a"][2] = 3  # and so does another handle
        other.flush()
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    first = 1 if end == "flush" else 0
    np.testing.assert_array_equal(atlas.Atlas.open(path)["d"]["a"][:3], [first, 2, 3])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_cannot_write_into_or_commit_the_parents_session(tmp_path):
    path = tmp_path / "s"
    store = atlas.Atlas.create(path)
    arr = store.create_dataset("d").define_array("a", "int32", None, [8], chunk_shape=[2])
    arr[:4] = np.arange(4, dtype=np.int32)  # pending in the parent
    pid = _fork()
    if pid == 0:
        code = 1
        try:
            with pytest.raises(atlas.LockedError):
                arr[4:] = np.full(4, 7, dtype=np.int32)
            with pytest.raises(atlas.LockedError):
                store.flush()
            store.discard()  # forgets the inherited session, leaves the parent's file alone
            code = 0
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
    assert atlas.Atlas.open(path).generation == 0, "the child committed the parent's changes"
    arr[4:] = np.full(4, 9, dtype=np.int32)
    store.flush()
    fresh = atlas.Atlas.open(path)
    np.testing.assert_array_equal(fresh["d"]["a"][:], [0, 1, 2, 3, 9, 9, 9, 9])
    assert fresh.verify()["bad_blocks"] == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_is_not_held_by_assignment_locks_a_parents_thread_held_at_the_fork(tmp_path):
    store = atlas.Atlas.create(tmp_path / "s")
    arr = store.create_dataset("d").define_array("a", "int32", None, [8], chunk_shape=[2])
    store.flush()
    held, done = threading.Event(), threading.Event()

    def hold_the_locks():  # as a parent's thread in the middle of an assignment holds them
        with store._write_lock("d", "a"), atlas._core._LOCKS_LOCK:
            held.set()
            done.wait()

    holder = threading.Thread(target=hold_the_locks)
    holder.start()
    held.wait()
    pid = _fork()
    if pid != 0:
        done.set()
        holder.join()
    if pid == 0:
        code = 1
        try:
            signal.alarm(10)  # a hang fails the test rather than the run
            arr[0] = 5  # the child's own session: the parent has no changes pending
            assert arr[:2].tolist() == [5, 0]
            store.discard()
            code = 0
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_appending_with_64_mib_staged_writes_nothing_into_the_parents_session(tmp_path):
    # One row appended to each of 33 arrays of 2 MiB chunks stages up to 64 MiB; the child's
    # append is refused before it could encode them into the parent's fragment file.
    path = tmp_path / "s"
    store = atlas.Atlas.create(path)
    ds = store.create_dataset("d")
    arrays = [ds.define_array(f"a{i}", "float64", None, [0, 1024], chunk_shape=[256, 1024]) for i in range(33)]
    for i, arr in enumerate(arrays):
        arr.append(np.full((1, 1024), i, dtype=np.float64))
    parent_wrote, tell_child = os.pipe()
    pid = _fork()
    if pid == 0:
        code = 1
        try:
            os.read(parent_wrote, 1)
            with pytest.raises(atlas.LockedError):
                arrays[0].append(np.zeros((1, 1024)))
            code = 0
        finally:
            os._exit(code)
    late = ds.define_array("late", "float64", None, [1024], chunk_shape=[1024])
    late[:] = np.arange(1024.0)  # a block after the fork, where the child would write
    os.write(tell_child, b"1")
    assert os.waitpid(pid, 0)[1] == 0
    store.flush()
    fresh = atlas.Atlas.open(path)
    np.testing.assert_array_equal(fresh["d"]["late"][:], np.arange(1024.0))
    np.testing.assert_array_equal(fresh["d"]["a32"][:], np.full((1, 1024), 32.0))
    assert fresh.verify()["bad_blocks"] == []


def _wait_for(pid: int, seconds: float = 60.0) -> int:
    """The exit status of child `pid`, which is killed (and the test failed) if it hangs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"child {pid} still running after {seconds} s")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_after_large_reads_and_writes_reads_and_writes_in_parallel_too(tmp_path):
    # Reads and writes of 1 MiB or more over several chunks run on the engine's threads,
    # which a forked child does not have: it starts its own instead of waiting for them.
    path = tmp_path / "s"
    store = atlas.Atlas.create(path)
    arr = store.create_dataset("d").define_array("a", "float64", None, [256, 1024], chunk_shape=[64, 1024])
    data = np.arange(256 * 1024, dtype=np.float64).reshape(256, 1024)
    arr[:] = data
    store.flush()
    np.testing.assert_array_equal(arr[:], data)
    pid = _fork()
    if pid == 0:
        code = 1
        try:
            np.testing.assert_array_equal(arr[:], data)
            arr[:] = data + 1
            store.flush()
            np.testing.assert_array_equal(arr[:], data + 1)
            code = 0
        finally:
            os._exit(code)
    assert _wait_for(pid) == 0
    np.testing.assert_array_equal(atlas.Atlas.open(path)["d"]["a"][:], data + 1)
    store.refresh()
    np.testing.assert_array_equal(arr[:], data + 1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_refresh_in_a_forked_child_forgets_the_parents_changes_and_sees_the_newest_commit(tmp_path):
    path = tmp_path / "s"
    store = atlas.Atlas.create(path)
    arr = store.create_dataset("d").define_array("a", "int32", None, [8], chunk_shape=[2])
    arr[:] = np.zeros(8, dtype=np.int32)
    store.flush()
    arr[:4] = np.arange(1, 5, dtype=np.int32)  # pending in the parent
    pid = _fork()
    if pid == 0:
        code = 1
        try:
            np.testing.assert_array_equal(arr[:4], [1, 2, 3, 4])  # the parent's view, as forked
            store.refresh()
            np.testing.assert_array_equal(arr[:], np.zeros(8))
            code = 0
        finally:
            os._exit(code)
    assert _wait_for(pid) == 0
    store.flush()  # the parent's changes are still its own to commit
    np.testing.assert_array_equal(atlas.Atlas.open(path)["d"]["a"][:], [1, 2, 3, 4, 0, 0, 0, 0])


def test_a_store_opened_by_a_relative_path_stays_there_when_the_directory_changes(tmp_path, monkeypatch):
    for place in ["one", "two"]:
        (tmp_path / place).mkdir()
    monkeypatch.chdir(tmp_path / "two")
    other = atlas.Atlas.create("x.atlas")
    other.create_dataset("only_in_two")
    other.close()
    monkeypatch.chdir(tmp_path / "one")
    store = atlas.Atlas.create("x.atlas")
    assert store.path == str(tmp_path / "one" / "x.atlas")
    store.create_dataset("d")["a"] = [1.0, 1.0]
    store.flush()
    monkeypatch.chdir(tmp_path / "two")  # a notebook's %cd
    store["d"]["a"][:] = 99.0
    store.flush()
    store.refresh()
    assert store["d"]["a"][0] == 99.0
    assert atlas.Atlas.open(tmp_path / "one" / "x.atlas")["d"]["a"][0] == 99.0
    assert atlas.Atlas.open("x.atlas").list_datasets() == ["only_in_two"]


def test_refresh_sees_another_handles_flush(tmp_path):
    writer = atlas.Atlas.create(tmp_path / "s")
    reader = atlas.Atlas.open(tmp_path / "s")
    writer.create_dataset("new")
    writer.flush()
    assert reader.list_datasets() == []
    reader.refresh()
    assert reader.list_datasets() == ["new"]


@pytest.mark.parametrize(
    "key, value",
    [(np.s_[::2], 7.0), (np.s_[[0, 4]], 1.0), (np.s_[[0, 6], [0, 0]], 2.0), (np.s_[:, ::3], 3.0)],
)
def test_an_assignment_that_reads_first_keeps_what_another_writer_committed_since(tmp_path, key, value):
    # Steps, index lists and points read the boxes they write back: read on the handle's
    # older commit, the unselected values would write over the other writer's.
    mine = atlas.Atlas.create(tmp_path / "s")
    mine.create_dataset("d").define_array("x", "float64", None, [8, 1], chunk_shape=[8, 1])
    mine.flush()
    other = atlas.Atlas.open(tmp_path / "s")
    other["d"]["x"][1:8:2] = 5.0  # every odd row, which no key above selects
    other.flush()
    mine["d"]["x"][key] = value
    mine.flush()
    model = np.zeros((8, 1))
    model[1:8:2] = 5.0
    model[key] = value
    np.testing.assert_array_equal(atlas.Atlas.open(tmp_path / "s")["d"]["x"][...], model)


def test_a_read_modify_write_assignment_that_fails_before_writing_gives_the_lock_back(tmp_path):
    mine = atlas.Atlas.create(tmp_path / "s")
    x = mine.create_dataset("d").define_array("x", "float64", None, [8])
    mine.flush()
    for key in [np.s_[[0, 4]], np.s_[::2], np.s_[[0, 2], None]]:
        with pytest.raises(ValueError):
            x[key] = np.ones(7)  # does not broadcast: found after the read
        assert not mine.has_pending_changes, key
    other = atlas.Atlas.open(tmp_path / "s")
    other["d"]["x"][0] = 1.0
    other.flush()


def test_a_read_modify_write_that_a_flush_interrupted_cannot_end_the_next_ones_hold(tmp_path):
    # Thread A's assignment holds the session; another thread flushes (ending it); thread
    # B's assignment begins a new session and reads; A's release must leave B's hold alone.
    mine = atlas.Atlas.create(tmp_path / "s")
    mine.create_dataset("d")
    a_hold = mine._native.begin_change()
    mine.flush()
    b_hold = mine._native.begin_change()
    assert not mine._native.release_if_unchanged(a_hold)
    assert mine.has_pending_changes, "B still holds the lock between its read and write-back"
    with pytest.raises(atlas.LockedError):
        atlas.Atlas.open(tmp_path / "s").create_dataset("e")
    b_again = mine._native.begin_change()  # another thread's hold on B's session
    assert not mine._native.release_if_unchanged(b_hold)
    assert not mine._native.release_if_unchanged(b_hold), "a hold ends once"
    assert mine.has_pending_changes
    assert mine._native.release_if_unchanged(b_again) and not mine.has_pending_changes


def test_compact_reclaims_overwritten_blocks(store, ds):
    arr = ds.define_array("a", "float64", ["x"], [1000], chunk_shape=[100])
    for i in range(3):
        arr[:] = np.full(1000, i, dtype=np.float64) + np.arange(1000)
        store.flush()
    report = store.compact()
    assert report["fragments_before"] == 3 and report["fragments_after"] == 1
    assert report["after_bytes"] < report["before_bytes"]
    assert report["blocks_kept"] == 10
    np.testing.assert_array_equal(arr[:], 2 + np.arange(1000))
    reopened = atlas.Atlas.open(store.path)
    np.testing.assert_array_equal(reopened["d"]["a"][:], 2 + np.arange(1000))


def test_set_meta_format_converts_the_metadata_file(tmp_path):
    store = atlas.Atlas.create(tmp_path / "s")
    store.create_dataset("d")
    store.set_meta_format("msgpack", "zstd")
    store.flush()
    assert meta_files(tmp_path / "s") == ["atlas.msgpack.zst"]
    assert atlas.Atlas.open(tmp_path / "s").list_datasets() == ["d"]
    store.set_meta_format("json")  # the compression not given stays
    store.flush()
    assert meta_files(tmp_path / "s") == ["atlas.json.zst"]
    store.set_meta_format(meta_compression="none")
    store.flush()
    assert meta_files(tmp_path / "s") == ["atlas.json"]


def test_repr_and_html_show_schema_codec_and_sizes(store, ds):
    arr = ds.define_array("temp", "float32", ["t", "z"], [10, 20], chunk_shape=[5, 20])
    arr[:] = np.ones((10, 20), np.float32)
    ds.set_attribute("station", "ST01")
    store.flush()
    text = repr(store)
    assert "datasets=1" in text and "zstd:3" in text and "atlas.json" in text
    assert repr(ds) == "<atlas.DatasetView 'd' arrays=1>"
    assert "float32" in repr(arr) and "(10, 20)" in repr(arr) and "(5, 20)" in repr(arr)
    html = store._repr_html_()
    for needle in ("temp", "float32", "10 x 20", "5 x 20", "zstd:3", "800 B", "on disk"):
        assert needle in html, needle
    assert "temp" in ds._repr_html_() and "ST01" in ds._repr_html_()
    assert "1 dataset &" in html and "1 array<" in ds._repr_html_()
    html = arr._repr_html_()
    assert "fill value" in html and "200 / 0" in html


def test_html_counts_the_arrays_it_does_not_show(store, ds):
    for i in range(130):
        ds.define_array(f"a{i:03}", "int8", None, [1])
    store.create_dataset("e").define_array("b", "int8", None, [1])
    assert "... 30 more arrays" in ds._repr_html_()
    assert "... 31 more arrays" in store._repr_html_()


def test_set_codec_with_a_bad_shuffle_changes_nothing(store, ds):
    arr = ds.define_array("a", "int8", None, [1])
    for target in [store, arr]:
        with pytest.raises(atlas.InvalidArgumentError):
            target.set_codec("lz4", shuffle="bogus")
        assert target.codec == "zstd:3"
    assert (arr.meta["codec"], arr.meta["shuffle"]) == (None, None)
    store.set_codec("lz4", shuffle=False)
    arr.set_codec("none", shuffle=True)
    assert (store.codec, arr.codec, arr.meta["shuffle"]) == ("lz4", "none", "on")


def test_store_attributes(store):
    store.set_attribute("created", np.datetime64("2024-03-01T00:00:00", "ns"))
    store.attrs["version"] = 3
    assert store.attributes() == {"created": np.datetime64("2024-03-01", "ns"), "version": 3}
    assert list(store.attrs.items()) == list(store.attributes().items())
    assert list(store.attrs.values()) == [np.datetime64("2024-03-01", "ns"), 3]
    store.delete_attribute("version")
    assert store.get_attribute("version") is None


def test_a_cell_run_again_setting_the_same_attributes_commits_nothing(store):
    ds = store.create_dataset("run")
    arr = ds.define_array("t", "float32", ["x"], [4])

    def cell():
        store.attrs["title"] = "survey"
        ds.attrs["units"] = "K"
        arr.attrs["scale"] = 0.5

    cell()
    store.flush()
    generation = store.generation
    cell()
    assert not store.has_pending_changes, "the same values began a change (and took the lock)"
    store.flush()
    assert store.generation == generation


def test_create_dataset_with_h5py_s_keywords_says_what_a_dataset_is(store):
    with pytest.raises(TypeError, match="a group of arrays"):
        store.create_dataset("x", data=np.arange(3))
    with pytest.raises(TypeError, match="a group of arrays"):
        store.create_dataset("x", (10,))
    assert "x" not in store
