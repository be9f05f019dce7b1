"""Independent references for eval/src/stats.rs, with numpy and scipy only.

Usage:
  stats_reference.py wilcoxon IN.json
      IN: {"vectors": [[d, ...], ...]}. Prints `WILCOXON [p, ...]`: the two-sided p of
      scipy.stats.wilcoxon(d, zero_method='wilcox', correction=False, method='asymptotic')
      (None where every d is 0).
  stats_reference.py bootstrap IN.json
      IN: {"strata": [[x, ...], ...], "indices": [[i, ...], ...]}: each indices row is the
      concatenation over strata of len(stratum) indices into that stratum (the resamples
      dpersona drew). Prints `BOOTSTRAP {"mean": m, "lo": q2.5, "hi": q97.5, "chi2_p": [...]}`:
      the mean over strata of stratum means, np.percentile (linear) of the resampled
      statistics, and per stratum the chi-square p that the drawn indices are uniform.
"""
import json
import sys

import numpy as np
from scipy import stats

mode, path = sys.argv[1], sys.argv[2]
data = json.load(open(path))
if mode == "wilcoxon":
    out = []
    for d in data["vectors"]:
        d = np.asarray(d, dtype=np.float64)
        if np.all(d == 0):
            out.append(None)
            continue
        r = stats.wilcoxon(d, zero_method="wilcox", correction=False, method="asymptotic")
        out.append(float(r.pvalue))
    print("WILCOXON " + json.dumps(out))
elif mode == "bootstrap":
    strata = [np.asarray(s, dtype=np.float64) for s in data["strata"]]
    idx = np.asarray(data["indices"], dtype=np.int64)
    sizes = [len(s) for s in strata]
    assert idx.shape[1] == sum(sizes), (idx.shape, sizes)
    stat = np.zeros(idx.shape[0])
    chi2_p = []
    start = 0
    for s in strata:
        part = idx[:, start:start + len(s)]
        assert part.min() >= 0 and part.max() < len(s)
        stat += s[part].mean(axis=1)
        counts = np.bincount(part.ravel(), minlength=len(s))
        chi2_p.append(float(stats.chisquare(counts).pvalue))
        start += len(s)
    stat /= len(strata)
    lo, hi = np.percentile(stat, [2.5, 97.5])
    mean = float(np.mean([s.mean() for s in strata]))
    print("BOOTSTRAP " + json.dumps({"mean": mean, "lo": float(lo), "hi": float(hi), "chi2_p": chi2_p}))
else:
    sys.exit(f"unknown mode {mode}")
