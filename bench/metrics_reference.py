"""Reference timing for bench/bench_metrics.sh: the metrics of method.md §5 in EFFICIENT
numpy (boolean [N, N, P] broadcast arrays for the pairwise IoUs of GED, a Python loop of
numpy Dice calls for the Dice matrix, scipy's linear_sum_assignment). The authors' own,
slower way (torch tensors, one-hot [n, m, P, 2] arrays) is bench/metrics_authors_reference.py.

Usage: metrics_reference.py UNITS N R SIZE   -> prints "seconds_per_unit=<s>"
"""
import sys
import time

import numpy as np
from scipy.optimize import linear_sum_assignment

EPS = 1e-8


def iou_matrix(a, b):
    """a: bool [n, P], b: bool [m, P] -> IoU [n, m] via [n, m, P] arrays (authors' style)."""
    inter = np.logical_and(a[:, None], b[None]).sum(-1)
    union = np.logical_or(a[:, None], b[None]).sum(-1)
    return inter / (union + EPS)


def dice(a, b):
    return (2 * np.logical_and(a, b).sum() + EPS) / (a.sum() + b.sum() + EPS)


def unit_metrics(labels, probs):
    preds = probs > 0.5
    ged = 2 * (1 - iou_matrix(labels, preds)).mean() - (1 - iou_matrix(labels, labels)).mean() \
        - (1 - iou_matrix(preds, preds)).mean()
    pm, lm = probs.mean(0), labels.mean(0)
    soft = np.mean([dice(lm > t, pm > t) for t in (0.1, 0.3, 0.5, 0.7, 0.9)])
    m = np.array([[dice(y, s) for s in preds] for y in labels])
    r, c = linear_sum_assignment(1 - m)
    return ged, soft, m.max(1).mean(), m.max(0).mean(), m[r, c].mean()


def main():
    units, n, r, size = (int(x) for x in sys.argv[1:5])
    rng = np.random.default_rng(1337)
    yy, xx = np.mgrid[0:size, 0:size]
    c = size / 2

    def disc(rad, soft):
        d = np.sqrt((xx - c - rng.random() * 6) ** 2 + (yy - c - rng.random() * 6) ** 2) - rad
        return (1 / (1 + np.exp(d))).astype(np.float32) if soft else d < 0

    data = [(np.stack([disc(8 + rng.random() * 10, False).ravel() for _ in range(r)]),
             np.stack([disc(6 + rng.random() * 14, True).ravel() for _ in range(n)])) for _ in range(units)]
    t = time.perf_counter()
    for labels, probs in data:
        unit_metrics(labels, probs)
    print(f"seconds_per_unit={(time.perf_counter() - t) / units:.4f}")


if __name__ == "__main__":
    main()
