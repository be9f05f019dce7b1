"""Reference timing for bench/bench_metrics.sh: the metrics of one evaluation unit computed
THE WAY THE AUTHORS' EVALUATION DOES (D-Persona code/evaluate.py + lib/metrics_set.py, as
described in docs method.md §5), re-implemented here step for step for timing:

* inputs are torch tensors as the evaluation loop holds them: labels [1, R, H, W] float,
  predictions = sigmoid output [1, N, H, W] float (CPU);
* GED: predictions binarised to float, both sets turned to int numpy arrays, one-hot
  encoded with np.eye(2) into bool [n, P, 2], and every pairwise IoU taken from broadcast
  [n, m, P, 2] boolean AND/OR arrays (background class computed, then dropped), three
  times (cross, labels-labels, predictions-predictions), with the NaN -> 1 rule;
* Dice matrix: a Python double loop over R x N pairs, each a torch Dice on float tensors;
  Dice_max both ways from it; Hungarian matching via scipy.optimize.linear_sum_assignment;
* Dice_soft: mean maps over samples / raters, then 5 thresholded torch Dice.

Usage: metrics_authors_reference.py UNITS N R SIZE -> prints "seconds_per_unit=<s>" (and
"mean_ged=<g>"). The inputs are smooth random discs from a fixed seed, made before the
clock starts (the same recipe as bench/metrics_reference.py).
"""
import sys
import time

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

SMOOTH = 1e-8
THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.9)


def torch_dice(label, mask):
    """The authors' Dice: flatten per batch row, float, (2*I + 1e-8) / (|A| + |B| + 1e-8)."""
    b = label.size(0)
    m1 = label.reshape(b, -1).float()
    m2 = mask.reshape(b, -1).float()
    inter = (m1 * m2).sum().float()
    return (2.0 * inter + SMOOTH) / (m1.sum() + m2.sum() + SMOOTH)


def pairwise_iou(x, y):
    """x: bool [n, P, C], y: bool [m, P, C] -> IoU [n, m, C] via [n, m, P, C] arrays."""
    a, b = x[:, None], y[None, :]
    iou = (a & b).sum(-2) / ((a | b).sum(-2) + SMOOTH)
    iou[np.isnan(iou)] = 1.0
    return iou


def one_hot_distance(x, y):
    """1 - foreground IoU for every pair (background class computed and thrown away)."""
    return 1 - pairwise_iou(x, y)[..., 1:].mean(-1)


def ged(labels, preds, thresh=0.5, num_classes=2):
    pred_masks = (preds > thresh).float()
    d0 = labels[0].reshape(labels.shape[1], -1).numpy().astype("int")
    d1 = pred_masks[0].reshape(pred_masks.shape[1], -1).numpy().astype("int")
    eye = np.eye(num_classes)
    d0 = eye[d0].astype("bool")
    d1 = eye[d1].astype("bool")
    cross = np.mean(one_hot_distance(d0, d1))
    within0 = np.mean(one_hot_distance(d0, d0))
    within1 = np.mean(one_hot_distance(d1, d1))
    return 2 * cross - within0 - within1


def dice_all(labels, preds, thresh=0.5):
    pred_masks = (preds > thresh).float()
    r, n = labels.shape[1], pred_masks.shape[1]
    m = np.zeros([r, n])
    for i in range(r):
        for j in range(n):
            m[i, j] = torch_dice(labels[:, i], pred_masks[:, j])
    dice_max = m.max(0).mean()
    dice_max_reverse = m.max(1).mean()
    cost = 1 - m
    rows, cols = linear_sum_assignment(cost)
    matched = [1 - cost[i, cols[i]] for i in range(len(rows))]
    return dice_max, dice_max_reverse, np.mean(matched), matched


def dice_soft(labels, preds):
    pred_mean = preds.mean(1)
    label_mean = labels.mean(1).float()
    return np.mean([torch_dice((label_mean > t).float(), (pred_mean > t).float()) for t in THRESHOLDS])


def unit_metrics(labels, preds):
    g = ged(labels, preds)
    dm, dmr, match, each = dice_all(labels, preds)
    soft = dice_soft(labels, preds)
    return g, dm, dmr, match, each, soft


def main():
    units, n, r, size = (int(x) for x in sys.argv[1:5])
    rng = np.random.default_rng(1337)
    yy, xx = np.mgrid[0:size, 0:size]
    c = size / 2

    def disc(rad, soft):
        d = np.sqrt((xx - c - rng.random() * 6) ** 2 + (yy - c - rng.random() * 6) ** 2) - rad
        return (1 / (1 + np.exp(d))).astype(np.float32) if soft else (d < 0).astype(np.float32)

    data = []
    for _ in range(units):
        labels = torch.from_numpy(np.stack([disc(8 + rng.random() * 10, False) for _ in range(r)])[None])
        preds = torch.from_numpy(np.stack([disc(6 + rng.random() * 14, True) for _ in range(n)])[None])
        data.append((labels, preds))
    t = time.perf_counter()
    geds = [unit_metrics(labels, preds)[0] for labels, preds in data]
    elapsed = time.perf_counter() - t
    print(f"seconds_per_unit={elapsed / units:.4f}")
    print(f"mean_ged={np.mean(geds):.4f}")


if __name__ == "__main__":
    main()
