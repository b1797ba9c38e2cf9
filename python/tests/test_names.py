"""Hostile names: refused when they could leave the store, kept exactly otherwise, and
escaped in notebook views."""

import os

import numpy as np
import pytest

import atlas

GOOD = ["temp", "with space", "\u00fcn\u00efc\u00f8d\u00e9", "\u65e5\u672c\u8a9e", "emoji \U0001f30a", "a.b", "x" * 255, "<script>alert(1)<script>",
        "semi;colon", "quote'\"", "back`tick", "-dash", "CON", "nul"]
BAD = ["", ".", "..", "../escape", "a/b", "a\\b", "_private", ".hidden", "tab\tname", "nul\x00byte", "x" * 256,
       "new\nline"]


@pytest.mark.parametrize("name", GOOD)
def test_odd_but_safe_names_round_trip(tmp_path, name):
    store = atlas.Atlas.create(tmp_path / "s")
    ds = store.create_dataset(name)
    ds.define_array(name, "int8", [name], [2])[:] = np.array([1, 2], np.int8)
    ds.set_attribute(name, name)
    store.flush()
    back = atlas.Atlas.open(tmp_path / "s")
    assert back.list_datasets() == [name]
    assert back[name].list_arrays() == [name]
    assert back[name][name].dims == (name,)
    assert back[name].get_attribute(name) == name
    assert back[name].read_array(name).tolist() == [1, 2]
    # Nothing but the store's own files, whatever the names.
    assert sorted(os.listdir(tmp_path)) == ["s"]
    assert all(n.startswith("atlas.") or n == "data" for n in os.listdir(tmp_path / "s"))


@pytest.mark.parametrize("name", BAD)
def test_names_that_could_leave_the_store_are_refused(store, name):
    with pytest.raises(atlas.InvalidNameError):
        store.create_dataset(name)
    ds = store.create_dataset("ok") if not store.dataset_exists("ok") else store["ok"]
    with pytest.raises(atlas.InvalidNameError):
        ds.define_array(name, "int8", ["x"], [1])
    assert store.list_datasets() == ["ok"]


def test_attribute_keys_may_hold_dots_but_not_separators_or_control_characters(ds):
    for key in ("a.b", "_FillValue", "_private", " "):
        ds.set_attribute(key, 1)
    assert sorted(ds.attributes()) == sorted(["a.b", "_FillValue", "_private", " "])
    for key in ("", "a\nb", "x" * 256, "a/b", "../x", "..", "C:\\x"):
        with pytest.raises(atlas.InvalidNameError):
            ds.set_attribute(key, 1)


def test_views_escape_names_and_values(store):
    evil = "<img src=x onerror=alert(1)>"
    ds = store.create_dataset(evil)
    arr = ds.define_array(evil, "float32", [evil], [1])
    arr.attrs[evil] = evil
    store.set_attribute(evil, evil)
    for html in (store._repr_html_(), ds._repr_html_(), arr._repr_html_()):
        assert "<img" not in html and "&lt;img" in html
