"""Cross-checks dpersona's hand-written Adam (train/src/optim.rs) against torch.optim.Adam.

Usage: check_adam_against_torch.py CASE.json
CASE.json (written by train/tests/trainer_adam_vs_torch.rs): w0 [3,4], x [5,3], y [5,4],
lrs (one per step), betas, eps, w_final (dpersona's result after len(lrs) steps).
The loss is sum((x @ w - y)^2) + 0.01 * sum(w^3). Exits non-zero on mismatch.
"""
import json
import sys

import torch

case = json.load(open(sys.argv[1]))
w = torch.tensor(case["w0"], dtype=torch.float32).reshape(3, 4).requires_grad_(True)
x = torch.tensor(case["x"], dtype=torch.float32).reshape(5, 3)
y = torch.tensor(case["y"], dtype=torch.float32).reshape(5, 4)
opt = torch.optim.Adam([w], lr=case["lrs"][0], betas=tuple(case["betas"]), eps=case["eps"],
                       foreach=False, fused=False)
for lr in case["lrs"]:
    for g in opt.param_groups:
        g["lr"] = lr
    opt.zero_grad()
    loss = ((x @ w - y) ** 2).sum() + 0.01 * (w ** 3).sum()
    loss.backward()
    opt.step()
ours = torch.tensor(case["w_final"], dtype=torch.float32).reshape(3, 4)
diff = (ours - w.detach()).abs().max().item()
moved = (w.detach() - torch.tensor(case["w0"]).reshape(3, 4)).abs().max().item()
print(f"steps {len(case['lrs'])}: max |dpersona - torch| = {diff:.3e}; max parameter change {moved:.3e}")
if moved < 1e-3:
    sys.exit("the problem did not move the parameters: the comparison would be vacuous")
if diff > 1e-6:
    sys.exit(f"dpersona Adam differs from torch.optim.Adam by {diff}")
