"""Checks dpersona's nearest-neighbour resample index map against scipy.ndimage.zoom(order=0).

Usage: nifti_zoom_vs_scipy.py CASES.json, a list of {"n_in", "n_out", "index"} where index[o]
is the input sample output o reads. Exits non-zero on any mismatch.
"""
import json
import sys

import numpy as np
from scipy.ndimage import zoom

bad = 0
cases = json.load(open(sys.argv[1]))
for c in cases:
    ref = zoom(np.arange(c["n_in"], dtype=float), c["n_out"] / c["n_in"], order=0).astype(int)
    if len(ref) != c["n_out"] or ref.tolist() != c["index"]:
        print(f"FAIL {c['n_in']} -> {c['n_out']}: ours {c['index'][:8]}..., scipy {ref.tolist()[:8]}...")
        bad += 1
print(f"{len(cases) - bad}/{len(cases)} zooms match scipy")
sys.exit(1 if bad or not cases else 0)
