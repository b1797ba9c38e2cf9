"""xarray round trips; skipped when xarray is not installed."""

import warnings

import numpy as np
import pytest

import atlas

xr = pytest.importorskip("xarray")


def sample_dataset():
    rng = np.random.default_rng(3)
    time = np.array(["2024-01-01", "2024-01-02", "2024-01-03"], dtype="datetime64[ns]")
    temp = rng.random((3, 4, 5)).astype(np.float32)
    temp[0, 0, 0] = np.nan
    return xr.Dataset(
        data_vars={
            "temperature": (["time", "lat", "lon"], temp, {"units": "degC", "valid_range": [0.0, 40.0]}),
            "count": (["time"], np.array([1, 2, 3], dtype=np.int16), {"_FillValue": np.int16(-1)}),
            "station": (["lat"], np.array(["A", "B", "C", "D"], dtype=object)),
            "flag": ((), np.bool_(True)),
            "observed": (["time"], time + np.timedelta64(1, "h")),
        },
        coords={
            "time": time,
            "lat": np.linspace(-10, 10, 4),
            "lon": np.arange(5, dtype=np.float32),
            "label": ("lon", np.array(list("abcde"), dtype=object)),
        },
        attrs={"title": "test", "version": 2, "created": np.datetime64("2024-03-01T00:00:00", "ns")},
    )


def test_round_trip_is_identical(tmp_path):
    ds = sample_dataset()
    with atlas.Atlas.create(tmp_path / "s") as store:
        store.add_xarray_dataset(ds, "run")
    back = atlas.Atlas.open(tmp_path / "s").open_as_xarray_dataset("run").load()
    xr.testing.assert_identical(back, ds)
    view = atlas.Atlas.open(tmp_path / "s")["run"]
    assert np.isnan(view.array_fill_value("temperature"))
    assert view.array_fill_value("count") == -1
    assert view.array_stats("temperature")["null_count"] == 1
    assert view["temperature"].attrs["units"] == "degC"


def test_a_chosen_fill_value_is_read_back_as_the_variables_fill_encoding(tmp_path):
    # Unwritten cells hold the fill: xarray users (and to_netcdf/to_zarr) learn which it is.
    store = atlas.Atlas.create(tmp_path / "s")
    ds = store.create_dataset("run")
    sea = ds.define_array("sea", "float32", ["x"], [4], fill_value=-999.0)
    sea[:2] = [1.5, 2.5]
    ds.define_array("n", "int32", ["x"], [4])  # the default fill, 0: real zeros, not masked
    ds.define_array("t", "float64", ["x"], [4], fill_value=np.nan)
    # Not for bools (a True fill would mask every true) nor timestamps (encoded against a
    # reference date, their fill would not match).
    ds.define_array("b", "bool", ["x"], [4], fill_value=True)
    ds.define_array("when", "timestamp", ["x"], [4], fill_value=5)
    store.flush()
    back = store.open_as_xarray_dataset("run")
    assert back["sea"].encoding["_FillValue"] == -999.0
    assert back["sea"].values.tolist() == [1.5, 2.5, -999.0, -999.0]
    assert not any("_FillValue" in back[name].encoding for name in ["n", "t", "b", "when"])
    stacked = store.open_as_many_xarray_dataset(["run"])
    assert stacked["sea"].encoding["_FillValue"] == -999.0
    # A `_FillValue` attribute (kept from the dataset written) is not given twice.
    assert "_FillValue" not in atlas.Atlas.open(tmp_path / "s")["run"]["sea"].attrs


def test_accessor_chunks_and_fill_override(tmp_path):
    ds = sample_dataset()
    store = atlas.Atlas.create(tmp_path / "s")
    ds.atlas.write(store, "a", chunks={"temperature": [1, 2, 5]}, fill_value={"temperature": -999.0})
    assert store["a"]["temperature"].chunks == (1, 2, 5)
    assert store["a"].array_fill_value("temperature") == -999.0
    back = store.open_as_xarray_dataset("a").load()
    np.testing.assert_array_equal(back["temperature"].values, ds["temperature"].values)
    # Keyed by variable: a dimension's name, an unknown name or a length alone is refused.
    ds = xr.Dataset({"temperature": ("t", np.arange(6.0))})
    for chunks, says in [({"t": [2]}, "'t' is a dimension, not a variable"),
                         ({"nope": [2]}, "'nope' is no variable"),
                         ({"temperature": 2}, r"chunks\['temperature'\] must be a chunk shape"),
                         ({"temperature": [1, [2, 3]]}, r"chunks\['temperature'\] must be a chunk shape")]:
        with pytest.raises(atlas.InvalidArgumentError, match=says):
            store.add_xarray_dataset(ds, "b", chunks=chunks)
        assert "b" not in store
    with pytest.raises(atlas.InvalidArgumentError, match="fill_value=.*'nope' is no variable"):
        store.add_xarray_dataset(ds, "b", fill_value={"nope": 0.0})
    store.add_xarray_dataset(ds, "b", chunks={"temperature": np.array([4])})  # any 1-d sequence
    assert store["b"]["temperature"].chunks == (4,)


def test_open_many_refuses_datasets_of_other_shapes_or_coordinates(tmp_path):
    store = atlas.Atlas.create(tmp_path / "s")
    store.add_xarray_dataset(xr.Dataset({"v": ("t", [1.0, 2.0, 3.0])}, coords={"t": [10, 20, 30]}), "a")
    store.add_xarray_dataset(xr.Dataset({"v": ("t", [4.0, 5.0, 6.0, 7.0])}, coords={"t": [1, 2, 3, 4]}), "longer")
    store.add_xarray_dataset(xr.Dataset({"v": ("t", [4.0, 5.0, 6.0])}, coords={"t": [1, 2, 3]}), "relabelled")
    store.add_xarray_dataset(xr.Dataset({"w": ("t", [4.0, 5.0, 6.0])}, coords={"t": [10, 20, 30]}), "other")
    store.add_xarray_dataset(xr.Dataset({"v": ("t", [7.0, 8.0, 9.0])}, coords={"t": [10, 20, 30]}), "b")
    store.add_xarray_dataset(xr.Dataset({"v": ("s", [7.0, 8.0, 9.0])}, coords={"t": [10, 20, 30]}), "other_dim")
    for names, what in [
        (["a", "other_dim"], "over"),
        (["a", "longer"], "shape"),
        (["longer", "a"], "shape"),
        (["a", "relabelled"], "coordinate 't'"),
        (["a", "other"], "has no 'v'"),
    ]:
        with pytest.raises(atlas.InvalidArgumentError, match=what):
            store.open_as_many_xarray_dataset(names)
    both = store.open_as_many_xarray_dataset(["a", "b"])
    assert both["v"].values.tolist() == [[1.0, 2.0, 3.0], [7.0, 8.0, 9.0]]
    # Equal coordinates holding NaT stack (NaT equals NaT here, as NaN does).
    times = np.array(["2020-01-01", "NaT"], dtype="datetime64[ns]")
    for name in ["n1", "n2"]:
        store.add_xarray_dataset(xr.Dataset({"v": ("t", [1.0, 2.0])}, coords={"t": times}), name)
    assert store.open_as_many_xarray_dataset(["n1", "n2"])["v"].shape == (2, 2)


def test_writing_what_is_not_a_dataset_of_named_variables_says_so(tmp_path):
    pd = pytest.importorskip("pandas")
    store = atlas.Atlas.create(tmp_path / "s")
    with pytest.raises(TypeError, match="DataArray"):
        store.add_xarray_dataset(xr.DataArray([1.0, 2.0], dims="x"), "da")
    with pytest.raises(atlas.InvalidArgumentError, match="must be strings"):
        store.add_xarray_dataset(xr.Dataset({1: ("x", [1.0, 2.0])}), "int_name")
    with pytest.raises(atlas.InvalidArgumentError, match="must be strings"):
        store.add_xarray_dataset(xr.Dataset({"v": ("x", [1.0], {1: "one"})}), "int_attr")
    with pytest.raises(atlas.InvalidArgumentError, match="Atlas's own"):
        store.add_xarray_dataset(xr.Dataset(attrs={"_xarray_coords": ["x"]}), "reserved")
    aware = xr.Dataset(coords={"x": pd.date_range("2020", periods=2, tz="UTC")})
    with pytest.raises(atlas.InvalidArgumentError, match="^variable 'x': dtype") as info:
        store.add_xarray_dataset(aware, "aware")
    assert str(info.value).count("variable") == 1
    # Errors of the write and of attributes name the variable (and the attribute) too.
    mixed = xr.Dataset({"m": ("x", np.array([1, "a"], dtype=object))})
    with pytest.raises(atlas.DTypeMismatchError, match="variable 'm'"):
        store.add_xarray_dataset(mixed, "mixed")
    too_big = xr.Dataset({"v": ("x", [1.0], {"n": np.uint64(2**64 - 1)})})
    with pytest.raises(atlas.AtlasError, match="variable 'v': attribute \"n\"") as info:
        store.add_xarray_dataset(too_big, "too_big")
    assert str(info.value).count("attribute") == 1
    with pytest.raises(atlas.DTypeMismatchError, match="^dataset attribute \"g\": unsupported type NoneType"):
        store.add_xarray_dataset(xr.Dataset(attrs={"g": None}), "none_attr")
    multi = xr.Dataset({"v": ("i", [1.0, 2.0])}, coords={"a": ("i", [1, 2]), "b": ("i", [3, 4])}).set_index(i=["a", "b"])
    with pytest.raises(atlas.InvalidArgumentError, match="MultiIndex.*reset_index"):
        store.add_xarray_dataset(multi, "multi")
    assert store.list_datasets() == []


def test_unnamed_axes_open_as_dimensions_of_their_own(tmp_path):
    store = atlas.Atlas.create(tmp_path / "s")
    view = store.create_dataset("d")
    view.define_array("grid", "float32", ["", ""], [2, 3]).write([0, 0], np.ones((2, 3), np.float32))
    view.define_array("row", "int8", ["", "x"], [4, 1])
    store.flush()
    back = store.open_as_xarray_dataset("d")
    assert back["grid"].dims == ("grid_dim_0", "grid_dim_1")
    assert back["grid"].shape == (2, 3)
    assert back["row"].dims == ("row_dim_0", "x")
    assert store["d"]["grid"].dims == ("", "")


def test_arrays_defined_without_dims_open_as_xarray_as_h5py_users_write_them(tmp_path):
    store = atlas.Atlas.create(tmp_path / "s")
    for name in ["d", "e"]:
        view = store.create_dataset(name)
        view["depth"] = np.linspace(0, 100, 5)  # a coordinate variable: its axis is "depth"
        view.define_array("temp", "float32", ["time", "depth"], [2, 5])
        view["a"] = np.zeros((2, 3))  # default dims dim_0, dim_1 ...
        view["b"] = np.ones((4, 3))  # ... of other lengths: each array's own
        view["c"] = np.ones((2, 3))  # dim_1 has one length throughout: it stays shared
    back = store.open_as_xarray_dataset("d")
    assert list(back.coords) == ["depth"] and back["temp"].dims == ("time", "depth")
    assert back["temp"].sel(depth=25.0).shape == (2,)
    assert back["a"].dims == ("a_dim_0", "dim_1") and back["b"].dims == ("b_dim_0", "dim_1")
    assert back["c"].dims == ("c_dim_0", "dim_1")
    assert store.open_as_many_xarray_dataset(["d", "e"])["b"].dims == ("dataset", "b_dim_0", "dim_1")
    # An array only the later dataset has changes nothing in the stack.
    store["e"]["x"] = np.ones((5, 3))
    assert store.open_as_many_xarray_dataset(["d", "e"])["a"].dims == ("dataset", "a_dim_0", "dim_1")


def test_a_scalar_nan_fill_value_leaves_integer_variables_at_their_default(tmp_path):
    ds = xr.Dataset({"temp": (("station",), np.array([1.5, 2.5, 3.5]))}, coords={"station": [10, 20, 30]})
    store = atlas.Atlas.create(tmp_path / "s")
    store.add_xarray_dataset(ds, "a", fill_value=np.nan)
    assert np.isnan(store["a"].array_fill_value("temp")) and store["a"].array_fill_value("station") == 0
    store.add_xarray_dataset(ds, "b", fill_value=-1)
    assert store["b"].array_fill_value("temp") == -1 and store["b"].array_fill_value("station") == -1
    with pytest.raises(atlas.InvalidArgumentError, match="variable 'station'"):
        store.add_xarray_dataset(ds, "c", fill_value={"station": 1.5})


def test_missing_strings_become_empty_with_a_warning(tmp_path):
    ds = xr.Dataset({"s": (["x"], np.array(["a", None, np.nan], dtype=object))})
    store = atlas.Atlas.create(tmp_path / "s")
    with pytest.warns(UserWarning, match="missing strings") as caught:
        store.add_xarray_dataset(ds, "d")
    assert caught[0].filename == __file__, "the warning points at the caller's line"
    with pytest.warns(UserWarning, match="missing strings") as caught:
        ds.atlas.write(store, "e")  # through the accessor, one frame deeper
    assert caught[0].filename == __file__
    assert store["d"].read_array("s").tolist() == ["a", "", ""]


def test_open_many_stacks_along_a_new_dimension(tmp_path):
    store = atlas.Atlas.create(tmp_path / "s")
    names = []
    for i in range(4):
        ds = xr.Dataset(
            {"t": (["z"], np.arange(6, dtype=np.float64) + i), "n": (["z"], np.array(list("abcdef"), dtype=object))},
            coords={"z": np.arange(6) * 10},
            attrs={"i": i},
        )
        store.add_xarray_dataset(ds, f"p{i}")
        names.append(f"p{i}")
    many = store.open_as_many_xarray_dataset(names, concat_dim="profile")
    assert many["t"].dims == ("profile", "z") and many["t"].shape == (4, 6)
    np.testing.assert_array_equal(many["t"].values[:, 0], [0, 1, 2, 3])
    assert many["n"].values[2].tolist() == list("abcdef")
    assert many["profile"].values.tolist() == names
    assert many.attrs == {"i": 0}
    with pytest.raises(atlas.InvalidArgumentError):
        store.open_as_many_xarray_dataset([])


def test_open_many_reads_the_data_only_in_the_stack(tmp_path, monkeypatch):
    store = atlas.Atlas.create(tmp_path / "s")
    for i in range(3):
        store.add_xarray_dataset(xr.Dataset({"t": ("z", np.arange(4.0) + i)}, coords={"z": np.arange(4)}), f"p{i}")
    reads = []
    read = atlas.Array.read
    monkeypatch.setattr(atlas.Array, "read", lambda self, *a, **k: reads.append(self.name) or read(self, *a, **k))
    many = store.open_as_many_xarray_dataset(["p0", "p1", "p2"])
    np.testing.assert_array_equal(many["t"].values[:, 0], [0, 1, 2])
    assert "t" not in reads, reads  # coordinates only: "t" is read across, once


def test_a_zero_dimensional_dask_variable_is_written_as_its_value(tmp_path):
    pytest.importorskip("dask.array")
    ds = xr.Dataset({"b": ("x", np.arange(4.0)), "s": ((), np.array("hello", dtype=object))}).chunk()
    ds["total"] = ds.b.sum()
    store = atlas.Atlas.create(tmp_path / "s")
    store.add_xarray_dataset(ds, "d")
    back = store.open_as_xarray_dataset("d")
    assert back["s"].values.item() == "hello" and back["total"].values.item() == 6.0


def test_chunked_arrays_open_lazily_with_dask(tmp_path):
    da = pytest.importorskip("dask.array")
    ds = sample_dataset().chunk({"time": 1})
    store = atlas.Atlas.create(tmp_path / "s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store.add_xarray_dataset(ds, "lazy")
    assert store["lazy"]["temperature"].chunks == (1, 4, 5)
    back = store.open_as_xarray_dataset("lazy")
    assert isinstance(back["temperature"].data, da.Array)
    xr.testing.assert_identical(back.load(), sample_dataset())
    # An array of one chunk, the chunk larger than the array, is read at once.
    store.create_dataset("one").define_array("w", "float64", ["x"], [10], chunk_shape=[100])
    assert isinstance(store.open_as_xarray_dataset("one")["w"].data, np.ndarray)


def test_a_dataset_atlas_cannot_store_leaves_nothing_behind(tmp_path):
    ds = xr.Dataset({"a": ("x", np.arange(3.0)), "half": ("x", np.arange(3, dtype=np.float16))})
    store = atlas.Atlas.create(tmp_path / "s")
    with pytest.raises(atlas.InvalidArgumentError, match="float16"):
        store.add_xarray_dataset(ds, "run")
    assert "run" not in store
    store.add_xarray_dataset(ds.drop_vars("half"), "run")  # the name is free again
    assert store["run"].list_arrays() == ["a"]


def test_assigning_a_data_array_keeps_its_axis_names(tmp_path):
    with atlas.Atlas.create(tmp_path / "s") as store:
        ds = store.create_dataset("d")
        ds["t"] = xr.DataArray(np.zeros((2, 3)), dims=("lat", "lon"))
        ds["h"] = xr.DataArray(np.arange(4.0), dims=("time",))
        assert ds["t"].dims == ("lat", "lon") and ds["h"].dims == ("time",)
        # A name another array gives another length is not taken: xarray could not open both.
        ds["g"] = xr.DataArray(np.arange(5.0), dims=("time",))
        assert ds["g"].dims == ("g",)
    assert store.open_as_xarray_dataset("d")["g"].shape == (5,)
