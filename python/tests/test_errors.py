"""Every error class: the hierarchy, and each raised by the failure it names."""

import errno
import json
import os

import numpy as np
import pytest

import atlas

HIERARCHY = {
    "NotFoundError": (atlas.AtlasError, KeyError),
    "StoreNotFoundError": (atlas.NotFoundError, KeyError, FileNotFoundError),
    "AlreadyExistsError": (atlas.AtlasError, FileExistsError),
    "InvalidArgumentError": (atlas.AtlasError, ValueError),
    "InvalidNameError": (atlas.InvalidArgumentError, ValueError),
    "ShapeError": (atlas.InvalidArgumentError, ValueError),
    "OutOfBoundsError": (atlas.ShapeError, ValueError, IndexError),
    "DTypeMismatchError": (atlas.AtlasError, TypeError, ValueError),
    "LockedError": (atlas.AtlasError,),
    "ChangesDiscardedError": (atlas.AtlasError,),
    "LockLostError": (atlas.ChangesDiscardedError,),
    "CorruptError": (atlas.AtlasError,),
    "ChecksumMismatchError": (atlas.CorruptError,),
    "UnsupportedVersionError": (atlas.AtlasError,),
    "CodecError": (atlas.AtlasError,),
    "StorageError": (atlas.AtlasError, OSError),
    "LimitExceededError": (atlas.AtlasError,),
    "OutOfMemoryError": (atlas.AtlasError, MemoryError),
}


@pytest.mark.parametrize("name", sorted(HIERARCHY))
def test_each_class_is_an_atlas_error_and_its_builtin(name):
    cls = getattr(atlas, name)
    assert cls.__module__ == "atlas" and cls.__doc__
    for base in HIERARCHY[name]:
        assert issubclass(cls, base)
    assert issubclass(atlas.AtlasError, Exception)


def test_the_type_stub_declares_every_error_class_with_its_bases():
    # python/atlas/_atlas.pyi types the native module for mypy: it must say what runs.
    import ast
    import pathlib

    stub = ast.parse((pathlib.Path(atlas.__file__).parent / "_atlas.pyi").read_text())
    declared = {c.name: [ast.unparse(b) for b in c.bases] for c in stub.body if isinstance(c, ast.ClassDef)}
    running = {
        name: [base.__name__ for base in getattr(atlas._atlas, name).__bases__]
        for name in dir(atlas._atlas)
        if name.endswith("Error")
    }
    assert declared == running
    # IDEs show the stub's docstrings: they are the classes' own.
    words = lambda text: " ".join((text or "").split())  # noqa: E731
    for c in (c for c in stub.body if isinstance(c, ast.ClassDef)):
        assert words(ast.get_docstring(c)) == words(getattr(atlas._atlas, c.name).__doc__), c.name


def test_a_result_past_memory_is_an_out_of_memory_error(store):
    huge = store.create_dataset("d").define_array("huge", "int8", None, [2**32, 2**31], chunk_shape=[1024, 1024])
    strings = store["d"].define_array("names", "string", None, [2**62], chunk_shape=[1024])
    for read in (lambda: huge[:], lambda: huge.read([0, 0], [2**32, 2**31]), lambda: strings[:]):
        with pytest.raises(MemoryError) as info:  # a numpy-sized or string result alike
            read()
        assert isinstance(info.value, atlas.OutOfMemoryError)
        assert str(info.value).startswith("out of memory: d/")


def test_numpy_failing_to_allocate_a_result_is_an_out_of_memory_error(store, monkeypatch):
    arr = store.create_dataset("d").define_array("a", "float64", None, [4])
    def refuse(*_):
        raise MemoryError("Unable to allocate")
    monkeypatch.setattr(np, "zeros", refuse)  # what the native reads allocate through
    for read in (lambda: arr.read(), lambda: arr.read_boxes([[0]], [2])):
        with pytest.raises(atlas.OutOfMemoryError, match=r"d/a: a result of shape \["):
            read()


def test_not_found_reads_as_written_and_is_a_key_error(store):
    with pytest.raises(KeyError) as info:
        store.open_dataset("nope")
    assert isinstance(info.value, atlas.NotFoundError)
    assert str(info.value) == "dataset not found: nope"


def test_opening_a_missing_store_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        atlas.Atlas.open(tmp_path / "typo")
    assert isinstance(info.value, atlas.NotFoundError)
    assert "typo" in str(info.value)
    assert (info.value.errno, info.value.filename) == (errno.ENOENT, str(tmp_path / "typo"))


def test_an_empty_store_path_is_refused(tmp_path, monkeypatch):
    # Not taken as the current directory, which create would fill whatever it holds.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.txt").write_text("mine")
    for call in (lambda: atlas.Atlas.create(""), lambda: atlas.Atlas.open("")):
        with pytest.raises(atlas.InvalidArgumentError, match="empty"):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_locked_by_another_writer(tmp_path):
    first = atlas.Atlas.create(tmp_path / "s")
    second = atlas.Atlas.open(tmp_path / "s")
    first.create_dataset("a")  # takes the writer lock until its flush
    with pytest.raises(atlas.LockedError):
        second.create_dataset("b")
    first.flush()
    second.create_dataset("b")
    second.flush()
    assert atlas.Atlas.open(tmp_path / "s").list_datasets() == ["a", "b"]


def test_a_writer_whose_lock_file_was_removed_loses_its_changes_not_anothers(tmp_path):
    first = atlas.Atlas.create(tmp_path / "s")
    first.create_dataset("a")  # takes the writer lock until its flush
    os.remove(tmp_path / "s" / "atlas.lock")
    second = atlas.Atlas.open(tmp_path / "s")
    second.create_dataset("b")  # locks a new lock file
    second.flush()
    with pytest.raises(atlas.LockLostError, match="atlas.lock was removed"):
        first.flush()
    assert not first.has_pending_changes
    assert atlas.Atlas.open(tmp_path / "s").list_datasets() == ["b"]


def test_limits_refuse_a_store_asking_for_more_before_reading_it(tmp_path):
    store = atlas.Atlas.create(tmp_path / "s")
    store.create_dataset("d").define_array("x", "float64", None, [64, 64], chunk_shape=[64, 64])
    store.flush()  # one chunk of 32 KiB; the metadata file is a few hundred bytes

    with pytest.raises(atlas.LimitExceededError, match="32768"):
        atlas.Atlas.open(tmp_path / "s", max_chunk_bytes=32767)
    with pytest.raises(atlas.LimitExceededError, match="atlas.json"):
        atlas.Atlas.open(tmp_path / "s", max_meta_bytes=16)
    opened = atlas.Atlas.open(tmp_path / "s", max_meta_bytes=1 << 20, max_chunk_bytes=32768)
    assert opened["d"]["x"].shape == (64, 64)


def _one_fragment(path):
    data = os.path.join(path, "data")
    (name,) = [n for n in os.listdir(data) if n.endswith(".frag")]
    return os.path.join(data, name)


def test_checksum_mismatch_names_the_damage(tmp_path):
    store = atlas.Atlas.create(tmp_path / "s", codec="none", shuffle=False)
    arr = store.create_dataset("d").define_array("a", "int64", ["x"], [1000])
    values = np.arange(1000, dtype=np.int64) + 0x1122334455667788
    arr[:] = values
    store.flush()
    fragment = _one_fragment(tmp_path / "s")
    raw = bytearray(open(fragment, "rb").read())
    at = raw.find(values[500:501].tobytes())
    raw[at] ^= 0xFF
    open(fragment, "wb").write(bytes(raw))
    with pytest.raises(atlas.ChecksumMismatchError) as info:
        atlas.Atlas.open(tmp_path / "s")["d"]["a"][:]
    assert isinstance(info.value, atlas.CorruptError) and "d/a" in str(info.value)
    report = atlas.Atlas.open(tmp_path / "s").verify()
    assert report["blocks_checked"] == 1
    assert isinstance(report["bad_blocks"][0]["error"], atlas.ChecksumMismatchError)
    # A read that skips the checksum gets the bytes as they are on disk.
    ds = atlas.Atlas.open(tmp_path / "s")["d"]
    unchecked = ds.read_array("a", verify_checksums=False)
    assert (unchecked != values).tolist() == [i == 500 for i in range(1000)]


def test_verify_reports_statistics_the_metadata_keeps_that_are_not_its_blocks(tmp_path):
    store = atlas.Atlas.create(tmp_path / "s")
    store.create_dataset("d")["a"] = np.arange(1, 11, dtype=np.int32)
    store.flush()
    assert store.verify()["bad_stats"] == []
    # Edited by hand (a hand-written file has no checksum): values said to go to 200.
    meta_path = tmp_path / "s" / "atlas.json"
    meta = json.loads(meta_path.read_text())
    del meta["checksum"]
    meta["datasets"]["d"]["arrays"]["a"]["stats"].update(min=100, max=200, sum=1500.0, mean=150.0)
    meta_path.write_text(json.dumps(meta))
    report = atlas.Atlas.open(tmp_path / "s").verify()
    assert report["bad_blocks"] == []
    [bad] = report["bad_stats"]
    assert bad["array"] == "d/a"
    assert (bad["persisted"]["max"], bad["merged"]["max"]) == (200, 10)


def test_a_string_read_may_skip_the_checksum(tmp_path):
    store = atlas.Atlas.create(tmp_path / "s", codec="none")
    names = store.create_dataset("d").define_array("s", "string", None, [2])
    names[:] = ["alpha", "omega"]
    store.flush()
    fragment = _one_fragment(tmp_path / "s")
    raw = open(fragment, "rb").read().replace(b"omega", b"Omega")
    open(fragment, "wb").write(raw)
    names = atlas.Atlas.open(tmp_path / "s")["d"]["s"]
    with pytest.raises(atlas.ChecksumMismatchError):
        names.read()
    assert names.read(verify_checksums=False).tolist() == ["alpha", "Omega"]


def test_corrupt_metadata_and_truncated_fragments(tmp_path):
    store = atlas.Atlas.create(tmp_path / "s")
    store.create_dataset("d").define_array("a", "int64", ["x"], [10])[:] = np.arange(10)
    store.flush()
    fragment = _one_fragment(tmp_path / "s")
    with open(fragment, "r+b") as f:
        f.truncate(10)
    with pytest.raises(atlas.CorruptError):
        atlas.Atlas.open(tmp_path / "s")
    with open(tmp_path / "s" / "atlas.json", "w") as f:
        f.write("{ not json")
    with pytest.raises(atlas.CorruptError):
        atlas.Atlas.open(tmp_path / "s")


def test_unsupported_version(tmp_path):
    atlas.Atlas.create(tmp_path / "s")
    meta_path = tmp_path / "s" / "atlas.json"
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = 99
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(atlas.UnsupportedVersionError):
        atlas.Atlas.open(tmp_path / "s")


def test_storage_error_is_an_os_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError) as info:
        atlas.Atlas.create(tmp_path / "file" / "sub")
    assert isinstance(info.value, atlas.StorageError)
    assert info.value.errno == errno.ENOTDIR
    assert isinstance(info.value.filename, str) and "file" in info.value.filename
    assert str(info.value).startswith(f"[Errno {errno.ENOTDIR}] ")
    assert "os error" not in str(info.value), "the errno once, as the OS's own errors give it"
    assert str(info.value).endswith(f": {info.value.filename!r}")


def test_dtype_bounds_shape_and_name_errors(ds):
    arr = ds.define_array("a", "float32", ["y", "x"], [4, 4])
    with pytest.raises(atlas.DTypeMismatchError):
        arr.write([0, 0], np.zeros((1, 1), np.int8))
    with pytest.raises(atlas.OutOfBoundsError):
        arr.write([3, 3], np.zeros((2, 2), np.float32))
    with pytest.raises(atlas.OutOfBoundsError):
        arr.read([0, 0], [5, 1])
    with pytest.raises(atlas.ShapeError):
        arr.read([0], [1])
    with pytest.raises(TypeError, match="write needs a start"):
        arr.write(None, np.zeros((1, 1), np.float32))
    with pytest.raises(atlas.ShapeError, match=r"start \[0\] has 1 dimension; the array has 2"):
        arr.write([0], np.zeros((1, 1), np.float32))
    with pytest.raises(atlas.ShapeError, match=r"the data's shape \[3\] has 1 dimension; the array has 2"):
        arr.write([0, 0], np.zeros(3, np.float32))
    with pytest.raises(atlas.ShapeError, match=r"the new shape \[4\] has 1 dimension;"):
        arr.resize([4])
    with pytest.raises(atlas.InvalidNameError):
        ds.define_array("bad/name", "float32", ["x"], [1])
    with pytest.raises(atlas.InvalidArgumentError):
        arr.read([0, 0], [2**62, 2**62])


def test_bad_fill_values_and_timestamp_attributes_raise_atlas_errors(ds):
    with pytest.raises(atlas.InvalidArgumentError, match=r"one value, not an array of shape \(2,\)"):
        ds.define_array("a", "float64", None, [3], fill_value=np.array([1.0, 2.0]))
    # An instant is a timestamp array's fill value, not nanoseconds for a float array.
    for instant in [np.datetime64("2020-01-01"), np.array([np.datetime64("2020-01-01", "ns")])]:
        with pytest.raises(atlas.DTypeMismatchError, match="instant"):
            ds.define_array("b", "float64", None, [3], fill_value=instant)
    days = ds.define_array("e", "timestamp", None, [1], fill_value=np.array(np.datetime64("2020-01-02", "D")))
    assert days[0] == np.datetime64("2020-01-02")
    when = ds.define_array("c", "timestamp", None, [1], fill_value=np.datetime64("2020-01-01"))
    assert when[0] == np.datetime64("2020-01-01")
    assert ds.define_array("d", "float64", None, [1], fill_value=np.array([2.5]))[0] == 2.5
    with pytest.raises(atlas.InvalidArgumentError, match="not an ISO 8601 instant"):
        ds.attrs.set("t", "hello", "timestamp")
    assert "a" not in ds and "b" not in ds and "t" not in ds.attrs
    # A refused value is quoted by its head and length, not whole.
    for value, dtype in [(10**400, "int64"), (10**400, "float64"), ("x" * 500, "int8")]:
        with pytest.raises(atlas.InvalidArgumentError) as refused:
            ds.define_array("f", dtype, None, [1], fill_value=value)
        assert len(str(refused.value)) < 200 and "characters)" in str(refused.value)
