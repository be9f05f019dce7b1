"""Independent numpy/scipy reference for dpersona's multi-rater metrics (method.md §5).

Written straight from the definitions with plain boolean numpy arrays and
scipy.optimize.linear_sum_assignment; it does not import or call dpersona code.

Usage:
  metrics_reference.py gen DIR     write random cases to DIR/cases.json + DIR/cases.bin
  metrics_reference.py check DIR   recompute every case and compare with DIR/rust.json;
                                   exits non-zero on any mismatch.

cases.bin holds, per case, the rater masks as uint8 [R, P] then the probabilities as
little-endian float32 [N, P]; cases.json gives the offsets, shapes and options.
"""
import json
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

TOL = 1e-9
EPS = 1e-8
SOFT_T = (0.1, 0.3, 0.5, 0.7, 0.9)


# ---------------------------------------------------------------- definitions (method.md §5)
def dice(a, b):
    """§5.2: (2|A∩B| + 1e-8) / (|A| + |B| + 1e-8) on flattened binary maps."""
    inter = np.logical_and(a, b).sum()
    return (2 * inter + EPS) / (a.sum() + b.sum() + EPS)


def ged_dist(a, b, empty_pair):
    """§5.3: 1 − |A∩B| / (|A∪B| + 1e-8); an empty-vs-empty pair gets `empty_pair`."""
    inter = np.logical_and(a, b).sum()
    union = np.logical_or(a, b).sum()
    if union == 0:
        return float(empty_pair)
    return 1.0 - inter / (union + EPS)


def reference(masks, present, probs, empty_pair):
    """masks: uint8 [R, P]; present: bool [R]; probs: float32 [N, P]."""
    ys = [masks[k].astype(bool) for k in range(len(present)) if present[k]]
    slots = [k for k in range(len(present)) if present[k]]
    ss = [p > 0.5 for p in probs]
    r, n = len(ys), len(ss)
    cross = np.array([[ged_dist(y, s, empty_pair) for s in ss] for y in ys])
    yy = np.array([[ged_dist(a, b, empty_pair) for b in ys] for a in ys])
    pp = np.array([[ged_dist(a, b, empty_pair) for b in ss] for a in ss])
    ged = 2 * cross.mean() - yy.mean() - pp.mean()

    pred_mean = probs.astype(np.float64).mean(axis=0)
    label_mean = np.stack(ys).astype(np.float64).mean(axis=0)
    dice_soft = float(np.mean([dice(label_mean > t, pred_mean > t) for t in SOFT_T]))

    m = np.array([[dice(y, s) for s in ss] for y in ys])  # [r, n]
    dice_max = m.max(axis=1).mean()  # each rater's best sample (paper Fig. 3)
    dice_max_per_sample = m.max(axis=0).mean()  # each sample's best rater
    rows, cols = linear_sum_assignment(1 - m)
    dice_match = m[rows, cols].mean()
    matched = {slots[i]: m[i, j] for i, j in zip(rows, cols)}
    unique = assignment_is_unique(1 - m, rows, cols)
    out = dict(
        ged=ged,
        dice_soft=dice_soft,
        dice_max=dice_max,
        dice_max_per_sample=dice_max_per_sample,
        dice_match=dice_match,
        matched=matched,
        unique=unique,
    )
    if n == len(present):
        out["identity"] = {k: dice(masks[k].astype(bool), ss[k]) for k in slots}
    return out


def assignment_is_unique(cost, rows, cols):
    """True when every other assignment costs strictly more (forbidding any chosen pair
    raises the optimum), so per-rater matched values cannot depend on tie-breaking."""
    best = cost[rows, cols].sum()
    for i, j in zip(rows, cols):
        c = cost.copy()
        c[i, j] = 1e6
        r2, c2 = linear_sum_assignment(c)
        if c[r2, c2].sum() <= best + 1e-12:
            return False
    return True


# ---------------------------------------------------------------- case generation
def gen(out_dir):
    rng = np.random.default_rng(20240318)
    cases = []
    blob = bytearray()

    def blobby(shape, density):
        """Smooth random blobs: threshold a box-blurred noise field."""
        noise = rng.random(shape)
        k = 3
        pad = np.pad(noise, [(0, 0)] * (len(shape) - 2) + [(k, k), (k, k)], mode="wrap")
        acc = np.zeros(shape)
        for dy in range(-k, k + 1):
            for dx in range(-k, k + 1):
                acc += pad[..., k + dy : k + dy + shape[-2], k + dx : k + dx + shape[-1]]
        acc /= (2 * k + 1) ** 2
        return acc > np.quantile(acc, 1 - density) if density > 0 else np.zeros(shape, bool)

    def add(name, masks, present, probs, empty_pair=1.0):
        nonlocal blob
        masks = np.ascontiguousarray(masks, dtype=np.uint8)
        probs = np.ascontiguousarray(probs, dtype="<f4")
        r, p = masks.shape[0], masks[0].size
        n = probs.shape[0]
        cases.append(dict(name=name, r=r, n=n, p=p, present=[bool(x) for x in present],
                          ged_empty_pair=empty_pair, offset=len(blob)))
        blob += masks.reshape(r, p).tobytes() + probs.reshape(n, p).tobytes()

    def random_case(name, shape, r, n, present=None, empty_raters=(), empty_pair=1.0, quantise=False):
        masks = np.stack([blobby(shape, rng.uniform(0.05, 0.4)) for _ in range(r)])
        for k in empty_raters:
            masks[k] = 0
        base = masks.mean(axis=0)
        probs = np.clip(base[None] * rng.uniform(0.6, 1.2, size=(n,) + (1,) * len(shape))
                        + rng.normal(0, 0.25, size=(n,) + shape), 0, 1)
        if quantise:  # 8-bit probabilities (as in PNG predictions): many exact ties
            probs = np.round(probs * 255) / 255
        if present is None:
            present = [True] * r
        for k in range(r):
            if not present[k]:
                masks[k] = 0
        add(name, masks, present, probs.astype(np.float32), empty_pair)

    for t in range(12):
        random_case(f"random2d_{t}", (16, 16), 4, [10, 4, 7][t % 3], empty_pair=[1.0, 0.0][t % 2])
    random_case("n1", (16, 16), 4, 1)
    random_case("n1_empty_pair0", (16, 16), 4, 1, empty_pair=0.0)
    random_case("n2_tall", (16, 16), 4, 2)
    random_case("n3_tall_missing", (16, 16), 4, 3, present=[True, False, True, True])
    random_case("n50", (32, 32), 4, 50)
    random_case("n50_quantised", (32, 32), 4, 50, quantise=True)
    random_case("empty_raters", (16, 16), 4, 10, empty_raters=(0, 2))
    random_case("empty_raters_pair0", (16, 16), 4, 4, empty_raters=(1,), empty_pair=0.0)
    random_case("missing_raters", (16, 16), 4, 4, present=[False, True, True, False])
    random_case("one_rater", (16, 16), 4, 6, present=[False, False, True, False])
    random_case("volume3d_n50", (5, 24, 24), 4, 50)
    random_case("volume3d_n4_missing", (6, 20, 20), 4, 4, present=[True, True, False, True], empty_raters=(3,))
    for empty_pair in (1.0, 0.0):
        masks = np.zeros((4, 16, 16), np.uint8)
        probs = rng.uniform(0, 0.5, size=(10, 16, 16)).astype(np.float32)
        probs[:, 0, 0] = 0.5  # exactly at the threshold: background (strict >)
        add(f"all_empty_pair{int(empty_pair)}", masks, [True] * 4, probs, empty_pair)
    # Ties: identical predictions and identical raters.
    m = blobby((16, 16), 0.2)
    masks = np.stack([m, m, m, np.zeros_like(m)])
    probs = np.stack([np.where(m, 0.9, 0.1)] * 5 + [np.zeros((16, 16))] * 3).astype(np.float32)
    add("ties_duplicates", masks, [True] * 4, probs)
    # Thresholds hit exactly: probabilities on the soft thresholds.
    masks = np.stack([blobby((16, 16), 0.3) for _ in range(4)])
    probs = rng.choice(np.array([0.1, 0.3, 0.5, 0.7, 0.9], np.float32), size=(4, 16, 16))
    add("probs_on_thresholds", masks, [True] * 4, probs)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cases.bin").write_bytes(bytes(blob))
    (out / "cases.json").write_text(json.dumps(cases, indent=1))
    print(f"wrote {len(cases)} cases to {out}")


def load(out_dir):
    out = Path(out_dir)
    cases = json.loads((out / "cases.json").read_text())
    blob = (out / "cases.bin").read_bytes()
    for c in cases:
        r, n, p, off = c["r"], c["n"], c["p"], c["offset"]
        masks = np.frombuffer(blob, np.uint8, r * p, off).reshape(r, p)
        probs = np.frombuffer(blob, "<f4", n * p, off + r * p).reshape(n, p)
        yield c, masks, probs


# ---------------------------------------------------------------- comparison
def check(out_dir):
    rust = {c["name"]: c for c in json.loads((Path(out_dir) / "rust.json").read_text())}
    failures, compared_per_rater, tied, tied_agree = [], 0, 0, 0
    for c, masks, probs in load(out_dir):
        ref = reference(masks, c["present"], probs, c["ged_empty_pair"])
        got = rust[c["name"]]
        for key in ("ged", "dice_soft", "dice_max", "dice_max_per_sample", "dice_match"):
            if abs(got[key] - ref[key]) > TOL:
                failures.append(f"{c['name']}: {key} rust {got[key]!r} numpy {ref[key]!r}")
        # Matched per-rater values: which slots got a prediction must agree always; the
        # values only where the optimal assignment is unique (method.md §5.5).
        got_matched = {int(k) - 1: v for k, v in got["dice_rater_matched"].items()}
        if sorted(got_matched) != sorted(ref["matched"]) and len(ref["matched"]) == sum(c["present"]):
            failures.append(f"{c['name']}: matched slots {sorted(got_matched)} vs {sorted(ref['matched'])}")
        same = len(got_matched) == len(ref["matched"]) and all(
            k in got_matched and abs(got_matched[k] - v) <= TOL for k, v in ref["matched"].items())
        if ref["unique"]:
            compared_per_rater += 1
            if not same:
                failures.append(f"{c['name']}: per-rater matched {got_matched} vs {ref['matched']}")
        else:
            tied += 1
            tied_agree += same
        if abs(np.mean(list(got_matched.values())) - ref["dice_match"]) > TOL:
            failures.append(f"{c['name']}: mean of per-rater matched != dice_match")
        if "identity" in ref:
            got_id = {int(k) - 1: v for k, v in (got.get("dice_rater_identity") or {}).items()}
            if sorted(got_id) != sorted(ref["identity"]) or any(
                    abs(got_id[k] - v) > TOL for k, v in ref["identity"].items()):
                failures.append(f"{c['name']}: identity {got_id} vs {ref['identity']}")
        elif got.get("dice_rater_identity"):
            failures.append(f"{c['name']}: identity Dice reported although N != R")
    n = len(rust)
    print(f"{n} cases compared to 1e-9; per-rater matched compared on {compared_per_rater} "
          f"tie-free cases; {tied} cases with tied optima ({tied_agree} agree per rater anyway)")
    if failures:
        print("\n".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    {"gen": gen, "check": check}[sys.argv[1]](sys.argv[2])
