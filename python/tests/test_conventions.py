"""numpy and h5py conventions: argument forms, mapping methods, copies, broadcast writes."""

import datetime
import threading
import warnings

import numpy as np
import pytest

import atlas


def test_a_stepped_read_keeps_only_the_selection(ds):
    arr = ds.define_array("a", "float64", None, [1000], chunk_shape=[100])
    arr[:] = np.arange(1000.0)
    picked = arr[::100]
    assert picked.tolist() == list(range(0, 1000, 100))
    assert picked.base is None or picked.base.size == picked.size, "the whole box stays alive"


class LargestBox:
    """Stands in for an array's native half, recording the most elements one read or write moved."""

    def __init__(self, native):
        self._native, self.read_most, self.written_most = native, 0, 0

    def read(self, start=None, shape=None, *args):
        out = self._native.read(start, shape, *args)
        self.read_most = max(self.read_most, out.size)
        return out

    def write(self, start, data):
        self.written_most = max(self.written_most, np.size(data))
        self._native.write(start, data)

    def __getattr__(self, name):
        return getattr(self._native, name)


@pytest.mark.parametrize("slab_bytes", [0, 64 << 20])
def test_steps_over_a_large_box_read_and_assign_a_slab_at_a_time(ds, monkeypatch, slab_bytes):
    # Slab bytes 0: every stepped box goes a chunk row at a time, as one over 64 MiB would.
    monkeypatch.setattr(atlas._array, "_SLAB_BYTES", slab_bytes)
    arr = ds.define_array("a", "int32", None, [40, 30, 6], chunk_shape=[7, 4, 6])
    model = np.arange(40 * 30 * 6, dtype=np.int32).reshape(40, 30, 6)
    arr[...] = model
    spy = arr._native = LargestBox(arr._native)
    keys = [
        np.s_[::3, ::2],
        np.s_[5:38:4, 3, ::-5],
        np.s_[None, ::-2, [1, 4, 1], 1:5],  # an index list: the kept elements are read first
        np.s_[..., ::5],
        np.s_[1::9, ::7, ::2],
        np.s_[True, 39:0:-6],
        np.s_[[0, 35], ::3, 1:5],  # two boxes (the rows are chunks apart), each stepped
        np.s_[::20, ::-2],  # a step past a chunk: a box per row, each stepped
    ]
    for key in keys:
        spy.read_most = spy.written_most = 0
        np.testing.assert_array_equal(arr[key], model[key], err_msg=str(key))
        value = -1 - model[key]
        arr[key] = value
        model[key] = value
        if slab_bytes == 0:
            # Cut along every axis a box spans several chunks of: one chunk at most.
            assert max(spy.read_most, spy.written_most) <= 7 * 4 * 6, key
        np.testing.assert_array_equal(arr[...], model, err_msg=str(key))


@pytest.mark.parametrize("slab_bytes", [0, 300, 64 << 20])
def test_points_with_a_step_are_read_a_few_boxes_at_a_time(ds, monkeypatch, slab_bytes):
    # Index arrays on two axes and a stepped slice: each point's box spans the slice's
    # range, the step applied after. Past the slab bytes, a call reads only as many boxes
    # as fit (one at least) and keeps their stepped elements before the next.
    monkeypatch.setattr(atlas._array, "_SLAB_BYTES", slab_bytes)
    monkeypatch.setattr(atlas._array, "_DENSE_POINTS", 0)  # never through the box holding them all
    arr = ds.define_array("a", "float64", None, [4, 5, 60], chunk_shape=[2, 2, 30])
    model = np.arange(4 * 5 * 60, dtype=np.float64).reshape(4, 5, 60)
    arr[...] = model
    calls = []
    native = arr._native

    class Spy:
        def read_boxes(self, starts, shape):
            calls.append(len(starts))
            return native.read_boxes(starts, shape)

        def __getattr__(self, name):
            return getattr(native, name)

    arr._native = Spy()
    idx = [0, 3, 1, 3, 2, 0, 1]
    # (key, its points, bytes of one point's box; None where the boxes hold only the
    # selection, read in one call whatever their size)
    cases = [
        (np.s_[idx, idx, ::7], 7, 57 * 8),
        (np.s_[::-11, idx, idx], 7, None),
        # Broadcast to 2 x 3 points (not every combination: `np.ix_` keys read by runs).
        (np.s_[[[1], [2]], 5:1:-2, [[0, 59, 7], [7, 0, 59]]], 6, 3 * 8),
    ]
    for key, points, box_bytes in cases:
        calls.clear()
        np.testing.assert_array_equal(arr[key], model[key], err_msg=str(key))
        per_call = points if box_bytes is None else min(max(slab_bytes // box_bytes, 1), points)
        assert calls == [per_call] * (points // per_call) + [points % per_call] * (points % per_call > 0), key


@pytest.mark.parametrize("slab_bytes", [0, 20 * 64])
def test_steps_over_a_large_string_box_read_and_assign_a_slab_at_a_time(ds, monkeypatch, slab_bytes):
    # A string counts as 64 bytes: 20 * 64 slab bytes hold one chunk of 4 x 5 strings.
    monkeypatch.setattr(atlas._array, "_SLAB_BYTES", slab_bytes)
    arr = ds.define_array("s", "string", None, [30, 12], chunk_shape=[4, 5])
    model = np.array([[f"v{i}-{j}" for j in range(12)] for i in range(30)], dtype=object)
    arr[...] = model
    spy = arr._native = LargestBox(arr._native)
    for key in [np.s_[::7, ::5], np.s_[29:0:-4, 3], np.s_[[1, 28], ::-3]]:
        spy.read_most = spy.written_most = 0
        assert arr[key].tolist() == model[key].tolist(), key
        value = np.vectorize(lambda v: v.upper())(model[key]).astype(object)
        arr[key] = value
        model[key] = value
        assert max(spy.read_most, spy.written_most) <= 4 * 5, key
        assert arr[...].tolist() == model.tolist(), key


def test_a_stepped_read_in_slabs_sees_one_commit(tmp_path, monkeypatch):
    monkeypatch.setattr(atlas._array, "_SLAB_BYTES", 0)
    store = atlas.Atlas.create(tmp_path / "s")
    arr = store.create_dataset("d").define_array("a", "int32", None, [20, 10], chunk_shape=[5, 5])
    arr[...] = 0
    store.flush()
    native, interrupted = arr._native, []

    class CommitAfterFirstSlab:
        def read(self, start=None, shape=None, *args):
            out = native.read(start, shape, *args)
            if not interrupted:
                interrupted.append(True)
                other = atlas.Atlas.open(tmp_path / "s")
                other["d"]["a"][...] = 1
                other.flush()
                del other
                store.refresh()
            return out

        def __getattr__(self, name):
            return getattr(native, name)

    arr._native = CommitAfterFirstSlab()
    picked = arr[::2, ::3]
    assert interrupted and np.unique(picked).tolist() == [1], "read again, whole, after the commit"


@pytest.mark.parametrize("change", ["discard", "redefine"])
@pytest.mark.parametrize("key", ["stepped", "rows of two extents"])
def test_a_read_of_several_calls_sees_one_state_across_a_discard_or_a_redefinition(tmp_path, monkeypatch, change, key):
    # Neither moves the generation: the handle's own count of such changes tells the read.
    monkeypatch.setattr(atlas._array, "_SLAB_BYTES", 0)
    store = atlas.Atlas.create(tmp_path / "s")
    ds = store.create_dataset("d")
    arr = ds.define_array("a", "int32", None, [20, 10], chunk_shape=[5, 5])
    arr[...] = 0
    store.flush()
    arr[...] = 7  # pending until the discard
    native, interrupted = arr._native, []

    def change_once():
        if not interrupted:
            interrupted.append(True)
            if change == "discard":
                store.discard()
            else:
                ds.delete_array("a")
                ds.define_array("a", "int32", None, [20, 10], chunk_shape=[5, 5], fill_value=3)

    class ChangeAfterFirstCall:
        def read(self, start=None, shape=None, *args):
            out = native.read(start, shape, *args)
            change_once()
            return out

        def read_boxes(self, starts, shape):
            out = native.read_boxes(starts, shape)
            change_once()
            return out

        def __getattr__(self, name):
            return getattr(native, name)

    arr._native = ChangeAfterFirstCall()
    picked = arr[::2, ::3] if key == "stepped" else arr[[0, 1, 2, 7, 8, 15], :]
    expected = 0 if change == "discard" else 3
    assert interrupted and np.unique(picked).tolist() == [expected], "read again, whole, after the change"


def test_a_stepped_assignment_checks_its_value_as_numpy_does(ds, monkeypatch):
    monkeypatch.setattr(atlas._array, "_SLAB_BYTES", 0)
    arr = ds.define_array("a", "int32", None, [20, 10], chunk_shape=[5, 5])
    with pytest.raises(ValueError):
        arr[::2, ::3] = np.ones((10, 3), np.int32)  # the selection is 10 x 4
    assert arr[...].sum() == 0


@pytest.mark.parametrize("slab_bytes", [0, 64 << 20])
def test_a_broadcast_value_is_written_a_chunk_row_at_a_time_and_lands_exactly(ds, monkeypatch, slab_bytes):
    # Slab bytes 0: every broadcast goes in slabs of chunk rows, as a large one would.
    monkeypatch.setattr(atlas._array, "_SLAB_BYTES", slab_bytes)
    arr = ds.define_array("a", "int32", None, [10, 6], chunk_shape=[3, 4])
    model = np.zeros((10, 6), np.int32)
    for key, value in [
        ((slice(None), slice(None)), 5),
        ((slice(2, 9), slice(1, 5)), np.array([1, 2, 3, 4], np.int32)),
        ((slice(1, 8), 3), 7),
        ((2, slice(None)), 9),  # axis 0 taken by an integer: slabs along axis 1
        ((slice(4, 10), slice(None)), np.arange(6, dtype=np.int32)[None, :]),
    ]:
        arr[key] = value
        model[key] = value
        assert np.array_equal(arr[:], model), key


def test_a_broadcast_value_is_cut_along_an_axis_longer_than_its_chunks(ds, monkeypatch):
    # Chunks span axis 0 whole: slabs of it would be the whole selection.
    monkeypatch.setattr(atlas._array, "_SLAB_BYTES", 0)
    arr = ds.define_array("a", "float32", None, [4, 1000], chunk_shape=[4, 7])
    spy = arr._native = LargestBox(arr._native)
    arr[:] = 2.5
    arr[1:3, 10:] = np.arange(990, dtype=np.float32)
    assert spy.written_most <= 4 * 7, "a chunk at a time"
    model = np.full((4, 1000), 2.5, np.float32)
    model[1:3, 10:] = np.arange(990, dtype=np.float32)
    np.testing.assert_array_equal(arr[...], model)


class InterruptedAt:
    """Stands in for an array's native half, raising `interrupt` (KeyboardInterrupt: Ctrl-C)
    at its `n`-th write, after the writes before it went through."""

    def __init__(self, native, n, interrupt=KeyboardInterrupt):
        self._native, self.writes, self.n, self.interrupt = native, 0, n, interrupt

    def write(self, start, data):
        self.writes += 1
        if self.writes == self.n:
            raise self.interrupt
        self._native.write(start, data)

    def __getattr__(self, name):
        return getattr(self._native, name)


# SystemExit: what a signal handler's `sys.exit` raises (SIGTERM in a batch job).
@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("key", [(slice(None), slice(None)), (slice(None, None, 2), slice(None))])
def test_an_interrupted_assignment_that_began_the_changes_leaves_none_behind(store, ds, monkeypatch, key, interrupt):
    # A broadcast in slabs, or a stepped key, writes several boxes: Ctrl-C after the first
    # must not leave it half done for the next flush (or a `with` block's end) to commit.
    monkeypatch.setattr(atlas._array, "_SLAB_BYTES", 0)
    arr = ds.define_array("a", "float64", None, [6, 4], chunk_shape=[2, 4])
    arr[...] = 1.0
    store.flush()
    arr._native = InterruptedAt(arr._native, 2, interrupt)
    with pytest.raises(interrupt):
        arr[key] = np.nan
    assert arr._native.writes == 2 and not store.has_pending_changes
    assert (atlas.Atlas.open(store.path)["d"]["a"][...] == 1.0).all()
    other = atlas.Atlas.open(store.path)
    other["d"]["a"][0, 0] = 2.0  # the lock was given back
    other.flush()
    # Changes pending before it are not the assignment's to discard: they stay, torn or not.
    arr._native = InterruptedAt(arr._native._native, 2, interrupt)
    store.refresh()
    arr[5, 3] = 3.0
    with pytest.raises(interrupt):
        arr[key] = np.nan
    assert store.has_pending_changes and arr[5, 3] == 3.0
    store.flush()


def test_an_interrupted_assignment_keeps_what_another_thread_wrote_meanwhile(store, ds, monkeypatch):
    # The session then holds another thread's change too: nothing is discarded (the torn
    # assignment stays pending, as any failed one does), rather than that change lost.
    monkeypatch.setattr(atlas._array, "_SLAB_BYTES", 0)
    arr = ds.define_array("a", "float64", None, [6, 4], chunk_shape=[2, 4])
    other = ds.define_array("b", "float64", None, [2])
    store.flush()
    native = arr._native

    class OtherThreadWritesFirst(InterruptedAt):
        def write(self, start, data):
            if self.writes + 1 == self.n:
                worker = threading.Thread(target=lambda: other.__setitem__(0, 5.0))
                worker.start()
                worker.join()
            super().write(start, data)

    arr._native = OtherThreadWritesFirst(native, 2)
    with pytest.raises(KeyboardInterrupt):
        arr[...] = np.nan
    assert store.has_pending_changes and other[0] == 5.0
    store.flush()
    assert atlas.Atlas.open(store.path)["d"]["b"][0] == 5.0


def test_an_interrupted_new_array_leaves_no_change_behind(store, ds, monkeypatch):
    monkeypatch.setattr(atlas._array, "_SLAB_BYTES", 0)
    store.flush()

    def interrupted(self, key, value):
        raise KeyboardInterrupt

    monkeypatch.setattr(atlas.Array, "_assign", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ds["big"] = np.zeros((6, 4))
    assert "big" not in ds and not store.has_pending_changes


def test_a_new_array_may_take_a_name_another_writer_freed(store, ds):
    ds["a"] = np.zeros(3)
    store.flush()
    other = atlas.Atlas.open(store.path)
    del other["d"]["a"]
    other.flush()
    ds["a"] = np.ones(2)  # this handle's snapshot still has the old `a`
    store.flush()
    assert atlas.Atlas.open(store.path)["d"]["a"][:].tolist() == [1.0, 1.0]
    with pytest.raises(atlas.AlreadyExistsError, match=r"assign into it with ds\['a'\]"):
        ds["a"] = np.ones(2)
    assert not store.has_pending_changes


def test_a_change_hold_dropped_unreleased_gives_the_lock_back(store):
    # As when Ctrl-C lands as begin_change returns, before the caller holds the hold.
    store.flush()
    store._native.begin_change()  # dropped at once
    assert not store.has_pending_changes
    atlas.Atlas.open(store.path).create_dataset("other")  # not locked out


def test_starts_and_shapes_take_one_integer_and_refuse_floats_and_out_of_range(ds):
    arr = ds.define_array("a", "int16", "x", 8)
    assert arr.shape == (8,) and arr.dims == ("x",)
    arr.resize(10)
    assert arr.shape == (10,)
    assert arr.read(2, 3).tolist() == [0, 0, 0]
    with pytest.raises(TypeError):
        arr.read([2.0], [3])
    with pytest.raises(atlas.OutOfBoundsError):
        arr.read([2**64], [1])


def test_open_limits_out_of_range_are_a_value_error(tmp_path):
    atlas.Atlas.create(tmp_path / "s")
    with pytest.raises(ValueError):
        atlas.Atlas.open(tmp_path / "s", max_meta_bytes=-1)


def test_stores_and_datasets_have_dict_methods(store):
    d = store.create_dataset("d")
    d.define_array("b", "int8", None, [2])
    d.define_array("a", "int8", None, [2])
    store.create_dataset("e")
    assert store.keys() == ["d", "e"]
    assert [name for name, _ in store.items()] == ["d", "e"]
    assert [v.name for v in store.values()] == ["d", "e"]
    assert store.get("missing") is None and store.get("d").name == "d"
    assert d.keys() == ["a", "b"]
    assert [a.name for a in d.values()] == ["a", "b"]
    assert dict(d.items())["b"].name == "b"
    assert d.get("missing", 1) == 1


def test_asarray_without_a_copy_is_refused(ds):
    arr = ds.define_array("a", "int8", None, [2])
    assert np.asarray(arr).tolist() == [0, 0]
    with pytest.raises(ValueError):
        arr.__array__(copy=False)


def test_assignment_casts_lists_and_arrays_by_one_rule(ds):
    u16 = ds.define_array("u16", "uint16", None, [3])
    u16[:] = np.arange(3)  # int64 values that fit
    u16[:] = [1, 2, 3]
    assert u16[:].tolist() == [1, 2, 3]
    for bad in ([70000, 0, 0], np.array([-1, 0, 0]), [1.5, 0, 0], np.array([1.5, 0, 0])):
        with pytest.raises(atlas.DTypeMismatchError):
            u16[:] = bad
    assert u16[:].tolist() == [1, 2, 3]
    f32 = ds.define_array("f32", "float32", None, [2])
    f32[:] = [1, 2]
    assert f32[:].tolist() == [1.0, 2.0]
    for bad in ([1e39, 0], np.array([-1e300, 0.0])):  # finite values float32 would hold as inf
        with pytest.raises(atlas.DTypeMismatchError, match="out of range"):
            f32[:] = bad
    f32[:] = [np.inf, np.nan]  # non-finite values stay what they are
    assert np.isinf(f32[0]) and np.isnan(f32[1])
    # Within floats and from ints to floats, values are rounded to the array's precision.
    f32[:] = np.array([0.1, 16777217.0])
    assert f32[:].tolist() == [np.float32(0.1), 16777216.0]
    f64 = ds.define_array("f64", "float64", None, [1])
    f64[:] = np.array([2**53 + 1], dtype=np.int64)
    assert f64[0] == 2.0**53
    t = ds.define_array("t", "timestamp", None, [1])
    t[:] = ["2024-01-01"]
    assert t[0] == np.datetime64("2024-01-01", "ns")


def test_masked_arrays_are_refused_where_an_element_is_masked(ds):
    # Atlas keeps no mask: the values under it (-999 here) would be stored as data.
    arr = ds.define_array("a", "float64", None, [3], fill_value=np.nan)
    masked = np.ma.masked_array([1.0, -999.0, 3.0], mask=[False, True, False])
    for write in (
        lambda: arr.__setitem__(..., masked),
        lambda: arr.write([0], masked),
        lambda: arr.__setitem__(0, np.ma.masked),
        lambda: ds.__setitem__("b", masked),
    ):
        with pytest.raises(atlas.InvalidArgumentError, match="masked values for array d/[ab].*filled"):
            write()
    assert np.isnan(arr[:]).all() and "b" not in ds
    arr[:] = masked.filled(arr.fill_value)  # the way out the error names: null in the stats
    assert arr.stats["count"] == 2
    arr[:] = np.ma.masked_array([4.0, 5.0, 6.0], mask=False)  # nothing masked: the data
    assert arr[:].tolist() == [4.0, 5.0, 6.0]


def test_python_ints_numpy_cannot_hold_in_one_dtype_are_taken_exactly_when_they_fit(ds):
    # numpy makes [2**64 - 1, 1] float64 (rounded) and [2**70, 1] object.
    u64 = ds.define_array("u64", "uint64", None, [2])
    u64[:] = [2**64 - 1, 1]
    assert u64[:].tolist() == [2**64 - 1, 1]
    u64[:] = [np.array(2**64 - 2, dtype=np.uint64), np.uint64(3)]  # numpy ints, alone or 0-d
    assert u64[:].tolist() == [2**64 - 2, 3]
    u64[:] = [2**64 - 1, 1]
    i64 = ds.define_array("i64", "int64", None, [2])
    out_of_range = ((u64, [2**70, 1], "1..1180591620717411303424"), (i64, [2**64 - 1, 1], "1..18446744073709551615"))
    for arr, bad, span in out_of_range:
        with pytest.raises(atlas.DTypeMismatchError, match=f"out of range.*spans {span}"):
            arr[:] = bad
    with pytest.raises(atlas.DTypeMismatchError, match="fraction"):  # a fraction stays refused
        u64[:] = [1.5, 2**64 - 1]
    # Ints beside whole floats are taken as given, not as numpy's rounded float64 of them.
    u64[:] = [2**63 + 1, 1.0]
    assert u64[:].tolist() == [2**63 + 1, 1]
    i64[:] = np.array([2**53 + 1, 2.0], dtype=object)
    assert i64[:].tolist() == [2**53 + 1, 2]
    with pytest.raises(atlas.DTypeMismatchError, match="spans 1..18446744073709551616"):
        u64[:] = [2**64, 1.0]
    u64[:] = [2**64 - 1, 1]
    assert u64[:].tolist() == [2**64 - 1, 1]


def test_float16_values_assign_into_integer_arrays_without_a_warning(ds):
    u8 = ds.define_array("u8", "uint8", None, [3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy warned casting 2**53 to float16
        u8[0] = np.float16(255)
        u8[1:] = np.array([1, 2], dtype=np.float16)
    assert u8[:].tolist() == [255, 1, 2]


def test_a_refused_attribute_names_its_key_and_where_in_its_value(ds):
    a = ds.define_array("a", "int8", None, [1])
    refusals = [
        ({"a": [1, 2.5, "x", {"b": None}]}, atlas.DTypeMismatchError, 'attribute "cfg": unsupported type NoneType at \\["a"\\]\\[3\\]\\["b"\\]'),
        (None, atlas.DTypeMismatchError, 'attribute "cfg": unsupported type NoneType$'),
        ((1, [2, object()]), atlas.DTypeMismatchError, "unsupported type object at \\[1\\]\\[1\\]"),
        ({1: 2}, atlas.DTypeMismatchError, 'attribute "cfg": map keys must be str, got 1$'),
        ([b"\xff"], atlas.InvalidArgumentError, 'attribute "cfg": bytes at \\[0\\] are not UTF-8'),
        (np.uint64(2**64 - 1), atlas.InvalidArgumentError, 'attribute "cfg": int 18446744073709551615 does not fit'),
    ]
    for value, error, message in refusals:
        with pytest.raises(error, match=message):
            a.attrs["cfg"] = value
    with pytest.raises(atlas.InvalidArgumentError, match='attribute "n": value 300 is out of range for int8'):
        a.attrs.set("n", 300, "int8")
    assert a.attrs.to_dict() == {}


def test_an_array_compared_with_a_number_or_data_is_refused_not_false(ds):
    # `arr == 5` was False, so `arr[arr == 5]` selected nothing without a word.
    a = ds.define_array("a", "int64", None, [6])
    a[:] = [5, 1, 5, 2, 5, 3]
    for value in [5, 5.0, True, np.int64(5), np.array([5]), [5], (5,), "x", b"x", datetime.datetime(2020, 1, 1), range(2)]:
        for compare in (lambda: a == value, lambda: a != value):
            with pytest.raises(TypeError, match=r"compare its data, arr\[\.\.\.\] == value"):
                compare()
    with pytest.raises(TypeError, match="compare its data"):
        5 == a  # noqa: B015
    # numpy on the left reads the data (`__array__`) and compares it.
    assert (np.int64(5) == a).tolist() == [True, False, True, False, True, False]
    assert a[a[...] == 5].tolist() == [5, 5, 5]
    # Handles still compare as themselves, and hash.
    other = ds["a"]
    assert a == a and a != other and a != None and a in [other, a]  # noqa: E711
    assert {a: 1}[a] == 1


def test_long_doubles_are_taken_as_the_float64_numpy_casts_them_to(ds):
    # Their item() and tolist() give a long double back: this recursed until the stack ran out.
    a = ds.define_array("a", "float64", None, [2], fill_value=np.longdouble(1.5))
    b = ds.define_array("b", "float32", None, [2], fill_value=np.array(np.longdouble(2.5)))
    assert a[:].tolist() == [1.5, 1.5] and b.fill_value == 2.5
    a.attrs["x"] = np.longdouble(0.25)
    a.attrs["y"] = np.array([1, 2], dtype=np.longdouble)
    assert a.attrs.to_dict() == {"x": 0.25, "y": [1.0, 2.0]}
    with pytest.raises(atlas.DTypeMismatchError):
        ds.define_array("c", "float64", None, [2], fill_value=np.clongdouble(1.5))
    with pytest.raises(atlas.DTypeMismatchError):
        a.attrs["z"] = np.clongdouble(1)
    if np.finfo(np.longdouble).max > np.finfo(np.float64).max:  # x86's 80-bit long double
        with pytest.raises(atlas.DTypeMismatchError, match="past float64"):
            ds.define_array("d", "float64", None, [2], fill_value=np.longdouble("1e400"))


def test_a_float_fill_value_is_rounded_as_numpy_casts_it_and_shown_as_stored(ds):
    for dtype, fill in (("float32", 1 / 3), ("float32", 2**24 + 1), ("float64", 2**53 + 1), ("float64", 2**80 + 1)):
        arr = ds.define_array(f"{dtype}_{len(ds.keys())}", dtype, None, [2], fill_value=fill)
        stored = np.array(fill, dtype=dtype).item()
        assert arr.fill_value == stored and arr[:].tolist() == [stored] * 2, (dtype, fill)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix's own
def test_subclasses_of_ndarray_assign_as_their_data(ds):
    a = ds.define_array("a", "float64", None, [3])
    a[...] = np.matrix([[1.0, 2, 3]])  # np.matrix stays 2-d through reshape
    a[:] = np.matrix([[4.0, 5, 6]])
    assert a[:].tolist() == [4.0, 5.0, 6.0]
    b = ds.define_array("b", "float64", None, [3, 3])
    b[[0, 1, 2], [0, 1, 2]] = np.matrix([[1.0, 2, 3]])
    np.testing.assert_array_equal(b[:], np.diag([1.0, 2, 3]))


def test_python_ints_past_64_bits_go_to_float_arrays_rounded_as_numpy_casts_them(ds):
    f64 = ds.define_array("f64", "float64", None, [2], fill_value=2**70)
    assert f64[:].tolist() == [float(2**70)] * 2
    f64[0] = 2**70 + 1
    f64[1:] = [-(2**63) - 1]
    assert f64[:].tolist() == [float(2**70 + 1), float(-(2**63) - 1)]
    f32 = ds.define_array("f32", "float32", None, [2])
    f32[:] = [2**70, 1]
    assert f32[:].tolist() == [float(np.float32(2**70)), 1.0]
    f64[:] = [2**70, -np.inf]  # beside floats too, non-finite ones kept
    assert f64[:].tolist() == [float(2**70), -np.inf]
    for arr, bad in ((f32, [10**40, 1]), (f64, [10**400, 1]), (f32, [2**70, 1e300])):
        with pytest.raises(atlas.DTypeMismatchError, match="out of range"):
            arr[:] = bad
    with pytest.raises(atlas.DTypeMismatchError):
        f64[:] = [2**70, True]  # bools stay refused
    with pytest.raises(atlas.InvalidArgumentError, match="does not fit"):
        ds.define_array("i", "int64", None, [2], fill_value=2**70)


def test_boolean_masks_over_several_axes_select_as_in_numpy(ds):
    arr = ds.define_array("a", "int32", None, [4, 5, 6], chunk_shape=[2, 2, 3])
    model = np.arange(120, dtype=np.int32).reshape(4, 5, 6)
    arr[:] = model
    plane = model[0] % 3 == 0
    for key in [model > 60, model % 7 == 0, np.zeros(model.shape, bool), (slice(1, 3), plane), (Ellipsis, plane),
                (model[:, :, 0] % 2 == 0, 2)]:
        assert np.array_equal(arr[key], model[key])
    arr[model > 100] = -1
    model[model > 100] = -1
    assert np.array_equal(arr[:], model)
    with pytest.raises(IndexError):
        arr[np.ones((4, 5), bool), 0, 0]


def test_a_scalar_bool_index_adds_an_axis_as_in_numpy(ds):
    arr = ds.define_array("a", "int32", None, [3, 4])
    model = np.arange(12, dtype=np.int32).reshape(3, 4)
    arr[:] = model
    for key in [True, np.False_, (True, 1), (0, False), (Ellipsis, True), (np.array(True), slice(1, 3))]:
        got = arr[key]
        assert got.shape == model[key].shape and np.array_equal(got, model[key]), key
    arr[False] = 7  # selects nothing
    arr[True, 0] = 5
    model[True, 0] = 5
    assert np.array_equal(arr[:], model)


def test_timestamps_numpy_would_wrap_are_refused(ds):
    t = ds.define_array("t", "timestamp", None, [2])
    with pytest.raises(atlas.InvalidArgumentError):
        t[:] = np.array(["2000-01-01", "3000-01-01"], "datetime64[D]")
    with pytest.raises(atlas.InvalidArgumentError):
        t.write([0], np.array(["1500-01-01"], "datetime64[D]"))
    with pytest.raises(atlas.InvalidArgumentError):
        ds.attrs["when"] = datetime.datetime(3000, 1, 1)
    t[:] = np.array(["2000-01-01", "NaT"], "datetime64[D]")
    assert t[0] == np.datetime64("2000-01-01", "ns") and np.isnat(t[1])
    # Scalars, lists, datetime objects and strings too (numpy's own conversion wraps them).
    before = t[:]
    for value in [np.datetime64("3000-01-01"), [np.datetime64("3000-01-01")] * 2, "3000-01-01",
                  [datetime.datetime(2300, 1, 1)] * 2]:
        with pytest.raises(atlas.InvalidArgumentError):
            t[:] = value
    with pytest.raises(atlas.InvalidArgumentError):
        t.write([0], [np.datetime64("3000-01-01")])
    with pytest.raises(atlas.InvalidArgumentError):
        t.append([datetime.datetime(2300, 1, 1)])
    with pytest.raises(atlas.InvalidArgumentError, match="below a nanosecond"):
        t[:] = np.array([1500], "datetime64[ps]")
    # Text with nanosecond digits, which numpy reads in nanoseconds and wraps (2300 as 1715),
    # or digits below them: alone, in lists, as fill values.
    for text in ["2300-01-01T00:00:00.000000000", "1500-01-01T00:00:00.000000001",
                 ["2300-01-01", "2020-01-01T00:00:00.000000001"], "2262-04-11T23:47:16.854775808",
                 "1677-09-21T00:12:43.145224192"]:
        with pytest.raises(atlas.InvalidArgumentError, match="2262-04-11T23:47:16.854775807"):
            t[:] = text
        if isinstance(text, str):
            with pytest.raises(atlas.InvalidArgumentError, match="2262-04-11T23:47:16.854775807"):
                ds.define_array("wrapped", "timestamp", None, [1], fill_value=text)
    with pytest.raises(atlas.InvalidArgumentError, match=r"below a nanosecond \(ps\)"):
        t[:] = "2020-01-01T00:00:00.0000000001"
    np.testing.assert_array_equal(t[:], before)
    # datetime64 values among other objects are each taken in their own unit; numbers and
    # durations among dates are no instants.
    ps = np.array([np.datetime64(1, "ps"), None], dtype=object)
    with pytest.raises(atlas.InvalidArgumentError, match=r"below a nanosecond \(ps\)"):
        t[:] = ps
    for mixed in [[5, datetime.datetime(2020, 1, 1)], np.array([np.timedelta64(5, "s"), None], dtype=object)]:
        with pytest.raises(atlas.DTypeMismatchError, match="is no instant"):
            t[:] = mixed
    t[:] = [np.datetime64("2020-01-01T00:00:00.123456789"), datetime.datetime(2020, 1, 1)]
    assert t[0] == np.datetime64("2020-01-01T00:00:00.123456789")
    t[:] = ["1677-09-21T00:12:43.145224193", "2262-04-11T23:47:16.854775807"]
    assert t[:].view("int64").tolist() == [-(2**63) + 1, 2**63 - 1]
    t[:] = ["1969-12-31T23:59:59.999999999", "2020-01-01T00:00:00.0000000000"]
    assert t[:].view("int64").tolist() == [-1, 1577836800 * 10**9]
    t[:] = before
    # The first and last days nanoseconds hold are taken in any unit (numpy's own conversion
    # back from nanoseconds misreads the first ones), as values, attributes and fill values.
    for first, last in [(np.datetime64("1677-09-22"), np.datetime64("2262-04-11")),
                        (np.datetime64("1677-09-21T00:12:44"), np.datetime64("2262-04-11T23:47:16")),
                        (np.datetime64("1677-10", "M"), np.datetime64("2262-04", "M"))]:
        t[:] = [first, last]
        assert t[:].tolist() == [first.astype("M8[ns]").item(), last.astype("M8[ns]").item()]
        ds.attrs["first"] = first
        assert ds.attrs["first"] == first
        ds.define_array(f"f{first}", "timestamp", None, [1], fill_value=first)
    # Months and years past what days hold, and multiples of a nanosecond, are checked too.
    for wrapping in [np.array([606065638266394312], "M8[M]"), np.array([10**18], "M8[10ns]")]:
        with pytest.raises(atlas.InvalidArgumentError, match="2262-04-11T23:47:16.854775807"):
            t[:1] = wrapping
        with pytest.raises(atlas.InvalidArgumentError, match="2262-04-11T23:47:16.854775807"):
            ds.attrs["wrapping"] = wrapping[0]
    t[:1] = np.array([10**17], "M8[10ns]")
    assert t[0] == np.datetime64(10**18, "ns")
    for outside in [np.datetime64("1677-09-21"), np.datetime64("1677-09-21T00:12:43"), np.datetime64("2262-04-12")]:
        with pytest.raises(atlas.InvalidArgumentError, match="2262-04-11T23:47:16.854775807"):
            t[0] = outside
        with pytest.raises(atlas.InvalidArgumentError, match="2262-04-11T23:47:16.854775807"):
            ds.attrs["outside"] = outside


def test_timestamps_are_given_as_datetime64_datetimes_dates_strings_or_nanoseconds(ds):
    t = ds.define_array("t", "timestamp", None, [2], fill_value=datetime.date(2020, 1, 1))
    assert t[0] == np.datetime64("2020-01-01", "ns")
    t[:] = "2021-03-04T05:06"
    assert t[1] == np.datetime64("2021-03-04T05:06", "ns")
    t[:] = [datetime.datetime(2021, 5, 1, 12), datetime.date(2022, 1, 1)]
    assert t[:].tolist() == np.array(["2021-05-01T12", "2022-01-01"], "datetime64[ns]").tolist()
    t.write([0], [5])
    assert t[0] == np.datetime64(5, "ns")
    # An aware datetime is its UTC instant, without numpy's warning about time zones.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t[0] = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=5)))
    assert t[0] == np.datetime64("2023-12-31T19:00", "ns")
    # A duration, a float or a bool is no instant (numpy would take them as nanoseconds).
    for value in [np.timedelta64(5, "s"), 1.5, True]:
        with pytest.raises(atlas.DTypeMismatchError):
            t[0] = value


def test_keys_that_are_not_names_say_what_a_key_is(store, ds):
    ds.define_array("a", "int8", None, [2])
    for key in [..., 0, b"d", ("d", "a"), None]:
        for use in (lambda: store[key], lambda: ds[key], lambda: ds.__setitem__(key, [1])):
            with pytest.raises(TypeError, match=r"keys are names \(str\)"):
                use()
        with pytest.raises(TypeError, match="keys are names"):
            del store[key]
        with pytest.raises(TypeError, match="keys are names"):
            del ds[key]
    assert ds["a"].shape == (2,) and list(ds) == ["a"]


def test_handles_refuse_pickling_with_what_to_do_instead(store, ds):
    import pickle

    arr = ds.define_array("a", "int8", None, [2])
    for handle in [store, ds, arr, arr.attrs, ds.attrs]:
        with pytest.raises(TypeError, match="Atlas.open"):
            pickle.dumps(handle)


def test_a_start_of_the_wrong_rank_says_so(ds):
    arr = ds.define_array("a", "int8", None, [10])
    with pytest.raises(atlas.ShapeError, match=r"start \[0, 0\] has 2 dimensions, array d/a \[10\] has 1"):
        arr.read([0, 0])
    with pytest.raises(atlas.DTypeMismatchError, match="astype"):
        arr.write([0], np.zeros(2, np.float64))
    with pytest.raises(atlas.DTypeMismatchError, match="needs a number"):
        ds.attrs.set("x", "5", dtype="float64")


def test_write_and_append_convert_lists_as_assignment_does(ds):
    i32 = ds.define_array("i32", "int32", None, [0])
    b = ds.define_array("b", "bool", None, [2])
    for call in (lambda: i32.append([1.7, -2.9]), lambda: i32.write([0], [1.5]), lambda: b.write([0], ["False", ""])):
        with pytest.raises(atlas.DTypeMismatchError):
            call()
    with pytest.raises(atlas.DTypeMismatchError):
        i32.append([2**40])  # out of int32's range
    i32.append([1, 2])
    i32.write([1], [3])
    b.write([0], [True, False])
    f32 = ds.define_array("f32", "float32", None, [2])
    f32.write([0], [1, 2.5])  # int and float64 into float32: within a kind or upwards
    assert (i32[:].tolist(), b[:].tolist(), f32[:].tolist()) == ([1, 3], [True, False], [1.0, 2.5])


@pytest.mark.parametrize("name", ["int32", "uint8", "bool", "timestamp", "float64", "string"])
def test_an_empty_value_assigns_nothing_to_any_dtype(ds, name):
    arr = ds.define_array("a", name, None, [4])
    # Values other than the fill, so that an empty value spread as the fill would show.
    arr[:] = {
        "bool": [True] * 4,
        "timestamp": np.arange(1, 5).astype("datetime64[ns]"),
        "string": ["a", "b", "c", "d"],
    }.get(name, [1, 2, 3, 4])
    before, blocks = arr[:], arr.blocks()
    for key in (slice(2, 2), [], np.zeros(4, bool)):
        arr[key] = []
    arr.write([4], [])
    arr.append([])
    np.testing.assert_array_equal(arr[:], before)
    assert arr.blocks() == blocks, "nothing written"


def test_big_endian_datetime64_is_assigned_like_native(ds):
    t = ds.define_array("t", "timestamp", None, [2])
    when = np.array(["2020-01-01", "2021-06-30T12:00:00.000000001"], dtype="datetime64[ns]")
    t[:] = when.astype(">M8[ns]")
    t[1:] = when[:1].astype(">M8[ns]").astype(">M8[us]")
    assert (t[:] == when[0]).all()


def test_a_timestamp_mean_next_to_nat_is_an_instant_not_nat(ds):
    arr = ds.define_array("t", "timestamp", None, [2])
    arr[:] = np.array([np.iinfo(np.int64).min + 1] * 2).view("datetime64[ns]")
    assert not np.isnat(arr.stats["mean"]) and arr.stats["mean"] == arr.stats["min"]
