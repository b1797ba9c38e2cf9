"""Notebook views (`_repr_html_`): schema, shapes, chunks, codecs and sizes, every name escaped."""

from __future__ import annotations

import os
from html import escape
from typing import Any

#: Rows shown before a table is cut short.
MAX_ROWS = 100

_STYLE = (
    "<style>.atlas-repr table{border-collapse:collapse;font-size:12px}"
    ".atlas-repr th,.atlas-repr td{padding:2px 8px;text-align:left;border-bottom:1px solid #ddd}"
    ".atlas-repr td.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".atlas-repr .muted{color:#888}</style>"
)


def counted(n: int, noun: str) -> str:
    """`1 dataset`, `2 datasets`."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def human_bytes(n: Any) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def store_bytes(path: str) -> int:
    """Bytes of the store's files on disk: metadata and fragments."""
    total = 0
    for folder in (path, os.path.join(path, "data")):
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            pass
    return total


def _shape(t: Any) -> str:
    return escape(" x ".join(str(n) for n in t) if t else "scalar")


def _array_rows(arrays: list[Any], total: int, with_dataset: bool) -> str:
    """A row for each of `arrays` (at most MAX_ROWS of them), then how many of `total` are not shown."""
    rows = []
    for arr in arrays:
        meta, storage = arr.meta, arr.storage  # each walks the array's block index: once
        first = f"<td>{escape(arr.dataset)}</td>" if with_dataset else ""
        rows.append(
            f"<tr>{first}<td><b>{escape(arr.name)}</b></td><td>{escape(meta['dtype'])}</td>"
            f"<td>{_shape(meta['shape'])}</td><td>{_shape(meta['chunk_shape'])}</td>"
            f"<td>{escape(', '.join(meta['dims']))}</td><td>{escape(_codecs(storage, meta))}</td>"
            f"<td class='num'>{human_bytes(arr.nbytes)}</td><td class='num'>{_stored(storage)}</td></tr>"
        )
    more = total - len(arrays)
    if more > 0:
        cols = 9 if with_dataset else 8
        rows.append(f"<tr><td colspan='{cols}' class='muted'>... {more} more arrays</td></tr>")
    head = "<th>dataset</th>" if with_dataset else ""
    return (
        f"<table><tr>{head}<th>array</th><th>dtype</th><th>shape</th><th>chunks</th><th>dims</th>"
        f"<th>codecs</th><th>raw size</th><th>on disk</th></tr>{''.join(rows)}</table>"
    )


def _codecs(storage: dict[str, Any], meta: dict[str, Any]) -> str:
    """The blocks per codec, then the codec new blocks get: `zstd x3, lz4 x1 -> lz4`."""
    mix = storage["codecs"]
    written = ", ".join(f"{name} x{n}" for name, n in mix.items())
    new = meta["effective_codec"]
    return f"{written} -> {new}" if written else f"-> {new}"


def _stored(storage: dict[str, Any]) -> str:
    if not storage["blocks"]:
        return "0 B"
    ratio = storage["raw_bytes"] / max(storage["stored_bytes"], 1)
    return f"{human_bytes(storage['stored_bytes'])} ({ratio:.2f}x)"


def _attrs_table(attrs: dict[str, Any]) -> str:
    if not attrs:
        return ""
    items = list(attrs.items())
    rows = "".join(
        f"<tr><td>{escape(k)}</td><td>{escape(_short(repr(v)))}</td></tr>" for k, v in items[:MAX_ROWS]
    )
    return f"<details><summary>attributes ({len(items)})</summary><table>{rows}</table></details>"


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def store_html(store: Any) -> str:
    names = store.list_datasets()
    arrays: list[Any] = []
    total = 0
    for name in names:
        view = store.open_dataset(name)
        listed = view.list_arrays()
        total += len(listed)
        arrays.extend(view[array] for array in listed[: MAX_ROWS - len(arrays)])
    raw = sum(a.nbytes or 0 for a in arrays)
    header = (
        f"<b>atlas.Atlas</b> <code>{escape(store.path)}</code><br>"
        f"{counted(len(names), 'dataset')} &middot; codec {escape(store.codec)} &middot; metadata "
        f"<code>{escape(store.meta_file_name)}</code> &middot; {human_bytes(store_bytes(store.path))} on disk"
        + (f" &middot; {human_bytes(raw)} raw" if total == len(arrays) else "")
        + (" &middot; <i>unflushed changes</i>" if store.has_pending_changes else "")
    )
    return f"<div class='atlas-repr'>{_STYLE}{header}{_array_rows(arrays, total, True)}{_attrs_table(store.attributes())}</div>"


def dataset_html(view: Any) -> str:
    listed = view.list_arrays()
    arrays = [view[name] for name in listed[:MAX_ROWS]]
    header = f"<b>atlas.DatasetView</b> <code>{escape(view.name)}</code> &middot; {counted(len(view), 'array')}"
    return f"<div class='atlas-repr'>{_STYLE}{header}{_array_rows(arrays, len(listed), False)}{_attrs_table(view.attributes())}</div>"


def array_html(arr: Any) -> str:
    meta, storage, stats = arr.meta, arr.storage, arr.stats
    facts = [
        ("dtype", meta["dtype"]),
        ("shape", _shape(meta["shape"])),
        ("chunks", _shape(meta["chunk_shape"])),
        ("dims", ", ".join(meta["dims"])),
        ("fill value", repr(meta["fill_value"])),
        ("codec (new blocks)", meta["effective_codec"] + ("" if meta["codec"] else " (store default)")),
        ("raw size", human_bytes(arr.nbytes)),
        ("on disk", _stored(storage)),
        ("blocks", f"{storage['blocks']} written, {storage['fill_blocks']} fill-only, "
         f"{storage['pending_blocks']} unflushed, {storage['staged_chunks']} staged chunks; codecs {_codecs(storage, meta)}"),
        ("valid / null", f"{stats['count']} / {stats['null_count']}"),
        ("min / max", f"{stats['min']!r} / {stats['max']!r}"),
        ("mean", repr(stats["mean"])),
    ]
    rows = "".join(
        f"<tr><th>{escape(k)}</th><td>{v if k in ('shape', 'chunks') else escape(str(v))}</td></tr>" for k, v in facts
    )
    header = f"<b>atlas.Array</b> <code>{escape(arr.dataset)}/{escape(arr.name)}</code>"
    return f"<div class='atlas-repr'>{_STYLE}{header}<table>{rows}</table>{_attrs_table(arr.attrs.to_dict())}</div>"
