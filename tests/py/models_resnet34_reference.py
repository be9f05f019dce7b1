"""Independent PyTorch ResNet-34 U-Net (torchvision + smp v0.3.3 layout, plain torch modules:
torchvision/smp are not installed) for the Rust model tests.

  write-weights OUT            random torchvision-style resnet34 state dict (fc and
                               num_batches_tracked included) -> OUT.safetensors
  check-forward VARS IN OUT C  load our exported VarStore (backbone.* names) into this model,
                               run eval-mode forward on IN["x"], compare with OUT["y"]
                               (max abs diff <= 1e-4 relative to the output scale)
"""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        idt = x if self.downsample is None else self.downsample(x)
        return F.relu(out + idt)


class ResNet34(nn.Module):
    def __init__(self, cin=3, with_fc=True):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        widths, blocks = [64, 128, 256, 512], [3, 4, 6, 3]
        c = 64
        for i, (w, n) in enumerate(zip(widths, blocks)):
            layer = []
            for j in range(n):
                layer.append(BasicBlock(c, w, (1 if i == 0 else 2) if j == 0 else 1))
                c = w
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        if with_fc:
            self.fc = nn.Linear(512, 1000)

    def features(self, x):
        f1 = F.relu(self.bn1(self.conv1(x)))
        h = F.max_pool2d(f1, 3, 2, 1)
        feats = [f1]
        for i in range(1, 5):
            h = getattr(self, f"layer{i}")(h)
            feats.append(h)
        return feats


class Conv2dReLU(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class DecoderBlock(nn.Module):
    def __init__(self, cin, skip, cout):
        super().__init__()
        self.conv1 = Conv2dReLU(cin + skip, cout)
        self.conv2 = Conv2dReLU(cout, cout)

    def forward(self, x, skip):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], 1)
        return self.conv2(self.conv1(x))


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        ins, skips, outs = [512, 256, 128, 64, 32], [256, 128, 64, 64, 0], [256, 128, 64, 32, 16]
        self.blocks = nn.ModuleList(DecoderBlock(i, s, o) for i, s, o in zip(ins, skips, outs))

    def forward(self, feats):
        feats = feats[::-1]
        x, skips = feats[0], feats[1:]
        for i, b in enumerate(self.blocks):
            x = b(x, skips[i] if i < len(skips) else None)
        return x


class Backbone(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.encoder = ResNet34(cin, with_fc=False)
        self.decoder = Decoder()

    def forward(self, x):
        return self.decoder(self.encoder.features(x))


def write_weights(out):
    torch.manual_seed(7)
    m = ResNet34(3)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.1)
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 2.0)
                mod.num_batches_tracked.fill_(1000)
    sd = {k: v.contiguous() for k, v in m.state_dict().items()}
    assert "fc.weight" in sd and "layer2.0.downsample.0.weight" in sd and "bn1.num_batches_tracked" in sd
    n = sum(p.numel() for p in m.parameters())
    assert n == 21_797_672, n  # torchvision resnet34 with fc
    save_file(sd, out)
    print(f"wrote {len(sd)} tensors, {n} parameters")


def check_forward(vars_path, in_path, out_path, cin):
    model = Backbone(cin).eval()
    ours = load_file(vars_path)
    sd = {k[len("backbone."):]: v for k, v in ours.items() if k.startswith("backbone.")}
    expected = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    missing = expected - set(sd)
    extra = set(sd) - expected
    assert not missing and not extra, f"missing {sorted(missing)[:5]} extra {sorted(extra)[:5]}"
    model.load_state_dict(sd, strict=False)
    x = load_file(in_path)["x"]
    y_rust = load_file(out_path)["y"]
    with torch.no_grad():
        y = model(x)
    assert y.shape == y_rust.shape, (y.shape, y_rust.shape)
    diff = (y - y_rust).abs().max().item()
    scale = y.abs().max().item()
    print(f"shape {tuple(y.shape)} max|y| {scale:.4g} max|diff| {diff:.3g}")
    assert scale > 0.0, "degenerate output"
    assert diff <= 1e-4 * max(1.0, scale), f"forward mismatch {diff}"


if __name__ == "__main__":
    if sys.argv[1] == "write-weights":
        write_weights(sys.argv[2])
    elif sys.argv[1] == "check-forward":
        check_forward(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        sys.exit(f"unknown mode {sys.argv[1]}")
