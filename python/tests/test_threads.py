"""Threads: the GIL is released during I/O and codec work, and calls may run at once."""

import threading
import time

import numpy as np
import pytest

import atlas


def _big_store(tmp_path):
    store = atlas.Atlas.create(tmp_path / "s", codec="zstd:9")
    arr = store.create_dataset("d").define_array("a", "float64", ["t", "x"], [2048, 1024], chunk_shape=[64, 1024])
    arr[...] = np.random.default_rng(0).random((2048, 1024))
    store.flush()
    return store, arr


def test_other_python_threads_run_during_a_read(tmp_path):
    store, arr = _big_store(tmp_path)
    inside = threading.Event()
    done = threading.Event()
    seconds = []

    def reader():
        inside.set()
        start = time.perf_counter()
        for _ in range(3):
            arr.read()
        seconds.append(time.perf_counter() - start)
        done.set()

    # How fast this thread counts when nothing else runs.
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 0.05:
        n += 1
    rate = n / (time.perf_counter() - start)

    thread = threading.Thread(target=reader)
    thread.start()
    inside.wait()
    counted = 0
    while not done.is_set():
        counted += 1
    thread.join()
    # With the GIL held through the read this thread would count only in the few
    # switch intervals around it; released, it counts for most of the read.
    print("share of the read this thread ran:", counted / (rate * seconds[0]))
    assert counted > 0.3 * rate * seconds[0], (counted, rate, seconds)


def test_concurrent_reads_and_writes_from_many_threads(tmp_path):
    store = atlas.Atlas.create(tmp_path / "s")
    ds = store.create_dataset("d")
    arrays = [ds.define_array(f"a{i}", "int32", ["x"], [50_000], chunk_shape=[4096]) for i in range(8)]
    errors = []

    def work(i):
        try:
            values = np.arange(50_000, dtype=np.int32) * (i + 1)
            for _ in range(3):
                arrays[i][:] = values
                np.testing.assert_array_equal(arrays[i][:], values)
                np.testing.assert_array_equal(ds.read_array(f"a{(i + 1) % 8}").shape, (50_000,))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    store.flush()
    reopened = atlas.Atlas.open(tmp_path / "s")["d"]
    for i in range(8):
        np.testing.assert_array_equal(reopened[f"a{i}"][:], np.arange(50_000, dtype=np.int32) * (i + 1))


def test_a_flush_in_one_thread_while_others_read(tmp_path):
    store, arr = _big_store(tmp_path)
    expected = arr[:64].copy()
    stop = threading.Event()
    failures = []
    reads = []

    def read_loop():
        while not stop.is_set():
            if not np.array_equal(arr[:64], expected):
                failures.append("changed")
            reads.append(1)

    readers = [threading.Thread(target=read_loop) for _ in range(3)]
    for t in readers:
        t.start()
    other = store.create_dataset("e").define_array("b", "uint8", ["x"], [1 << 20])
    for i in range(5):
        other[:] = np.full(1 << 20, i, np.uint8)
        store.flush()
    stop.set()
    for t in readers:
        t.join()
    assert not failures
    assert reads, "no read ran during the flushes"


def test_stepped_assignments_from_many_threads_each_land(tmp_path):
    # Each thread writes every fourth element through a step: a read, change and write
    # back of the same box, which must not lose another thread's values.
    store = atlas.Atlas.create(tmp_path / "s")
    arr = store.create_dataset("d").define_array("a", "int32", None, [1 << 18], chunk_shape=[1 << 16])

    start = threading.Barrier(4)

    def work(offset):
        start.wait()
        for step in range(50):
            arr[offset::4] = offset + 1 + 4 * step  # a stale write-back leaves an older step

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert np.array_equal(arr[:], np.arange(1 << 18) % 4 + 1 + 4 * 49)


@pytest.mark.parametrize("between", ["write", "shrink and grow"])
def test_a_change_between_an_assignments_read_and_write_back_is_kept(tmp_path, between):
    store = atlas.Atlas.create(tmp_path / "s")
    arr = store.create_dataset("d").define_array("a", "int32", None, [8], fill_value=-1)
    arr[:] = 0
    native, box_read, written = arr._native, threading.Event(), threading.Event()

    class PausedAfterRead:
        """The native half, pausing a stepped assignment between its read and write-back."""

        def read(self, start=None, shape=None, device=None):
            out = native.read(start, shape, device)
            box_read.set()
            written.wait(0.5)  # with the lock held, the write below waits instead
            return out

        def __getattr__(self, name):
            return getattr(native, name)

    arr._native = PausedAfterRead()
    assigning = threading.Thread(target=arr.__setitem__, args=(slice(None, None, 2), 9))
    assigning.start()
    box_read.wait()
    if between == "write":
        change, expected = lambda: arr.write([1], np.array([7], np.int32)), [9, 7, 9, 0, 9, 0, 9, 0]
    else:
        # After the whole assignment: what the shrink dropped reads as the fill value, not
        # as the assignment's write-back of what it read before the shrink.
        change, expected = lambda: (arr.resize([2]), arr.resize([8])), [9, 0] + [-1] * 6
    writing = threading.Thread(target=lambda: (change(), written.set()))
    writing.start()
    assigning.join()
    writing.join()
    assert arr._native.read().tolist() == expected
