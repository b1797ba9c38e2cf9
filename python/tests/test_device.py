"""GPU reads from Python (`device="cuda"`) and the DLPack export they use.

On a machine without a GPU, `device="cuda"` must raise `GpuUnavailableError` saying why;
the DLPack capsule code is checked through a host buffer (`_DlpackProbe`) that numpy
consumes. With a GPU (ATLAS_REQUIRE_GPU=1 in scripts/gpu-check.sh) the CudaArray must hold
what the CPU reads.
"""

import gc
import os

import numpy as np
import pytest

import atlas
from atlas import _atlas


@pytest.fixture
def array(ds):
    arr = ds.define_array("a", "uint16", ["y", "x"], [30, 20], chunk_shape=[8, 8])
    values = (np.arange(600, dtype=np.uint16) * 7).reshape(30, 20)
    arr.write((0, 0), values)
    ds.store.flush()
    return arr, values


def gpu_or_skip(arr):
    try:
        arr.read((0, 0), (1, 1), device="cuda")
    except atlas.GpuUnavailableError as e:
        if os.environ.get("ATLAS_REQUIRE_GPU"):
            raise
        pytest.skip(f"no GPU here: {e}")


def test_cuda_read_is_a_typed_error_or_a_cuda_array(array):
    arr, values = array
    try:
        got = arr.read(device="cuda")
    except atlas.GpuUnavailableError as e:
        assert str(e)  # says which part is missing
        return
    assert isinstance(got, atlas.CudaArray)
    assert got.shape == values.shape
    np.testing.assert_array_equal(got.to_numpy(), values)
    iface = got.__cuda_array_interface__
    assert iface["typestr"] == "<u2" and iface["shape"] == values.shape and iface["version"] == 3
    assert got.__dlpack_device__() == (2, 0)


def test_bad_device_names_are_refused(array):
    arr, _ = array
    for bad in ["gpu", "cuda:x", "cuda:-1", ""]:
        with pytest.raises(atlas.InvalidArgumentError):
            arr.read(device=bad)
    np.testing.assert_array_equal(arr.read(device="cpu"), array[1])


def test_dataset_read_array_takes_a_device(ds, array):
    _, values = array
    np.testing.assert_array_equal(ds.read_array("a", (2, 3), (4, 5), device="cpu"), values[2:6, 3:8])


def test_gpu_reads_match_cpu_reads(array):
    arr, values = array
    gpu_or_skip(arr)
    for start, shape in [((0, 0), (30, 20)), ((3, 5), (17, 9))]:
        got = arr.read(start, shape, device="cuda").to_numpy()
        np.testing.assert_array_equal(got, arr.read(start, shape))


def test_torch_takes_a_cuda_array_without_a_copy(array):
    torch = pytest.importorskip("torch")
    arr, values = array
    gpu_or_skip(arr)
    got = arr.read(device="cuda")
    tensor = torch.from_dlpack(got)
    assert tensor.is_cuda and tuple(tensor.shape) == values.shape and tensor.dtype == torch.uint16
    assert tensor.data_ptr() == got.__cuda_array_interface__["data"][0]
    del got
    gc.collect()
    # The tensor owns the memory now: it outlives the CudaArray.
    np.testing.assert_array_equal(tensor.cpu().numpy(), values)


def test_cupy_takes_a_cuda_array_both_ways(array):
    cupy = pytest.importorskip("cupy")
    arr, values = array
    gpu_or_skip(arr)
    got = arr.read((2, 3), (20, 10), device="cuda")
    through_interface = cupy.asarray(got)
    through_dlpack = cupy.from_dlpack(arr.read((2, 3), (20, 10), device="cuda"))
    assert through_interface.data.ptr == got.__cuda_array_interface__["data"][0]
    np.testing.assert_array_equal(cupy.asnumpy(through_interface), values[2:22, 3:13])
    np.testing.assert_array_equal(cupy.asnumpy(through_dlpack), values[2:22, 3:13])


def test_dlpack_capsules_hand_over_memory_and_keep_it_alive():
    probe = _atlas._DlpackProbe(1000)
    view = np.from_dlpack(probe)
    del probe
    gc.collect()
    # The tensor keeps its owner alive after the exporter is gone.
    np.testing.assert_array_equal(view, np.arange(1000, dtype=np.uint16))


def test_an_unconsumed_capsule_frees_its_tensor():
    probe = _atlas._DlpackProbe(10)
    for _ in range(1000):
        capsule = probe.__dlpack__()
        del capsule
    gc.collect()
    np.testing.assert_array_equal(np.from_dlpack(probe), np.arange(10, dtype=np.uint16))


def test_across_reads_take_a_device(ds):
    store = ds.store
    for name in ["p", "q"]:
        other = store.create_dataset(name)
        other.define_array("v", "float32", ["x"], [10]).write((0,), np.arange(10, dtype=np.float32))
    store.flush()
    try:
        got = store.read_array_across_stacked("v", ["p", "q"], device="cuda")
    except atlas.GpuUnavailableError:
        if os.environ.get("ATLAS_REQUIRE_GPU"):
            raise
        return
    np.testing.assert_array_equal(got.to_numpy(), store.read_array_across_stacked("v", ["p", "q"]))
