"""Independent read of a shard's image column with pyarrow and polars (no dpersona code).

Usage: image_column_check.py SHARD VALUES_F32 LENGTHS_U32 DICTIONARY

VALUES_F32: every row's image values, concatenated, raw little-endian float32;
LENGTHS_U32: each row's value count, raw little-endian uint32. Both readers must return
exactly these values, bit for bit, row by row. DICTIONARY is `dict` (every row group's
image column chunk must be dictionary-encoded: a dictionary page and RLE_DICTIONARY data
pages, as pyarrow's metadata reports them) or `any`. Prints what it checked; exits non-zero
on the first mismatch.
"""
import sys

import numpy as np
import polars as pl
import pyarrow.parquet as pq


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main(shard, values_path, lengths_path, dictionary):
    want = np.fromfile(values_path, dtype="<f4").view(np.uint32)
    lengths = np.fromfile(lengths_path, dtype="<u4").astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    if starts[-1] != len(want):
        fail(f"{lengths_path} sums to {starts[-1]}, {values_path} holds {len(want)}")

    table = pq.read_table(shard, columns=["image"])
    pa_rows = table.column("image").to_pylist()
    pl_rows = pl.read_parquet(shard, columns=["image"])["image"].to_list()
    for name, rows in (("pyarrow", pa_rows), ("polars", pl_rows)):
        if len(rows) != len(lengths):
            fail(f"{name}: {len(rows)} rows, want {len(lengths)}")
        for i, r in enumerate(rows):
            got = np.asarray(r, dtype=np.float32).view(np.uint32)
            if not np.array_equal(got, want[starts[i]:starts[i + 1]]):
                fail(f"{name}: row {i} image differs ({len(got)} values, want {lengths[i]})")

    meta = pq.ParquetFile(shard).metadata
    leaves = [meta.schema.column(i).path for i in range(len(meta.schema))]
    if "image.list.item" not in leaves:
        fail(f"no image.list.item leaf among {leaves}")
    col = leaves.index("image.list.item")
    dict_groups = 0
    for g in range(meta.num_row_groups):
        c = meta.row_group(g).column(col)
        if c.has_dictionary_page and "RLE_DICTIONARY" in c.encodings:
            dict_groups += 1
        elif dictionary == "dict":
            fail(f"row group {g}: image chunk not dictionary-encoded ({c.encodings})")
        if c.is_stats_set:
            fail(f"row group {g}: image chunk has statistics (they are off for pixel columns)")
    print(f"ok: {shard}: {len(lengths)} rows read bit-identically by pyarrow and polars; "
          f"{dict_groups}/{meta.num_row_groups} image chunks dictionary-encoded")


if __name__ == "__main__":
    main(*sys.argv[1:5])
