"""PyTorch reference for bench/bench_step.sh: one Stage-I training step of the paper's D-Persona
model (method.md §2-§3), written the way the authors' code computes it, on CPU.

The model is the ResNet-34 U-Net of tests/py/models_resnet34_reference.py (whose forward equals
ours exactly, checked by train/tests/models_weights.rs) plus the Prob. U-Net prior/posterior
encoders and Fcomb, and the Stage-I loss: GDL reconstruction of a posterior sample against one
rater, closed-form KL, the bound loss over K=10 prior samples (each decoded by its own Fcomb call
on the tiled code, as the authors do), unsquared L2 1e-5, beta 0.5; Adam 1e-4.

  python bench/step_reference.py [--batch 12] [--size 128] [--threads 2] [--warmup 1] [--steps 3]
                                 [--sgemm-n 4096] [--sgemm-reps 3] [--sgemm-only]

Prints key=value lines: step_s (mean wall time of the timed steps), the FLOP count of one step
(forward counted by torch.utils.flop_counter, and forward+backward counted the same way), and
the best 4096^3 torch.mm rate in GFLOP/s.
"""
import argparse
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, __file__.rsplit("/bench/", 1)[0] + "/tests/py")
from models_resnet34_reference import Backbone  # noqa: E402

LATENT = 6
RATERS = 4
FILTERS = [16, 32, 64, 128, 256]
CONVS_PER_BLOCK = 3
K_BOUND = 10
BETA = 0.5
L2 = 1e-5
GDL_EPS = 1e-6


class GaussEncoder(nn.Module):
    """AxisAlignedConvGaussian: conv blocks (avg-pool ceil mode between), mean, 1x1 -> mu, logsigma."""

    def __init__(self, cin):
        super().__init__()
        layers, c = [], cin
        for i, f in enumerate(FILTERS):
            if i > 0:
                layers.append(nn.AvgPool2d(2, 2, ceil_mode=True))
            for _ in range(CONVS_PER_BLOCK):
                layers += [nn.Conv2d(c, f, 3, 1, 1), nn.ReLU(inplace=True)]
                c = f
        self.layers = nn.Sequential(*layers)
        self.conv_layer = nn.Conv2d(c, 2 * LATENT, 1)

    def forward(self, x):
        h = self.layers(x).mean(dim=(2, 3), keepdim=True)
        out = self.conv_layer(h).squeeze(-1).squeeze(-1)
        return out[:, :LATENT], out[:, LATENT:]


class Fcomb(nn.Module):
    """1x1 convs over cat(features, tile(z)); one call per latent code, as the authors do."""

    def __init__(self, feat=16, hidden=16, n_convs=4):
        super().__init__()
        layers = [nn.Conv2d(feat + LATENT, hidden, 1), nn.ReLU(inplace=True)]
        for _ in range(n_convs - 2):
            layers += [nn.Conv2d(hidden, hidden, 1), nn.ReLU(inplace=True)]
        self.layers = nn.Sequential(*layers)
        self.last_layer = nn.Conv2d(hidden, 1, 1)

    def forward(self, feats, z):
        b, _, h, w = feats.shape
        tiled = z.view(b, LATENT, 1, 1).expand(b, LATENT, h, w)
        return self.last_layer(self.layers(torch.cat([feats, tiled], 1)))


class DPersonaStage1(nn.Module):
    def __init__(self, cin=1):
        super().__init__()
        self.backbone = Backbone(cin)
        self.prior = GaussEncoder(cin)
        self.posterior = GaussEncoder(cin + RATERS)
        self.fcomb = Fcomb()


def gdl(logits, target):
    """GeneralizedDiceLoss(sigmoid), method.md §3.1."""
    c = logits.shape[1]
    p = torch.sigmoid(logits).transpose(0, 1).reshape(c, -1)
    t = target.transpose(0, 1).reshape(c, -1)
    if c == 1:
        p, t = torch.cat([p, 1 - p], 0), torch.cat([t, 1 - t], 0)
    t_sum = t.sum(-1)
    w = (1.0 / (t_sum * t_sum).clamp(min=GDL_EPS)).detach()
    inter = (p * t).sum(-1) * w
    denom = ((p + t).sum(-1) * w).clamp(min=GDL_EPS)
    return 1 - (2 * inter / denom).mean()


def l2_norms(modules):
    return sum(p.norm(2) for m in modules for p in m.parameters())


def stage1_loss(model, x, y, union, inter, rater):
    feats = model.backbone(x)
    mu_p, ls_p = model.prior(x)
    mu_q, ls_q = model.posterior(torch.cat([x, y], 1))
    kl = (ls_p - ls_q + (torch.exp(2 * ls_q) + (mu_q - mu_p) ** 2) / (2 * torch.exp(2 * ls_p)) - 0.5).sum(-1).mean()
    z_q = mu_q + torch.exp(ls_q) * torch.randn_like(mu_q)
    rec = gdl(model.fcomb(feats, z_q), y[:, rater : rater + 1])
    samples = [model.fcomb(feats, mu_p + torch.exp(ls_p) * torch.randn_like(mu_p)) for _ in range(K_BOUND)]
    s = torch.cat(samples, 1)
    bound = gdl(torch.cat([s.max(1, keepdim=True)[0], s.min(1, keepdim=True)[0]], 1), torch.stack([union, inter], 1))
    reg = L2 * (l2_norms([model.prior, model.posterior]) + l2_norms([model.fcomb.layers]))
    return rec + kl + BETA * bound + reg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--sgemm-n", type=int, default=4096)
    ap.add_argument("--sgemm-reps", type=int, default=3)
    ap.add_argument("--sgemm-only", action="store_true", help="print the sgemm rate alone")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument(
        "--autocast",
        default="none",
        choices=["none", "bf16", "fp16"],
        help="torch.autocast around forward and loss, as a PyTorch user would (fp16 with GradScaler)",
    )
    ap.add_argument(
        "--channels-last",
        action="store_true",
        help="model.to(memory_format=torch.channels_last) and the input too, as PyTorch's AMP guide advises",
    )
    ap.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True")
    a = ap.parse_args()
    torch.backends.cudnn.benchmark = a.cudnn_benchmark
    dev = torch.device(a.device)
    amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[a.autocast]
    scaler = torch.amp.GradScaler(a.device) if a.autocast == "fp16" else None

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1337)
    if a.sgemm_only:
        print(f"sgemm_gflop_per_s={sgemm_rate(a.sgemm_n, a.sgemm_reps):.1f}")
        return

    b, s = a.batch, a.size
    x = torch.rand(b, 1, s, s, device=dev)
    # Nested rater masks (discs of growing radius) so union/intersection are non-trivial.
    yy, xx = torch.meshgrid(torch.arange(s, device=dev), torch.arange(s, device=dev), indexing="ij")
    r2 = ((yy - s / 2) ** 2 + (xx - s / 2) ** 2).float()
    radii = torch.tensor([10.0, 14.0, 18.0, 22.0], device=dev)
    y = (r2[None, None] <= (radii[None, :, None, None] ** 2)).float().expand(b, RATERS, s, s).contiguous()
    union, inter = y.amax(1), y.amin(1)

    model = DPersonaStage1(1).to(dev).train()
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    phases = [0.0, 0.0, 0.0]  # forward, backward, Adam

    def step(i):
        t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = stage1_loss(model, x, y, union, inter, i % RATERS)
        sync()
        t1 = time.perf_counter()
        opt.zero_grad()
        (scaler.scale(loss) if scaler else loss).backward()
        sync()
        t2 = time.perf_counter()
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        value = loss.item()
        t3 = time.perf_counter()
        for k, d in enumerate((t1 - t0, t2 - t1, t3 - t2)):
            phases[k] += d
        return value

    # FLOPs: forward alone, then forward + backward, counted by torch's own flop counter
    # (convolutions and matmuls; element-wise work is not counted).
    with FlopCounterMode(display=False) as fc:
        loss = stage1_loss(model, x, y, union, inter, 0)
    fwd = fc.get_total_flops()
    with FlopCounterMode(display=False) as fc:
        loss = stage1_loss(model, x, y, union, inter, 0)
        loss.backward()
    fwd_bwd = fc.get_total_flops()
    opt.zero_grad()

    for i in range(a.warmup):
        step(i)
    phases[:] = [0.0, 0.0, 0.0]
    cpu0, faults0 = time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
    times = []
    for i in range(a.steps):
        t0 = time.perf_counter()
        loss = step(a.warmup + i)
        times.append(time.perf_counter() - t0)
        assert loss == loss and abs(loss) < 1e6, f"non-finite loss {loss}"
    cpu = time.process_time() - cpu0
    ru = resource.getrusage(resource.RUSAGE_SELF)

    gemm = sgemm_rate(a.sgemm_n, a.sgemm_reps)

    print(f"torch={torch.__version__} threads={torch.get_num_threads()} batch={b} size={s} device={dev} autocast={a.autocast} channels_last={a.channels_last} cudnn_benchmark={a.cudnn_benchmark}")
    print(f"step_s={sum(times) / len(times):.4f}")
    print(f"step_s_min={min(times):.4f}")
    print(f"forward_s={phases[0] / a.steps:.4f} backward_s={phases[1] / a.steps:.4f} adam_s={phases[2] / a.steps:.4f}")
    print(f"cpu_s_per_step={cpu / a.steps:.3f}")
    print(f"sys_s_per_step={(ru.ru_stime - faults0.ru_stime) / a.steps:.3f}")
    print(f"minor_faults_per_step={(ru.ru_minflt - faults0.ru_minflt) / a.steps:.0f}")
    print(f"fwd_gflop={fwd / 1e9:.2f}")
    print(f"fwd_x3_gflop={3 * fwd / 1e9:.2f}")
    print(f"fwd_bwd_gflop={fwd_bwd / 1e9:.2f}")
    print(f"sgemm_gflop_per_s={gemm:.1f}")


def sgemm_rate(n, reps):
    """Best n^3 f32 torch.mm rate over reps runs after a warm-up, GFLOP/s."""
    ma, mb = torch.rand(n, n), torch.rand(n, n)
    torch.mm(ma, mb)
    best = min(_timed(lambda: torch.mm(ma, mb)) for _ in range(reps))
    return 2 * n**3 / best / 1e9


def _timed(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
