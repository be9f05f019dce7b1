"""Independent numpy (float64) reference for `stage2.mask_absent_raters`
(train/tests/losses_absent_raters.rs).

  absent_raters_reference.py FILE.safetensors

For each case <i> FILE holds the hand-built batch (masks [B,R,H,W] 0/1, present [B,R] 0/1),
fixed logits (upper_<i>, lower_<i> [B,1,H,W] for Stage I's bound loss; heads_<i> [B,R,H,W]
for Stage II) and what the Rust crate computed: the union/intersection it hands Stage I
with the flag off and on, the bound losses, and the Stage-II losses.

The rules, written from method.md §3 and the flag's definition, not from the Rust code:
- off (the authors): absent raters are empty masks; union = max over all R masks,
  intersection = min over all R masks; Stage II = GDL over all (row, head) pairs.
- on: union/intersection over the present raters only (all zero with none present);
  Stage II's head k sums only over the rows whose rater k is present, a head with no
  present row leaves the mean.
GDL (method.md §3.1): per channel c, w = 1/max((sum t)^2, 1e-6), dice = 2 w sum(pt) /
max(w sum(p+t), 1e-6), loss = 1 - mean over channels; one channel gets a background channel.
Exits non-zero on a mismatch > 1e-5 (losses) or any difference (consensus masks).
"""
import sys

import numpy as np
from safetensors.numpy import load_file

EPS = 1e-6


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def gdl(logits, target, weight=None):
    """logits, target [B,C,H,W]; weight [B,C] (1 = counts) or None (all count)."""
    b, c, h, w = logits.shape
    if weight is None:
        weight = np.ones((b, c))
    p = sigmoid(logits.astype(np.float64))
    t = target.astype(np.float64)
    m = np.broadcast_to(weight[:, :, None, None].astype(np.float64), p.shape)
    chans = []
    for k in range(c):
        chans.append((p[:, k].ravel(), t[:, k].ravel(), m[:, k].ravel()))
        if c == 1:
            chans.append((1 - p[:, k].ravel(), 1 - t[:, k].ravel(), m[:, k].ravel()))
    dices = []
    for pc, tc, mc in chans:
        if mc.sum() == 0:
            continue  # no present row for this head: not part of the mean
        wgt = 1.0 / max(float((tc * mc).sum()) ** 2, EPS)
        inter = wgt * float((pc * tc * mc).sum())
        den = max(wgt * float(((pc + tc) * mc).sum()), EPS)
        dices.append(2.0 * inter / den)
    if not dices:
        return 1.0
    return 1.0 - sum(dices) / len(dices)


def consensus(masks, present, masked):
    b, r, h, w = masks.shape
    union = np.zeros((b, 1, h, w))
    inter = np.zeros((b, 1, h, w))
    for i in range(b):
        raters = [k for k in range(r) if present[i, k] > 0] if masked else list(range(r))
        if not raters:
            continue
        stack = masks[i, raters].astype(np.float64)
        union[i, 0] = stack.max(axis=0)
        inter[i, 0] = stack.min(axis=0)
    return union, inter


def main(path):
    d = load_file(path)
    n = 0
    while f"masks_{n}" in d:
        masks, present = d[f"masks_{n}"], d[f"present_{n}"]
        upper, lower, heads = d[f"upper_{n}"], d[f"lower_{n}"], d[f"heads_{n}"]
        refs = {}
        for flag, masked in (("off", False), ("on", True)):
            u, i = consensus(masks, present, masked)
            for name, ref in (("union", u), ("inter", i)):
                ours = d[f"{name}_{flag}_{n}"].astype(np.float64)
                assert ours.shape == ref.shape, f"case {n} {name} {flag}: {ours.shape} vs {ref.shape}"
                assert np.array_equal(ours, ref), f"case {n}: {name} with the flag {flag} differs"
            bound = gdl(np.concatenate([upper, lower], 1), np.concatenate([u, i], 1))
            stage2 = gdl(heads, masks, present if masked else None)
            refs[flag] = (bound, stage2)
            for name, ref in (("bound", bound), ("stage2", stage2)):
                ours = float(d[f"{name}_{flag}_{n}"].reshape(-1)[0])
                print(f"case {n} flag {flag}: {name} reference {ref:.7f} rust {ours:.7f}")
                assert abs(ref - ours) <= 1e-5, f"case {n} {name} {flag}: {ref} vs {ours}"
        # The cases are built so that the flag matters: a test that could not fail is none.
        assert abs(refs["on"][1] - refs["off"][1]) > 1e-3, f"case {n}: Stage II does not depend on the flag"
        n += 1
    assert n >= 2, f"only {n} cases in {path}"


if __name__ == "__main__":
    main(sys.argv[1])
