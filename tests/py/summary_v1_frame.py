"""Writes a metrics summary of schema version 1 (before ci_lo, ci_hi, n_units, seeds and
seed_std) with pyarrow alone, as dpersona wrote it before intervals: the eleven version-1
columns and the metadata keys that identify the file.

Usage: summary_v1_frame.py OUT
  2 rows: run r, method mv, stage 1, n_samples 0, bank 0, n_outputs 1, metric ged;
  fold 0 (mean 0.25, std 0.05, count 10) and fold null (mean 0.25, std 0.0, count 1).
"""
import sys

import pyarrow as pa
import pyarrow.parquet as pq

fields = [
    ("run", pa.string(), ["r", "r"], False),
    ("method", pa.string(), ["mv", "mv"], False),
    ("stage", pa.uint8(), [1, 1], False),
    ("n_samples", pa.uint32(), [0, 0], False),
    ("bank", pa.uint32(), [0, 0], False),
    ("n_outputs", pa.uint32(), [1, 1], False),
    ("fold", pa.uint32(), [0, None], True),
    ("metric", pa.string(), ["ged", "ged"], False),
    ("mean", pa.float64(), [0.25, 0.25], False),
    ("std", pa.float64(), [0.05, 0.0], False),
    ("count", pa.uint32(), [10, 1], False),
]
schema = pa.schema(
    [pa.field(name, t, nullable=nullable) for name, t, _, nullable in fields],
    metadata={
        "dpersona.schema": "metrics_summary",
        "dpersona.schema_version": "1",
        "dpersona.writer": "dpersona 0.1.0",
    },
)
table = pa.Table.from_arrays([pa.array(v, type=t) for _, t, v, _ in fields], schema=schema)
pq.write_table(table, sys.argv[1])
print(f"wrote {sys.argv[1]}: {table.num_rows} version-1 summary rows")
