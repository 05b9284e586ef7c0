"""PyTorch reference for `contrast bench`: the same network and SimCLR (or labels-only) step as the engine.

Mirrors app/engine (resnet.ts, model.ts, data_util.ts, objective.ts, lars_optimizer.ts):
ResNet-18/34 with a width multiplier on 64 base channels, the CIFAR stem (3x3 stride-1 conv,
no max-pool) for images up to 64 px, a 3-layer SimCLRv2 projection head (Dense-BN-ReLU x2,
Dense-BN), batched augmentation of two views (resized crop, flip, colour jitter, grayscale),
NT-Xent and LARS. The finetune mode is the labels-only classifier step (train_step.ts classifierStep):
encoder, first head layer, logits; crop (area 50-100 %) + flip, mixup with a Beta(1, 1) share per image,
cross-entropy, LARS without weight decay. Prints one JSON object with per-step seconds, for the caller to summarise.

usage: simclr_step.py --mode train|finetune|infer --depth 18 --width 1 --size 32 --batch 64
                      --warmup 2 --steps 5 --threads 2
"""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SMALL_IMAGE_MAX = 64
BLOCKS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}


def channels(base, width):
    return max(1, round(base * width))


def bn(c):
    # Keras momentum 0.9 is PyTorch momentum 0.1; epsilon as in resnet.ts.
    return nn.BatchNorm2d(c, momentum=0.1, eps=1e-5)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = bn(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = bn(cout)
        nn.init.zeros_(self.bn2.weight)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), bn(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


class Encoder(nn.Module):
    def __init__(self, depth, width, size):
        super().__init__()
        stem = channels(64, width)
        if size <= SMALL_IMAGE_MAX:
            self.stem = nn.Sequential(nn.Conv2d(3, stem, 3, 1, 1, bias=False), bn(stem), nn.ReLU())
        else:
            self.stem = nn.Sequential(nn.Conv2d(3, stem, 7, 2, 3, bias=False), bn(stem), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], stem
        for group, count in enumerate(BLOCKS[depth]):
            cout = channels(64 * 2 ** group, width)
            for b in range(count):
                blocks.append(BasicBlock(cin, cout, 2 if group > 0 and b == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.out_width = cin

    def forward(self, x):
        return self.blocks(self.stem(x)).mean((2, 3))


class PretrainModel(nn.Module):
    def __init__(self, depth, width, size, projection_dim=128):
        super().__init__()
        self.encoder = Encoder(depth, width, size)
        hidden = self.encoder.out_width
        self.head = nn.Sequential(
            nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden, momentum=0.1, eps=1e-5), nn.ReLU(),
            nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden, momentum=0.1, eps=1e-5), nn.ReLU(),
            nn.Linear(hidden, projection_dim, bias=False), nn.BatchNorm1d(projection_dim, momentum=0.1, eps=1e-5),
        )

    def forward(self, x):
        features = self.encoder(x)
        return self.head(features), features


class Classifier(nn.Module):
    def __init__(self, depth, width, size, classes):
        super().__init__()
        self.encoder = Encoder(depth, width, size)
        hidden = self.encoder.out_width
        self.head = nn.Sequential(nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden, momentum=0.1, eps=1e-5), nn.ReLU())
        self.logits = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.logits(self.head(self.encoder(x)))


def mixup(views, targets, generator):
    """Each view blended with a shuffled partner by its own Beta(1, 1) share; targets likewise."""
    n = views.shape[0]
    share = torch.rand(n, generator=generator)
    partners = torch.randperm(n, generator=generator)
    return (per_image(share) * views + per_image(1 - share) * views[partners],
            share.view(-1, 1) * targets + (1 - share).view(-1, 1) * targets[partners])


def resized_crops(images, size, generator, min_area=0.08):
    """Inception-style crop (area min_area-100 %, aspect 3/4-4/3) + flip, as one batched grid_sample."""
    n = images.shape[0]
    area = torch.empty(n).uniform_(min_area, 1, generator=generator)
    log_ratio = torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3), generator=generator)
    ratio = log_ratio.exp()
    w = (area * ratio).sqrt().clamp(max=1)
    h = (area / ratio).sqrt().clamp(max=1)
    cx = (torch.rand(n, generator=generator) * (1 - w) + w / 2) * 2 - 1
    cy = (torch.rand(n, generator=generator) * (1 - h) + h / 2) * 2 - 1
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=True)
    return F.grid_sample(images, grid, mode='bilinear', align_corners=True)


def per_image(values):
    return values.view(-1, 1, 1, 1)


def adjust_hsv(x, saturation_factor, hue_shift):
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    value = torch.maximum(torch.maximum(r, g), b)
    chroma = value - torch.minimum(torch.minimum(r, g), b)
    saturation = chroma / value.clamp(min=1e-12)
    safe = chroma.clamp(min=1e-12)
    sixths = torch.where(value == r, (g - b) / safe, torch.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = sixths / 6 + per_image(hue_shift)
    hue = hue - torch.floor(hue)
    new_saturation = (saturation * per_image(saturation_factor)).clamp(0, 1)

    def channel(n):
        k = torch.remainder(hue * 6 + n, 6)
        return value - value * new_saturation * torch.minimum(k, 4 - k).clamp(0, 1)

    return torch.cat([channel(5), channel(3), channel(1)], 1)


def augment(images, size, strength, generator):
    """One SimCLR view per image: crop + flip, colour jitter (p 0.8), grayscale (p 0.2), clip."""
    n = images.shape[0]
    x = resized_crops(images, size, generator)
    on = (torch.rand(n, generator=generator) < 0.8).float()
    s = 0.8 * strength

    def factor(spread):
        return 1 + on * torch.empty(n).uniform_(-spread, spread, generator=generator)

    x = (x * per_image(factor(s))).clamp(0, 1)
    mean = x.mean((2, 3), keepdim=True)
    x = ((x - mean) * per_image(factor(s)) + mean).clamp(0, 1)
    x = adjust_hsv(x, factor(s), torch.zeros(n)).clamp(0, 1)
    x = adjust_hsv(x, torch.ones(n), on * torch.empty(n).uniform_(-0.2 * strength, 0.2 * strength, generator=generator)).clamp(0, 1)
    gray = per_image(torch.rand(n, generator=generator) < 0.2)
    luma = (x * torch.tensor([0.2989, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return torch.where(gray, luma.expand_as(x), x).clamp(0, 1)


def nt_xent(z1, z2, temperature):
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.t() / temperature - torch.eye(2 * n) * 1e9
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(logits, targets)


class Lars(torch.optim.Optimizer):
    """Momentum SGD with the per-tensor trust ratio; BN parameters and biases excluded (as lars_optimizer.ts)."""

    def __init__(self, params, lr, weight_decay=1e-6, momentum=0.9, eta=0.001):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, eta=eta))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group['params']:
                if p.grad is None:
                    continue
                excluded = p.ndim == 1
                g = p.grad if excluded else p.grad + group['weight_decay'] * p
                lr = group['lr']
                if not excluded:
                    w_norm, g_norm = p.norm(), g.norm()
                    if w_norm > 0 and g_norm > 0:
                        lr = lr * group['eta'] * w_norm / g_norm
                state = self.state[p]
                v = state.setdefault('velocity', torch.zeros_like(p))
                v.mul_(group['momentum']).add_(g, alpha=float(lr))
                p.sub_(v)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--mode', choices=['train', 'finetune', 'infer'], required=True)
    parser.add_argument('--depth', type=int, default=18)
    parser.add_argument('--width', type=float, default=1)
    parser.add_argument('--size', type=int, default=32)
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = PretrainModel(args.depth, args.width, args.size)
    images = torch.rand(args.batch, 3, args.size, args.size, generator=generator)
    strength = 0.5 if args.size <= SMALL_IMAGE_MAX else 1.0

    if args.mode == 'train':
        model.train()
        optimizer = Lars(model.parameters(), lr=0.3)

        def step():
            views = torch.cat([augment(images, args.size, strength, generator), augment(images, args.size, strength, generator)])
            projection, _ = model(views)
            z1, z2 = projection.chunk(2)
            loss = nt_xent(z1, z2, 0.2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return loss.item()
    elif args.mode == 'finetune':
        model = Classifier(args.depth, args.width, args.size, 10)
        model.train()
        optimizer = Lars(model.parameters(), lr=0.3, weight_decay=0)
        targets = F.one_hot(torch.arange(args.batch) % 10, 10).float()

        def step():
            crops = resized_crops(images, args.size, generator, min_area=0.5).clamp(0, 1)
            views, mixed = mixup(crops, targets, generator)
            loss = -(mixed * F.log_softmax(model(views), 1)).sum(1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return loss.item()
    else:
        model.eval()

        def step():
            with torch.no_grad():
                return float(model.encoder(images).sum())

    seconds, cpu_seconds = [], []
    for i in range(args.warmup + args.steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        if i >= args.warmup:
            seconds.append(time.perf_counter() - start)
            cpu_seconds.append(time.process_time() - cpu_start)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({'torch': torch.__version__, 'threads': torch.get_num_threads(), 'seconds': seconds, 'cpuSeconds': cpu_seconds, 'peakRssMb': peak_rss_mb}))


if __name__ == '__main__':
    main()
