"""Code written for atlas-python 0.10 runs unchanged (its README's quick start and idioms),
and the cross-dataset reads behave as there."""

import numpy as np
import pytest

import atlas


def test_quick_start_of_atlas_python_010(tmp_path):
    path = str(tmp_path / "my_store")
    with atlas.Atlas.create(path, codec="zstd") as store:
        ds = store.create_dataset("jan_2024")
        ds.define_array(
            "temperature",
            dtype="float32",
            dims=["lat", "lon"],
            shape=[8, 16],
            chunk_shape=[4, 8],
            fill_value=float("nan"),
        )
        ds.write_array("temperature", start=[0, 0], data=np.full((8, 16), 20.0, dtype=np.float32))
        ds.set_attribute("month", 1)
        ds.set_attribute("station", "KNMI")
    store = atlas.Atlas.open(path)
    ds = store.open_dataset("jan_2024")
    assert ds.read_array("temperature").shape == (8, 16)
    assert ds.read_array("temperature", [0, 0], [4, 8]).shape == (4, 8)
    stats = ds.array_stats("temperature")
    assert {"row_count", "null_count", "min", "max"} <= set(stats)
    assert stats["row_count"] == 128 and stats["min"] == 20.0
    assert ds.get_attribute("month") == 1
    assert ds.attributes() == {"month": 1, "station": "KNMI"}
    assert ds.array_meta("temperature")["dimension_names"] == ["lat", "lon"]
    assert isinstance(ds, atlas.DatasetView) and atlas.Dataset is atlas.DatasetView


def test_positional_arguments_as_in_atlas_python_010(tmp_path):
    store = atlas.Atlas.create(str(tmp_path / "s"), "lz4", "msgpack", "zstd")
    assert store.meta_file_name == "atlas.msgpack.zst" and store.codec == "lz4"
    ds = store.create_dataset("d")
    ds.define_array("a", "int64", ["x"], [4], None, -1)
    ds.write_array("a", [1], np.array([5, 6], np.int64))
    assert ds.read_array("a", [0], [4]).tolist() == [-1, 5, 6, -1]
    ds.set_attribute("k", 5, "int8")


def _profiles(store, n=5):
    for i in range(n):
        ds = store.create_dataset(f"p{i}")
        ds.define_array("temp", "float32", ["z"], [10 + i], fill_value=np.nan)[:] = np.arange(10 + i, dtype=np.float32) + i
    store.create_dataset("empty")


def test_read_array_across_gives_none_where_missing(store):
    _profiles(store)
    out = store.read_array_across("temp", ["p0", "empty", "p2", "nope"])
    assert out[1] is None and out[3] is None
    np.testing.assert_array_equal(out[0], np.arange(10))
    np.testing.assert_array_equal(out[2], np.arange(12) + 2)  # each dataset's whole array
    boxes = store.read_array_across("temp", ["p0", "p4"], [2], [3])
    assert [b.tolist() for b in boxes] == [[2, 3, 4], [6, 7, 8]]
    with pytest.raises(ValueError):
        store.read_array_across("temp", [])
    # One name is not a list of its letters.
    for call in (store.read_array_across, store.read_array_across_stacked):
        with pytest.raises(TypeError, match="not one name"):
            call("temp", "p0")
    with pytest.raises(TypeError, match="not one name"):
        store.open_dataset("p0").read_arrays("temp")
    assert store.read_array_across("nothing", ["p0"]) == [None]
    # A box past one dataset's array is refused, as its own read is: no fill invented.
    with pytest.raises(atlas.OutOfBoundsError):
        store.read_array_across("temp", ["p0", "p4"], [0], [12])


def test_read_array_across_gives_each_dataset_its_own_dtype(store):
    for name, dtype in [("a", "float32"), ("b", "int64")]:
        store.create_dataset(name).define_array("x", dtype, None, [3])[:] = [1, 2, 3]
    for box in [(None, None), ([0], [2])]:
        out = store.read_array_across("x", ["a", "b"], *box)
        assert [o.dtype for o in out] == [np.float32, np.int64]
        assert [o.tolist() for o in out] == [[1, 2, 3][: len(out[0])]] * 2


def test_read_array_across_gives_arrays_of_0_d_arrays_too(store):
    for name, value in [("a", 5), ("b", 7)]:
        store.create_dataset(name).define_array("x", "int16", None, [])[()] = value
    out = store.read_array_across("x", ["a", "b"])
    assert all(isinstance(o, np.ndarray) and o.shape == () and o.dtype == np.int16 for o in out), out
    assert [o.item() for o in out] == [5, 7]


def test_stacked_string_reads_refuse_other_dtypes_and_ranks_in_either_order(store):
    store.create_dataset("s1").define_array("v", "string", None, [2])[:] = ["a", "b"]
    store.create_dataset("f1").define_array("v", "float64", None, [2])[:] = [1.5, 2.5]
    store.create_dataset("s2").define_array("v", "string", None, [1, 2])
    for names in (["s1", "f1"], ["f1", "s1"]):
        with pytest.raises(atlas.DTypeMismatchError):
            store.read_array_across_stacked("v", names)
    with pytest.raises(atlas.ShapeError):
        store.read_array_across_stacked("v", ["s1", "s2"])
    assert store.read_array_across_stacked("v", ["s1", "s1"]).tolist() == [["a", "b"]] * 2


def test_read_array_across_stacked_fills_missing_and_short_arrays(store):
    _profiles(store)
    stacked = store.read_array_across_stacked("temp", ["p0", "p4", "empty"])
    assert stacked.shape == (3, 14)  # the largest extent
    np.testing.assert_array_equal(stacked[1], np.arange(14) + 4)
    assert np.isnan(stacked[0, 10:]).all() and np.isnan(stacked[2]).all()
    box = store.read_array_across_stacked("temp", ["p1", "p3"], [1], [2])
    assert box.tolist() == [[2, 3], [4, 5]]
    with pytest.raises(KeyError):
        store.read_array_across_stacked("temp", ["p0", "nope"])
    with pytest.raises(atlas.NotFoundError):
        store.read_array_across_stacked("nothing", ["p0"])
    with pytest.raises(ValueError):
        store.read_array_across_stacked("temp", [])
    for read in (store.read_array_across, store.read_array_across_stacked):
        with pytest.raises(atlas.ShapeError):  # an empty start is of the wrong rank, not zeros
            read("temp", ["p1", "p3"], start=[])


def test_across_reads_of_strings_and_timestamps(store):
    for i in range(3):
        ds = store.create_dataset(f"d{i}")
        ds.define_array("s", "string", ["x"], [2 + i])[:] = [f"v{i}{j}" for j in range(2 + i)]
        ds.define_array("t", "timestamp", ["x"], [2])[:] = np.array([i, i + 1], dtype="datetime64[s]")
    s = store.read_array_across_stacked("s", ["d0", "d2"])
    assert s.tolist() == [["v00", "v01", "", ""], ["v20", "v21", "v22", "v23"]]
    assert [a.tolist() for a in store.read_array_across("s", ["d0", "d1"])] == [["v00", "v01"], ["v10", "v11", "v12"]]
    t = store.read_array_across_stacked("t", ["d0", "d1", "d2"])
    assert t.dtype == np.dtype("datetime64[ns]") and t[2, 1] == np.datetime64(3, "s")
