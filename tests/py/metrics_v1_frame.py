"""Writes a metric frame of schema version 1 (before `slice_index` and `z_mm`) with pyarrow
alone, as dpersona 0.x wrote it: the fifteen version-1 columns, non-null, and the metadata
keys that identify the file and its conventions.

Usage: metrics_v1_frame.py OUT CONVENTIONS_JSON
  6 rows: run old-run, method m, stage 1, n_samples 4, bank 0, n_outputs 4, fold 0,
  units S0 (unit_index 0) and S1 (1), target 1, unit slice, metrics ged, dice_soft,
  dice_match, values 0.1 .. 0.6 in that order, seed 9, empty checkpoint.
"""
import sys

import pyarrow as pa
import pyarrow.parquet as pq

out, conventions = sys.argv[1], sys.argv[2]
n = 6
fields = [
    ("run", pa.string(), ["old-run"] * n),
    ("method", pa.string(), ["m"] * n),
    ("stage", pa.uint8(), [1] * n),
    ("n_samples", pa.uint32(), [4] * n),
    ("bank", pa.uint32(), [0] * n),
    ("n_outputs", pa.uint32(), [4] * n),
    ("fold", pa.uint32(), [0] * n),
    ("study_id", pa.string(), ["S0"] * 3 + ["S1"] * 3),
    ("target_id", pa.string(), ["1"] * n),
    ("unit", pa.string(), ["slice"] * n),
    ("unit_index", pa.uint32(), [0] * 3 + [1] * 3),
    ("metric", pa.string(), ["ged", "dice_soft", "dice_match"] * 2),
    ("value", pa.float64(), [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),
    ("seed", pa.uint64(), [9] * n),
    ("checkpoint_sha256", pa.string(), [""] * n),
]
schema = pa.schema(
    [pa.field(name, t, nullable=False) for name, t, _ in fields],
    metadata={
        "dpersona.schema": "metrics",
        "dpersona.schema_version": "1",
        "dpersona.writer": "dpersona 0.1.0",
        "dpersona.conventions": conventions,
    },
)
table = pa.table([pa.array(v, type=t) for _, t, v in fields], schema=schema)
pq.write_table(table, out)
print(f"wrote {out}: {table.num_rows} rows, version 1, columns {table.column_names}")
