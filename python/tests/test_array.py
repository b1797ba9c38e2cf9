"""The array handle: properties, numpy-style reads and writes, append, resize, codecs."""

import itertools
import re
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import atlas
from atlas import _index

SHAPE = (7, 9, 5)


@pytest.fixture
def cube(ds):
    arr = ds.define_array("c", "int32", ["z", "y", "x"], list(SHAPE), chunk_shape=[3, 4, 2], fill_value=-1)
    full = np.arange(np.prod(SHAPE), dtype=np.int32).reshape(SHAPE)
    arr[...] = full
    return arr, full


def test_handle_properties(ds):
    arr = ds.define_array("temp", np.float32, ["t", "z"], [10, 20], chunk_shape=[5, 20], fill_value=np.nan)
    assert ds["temp"].name == "temp" and arr.dataset == "d"
    assert arr.shape == (10, 20) and arr.ndim == 2 and arr.size == 200 and len(arr) == 10
    scalar, empty = ds.define_array("scalar", "int8", None, []), ds.define_array("empty", "int8", None, [0, 3])
    assert scalar and empty and len(empty) == 0 and scalar.size == 1
    assert arr.dtype == np.dtype("float32") and arr.atlas_dtype == "float32"
    assert arr.chunks == (5, 20) and arr.dims == ("t", "z")
    assert arr.nbytes == 800 and np.isnan(arr.fill_value)
    assert arr.codec == "zstd:3"
    arr.attrs["units"] = "degC"
    assert ds["temp"].attrs.to_dict() == {"units": "degC"}
    assert arr.stats["null_count"] == 200
    huge = ds.define_array("huge", "int8", None, [2**32, 2**31], chunk_shape=[1024, 1024])
    assert huge.size == 2**63 and huge.nbytes == 2**63  # past int64, where numpy's product wraps
    arr[0] = 1.0
    assert arr.stats["count"] == 20
    assert [b["coord"] for b in arr.block_stats()] == [(0, 0)]


def test_numpy_style_reads_match_numpy(cube):
    arr, full = cube
    keys = [
        (slice(2, 6), slice(None, None, 2), 4),
        (Ellipsis, 3),
        (-1,),
        (slice(None, None, -1), slice(1, 8, 3)),
        (slice(5, 1, -2), Ellipsis, slice(None, None, -3)),
        (None, 2, slice(1, 3)),
        ([0, 5, 2], slice(None), [1, 1, 4]),
        (np.array([True, False, True, False, False, False, True]),),
        (slice(3, 3),),
        (slice(10, 20),),
        (1, 2, 3),
        (),
    ]
    for key in keys:
        got = arr[key]
        want = full[key]
        assert np.shape(got) == np.shape(want), key
        np.testing.assert_array_equal(got, want, err_msg=str(key))
    assert isinstance(arr[1, 2, 3], np.int32)
    np.testing.assert_array_equal(np.asarray(arr), full)
    np.testing.assert_array_equal(np.asarray(arr, dtype=np.float64), full.astype(np.float64))
    assert [row.shape for row in arr] == [(9, 5)] * 7


def test_read_into_out_fills_it_as_read_returns_and_refuses_what_does_not_fit(cube, ds):
    arr, full = cube
    out = np.zeros((3, 9, 2), np.int32)
    assert arr.read([2, 0, 1], [3, 9, 2], out=out) is out
    assert np.array_equal(out, full[2:5, :, 1:3])
    whole = np.empty(SHAPE, np.int32)
    assert np.array_equal(arr.read(out=whole), full)
    when = ds.define_array("when", "timestamp", None, [4], chunk_shape=[2])
    when[...] = np.array(["2020-01-01", "NaT", "2021-06-01T12:00", "1970-01-01"], "datetime64[ns]")
    instants = np.empty(4, "datetime64[ns]")
    assert np.array_equal(when.read(out=instants), when[...], equal_nan=True)
    flags = ds.define_array("flags", "bool", None, [3])
    flags[...] = [True, False, True]
    assert flags.read(out=np.zeros(3, bool)).tolist() == [True, False, True]

    with pytest.raises(atlas.DTypeMismatchError, match="int32"):
        arr.read(out=np.empty(SHAPE, np.int64))
    with pytest.raises(atlas.DTypeMismatchError):
        arr.read(out=np.empty(SHAPE, ">i4"))
    with pytest.raises(atlas.ShapeError, match=r"\[3, 9, 2\]"):
        arr.read([2, 0, 1], [3, 9, 2], out=np.empty((3, 9, 3), np.int32))
    with pytest.raises(atlas.InvalidArgumentError, match="C-contiguous"):
        arr.read(out=np.empty(SHAPE[::-1], np.int32).T)
    frozen = np.empty(SHAPE, np.int32)
    frozen.flags.writeable = False
    with pytest.raises(atlas.InvalidArgumentError, match="written"):
        arr.read(out=frozen)
    with pytest.raises(TypeError, match="numpy array"):
        arr.read(out=[0] * 10)
    with pytest.raises(atlas.InvalidArgumentError, match="device or out"):
        arr.read(out=whole, device="cuda")
    assert arr.read(out=whole, device="cpu") is whole, "the CPU is where out is"
    with pytest.raises(atlas.OutOfBoundsError):
        arr.read([5, 0, 0], [3, 9, 5], out=np.empty((3, 9, 5), np.int32))
    names = ds.define_array("names", "string", None, [2])
    with pytest.raises(atlas.DTypeMismatchError, match="new arrays"):
        names.read(out=np.empty(2, object))


def test_read_boxes_stacks_one_read_per_start(cube, ds):
    arr, full = cube
    starts = [(0, 0, 0), (4, 5, 3), (4, 5, 3), (2, 3, 1), np.array([5, 0, 2])]
    boxes = arr.read_boxes(starts, (2, 4, 2))
    assert boxes.shape == (5, 2, 4, 2) and boxes.dtype == np.int32
    for start, box in zip(starts, boxes):
        z, y, x = (int(i) for i in start)
        np.testing.assert_array_equal(box, full[z : z + 2, y : y + 4, x : x + 2])
    assert arr.read_boxes([], (1, 1, 1)).shape == (0, 1, 1, 1)
    with pytest.raises(atlas.OutOfBoundsError):
        arr.read_boxes([(0, 0, 0), (6, 0, 0)], (2, 1, 1))
    with pytest.raises(atlas.ShapeError):
        arr.read_boxes([(0, 0)], (1, 1))
    with pytest.raises(atlas.OutOfBoundsError):
        arr.read_boxes([(0, 0, 0)], (1 << 40, 1, 1))  # refused before any allocation
    names = ds.define_array("names", "string", ["i"], [4])
    with pytest.raises(atlas.DTypeMismatchError):
        names.read_boxes([(0,)], (1,))


def test_unaligned_input_is_written_from_an_aligned_copy(ds):
    arr = ds.define_array("u", "int32", ["i"], [10])
    raw = bytearray(4 * 10 + 1)
    unaligned = np.frombuffer(raw, dtype=np.int32, offset=1)
    assert not unaligned.flags.aligned
    raw[1:] = np.arange(10, dtype=np.int32).tobytes()
    arr.write([0], unaligned)
    np.testing.assert_array_equal(arr[...], np.arange(10, dtype=np.int32))


def test_index_arrays_of_any_integer_dtype_and_empty_ones_read_like_numpy(cube):
    arr, full = cube
    for dtype in (np.uint8, np.int8, np.uint16, np.int64):
        idx = np.array([1, 6, 0], dtype)
        np.testing.assert_array_equal(arr[idx], full[idx], err_msg=str(dtype))
        np.testing.assert_array_equal(arr[2, idx], full[2, idx], err_msg=str(dtype))
    np.testing.assert_array_equal(arr[np.array([-1], np.int8)], full[[-1]])
    assert arr[[]].shape == full[[]].shape == (0, 9, 5)
    # Any empty sequence is indices, as numpy takes it.
    for key in ([[]], range(0), ([], [])):
        assert arr[key].shape == full[key].shape, key
        arr[key] = 1
    np.testing.assert_array_equal(arr[:], full)
    with pytest.raises(atlas.OutOfBoundsError):
        arr[np.array([2**64 - 1], np.uint64)]  # not -1 once taken as a signed index


def test_in_asks_whether_any_element_equals_the_value_as_numpy_does(cube):
    arr, full = cube
    assert (5 in arr) == (5 in full) == True and (-7 in arr) == (-7 in full) == False  # noqa: E712
    assert (full[1] in arr) == (full[1] in full)


def test_an_element_selected_with_an_ellipsis_is_a_0d_array_as_in_numpy(cube, ds):
    arr, full = cube
    for key in [(1, 2, 3, ...), (..., 1, 2, 3), (1, ..., 2, 3), (-1, -1, -1, ...), (1, 2, 3)]:
        got, want = arr[key], full[key]
        assert type(got) is type(want) and np.shape(got) == np.shape(want) and got == want, key
    ds["s"] = np.array(["a", "bc"], dtype=object)
    assert ds["s"][1, ...].dtype == object and ds["s"][1, ...][()] == "bc" and ds["s"][1] == "bc"


def test_an_empty_selection_still_checks_the_value_and_iteration_goes_by_rows(cube):
    arr, full = cube
    with pytest.raises(ValueError):
        arr[5:5] = np.ones((1000, 1000), np.int32)
    with pytest.raises(ValueError):
        arr[2, 3:3, ::2] = np.ones((4, 4), np.int32)
    arr[5:5] = np.ones((0, 9, 5), np.int32)
    arr[5:5] = 7
    np.testing.assert_array_equal(arr[...], full)
    rows = list(arr)
    assert len(rows) == len(full)
    for got, want in zip(rows, full):
        np.testing.assert_array_equal(got, want)


def test_iteration_reads_fewer_rows_than_a_chunk_row_where_that_is_over_its_bound(cube, monkeypatch):
    arr, full = cube  # 7 rows, chunk rows of 3
    keys = []
    getitem = atlas.Array.__getitem__
    monkeypatch.setattr(atlas.Array, "__getitem__", lambda self, key: keys.append(key) or getitem(self, key))
    for slab_rows, parts in ((3, [0, 3, 6]), (2, [0, 1, 2, 3, 4, 5, 6])):  # parts that divide 3
        keys.clear()
        monkeypatch.setattr(atlas._array, "_ITER_BYTES", slab_rows * full[0].nbytes)
        np.testing.assert_array_equal(np.stack(list(arr)), full)
        assert [k.start for k in keys] == parts, slab_rows


def test_negative_starts_and_shapes_are_out_of_bounds(cube):
    arr, _ = cube
    for start, shape in (([-1, 0, 0], [1, 1, 1]), ([0, 0, 0], [1, -1, 1])):
        with pytest.raises(atlas.OutOfBoundsError):
            arr.read(start, shape)
    with pytest.raises(atlas.OutOfBoundsError):
        arr.read_boxes([[0, -2, 0]], [1, 1, 1])
    with pytest.raises(atlas.OutOfBoundsError):
        arr.resize([-1, 9, 5])


def test_bad_keys_raise_index_errors(cube):
    arr, full = cube
    with pytest.raises(atlas.OutOfBoundsError):
        arr[7]
    with pytest.raises(IndexError):
        arr[0, -10]
    with pytest.raises(IndexError):
        arr[0, 0, 0, 0]
    with pytest.raises(IndexError):
        arr[..., ...]
    with pytest.raises(IndexError):
        arr["x"]
    with pytest.raises(IndexError):
        arr[np.ones((7, 8), dtype=bool)]  # a mask of the wrong shape
    assert np.array_equal(arr[np.ones((7, 9), dtype=bool)], full[np.ones((7, 9), dtype=bool)])
    with pytest.raises(IndexError):
        arr[[0, 99]]


def test_empty_masks_select_nothing_on_any_axis_as_in_numpy(cube):
    arr, full = cube
    for key in (
        np.zeros(0, dtype=bool),
        (slice(None), np.zeros(0, dtype=bool)),
        np.zeros((0, 0), dtype=bool),
        np.zeros((0, 9), dtype=bool),
        np.zeros((7, 0), dtype=bool),
        (np.zeros(0, dtype=bool), [1]),  # broadcasts with the empty selection
    ):
        expected = full[key]
        assert expected.size == 0
        got = arr[key]
        assert got.shape == expected.shape and got.dtype == expected.dtype
        arr[key] = 1  # writes nothing
    np.testing.assert_array_equal(arr[...], full)
    for key in (
        np.zeros(1, dtype=bool),
        np.zeros((0, 8), dtype=bool),
        np.zeros((2, 0), dtype=bool),
        (np.zeros(0, dtype=bool), [1, 2]),  # does not broadcast with the empty selection
    ):
        with pytest.raises(IndexError):
            full[key]  # the model refuses these too
        with pytest.raises(IndexError):
            arr[key]
        with pytest.raises(IndexError):
            arr[key] = 1
    np.testing.assert_array_equal(arr[...], full)


def test_zeros_and_ones_assign_into_bool_arrays_and_other_numbers_do_not(ds):
    bools = ds.define_array("flags", "bool", None, [3])
    bools[:] = np.array([0, 1, 1])
    assert bools[:].tolist() == [False, True, True]
    bools[0] = 1
    assert bools[:].tolist() == [True, True, True]
    bools[1:] = np.zeros(2)  # whole floats, as into integer arrays
    assert bools[:].tolist() == [True, False, False]
    bools[1] = 1.0
    assert bools[:].tolist() == [True, True, False]
    bools[np.array([True, False, True])] = np.array([-0.0, 1.0], dtype=np.float32)  # through a mask
    bools[[1, 2]] = [0.0, 1.0]  # and an index list
    assert bools[:].tolist() == [False, False, True]
    for other in [2, 0.5, np.nan, -1, np.array([1, 0, 5])]:
        with pytest.raises(atlas.DTypeMismatchError):
            bools[:] = other
    assert bools[:].tolist() == [False, False, True]


def test_none_into_a_numeric_array_is_refused_as_a_missing_value(ds):
    arr = ds.define_array("f", "float64", None, [3])
    for value in (None, [1.0, None, 2.0]):
        with pytest.raises(atlas.DTypeMismatchError, match="None for array d/f: it holds float64, which takes NaN for a missing value"):
            arr[:] = value
    assert arr[:].tolist() == [0.0, 0.0, 0.0]
    ints = ds.define_array("i", "int32", None, [2])
    with pytest.raises(atlas.DTypeMismatchError, match="which takes no missing value: give the fill value"):
        ints[:] = [1, None]


def test_pandas_na_and_other_objects_are_named_where_refused(ds):
    pd = pytest.importorskip("pandas")
    arr = ds.define_array("f", "float64", None, [2])
    with pytest.raises(atlas.DTypeMismatchError, match="^pandas.NA for array d/f: it holds float64, which takes NaN"):
        arr[:] = [1.0, pd.NA]
    with pytest.raises(atlas.DTypeMismatchError, match=r"the data is object \(holding dict \{'a': 1\}\)"):
        arr[:] = [1.0, {"a": 1}]
    assert arr[:].tolist() == [0.0, 0.0]


def test_numpy_style_writes_match_numpy(cube):
    arr, full = cube
    model = full.copy()
    writes = [
        ((slice(1, 3), slice(None), 2), 100),
        ((slice(None, None, 2), 0), np.arange(5, dtype=np.int32)),
        ((Ellipsis, slice(None, None, -2)), 7),
        (([1, 4], 3), np.array([[5, 6, 7, 8, 9]], dtype=np.int16)),
        ((6, 8, 4), 2**20),
        ((slice(2, 2),), 5),
        ((0,), np.full((1, 1, 9, 5), 3, np.int32)),  # leading length-1 axes, as numpy drops them
    ]
    for key, value in writes:
        arr[key] = value
        model[key] = value
        np.testing.assert_array_equal(arr[...], model, err_msg=str(key))
    arr[0] = np.ones((9, 5), np.float64)  # whole floats into int: no value changes
    model[0] = 1
    np.testing.assert_array_equal(arr[...], model)
    for cut in [np.full((9, 5), 1.5), np.full((9, 5), np.nan), np.full((9, 5), 2.0**31)]:
        with pytest.raises(atlas.DTypeMismatchError):
            arr[0] = cut  # numpy would cut or wrap these: refused
    with pytest.raises(ValueError):
        arr[0] = np.ones((3, 3), np.int32)  # does not broadcast


def test_writes_cast_within_a_kind_and_upwards(ds):
    arr = ds.define_array("f", "float32", ["x"], [4])
    arr[:] = np.arange(4, dtype=np.int64)  # int to float
    arr[:2] = np.array([0.5, 1.5])  # float64 to float32
    assert arr[:].tolist() == [0.5, 1.5, 2.0, 3.0]
    b = ds.define_array("b", "bool", ["x"], [3])
    b[1] = True
    assert b[:].tolist() == [False, True, False]
    t = ds.define_array("t", "timestamp", ["x"], [2])
    t[:] = np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[D]")
    t[1] = np.datetime64("2030-01-01T00:00:00.5")
    assert t[1] == np.datetime64("2030-01-01T00:00:00.5", "ns")
    s = ds.define_array("s", "string", ["y", "x"], [2, 3])
    s[0] = ["a", "b", "c"]
    s[1, ::2] = "z"
    assert s[...].tolist() == [["a", "b", "c"], ["z", "", "z"]]


DTYPE_NAMES = ["int8", "uint16", "int64", "float32", "float64", "bool"]


@st.composite
def array_case(draw):
    name = draw(st.sampled_from(DTYPE_NAMES))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=9))
    chunks = [draw(st.integers(1, n)) for n in shape]
    data = draw(hnp.arrays(np.dtype(name), shape))
    return name, shape, chunks, data


@st.composite
def index_key(draw, shape):
    key = []
    # Index lists on several axes select points: numpy broadcasts them, so all lists
    # drawn have one length (or length 1, which broadcasts to any).
    length = draw(st.integers(1, 3))
    for n in shape:
        kind = draw(st.sampled_from(["int", "slice", "list"]))
        if kind == "int":
            key.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            start = draw(st.none() | st.integers(-n - 2, n + 2))
            stop = draw(st.none() | st.integers(-n - 2, n + 2))
            step = draw(st.none() | st.integers(-3, 3).filter(lambda s: s != 0))
            key.append(slice(start, stop, step))
        else:
            size = draw(st.sampled_from([1, length]))
            key.append(draw(st.lists(st.integers(-n, n - 1), min_size=size, max_size=size)))
    return tuple(key)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=array_case(), data=st.data())
def test_any_array_round_trips_and_any_key_reads_like_numpy(tmp_path_factory, case, data):
    name, shape, chunks, values = case
    store = atlas.Atlas.create(tmp_path_factory.mktemp("h") / "s", codec=data.draw(st.sampled_from(["zstd", "lz4", "none"])))
    arr = store.create_dataset("d").define_array("a", name, None, list(shape), chunk_shape=chunks)
    arr[...] = values
    store.flush()
    back = atlas.Atlas.open(store.path)["d"]["a"]
    np.testing.assert_array_equal(back[...], values)
    key = data.draw(index_key(shape))
    np.testing.assert_array_equal(back[key], values[key])
    update = np.asarray(values[key]).copy()
    arr[key] = update[::-1] if update.ndim else update
    model = values.copy()
    model[key] = update[::-1] if update.ndim else update
    np.testing.assert_array_equal(arr[...], model)


def test_append_and_resize(ds):
    arr = ds.define_array("rows", "float64", ["t", "x"], [0, 3], fill_value=np.nan)
    arr.append(np.ones((2, 3)))
    arr.append(np.full((1, 3), 2.0))
    assert arr.shape == (3, 3)
    np.testing.assert_array_equal(arr[:, 0], [1, 1, 2])
    with pytest.raises(atlas.ShapeError):
        arr.append(np.ones((1, 4)))
    with pytest.raises(atlas.DTypeMismatchError, match=r"the data is float32 \(append\(\) takes the array's dtype"):
        arr.append(np.ones((1, 3), dtype=np.float32))
    arr.resize([5, 3])
    assert np.isnan(arr[3:]).all()
    arr.resize([1, 3])
    arr.resize([2, 3])
    assert np.isnan(arr[1]).all()
    s = ds.define_array("names", "string", ["i"], [0])
    s.append(np.array(["a", "b"]))
    s.append(["c"])
    assert s[:].tolist() == ["a", "b", "c"]


def test_storage_counts_a_chunk_an_unfinished_append_holds_as_staged(tmp_path):
    store = atlas.Atlas.create(tmp_path / "s")
    arr = store.create_dataset("d").define_array("a", "float32", ["t", "x"], [0, 4], chunk_shape=[8, 4])
    arr.append(np.ones((3, 4), dtype=np.float32))

    def counts():
        return tuple(arr.storage[k] for k in ("blocks", "pending_blocks", "staged_chunks"))

    assert [b["staged"] for b in arr.blocks()] == [True]
    assert counts() == (0, 0, 1), "a staged chunk is no block, flushed or not"
    assert "0 unflushed, 1 staged chunks" in arr._repr_html_()
    arr.append(np.ones((5, 4), dtype=np.float32))  # completes the chunk: encoded, not flushed
    assert counts() == (1, 1, 0)
    store.flush()
    assert [b["staged"] for b in arr.blocks()] == [False]
    assert counts() == (1, 0, 0)
    assert arr.storage["codecs"] == {"zstd": 1}


def test_codec_change_mid_life_reads_every_block_back(tmp_path):
    store = atlas.Atlas.create(tmp_path / "s")
    arr = store.create_dataset("d").define_array("a", "float32", ["t", "x"], [8, 100], chunk_shape=[2, 100])
    # Each value four times: every codec makes a chunk smaller (else it is stored raw).
    data = np.repeat(np.random.default_rng(1).random(200, dtype=np.float32), 4).reshape(8, 100)
    arr[:4] = data[:4]
    store.flush()
    arr.set_codec("lz4", shuffle=False)
    assert arr.codec == "lz4" and arr.meta["shuffle"] == "off"
    arr[4:6] = data[4:6]
    store.set_codec("none")
    arr.set_codec(None)  # follow the store again
    assert arr.codec == "none"
    arr[6:] = data[6:]
    store.flush()
    np.testing.assert_array_equal(atlas.Atlas.open(tmp_path / "s")["d"]["a"][...], data)
    assert arr.storage["codecs"] == {"zstd": 2, "lz4": 1, "none": 1}
    assert [b["codec"] for b in arr.blocks()] == ["zstd", "zstd", "lz4", "none"]
    assert "lz4 x1, none x1, zstd x2 -&gt; none" in store._repr_html_()
    arr.recompress("zstd:5")
    assert arr.codec == "zstd:5"
    store.recompress("lz4", shuffle="on")
    # No default codec: a shuffle alone would have turned every array to zstd.
    with pytest.raises(TypeError):
        store.recompress(shuffle="on")
    with pytest.raises(TypeError):
        arr.recompress(shuffle="on")
    store.flush()
    assert store.codec == "lz4" and store.shuffle == "on" and arr.meta["codec"] is None
    np.testing.assert_array_equal(atlas.Atlas.open(tmp_path / "s")["d"]["a"][...], data)
    with pytest.raises(atlas.InvalidArgumentError):
        arr.set_codec("zstd:1000")


def test_bytedelta_blocks_are_smaller_on_a_smooth_field_and_read_back(tmp_path):
    store = atlas.Atlas.create(tmp_path / "s", shuffle="bytedelta")
    assert store.shuffle == "bytedelta"
    x = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    data = np.sin(x * 0.001) * 100 + x * 0.01
    ds = store.create_dataset("d")
    for name, shuffle in [("delta", None), ("plain", "on")]:
        ds.define_array(name, "float32", None, [64, 64], chunk_shape=[32, 64], shuffle=shuffle)[...] = data
    store.flush()
    ds = atlas.Atlas.open(tmp_path / "s")["d"]
    delta, plain = ds["delta"], ds["plain"]
    np.testing.assert_array_equal(delta[...], data)
    np.testing.assert_array_equal(delta[5:40:3, 7:], data[5:40:3, 7:])
    assert all(b["shuffled"] and b["byte_delta"] for b in delta.blocks())
    assert not any(b["byte_delta"] for b in plain.blocks())
    assert delta.storage["stored_bytes"] < plain.storage["stored_bytes"]
    plain.recompress("lz4", shuffle="bytedelta")
    assert plain.meta["shuffle"] == "bytedelta"
    np.testing.assert_array_equal(plain[...], data)
    # Without a shuffle, a recompression keeps each array's (and the store's).
    plain.recompress("zstd:1")
    assert (plain.codec, plain.meta["shuffle"]) == ("zstd:1", "bytedelta")
    store = plain._store
    store.recompress("lz4")
    assert (store.codec, store.shuffle, plain.meta["shuffle"]) == ("lz4", "bytedelta", "bytedelta")
    assert all(b["byte_delta"] for b in plain.blocks() + delta.blocks())


@pytest.mark.parametrize("dtype", ["int8", "uint16", "int32", "int64", "float32", "float64", "bool", "timestamp"])
def test_delta_blocks_shrink_steady_series_and_read_back(tmp_path, dtype):
    store = atlas.Atlas.create(tmp_path / "s", shuffle="delta")
    assert store.shuffle == "delta"
    ds = store.create_dataset("d")
    steps = np.arange(3000)
    data = {"bool": steps % 7 == 0, "timestamp": (steps * 10**9 + 1_700_000_000 * 10**9).astype("M8[ns]"),
            "float32": (steps * 0.25).astype("f4"), "float64": steps * 0.125}.get(dtype, steps * 3)
    data = np.asarray(data).astype(np.dtype("M8[ns]") if dtype == "timestamp" else dtype)
    for name, shuffle in [("delta", None), ("plain", "on")]:
        ds.define_array(name, dtype, None, [3000], chunk_shape=[1024], shuffle=shuffle)[...] = data
    store.flush()
    ds = atlas.Atlas.open(tmp_path / "s")["d"]
    delta, plain = ds["delta"], ds["plain"]
    np.testing.assert_array_equal(delta[...], data)
    np.testing.assert_array_equal(delta[5:2900:7], data[5:2900:7])
    np.testing.assert_array_equal(delta[[2999, 0, 1500]], data[[2999, 0, 1500]])
    assert all(b["delta"] and not b["byte_delta"] for b in delta.blocks() if not b["is_fill"])
    assert not any(b["delta"] for b in plain.blocks())
    if dtype not in ("bool", "int8"):
        assert delta.storage["stored_bytes"] < plain.storage["stored_bytes"]
    plain.recompress("lz4", shuffle="delta")
    assert plain.meta["shuffle"] == "delta" and all(b["delta"] for b in plain.blocks() if not b["is_fill"])
    np.testing.assert_array_equal(plain[...], data)
    assert atlas.Atlas.open(tmp_path / "s").verify()["bad_blocks"] == []


def test_array_defined_with_its_own_codec(ds):
    arr = ds.define_array("a", "uint8", ["x"], [4], codec="lz4", shuffle="off")
    assert arr.codec == "lz4" and ds.array_meta("a")["shuffle"] == "off"
    # `set_codec(None)` goes back to the store's settings, the shuffle too unless given.
    arr.set_codec(None, "delta")
    assert (arr.meta["codec"], arr.meta["shuffle"], arr.codec) == (None, "delta", "zstd:3")
    arr.set_codec("zstd")
    assert arr.meta["shuffle"] == "delta"
    arr.set_codec(None)
    assert (arr.meta["codec"], arr.meta["shuffle"]) == (None, None)


class ChunkSpy:
    """Stands in for an array's native half, recording the chunks each read and write covers."""

    def __init__(self, native, chunks):
        self._native, self._chunks = native, chunks
        self.read_chunks, self.written_chunks = set(), set()

    def _cover(self, into, start, shape):
        if 0 not in shape:
            axes = [range(s // c, (s + n - 1) // c + 1) for s, n, c in zip(start, shape, self._chunks)]
            into.update(itertools.product(*axes))

    def read(self, start=None, shape=None, device=None):
        out = self._native.read(start, shape, device)
        self._cover(self.read_chunks, start or [0] * out.ndim, out.shape)
        return out

    def read_boxes(self, starts, shape):
        for start in starts:
            self._cover(self.read_chunks, start, shape)
        return self._native.read_boxes(starts, shape)

    def write(self, start, data):
        self._cover(self.written_chunks, start, np.shape(data))
        self._native.write(start, data)

    def __getattr__(self, name):
        return getattr(self._native, name)


@st.composite
def orthogonal_key(draw, shape):
    """Integers, slices with steps longer than a chunk, and one index list or mask."""
    key = []
    for n in shape:
        kind = draw(st.sampled_from(["int", "slice", "list", "mask"]))
        if kind == "int":
            key.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            step = draw(st.none() | st.integers(-12, 12).filter(lambda s: s != 0))
            key.append(slice(draw(st.none() | st.integers(-n, n)), draw(st.none() | st.integers(-n, n)), step))
        elif kind == "list":
            key.append(draw(st.lists(st.integers(-n, n - 1), max_size=6)))
        else:
            key.append(np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool))
    arrays = [i for i, k in enumerate(key) if isinstance(k, (list, np.ndarray))]
    for i in arrays[1:]:
        key[i] = slice(None)  # several would select pointwise, not as a product
    return tuple(key)


# Slab bytes 0: every stepped key goes in slabs (`Array._stepped_slabs`), as over 64 MiB.
@pytest.mark.parametrize("slab_bytes", [0, 64 << 20])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_steps_and_index_lists_touch_only_chunks_holding_selected_elements(ds, monkeypatch, slab_bytes, data):
    monkeypatch.setattr(atlas._array, "_SLAB_BYTES", slab_bytes)
    shape = tuple(data.draw(st.lists(st.integers(1, 30), min_size=1, max_size=3)))
    chunks = [data.draw(st.integers(1, n)) for n in shape]
    name = f"a{len(ds.keys())}"
    arr = ds.define_array(name, data.draw(st.sampled_from(["int32", "string"])), None, list(shape), chunk_shape=chunks)
    model = np.arange(np.prod(shape)).reshape(shape)
    if arr.atlas_dtype == "string":
        model = model.astype(str).astype(object)
    arr[...] = model
    key = data.draw(orthogonal_key(shape))
    coords = [axis[key] for axis in np.indices(shape)]
    selected = {tuple(c // n for c, n in zip(at, chunks)) for at in zip(*(np.ravel(c) for c in coords))}

    spy = arr._native = ChunkSpy(arr._native, chunks)
    np.testing.assert_array_equal(arr[key], model[key])
    assert spy.read_chunks == selected
    spy.read_chunks.clear()
    value = model[key][::-1] if np.ndim(model[key]) else model[key]
    arr[key] = value
    model[key] = value
    assert spy.written_chunks == selected and spy.read_chunks <= selected
    np.testing.assert_array_equal(arr[...], model)


def test_a_0d_array_is_assigned_through_none_true_and_an_ellipsis(ds):
    z = ds.define_array("z", "float64", None, [])
    for key, value in [(None, 5.0), (True, 6.0), (..., 7.0), ((), 8.0)]:
        z[key] = value
        assert z[()] == value, key
    z[False] = 9.0  # selects nothing
    assert z[()] == 8.0


def test_a_long_step_writes_only_the_chunks_it_selects(ds):
    arr = ds.define_array("a", "float64", None, [100_000], chunk_shape=[100])
    arr[::1000] = 1.0
    assert len(arr.blocks()) == 100  # not the 891 chunks between, rewritten as fill
    assert arr[[0, -1]].tolist() == [1.0, 0.0]


def test_a_step_over_more_chunks_than_boxes_are_merged_for_reads_only_the_chunks_it_selects(ds):
    # 10 000 selected elements, each in a chunk of its own: more boxes than a key is merged
    # down to, but merging them would read every chunk between.
    arr = ds.define_array("a", "int32", None, [1_000_000], chunk_shape=[20])
    arr[:] = np.arange(1_000_000, dtype=np.int32)
    spy = arr._native = ChunkSpy(arr._native, [20])
    np.testing.assert_array_equal(arr[::100], np.arange(0, 1_000_000, 100))
    assert len(spy.read_chunks) == 10_000
    spy.read_chunks.clear()
    arr[::100] = -1
    assert len(spy.written_chunks) == 10_000 and len(spy.read_chunks) <= 10_000
    assert arr[:200].tolist() == [-1] + list(range(1, 100)) + [-1] + list(range(101, 200))


def test_reads_of_several_native_calls_hold_the_arrays_write_lock_and_single_calls_do_not(ds, monkeypatch):
    # Between the calls of one read, no assignment of another thread of this handle may
    # land: the read is of one state of the array, as a single call is.
    arr = ds.define_array("a", "int32", None, [100, 100], chunk_shape=[10, 10])
    arr[...] = np.arange(10_000, dtype=np.int32).reshape(100, 100)
    lock, held = arr._write_lock(), []

    class LockSpy(ChunkSpy):
        def read(self, start=None, shape=None, device=None):
            held.append(lock.locked())
            return super().read(start, shape, device)

        def read_boxes(self, starts, shape):
            held.append(lock.locked())
            return super().read_boxes(starts, shape)

    arr._native = LockSpy(arr._native, [10, 10])
    full = np.arange(10_000, dtype=np.int32).reshape(100, 100)
    cases = [
        ((slice(2, 50), 3), False),  # one box
        (([1, 2, 3], slice(None)), False),  # one run of rows: one box
        (([1, 2, 50, 51], [4, 5, 90, 91]), False),  # points: one read_boxes call
        (([0, 1, 2, 40, 41], slice(0, 30)), True),  # two runs of rows: boxes of two extents
        (([0, 1, 40, 41], [0, 1, 40, 41]), False),  # points of one extent: one read_boxes call
    ]
    for key, several in cases:
        held.clear()
        np.testing.assert_array_equal(arr[key], full[key])
        assert held and all(held) == several, (key, held)
    # Points with a step, read in calls of a few points each.
    monkeypatch.setattr(atlas._array, "_SLAB_BYTES", 64)
    key = ([1, 2, 50, 51], [4, 5, 90, 91], slice(None))
    arr3 = ds.define_array("c", "int32", None, [100, 100, 10], chunk_shape=[10, 10, 10])
    full3 = np.arange(100_000, dtype=np.int32).reshape(100, 100, 10)
    arr3[...] = full3
    arr3._native = LockSpy(arr3._native, [10, 10, 10])
    lock, held = arr3._write_lock(), []
    np.testing.assert_array_equal(arr3[key[0], key[1], ::3], full3[key[0], key[1], ::3])
    assert len(held) > 1 and all(held), held


def test_a_read_of_several_calls_that_changes_keep_sending_again_holds_them_off_to_finish(store, ds, monkeypatch):
    # A refresh from another thread between each try (as a thread polling for new commits
    # does): after the tries the read runs once more with such changes held off, so it
    # still sees one state, never a mix of two commits.
    arr = ds.define_array("a", "int32", None, [100, 100], chunk_shape=[10, 10])
    full = np.arange(10_000, dtype=np.int32).reshape(100, 100)
    arr[...] = full
    states = iter(range(1_000))
    monkeypatch.setattr(atlas.Atlas, "_state", lambda _self: (0, next(states)))
    held_off = []

    def held(lock):
        """Whether `lock` (reentrant) is held: another thread cannot take it."""
        taken = []

        def probe():
            taken.append(lock.acquire(blocking=False))
            if taken[0]:
                lock.release()

        prober = threading.Thread(target=probe)
        prober.start()
        prober.join()
        return not taken[0]

    class ChangeSpy(ChunkSpy):
        def read_boxes(self, starts, shape):
            held_off.append(held(store._changes_held_off()))
            return super().read_boxes(starts, shape)

    arr._native = ChangeSpy(arr._native, [10, 10])
    key = ([0, 1, 2, 40, 41], slice(0, 30))  # boxes of two extents: two calls
    np.testing.assert_array_equal(arr[key], full[key])
    assert held_off[-2:] == [True, True] and not any(held_off[:-2]), held_off


def test_dense_points_are_read_as_their_bounding_box_and_sparse_ones_box_by_box(ds):
    # A mask as large as the array was one box a point: 60x the array's memory, 150x its time.
    arr = ds.define_array("a", "int32", None, [60, 50, 4], chunk_shape=[7, 9, 4])
    full = np.arange(12_000, dtype=np.int32).reshape(60, 50, 4)
    arr[...] = full
    calls = []

    class CallSpy(ChunkSpy):
        def read(self, start=None, shape=None, device=None):
            calls.append(("read", start, shape))
            return super().read(start, shape, device)

        def read_boxes(self, starts, shape):
            calls.append(("read_boxes", len(starts), shape))
            return super().read_boxes(starts, shape)

    arr._native = CallSpy(arr._native, [7, 9, 4])
    rng = np.random.default_rng(5)
    mask = rng.random((60, 50)) < 0.3
    sparse = (np.array([0, 59, 30]), np.array([49, 0, 25]))
    for key, way in [
        (mask, ("read", [0, 0, 0], [60, 50, 4])),
        ((np.arange(10, 20), np.arange(20, 30), slice(1, 4, 2)), ("read", [10, 20, 1], [10, 10, 3])),
        ((slice(2, 6), rng.random((50, 4)) < 0.3), "read"),
        (sparse, ("read_boxes", 3, [1, 1, 4])),
    ]:
        calls.clear()
        np.testing.assert_array_equal(arr[key], full[key])
        assert calls == [way] if isinstance(way, tuple) else [c[0] for c in calls] == [way], (way, calls)
    # Assigned through the same points, values land as numpy puts them.
    arr[mask] = -1
    full[mask] = -1
    np.testing.assert_array_equal(arr[...], full)


def test_a_bool_mask_holding_bytes_other_than_0_and_1_writes_as_true(ds):
    arr = ds.define_array("m", "bool", None, [4])
    mask = np.array([0, 255, 1, 2], np.uint8).view(bool)  # numpy: False, True, True, True
    arr.write([0], mask)
    assert arr[:].tolist() == [False, True, True, True]
    ds.store.flush()
    assert arr.stats["sum"] == 3 and arr.stats["max"] == 1
    arr[1:3] = np.array([3, 0], np.uint8).view(bool)
    assert arr[:].tolist() == [False, True, False, True]
    scalar = ds.define_array("z", "bool", None, [])  # 0-d: numpy's not_equal gave a scalar
    seven = np.array(7, np.uint8).view(bool)
    scalar.write([], seven)
    assert scalar[()] is np.True_
    scalar[...] = np.array(0, np.uint8).view(bool)
    scalar[()] = seven
    assert scalar[()] is np.True_


def test_a_false_key_touches_no_chunk(ds):
    arr = ds.define_array("a", "int32", None, [40, 40], chunk_shape=[10, 10])
    spy = arr._native = ChunkSpy(arr._native, [10, 10])
    assert arr[False].shape == np.zeros((40, 40))[False].shape == (0, 40, 40)
    arr[False] = 7
    arr[:, :, np.array(False)] = 7
    assert spy.read_chunks == spy.written_chunks == set()
    with pytest.raises(ValueError):
        arr[False] = np.ones(3, np.int32)  # numpy checks the value against the empty selection too
    # An empty selection of a vast array allocates nothing like its size.
    vast = ds.define_array("vast", "float64", None, [10**6, 10**6])
    assert vast[False].shape == (0, 10**6, 10**6)
    vast[False] = 0


def test_points_on_several_axes_read_a_bounded_number_of_boxes(ds):
    # Index arrays on two axes select points, but the runs of each axis multiply: 364
    # points on chunks of 10 made 132 496 boxes (past `MAX_BOXES` runs are merged, which
    # strings still use). Reads and writes take only the chunks holding points.
    arr = ds.define_array("a", "int32", None, [4000, 4000], chunk_shape=[10, 10])
    model = np.arange(16_000_000, dtype=np.int32).reshape(4000, 4000)
    arr[...] = model
    at = np.arange(0, 4000, 11)
    assert _index.plan((at, at), (4000, 4000), (10, 10)).box_count() <= _index.MAX_BOXES
    spy = arr._native = ChunkSpy(arr._native, [10, 10])
    np.testing.assert_array_equal(arr[at, at], model[at, at])
    assert spy.read_chunks == {(i // 10, i // 10) for i in at.tolist()}
    spy.read_chunks.clear()
    arr[at, at] = -1
    model[at, at] = -1
    assert spy.written_chunks == spy.read_chunks == {(i // 10, i // 10) for i in at.tolist()}
    arr._native = spy._native
    np.testing.assert_array_equal(arr[...], model)
    # Every combination of the indices (`np.ix_`): the product of the axes' runs holds just
    # the selection and its chunks. With runs making over `MAX_BOXES` boxes, merging them
    # would read chunks between the points: those keys take a box per point.
    outer = np.ix_(at[:60], at[60:0:-1])
    assert _index.points(outer, (4000, 4000), (10, 10)) is None
    spy = arr._native = ChunkSpy(arr._native, [10, 10])
    np.testing.assert_array_equal(arr[outer], model[outer])
    held = {(i // 10, j // 10) for i in at[:60].tolist() for j in at[60:0:-1].tolist()}
    assert spy.read_chunks == held
    arr[outer] = 7
    model[outer] = 7
    assert spy.written_chunks == held
    arr._native = spy._native
    np.testing.assert_array_equal(arr[...], model)
    assert _index.points(np.ix_(at, at), (4000, 4000), (10, 10)) is not None


@pytest.mark.parametrize(
    "key",
    [
        ([0, 2, 5], [1, 1, 7]),
        ([0, 2, 5], slice(None), [1, 1, 7]),  # apart: the points' axis goes first
        (slice(1, 6, 2), [0, 2, 5], [1, 1, 7]),  # together: in place
        ([[0], [2]], [1, 3, 7]),  # broadcast to 2 x 3
        (2, [1, 3], [4, 4]),
        ([1, 3], 2, [4, 4]),
        ([1, 3], slice(None, None, -2), 2),
        (np.ones((7, 8), bool), [3]),  # a mask over two axes, then a list
        (..., [1, 2], [3, 4]),
        ([], []),
        ([1, 2], slice(5, 2), [0, 1]),
        ([-1, -7], [0, -8], slice(None, None, -1)),
        (slice(None), [0, 1], ..., [1, 2]),  # an empty `...` parts them: first
        (slice(None), [0, 1], ..., 2),
        np.ix_([6, 0, 3], [7, 1], [0, 8]),  # every combination: read as boxes of runs
        np.ix_([1, 1, 2], [3, 3]),
        (np.array([[0], [4]]), slice(1, 5), np.array([[2, 8]])),  # combinations, apart
    ],
)
def test_index_arrays_on_several_axes_select_points_as_numpy_does(ds, key):
    arr = ds.define_array("a", "int32", None, [7, 8, 9], chunk_shape=[3, 4, 5])
    model = np.arange(7 * 8 * 9, dtype=np.int32).reshape(7, 8, 9)
    arr[...] = model
    got = arr[key]
    assert got.shape == model[key].shape
    np.testing.assert_array_equal(got, model[key])


def test_points_read_and_write_only_the_chunks_holding_them_and_bad_ones_raise_as_in_numpy(ds):
    arr = ds.define_array("a", "float32", None, [100, 100, 6], chunk_shape=[10, 10, 3])
    model = np.arange(60_000, dtype=np.float32).reshape(100, 100, 6)
    arr[...] = model
    spy = arr._native = ChunkSpy(arr._native, [10, 10, 3])
    rows, cols = np.array([5, 95, 41, 5]), np.array([7, 12, 99, 7])
    np.testing.assert_array_equal(arr[rows, cols, 1:3], model[rows, cols, 1:3])
    assert spy.read_chunks == {(0, 0, 0), (9, 1, 0), (4, 9, 0)}
    # A write changes only those chunks; where a point repeats, its last value stays.
    spy.read_chunks.clear()
    value = np.arange(8, dtype=np.float32).reshape(4, 2) + 0.5
    arr[rows, cols, 1:3] = value
    model[rows, cols, 1:3] = value
    assert spy.written_chunks == spy.read_chunks == {(0, 0, 0), (9, 1, 0), (4, 9, 0)}
    np.testing.assert_array_equal(arr[...], model)
    with pytest.raises(ValueError):
        arr[rows, cols, 1:3] = np.ones(3)  # does not broadcast to (4, 2), as in numpy
    arr[rows, cols, 1:3] = np.ones((1, 1, 4, 2))  # leading axes of 1 go, as in numpy
    model[rows, cols, 1:3] = 1
    np.testing.assert_array_equal(arr[...], model)
    # A step over more than a chunk: the chunks between the selected elements stay
    # unwritten (the key goes by the runs of each axis, not a box per point).
    steps = ds.define_array("steps", "float32", None, [4, 4, 1000], chunk_shape=[2, 2, 10])
    steps[[0, 3], [0, 3], ::500] = 1.0
    assert len(steps.blocks()) <= 8
    np.testing.assert_array_equal(steps[[0, 3], [0, 3], ::500], np.ones((2, 2)))
    with pytest.raises(atlas.OutOfBoundsError):
        arr[[0, 100], [0, 1]] = 1.5  # the key is checked before the value's cast
    with pytest.raises(IndexError, match="broadcast"):
        arr[[0, 1, 2], [0, 1]]
    with pytest.raises(atlas.OutOfBoundsError):
        arr[[0, 100], [0, 1]]
    with pytest.raises(IndexError):
        arr[[0, 1], [0.5, 1]]


def test_an_empty_ellipsis_between_index_arrays_parts_them_in_reads_and_writes(ds):
    # numpy puts the indexed axes first when anything stands between the indices, an
    # ellipsis that fills no axis included; the packed path (strings, writes) too.
    arr = ds.define_array("a", "int32", None, [7, 8, 9], chunk_shape=[3, 4, 5])
    model = np.arange(504, dtype=np.int32).reshape(7, 8, 9)
    arr[...] = model
    names = ds.define_array("s", "string", None, [3, 4], chunk_shape=[2, 2])
    words = np.arange(12).astype(str).astype(object).reshape(3, 4)
    names[...] = words
    keys = [
        (slice(None), [0, 1], ..., [1, 2]),
        (slice(None), [0, 1], ..., 2),
        ([2, 4], ..., [1, 3]),
        # A scalar bool is an index array to numpy too.
        (slice(1, 5), 2, True, ..., [4, 0, -6]),
        (slice(None, None, 2), 1, ..., 3, False),
    ]
    for key in keys:
        assert arr[key].shape == model[key].shape, key
        value = -np.arange(model[key].size, dtype=np.int32).reshape(model[key].shape)
        arr[key] = value
        model[key] = value
        np.testing.assert_array_equal(arr[...], model)
    for key in [([0, 1], ..., [1, 2]), (0, ..., [1, 2])]:
        np.testing.assert_array_equal(names[key], words[key])


def test_none_writes_the_empty_string_and_nat_and_is_refused_by_numeric_arrays(ds):
    # As the README says: the empty string is a string array's null.
    names = ds.define_array("names", "string", None, [2])
    names[:] = ["a", "b"]
    names[0] = None
    assert names[:].tolist() == ["", "b"]
    assert names.stats["count"] == 1
    times = ds.define_array("times", "datetime64[ns]", None, [2])
    times[0] = None
    assert np.isnat(times[0])
    values = ds.define_array("values", "float32", None, [2])
    with pytest.raises(atlas.DTypeMismatchError):
        values[0] = None


def test_missing_text_of_pandas_writes_the_empty_string(ds):
    # pandas 3's `str` dtype holds a missing value as NaN, its `string` dtype as pd.NA.
    ds["s"] = np.array(["x", np.nan, "z"], dtype=object)
    assert ds["s"][:].tolist() == ["x", "", "z"]
    ds["s"][:] = np.array([np.nan, "b", None], dtype=object)
    assert ds["s"][:].tolist() == ["", "b", ""]
    with pytest.raises(atlas.DTypeMismatchError, match="takes str"):
        ds["s"][0] = 1.5
    with pytest.raises(atlas.DTypeMismatchError, match="use NaN in a float array"):
        ds["n"] = [1.5, None]
    pd = pytest.importorskip("pandas")
    ds["p"] = pd.Series(["a", None, "c"], dtype="string")
    ds["p"][1:] = pd.Series(["q", None], dtype="string")
    assert ds["p"][:].tolist() == ["a", "q", ""]


def test_pandas_timestamps_keep_their_nanoseconds_and_nat_writes_nat(ds):
    pd = pytest.importorskip("pandas")
    stamp = pd.Timestamp("2020-01-05 00:00:00.000000007")
    exact = np.datetime64("2020-01-05T00:00:00.000000007", "ns")
    times = ds.define_array("t", "timestamp", None, [3], fill_value=stamp)
    assert times.fill_value == exact
    times[0] = stamp
    times[1:] = [pd.Timestamp("2020-01-05 01:00:00.000000003", tz="Europe/Paris"), pd.NaT]
    assert times[0] == exact
    assert times[1] == np.datetime64("2020-01-05T00:00:00.000000003", "ns")  # the UTC instant
    assert np.isnat(times[2])
    ds.attrs["when"] = stamp
    assert ds.attrs["when"] == exact
    ds.set_attribute("typed", stamp, dtype="timestamp")
    assert ds.get_attribute("typed") == exact


def test_timestamp_attributes_from_text_say_why_text_is_refused(ds):
    ds.set_attribute("t", "2020-01-05T00:00:00.000000007", dtype="timestamp")
    assert ds.get_attribute("t") == np.datetime64("2020-01-05T00:00:00.000000007", "ns")
    with pytest.raises(atlas.InvalidArgumentError, match='^attribute "t": noon is not an ISO 8601 instant'):
        ds.set_attribute("t", "noon", dtype="timestamp")
    # An instant that parses but does not fit says that, not that it is no instant.
    for text, why in [("2020-01-01T00:00:00.0000000001", "digits below a nanosecond"), ("3000-01-01", "outside")]:
        with pytest.raises(atlas.InvalidArgumentError, match=why) as info:
            ds.set_attribute("t", text, dtype="timestamp")
        assert "not an ISO 8601" not in str(info.value)


def test_object_arrays_of_numbers_write_as_lists_of_them_do(ds):
    ints = ds.define_array("i", "int32", None, [3])
    ints[:] = np.array([1, 2, 3], dtype=object)
    assert ints[:].tolist() == [1, 2, 3]
    floats = ds.define_array("f", "float64", None, [2])
    floats[:] = np.array([1, 2.5], dtype=object)
    assert floats[:].tolist() == [1.0, 2.5]
    with pytest.raises(atlas.DTypeMismatchError):
        ints[:] = np.array([1, "2", 3], dtype=object)
    with pytest.raises(atlas.DTypeMismatchError):
        ints[:] = np.array([1, 2**40, 3], dtype=object)
    assert ints[:].tolist() == [1, 2, 3]



class _StaleOnce:
    """The native half of an array whose first schema read is from before a shrink that
    another thread made, as `meta()` then `read()` can interleave with a resize."""

    def __init__(self, native, stale_shape):
        self._native, self._stale_shape = native, stale_shape

    def meta(self):
        meta = self._native.meta()
        if self._stale_shape is not None:
            meta["shape"], self._stale_shape = self._stale_shape, None
        return meta

    def __getattr__(self, name):
        return getattr(self._native, name)


@pytest.mark.parametrize("read", [lambda a: a[:], lambda a: a[...], lambda a: a.read(), np.asarray, lambda a: a[::2]])
def test_a_read_of_the_whole_array_resized_meanwhile_reads_it_as_it_is_now(ds, read):
    arr = ds.define_array("a", "int32", None, [10], chunk_shape=[4])
    arr[:] = np.arange(10, dtype=np.int32)
    expected = read(arr)
    arr._native = _StaleOnce(arr._native, [20])  # resolved on [20], the array is [10]
    np.testing.assert_array_equal(read(arr), expected)
    arr._native = _StaleOnce(arr._native._native, [20])
    with pytest.raises(atlas.OutOfBoundsError):
        arr[15]  # outside the shape it has now too


def test_a_value_that_does_not_broadcast_is_refused_in_numpy_s_words(ds):
    a = ds.define_array("a", "float64", None, [4, 5])
    for key, value, into in [
        (slice(None), np.ones((3, 4, 5)), "(4, 5)"),
        ((slice(None), 0), np.ones(3), "(4,)"),
        (([0, 1], [1, 2]), np.ones(3), "(2,)"),
    ]:
        with pytest.raises(ValueError, match=rf"could not broadcast input array from shape .* into shape {re.escape(into)}"):
            a[key] = value
    for value in (np.array([7.0]), [7.0]):
        with pytest.raises(ValueError, match="setting an array element with a sequence"):
            a[0, 0] = value
        with pytest.raises(ValueError, match="setting an array element with a sequence"):
            a[np.int64(0), np.array(1)] = value
    assert not a[...].any()
    # With `...` the selection is a view of no axes, which takes an array of one value in
    # any number of axes of length 1, as numpy's does; a list may have no more axes than
    # the selection.
    a[..., 0, 1] = np.array([[7.0]])
    a[0, ..., 2] = np.array([8.0])
    assert a[0, :3].tolist() == [0.0, 7.0, 8.0]
    for key, value in [((0, ..., 2), [9.0]), ((0, slice(0, 1)), [[9.0]])]:
        with pytest.raises(ValueError, match="setting an array element with a sequence"):
            a[key] = value
    with pytest.raises(ValueError, match=r"could not broadcast input array from shape \(2,\) into shape \(\)"):
        a[..., 0, 1] = np.array([1.0, 2.0])
    assert a[0, :3].tolist() == [0.0, 7.0, 8.0]
