"""Datasets: atlas-python 0.10's methods, every dtype, attributes."""

import datetime

import numpy as np
import pytest

import atlas
from conftest import DTYPES, sample


@pytest.mark.parametrize("name", sorted(DTYPES))
def test_every_dtype_round_trips_through_a_flush(tmp_path, name):
    store = atlas.Atlas.create(tmp_path / "s")
    ds = store.create_dataset("d")
    data = sample(name, 7).reshape(7, 1)
    arr = ds.define_array("a", name, ["x", "y"], [9, 1], chunk_shape=[2, 1])
    ds.write_array("a", [1, 0], data)
    store.flush()
    back = atlas.Atlas.open(tmp_path / "s")["d"].read_array("a")
    assert back.dtype == arr.dtype == atlas._dtypes.numpy_dtype(name)
    assert back.shape == (9, 1)
    np.testing.assert_array_equal(back[1:8], data)
    if name == "timestamp":  # a timestamp array's default fill is NaT
        assert np.isnat(back[0, 0]) and np.isnat(back[8, 0])
    else:
        fill = {"string": "", "bool": False}.get(name, 0)
        assert back[0, 0] == fill and back[8, 0] == fill


def test_timestamps_never_written_read_nat_and_the_epoch_is_a_time(ds):
    t = ds.define_array("t", "datetime64[ns]", ["x"], [3])
    assert np.isnat(t[...]).all()
    ds["u"] = np.array(["1970-01-01", "2020-01-01"], "M8[ns]")
    ds["u"].resize([3])
    assert np.isnat(ds["u"][2]) and ds["u"].stats["count"] == 2


@pytest.mark.parametrize("spelling,name", [
    ("timestamp_nanoseconds", "timestamp"), ("timestamp_ns", "timestamp"), ("datetime64[ns]", "timestamp"),
    ("M8[ns]", "timestamp"), ("<M8[ns]", "timestamp"),
    (np.dtype("datetime64[ns]"), "timestamp"), (np.float32, "float32"), ("f8", "float64"), ("<u2", "uint16"),
    (bool, "bool"), (str, "string"), ("object", "string"), (np.dtype("U5"), "string"), ("int", "int64"),
])
def test_dtype_strings_and_numpy_dtypes_are_both_accepted(ds, spelling, name):
    arr = ds.define_array("a", spelling, ["x"], [2])
    assert arr.atlas_dtype == name


def test_string_dtype_of_numpy_2(ds):
    if not hasattr(np, "dtypes") or not hasattr(np.dtypes, "StringDType"):
        pytest.skip("numpy < 2")
    arr = ds.define_array("s", np.dtypes.StringDType(), ["x"], [3])
    arr[:] = np.array(["a", "bb", "ccc"], dtype=np.dtypes.StringDType())
    assert arr[:].tolist() == ["a", "bb", "ccc"]


def test_unsupported_dtypes_are_refused(ds):
    for bad in ("complex64", np.float16, "nonsense", "m8[ns]", "<m8[ns]", np.dtype("m8[ns]")):
        with pytest.raises(atlas.InvalidArgumentError):
            ds.define_array("a", bad, ["x"], [2])


def test_define_array_defaults_and_schema(ds):
    arr = ds.define_array("a", "float64", None, [3000, 3000])
    assert arr.dims == ("dim_0", "dim_1")
    assert np.prod(arr.chunks) * 8 <= 1 << 20  # about 1 MiB per chunk
    assert ds.array_meta("a") == {
        "dtype": "float64", "shape": [3000, 3000], "chunk_shape": list(arr.chunks),
        "dimension_names": ["dim_0", "dim_1"], "fill_value": 0.0, "codec": "zstd:3", "shuffle": None,
    }
    ds.define_array("t", "timestamp_nanoseconds", ["x"], [2])
    assert ds.array_meta("t")["dtype"] == "timestamp_nanoseconds"
    assert ds.array_meta("missing") is None
    # dims may be left out when shape is given by name.
    assert ds.define_array("k", "f4", shape=(3, 4)).dims == ("dim_0", "dim_1")
    with pytest.raises(TypeError, match="define_array needs a shape"):
        ds.define_array("n", "f4")
    assert "n" not in ds
    # `chunks`, as h5py and zarr name it and as `Array.chunks` reads it back.
    assert ds.define_array("c", "f4", shape=(10, 4), chunks=(5, 2)).chunks == (5, 2)
    with pytest.raises(TypeError, match="chunk_shape or chunks"):
        ds.define_array("n", "f4", shape=(10,), chunk_shape=(5,), chunks=(5,))
    for chunks in [True, "auto"]:  # h5py's "choose for me": here, leave it out
        with pytest.raises(TypeError, match="leave it out for the default"):
            ds.define_array("n", "f4", shape=(10,), chunks=chunks)
    assert "n" not in ds


def test_define_array_checks_its_schema(ds):
    with pytest.raises(atlas.InvalidArgumentError):
        ds.define_array("a", "float32", ["x", "y"], [3])  # dims of the wrong length
    with pytest.raises(atlas.InvalidArgumentError):
        ds.define_array("a", "float32", ["x"], [3], chunk_shape=[0])
    with pytest.raises(atlas.InvalidArgumentError):
        ds.define_array("a", "uint8", ["x"], [3], fill_value=300)
    with pytest.raises(atlas.InvalidArgumentError):
        ds.define_array("a", "int8", ["x"], [3], fill_value=1.5)
    # Text is a string array's fill value only, and the empty string the only one.
    for dtype, fill in [("string", "x"), ("string", False), ("string", 0)]:
        with pytest.raises(atlas.InvalidArgumentError, match="a string array's fill value is the empty string"):
            ds.define_array("a", dtype, ["x"], [3], fill_value=fill)
    # Other arrays take numbers, whatever the text says.
    for dtype, fill in [("bool", "x"), ("float64", ""), ("float32", "nan"), ("int32", "")]:
        with pytest.raises(atlas.InvalidArgumentError, match=f"refused for {dtype} arrays: it takes a number"):
            ds.define_array("a", dtype, ["x"], [3], fill_value=fill)
    assert ds.define_array("s", "string", ["x"], [3], fill_value="").fill_value == ""
    for dims in [[b"x"], [None], ["x", 1]]:
        with pytest.raises(TypeError, match="dims must be strings"):
            ds.define_array("a", "int8", dims, [3] * len(dims))
    ds.define_array("a", "float32", ["x"], [3])
    with pytest.raises(atlas.AlreadyExistsError):
        ds.define_array("a", "float32", ["x"], [3])


def test_fill_values(ds):
    ds.define_array("f", "float32", ["x"], [2], fill_value=float("nan"))
    ds.define_array("i", "int16", ["x"], [2], fill_value=-1)
    ds.define_array("u", "uint64", ["x"], [2], fill_value=2**64 - 1)
    ds.define_array("b", "bool", ["x"], [2], fill_value=True)
    ds.define_array("t", "timestamp", ["x"], [2], fill_value=np.datetime64("NaT"))
    ds.define_array("n", "float64", ["x"], [2], fill_value=np.float32(2.5))
    assert np.isnan(ds.array_fill_value("f"))
    assert ds.array_fill_value("i") == -1
    assert ds.array_fill_value("u") == 2**64 - 1
    assert ds.array_fill_value("b") is True
    assert np.isnat(ds.array_fill_value("t"))
    assert ds.array_fill_value("n") == 2.5
    assert ds.array_fill_value("missing") is None
    assert np.isnat(ds.read_array("t")).all()
    assert ds.read_array("u").tolist() == [2**64 - 1] * 2
    assert ds.read_array("b").tolist() == [True, True]


def test_read_array_selections(ds):
    ds.define_array("a", "int32", ["y", "x"], [4, 6], chunk_shape=[3, 4])
    full = np.arange(24, dtype=np.int32).reshape(4, 6)
    ds.write_array("a", [0, 0], full)
    np.testing.assert_array_equal(ds.read_array("a"), full)
    np.testing.assert_array_equal(ds.read_array("a", [1, 2], [2, 3]), full[1:3, 2:5])
    np.testing.assert_array_equal(ds.read_array("a", [1, 2]), full[1:, 2:])
    np.testing.assert_array_equal(ds.read_array("a", None, [2, 2]), full[:2, :2])
    assert ds.read_array("a", [4, 6], [0, 0]).shape == (0, 0)
    assert ds.read_array("missing") is None
    got = ds.read_arrays(["a", "missing"], [0, 0], [1, 1])
    assert got["a"].tolist() == [[0]] and got["missing"] is None


def test_write_array_is_strict_about_dtype_but_takes_any_layout(ds):
    ds.define_array("a", "float32", ["y", "x"], [4, 4])
    with pytest.raises(atlas.DTypeMismatchError):
        ds.write_array("a", [0, 0], np.ones((2, 2), np.float64))
    with pytest.raises(TypeError):
        ds.write_array("a", [0, 0], np.ones((2, 2), np.int32))
    src = np.arange(32, dtype=np.float32).reshape(4, 8)
    ds.write_array("a", [0, 0], src[:, ::2])  # not contiguous
    np.testing.assert_array_equal(ds.read_array("a"), src[:, ::2])
    ds.write_array("a", [0, 0], src[::-1, 4:])  # negative strides
    np.testing.assert_array_equal(ds.read_array("a"), src[::-1, 4:])
    ds.write_array("a", [0, 0], np.ones((4, 4), dtype=">f4"))  # big-endian
    assert (ds.read_array("a") == 1).all()
    ds.write_array("a", [3, 3], [[7.0]])  # a list is converted
    assert ds.read_array("a", [3, 3], [1, 1]).tolist() == [[7.0]]


def test_timestamps_take_datetime64_of_any_unit_and_int64(ds):
    ds.define_array("t", "timestamp", ["x"], [3])
    ds.write_array("t", [0], np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[D]"))
    ds.write_array("t", [2], np.array([5], dtype=np.int64))
    back = ds.read_array("t")
    assert back.dtype == np.dtype("datetime64[ns]")
    assert back[0] == np.datetime64("2024-01-01") and back[2] == np.datetime64(5, "ns")
    ds.write_array("t", [1], np.array([7, 9], dtype=">i8")[:1])  # int64 of either byte order
    assert ds.read_array("t")[1] == np.datetime64(7, "ns")


def test_strings_take_object_unicode_and_bytes_and_read_as_objects(ds):
    arr = ds.define_array("s", "string", ["x"], [6])
    ds.write_array("s", [0], np.array(["a", "bb"], dtype=object))
    ds.write_array("s", [2], np.array(["ccc", "d"]))
    ds.write_array("s", [4], np.array([b"utf8 \xc3\xa9", None], dtype=object))
    back = ds.read_array("s")
    assert back.dtype == object
    assert back.tolist() == ["a", "bb", "ccc", "d", "utf8 \u00e9", ""]
    with pytest.raises(atlas.DTypeMismatchError):
        ds.write_array("s", [0], np.array([1, 2], dtype=object))
    with pytest.raises(atlas.InvalidArgumentError):
        ds.write_array("s", [0], np.array([b"\xff"], dtype=object))
    assert arr.stats["row_count"] == 6


def test_zero_dimensional_arrays(ds):
    for name in ("float64", "string", "bool", "timestamp"):
        arr = ds.define_array(f"z{name}", name, [], [])
        arr[()] = atlas._dtypes.for_assign(sample(name, 2)[1], name, "z")
        assert arr.shape == () and arr[...].shape == ()
        assert ds.read_array(f"z{name}")[()] == sample(name, 2)[1]


def test_delete_array(ds):
    ds.define_array("a", "float32", ["x"], [2])
    ds.delete_array("a")
    assert ds.list_arrays() == [] and "a" not in ds
    with pytest.raises(atlas.NotFoundError):
        ds.delete_array("a")
    with pytest.raises(KeyError):
        ds["a"]


def test_array_stats_are_current_without_a_flush(ds):
    ds.define_array("a", "float32", ["x"], [6], fill_value=float("nan"))
    assert ds.array_stats("a")["count"] == 0
    ds.write_array("a", [0], np.array([1, 2, np.nan, 5], np.float32))
    stats = ds.array_stats("a")
    assert stats == {"row_count": 6, "null_count": 3, "min": 1.0, "max": 5.0, "count": 3, "sum": 8.0,
                     "mean": pytest.approx(8 / 3)}
    assert ds.array_stats("missing") is None
    # NaT is null, as NaN is; the mean of instants is an instant.
    ds.define_array("t", "timestamp", ["x"], [3])
    ds.write_array("t", [0], np.array(["2024-01-01", "NaT", "2025-01-01"], dtype="datetime64[ns]"))
    stats = ds.array_stats("t")
    assert stats["null_count"] == 1 and stats["count"] == 2
    assert stats["min"] == np.datetime64("2024-01-01", "ns") and stats["max"] == np.datetime64("2025-01-01", "ns")
    assert stats["mean"] == np.datetime64("2024-07-02", "ns") and stats["mean"].dtype == np.dtype("M8[ns]")
    assert ds.array_stats("t")["sum"] is None and ds["t"].block_stats()[0]["sum"] is None  # no sum of instants
    ds.define_array("s", "string", ["x"], [3])
    ds.write_array("s", [0], np.array(["a", "", "bc"]))
    assert ds.array_stats("s") == {"row_count": 3, "null_count": 1, "min": None, "max": None, "count": 2,
                                   "sum": None, "mean": None}


@pytest.mark.parametrize("value,dtype,back", [
    (True, None, True), (3, None, 3), (2.5, None, 2.5), ("text", None, "text"),
    ([1, "a", [2.0]], None, [1, "a", [2.0]]), ({"k": {"n": 1}}, None, {"k": {"n": 1}}),
    (np.int32(7), None, 7), (np.float32(0.5), None, 0.5), (np.array([1, 2]), None, [1, 2]),
    (np.datetime64("2024-03-01T00:00:00", "s"), None, np.datetime64("2024-03-01", "ns")),
    (5, "int8", 5), (5, "float32", 5.0), (5, "timestamp_nanoseconds", np.datetime64(5, "ns")),
    (1, "bool", True), (12, "string", "12"), ("2024-03-01", None, "2024-03-01"),
    (datetime.datetime(2024, 3, 1, 12), None, np.datetime64("2024-03-01T12:00", "ns")),
    (datetime.datetime(2024, 3, 1, 12, tzinfo=datetime.timezone(datetime.timedelta(hours=2))), None,
     np.datetime64("2024-03-01T10:00", "ns")),
    (datetime.date(2024, 3, 1), None, np.datetime64("2024-03-01", "ns")),
    (datetime.datetime(2024, 3, 1), "timestamp", np.datetime64("2024-03-01", "ns")),
    (b"abc", "string", "abc"), (b"abc", None, "abc"),
])
def test_attributes_keep_their_type(ds, value, dtype, back):
    ds.set_attribute("k", value, dtype)
    got = ds.get_attribute("k")
    assert got == back and type(got) is type(back)


@pytest.mark.parametrize("unit", ["ns", "us", "s", "D"])
def test_datetime64_arrays_are_stored_as_timestamps_in_any_unit(ds, unit):
    value = np.array([["2020-01-01", "2021-06-01"]], f"datetime64[{unit}]")
    ds.attrs["t"] = value
    got = ds.attrs["t"]
    assert got == [[np.datetime64("2020-01-01", "ns"), np.datetime64("2021-06-01", "ns")]]
    assert all(type(t) is np.datetime64 for t in got[0])


def test_attribute_errors_and_mapping_view(ds):
    # A uint64 past int64 is refused for what attributes hold, not as out of the dtype's range.
    with pytest.raises(atlas.InvalidArgumentError, match=r"integers are int64 \(up to 2\*\*63-1\)"):
        ds.set_attribute("k", 2**64 - 1, "uint64")
    with pytest.raises(atlas.InvalidArgumentError, match="out of range for uint8"):
        ds.set_attribute("k", 2**64 - 1, "uint8")
    # A number out of range is a ValueError, however far out, as a fill value is.
    for value, dtype in [(300, "int8"), (2**200, "int8"), (10**400, "float64"), (1e300, "float32"), (2, "bool"), (2**64, "bool")]:
        with pytest.raises(atlas.InvalidArgumentError, match="out of range"):
            ds.set_attribute("k", value, dtype=dtype)
    with pytest.raises(atlas.InvalidArgumentError, match="out of range"):
        ds.define_array("t", "timestamp", None, [1], fill_value=2**63)
    assert ds.get_attribute("k") is None and ds.list_arrays() == []
    with pytest.raises(atlas.InvalidArgumentError):
        ds.set_attribute("k", 1, dtype="complex")
    with pytest.raises(atlas.InvalidArgumentError, match="string"):
        ds.set_attribute("k", "false", dtype="bool")  # not True by truthiness
    with pytest.raises(atlas.DTypeMismatchError):
        ds.set_attribute("k", [1], dtype="bool")
    # Typed as a string or a timestamp, only values of that kind: no repr ("None", "[1, 2]").
    for value, dtype in [(None, "string"), ([1, 2], "string"), ({}, "string"), (1.5, "timestamp"), (True, "timestamp")]:
        with pytest.raises(atlas.DTypeMismatchError, match=r"attribute \"k\": dtype \w+ takes"):
            ds.set_attribute("k", value, dtype=dtype)
    for value, dtype, stored in [
        (np.int64(5), "string", "5"),
        (np.float32(1.5), "string", "1.5"),
        (np.int64(7), "timestamp", np.datetime64(7, "ns")),
        (np.array(np.datetime64("2020-01-01", "D")), "timestamp", np.datetime64("2020-01-01", "ns")),
    ]:
        ds.set_attribute("k", value, dtype=dtype)
        assert ds.get_attribute("k") == stored
    with pytest.raises(atlas.DTypeMismatchError):
        ds.set_attribute("k", np.bool_(True), dtype="timestamp")
    for value, stored in [(True, True), (np.bool_(False), False), (1, True), (np.int8(0), False)]:
        ds.set_attribute("k", value, dtype="bool")
        assert ds.get_attribute("k") is stored
    ds.delete_attribute("k")
    with pytest.raises(atlas.DTypeMismatchError):
        ds.set_attribute("k", None)
    with pytest.raises(atlas.InvalidNameError):
        ds.set_attribute("", 1)
    assert ds.get_attribute("missing") is None
    ds.attrs["a"] = 1
    ds.attrs.set("b", 2, dtype="int16")
    assert dict(ds.attrs) == ds.attributes() == {"a": 1, "b": 2}
    assert "a" in ds.attrs and len(ds.attrs) == 2
    del ds.attrs["a"]
    with pytest.raises(KeyError):
        ds.attrs["a"]
    with pytest.raises(atlas.NotFoundError):
        ds.delete_attribute("a")
    for change in [lambda: ds.attrs.__setitem__(1, 2), lambda: ds.attrs.set(1, 2), lambda: ds.attrs[1]]:
        with pytest.raises(TypeError, match=r"attribute names are str, not int \(1\)"):
            change()
    assert ds.attrs.get(1, "none") == "none" and 1 not in ds.attrs
    assert ds.attrs.pop(1, "none") == "none" and ds.get_attribute(1) is None  # as dict's
    for change in [lambda: ds.set_attribute(1, 2), lambda: ds.delete_attribute(1), lambda: ds.attrs.pop(1)]:
        with pytest.raises(TypeError, match=r"attribute names are str, not int \(1\)"):
            change()
    ds.attrs["c"] = 3
    assert ds.attrs.pop("c") == 3 and ds.attrs.pop("c", None) is None


def test_fill_value_is_reported_as_reads_return_it(ds):
    u = ds.define_array("u", "uint64", None, [2], fill_value=9.25e18)
    b = ds.define_array("b", "bool", None, [2], fill_value=1.0)
    i = ds.define_array("i", "int8", None, [2], fill_value=-3.0)
    assert u.fill_value == u[0] == 9_250_000_000_000_000_000 and isinstance(u.fill_value, int)
    assert b.fill_value is True and b[0]
    assert i.fill_value == i[0] == -3 and isinstance(i.fill_value, int)


def test_assigning_data_to_a_new_name_defines_the_array(ds):
    ds["f"] = [1.5, np.nan]
    ds["s"] = ["a", "bcd"]
    ds["t"] = np.array(["2024-01-01", "NaT"], "datetime64[s]")
    ds["z"] = np.int16(-3)
    ds.store.flush()
    assert ds["f"].dtype == np.float64 and np.array_equal(ds["f"][...], [1.5, np.nan], equal_nan=True)
    assert ds["s"][...].tolist() == ["a", "bcd"]
    assert ds["t"][0] == np.datetime64("2024-01-01", "ns") and np.isnat(ds["t"][1])
    assert ds["z"].shape == () and ds["z"][()] == -3
    with pytest.raises(TypeError, match="iteration over a 0-d array"):
        list(ds["z"])
    # A name in use is refused, pointing at the assignment into it.
    with pytest.raises(atlas.AlreadyExistsError, match=r"ds\['f'\]\[\.\.\.\] = data"):
        ds["f"] = [0.0, 0.0]
    assert ds["f"][0] == 1.5
    # Objects: dates and times make a timestamp array, text a string array, others nothing.
    ds["when"] = [datetime.datetime(2020, 1, 1, 12), None, datetime.date(2021, 1, 1)]
    assert ds["when"].atlas_dtype == "timestamp" and np.isnat(ds["when"][1])
    for objects in [np.array([1, "a"], dtype=object), [1, None], [2**70]]:
        with pytest.raises(atlas.DTypeMismatchError, match="make no Atlas dtype"):
            ds["o"] = objects
    for nothing in [None, [None, None]]:
        with pytest.raises(atlas.DTypeMismatchError, match="all None"):
            ds["o"] = nothing
    ds.delete_array("when")
    with pytest.raises(atlas.InvalidArgumentError, match="unsupported dtype"):
        ds["h"] = np.zeros(2, np.float16)
    assert sorted(ds) == ["f", "s", "t", "z"]
    # A 1-d array's axis takes its name (a coordinate variable); others keep the defaults.
    assert ds["f"].dims == ("f",) and ds["z"].dims == ()
    ds.define_array("grid2", "int8", ["depth", "x"], [5, 2])
    ds["depth"] = np.arange(7.0)  # "depth" is 5 long in grid2: the defaults instead
    assert ds["depth"].dims == ("dim_0",)
    ds.delete_array("depth")
    ds.delete_array("grid2")
    ds["grid"] = np.zeros((2, 3))
    assert ds["grid"].dims == ("dim_0", "dim_1")
    del ds["grid"]
    assert "grid" not in ds
    with pytest.raises(atlas.NotFoundError):
        del ds["grid"]


def test_handles_of_a_deleted_dataset_still_show_themselves(ds):
    ds["a"] = [1, 2]
    arr, attrs = ds["a"], ds["a"].attrs
    ds.store.delete_dataset(ds.name)
    assert repr(ds) == "<atlas.DatasetView 'd' (deleted)>" and "(deleted)" in ds._repr_html_()
    assert repr(arr) == "<atlas.Array 'd/a' (deleted)>" and "(deleted)" in arr._repr_html_()
    assert repr(attrs) == "<atlas.Attributes of a deleted dataset or array>"
    with pytest.raises(atlas.NotFoundError):
        arr[...]
