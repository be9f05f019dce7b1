"""Independent re-implementation of the Dice loss of method.md §3.1 (the released
GeneralizedDiceLoss with sigmoid), checked against values computed by the Rust crate.

  models_gdl_reference.py FILE.safetensors
FILE holds pairs logits_<i>, target_<i> and the Rust loss rust_<i> (a 1-element tensor).
Exits non-zero on any mismatch > 1e-5.
"""
import sys

import torch
from safetensors.torch import load_file


def gdl(logits, target, eps=1e-6):
    p = torch.sigmoid(logits.double())
    t = target.double()
    c = p.shape[1]
    p = p.transpose(0, 1).reshape(c, -1)
    t = t.transpose(0, 1).reshape(c, -1)
    if c == 1:
        p = torch.cat([p, 1 - p], 0)
        t = torch.cat([t, 1 - t], 0)
    dices = []
    for pc, tc in zip(p, t):
        w = 1.0 / max(float(tc.sum()) ** 2, eps)
        inter = w * float((pc * tc).sum())
        den = max(w * float((pc + tc).sum()), eps)
        dices.append(2.0 * inter / den)
    return 1.0 - sum(dices) / len(dices)


def main(path):
    data = load_file(path)
    n = 0
    while f"logits_{n}" in data:
        ref = gdl(data[f"logits_{n}"], data[f"target_{n}"])
        ours = float(data[f"rust_{n}"].reshape(-1)[0])
        print(f"case {n}: shape {tuple(data[f'logits_{n}'].shape)} reference {ref:.7f} rust {ours:.7f}")
        assert abs(ref - ours) <= 1e-5, f"case {n}: {ref} vs {ours}"
        n += 1
    assert n >= 3, f"only {n} cases in {path}"


if __name__ == "__main__":
    main(sys.argv[1])
