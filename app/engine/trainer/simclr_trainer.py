#!/usr/bin/env python3
"""SimCLRv2 for a Contrast Studio project on one or many GPUs (PyTorch DistributedDataParallel).

Written into the folder by `contrast export-trainer`, beside manifest.json and the pixels file, and
launched with torchrun (see README.md there). It trains what the app trains, with the app's recipe:

  pretrain  NT-Xent between two augmented views of every image (all ranks' projections are the
            negatives, so the batch is the global batch as in the app), LARS, warm-up then cosine;
  finetune  the labelled train split from the pretrained encoder and first head layer, the epoch
            best on validation kept, batch-norm statistics measured afresh after each epoch;
  distill   every image, the student matching softmax(teacher / tau) on the same view.

Each stage checkpoints to OUT/checkpoints/<stage>.pt (every epoch, every --checkpoint-minutes and
every --checkpoint-steps) and a restarted run continues from there; a finished stage writes
OUT/<stage>.safetensors, which `contrast import-weights` brings back into the project, and the
classifier stages also write OUT/<stage>-predictions.csv (every image's class probabilities).

The network is fed the app's own decoded pixels (pixels-<size>.u8: uint8 RGB rows, one per image
in manifest order), so it sees exactly what the app sees; no image decoding happens here.
"""
import argparse
import csv
import json
import math
import os
import random
import struct
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

BN_MOMENTUM = 0.1  # PyTorch's momentum is 1 - TF's 0.9
BN_EPSILON = 1e-5
SMALL_IMAGE_MAX = 64
DEFAULT_BATCH = 128
DEFAULT_EPOCHS = {'pretrain': 100, 'finetune': 30, 'distill': 30}
LR_PER_SQRT_BATCH = {'pretrain': 0.075, 'finetune': 0.05, 'distill': 0.05}
HEAD_INIT_STDDEV = 0.01
CALIBRATION_BATCHES = 16
PRETRAIN_CROP_AREA = (0.08, 1.0)
FINETUNE_CROP_AREA = (0.5, 1.0)
LUMA = (0.2989, 0.587, 0.114)
BLOCKS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3]}
STAGES = ('pretrain', 'finetune', 'distill')


# ---------------------------------------------------------------- the network (torchvision names)

def channels(base, width):
    # JavaScript's Math.round, which the app uses: halves round up.
    return max(1, int(math.floor(base * width + 0.5)))


def uses_small_stem(model):
    stem = model.get('stem')
    return model['imageSize'] <= SMALL_IMAGE_MAX if stem is None else stem == 'small'


def conv(cin, cout, kernel, stride=1):
    # Symmetric padding k // 2 is what the app's explicit padding of strided convs and 'same' of stride-1 odd kernels give.
    return nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)


def batch_norm(n, zero_gamma=False):
    bn = nn.BatchNorm2d(n, eps=BN_EPSILON, momentum=BN_MOMENTUM)
    if zero_gamma:
        nn.init.zeros_(bn.weight)
    return bn


class BasicBlock(nn.Module):
    def __init__(self, cin, filters, stride):
        super().__init__()
        self.conv1, self.bn1 = conv(cin, filters, 3, stride), batch_norm(filters)
        self.conv2, self.bn2 = conv(filters, filters, 3), batch_norm(filters, zero_gamma=True)
        self.downsample = shortcut(cin, filters, stride)
        self.out_channels = filters

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    # Stride on the 3x3 conv (ResNet v1.5), as the app's network.
    def __init__(self, cin, filters, stride):
        super().__init__()
        self.conv1, self.bn1 = conv(cin, filters, 1), batch_norm(filters)
        self.conv2, self.bn2 = conv(filters, filters, 3, stride), batch_norm(filters)
        self.conv3, self.bn3 = conv(filters, 4 * filters, 1), batch_norm(4 * filters, zero_gamma=True)
        self.downsample = shortcut(cin, 4 * filters, stride)
        self.out_channels = 4 * filters

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


def shortcut(cin, cout, stride):
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), batch_norm(cout))


def max_pool_same(x):
    """3x3 stride-2 max-pool padded as TF's 'same' (the extra row/column at the bottom/right).
    Zeros pad as well as -inf would: the pool follows a ReLU."""
    pads = []
    for size in (x.shape[3], x.shape[2]):
        total = max((math.ceil(size / 2) - 1) * 2 + 3 - size, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads), 3, 2)


class Encoder(nn.Module):
    def __init__(self, model):
        super().__init__()
        if model.get('sk'):
            raise SystemExit('selective kernels are not in the exported trainer yet')
        self.model = model
        width = model['width']
        c = channels(64, width)
        self.small_stem = uses_small_stem(model)
        self.conv1 = conv(3, c, 3 if self.small_stem else 7, 1 if self.small_stem else 2)
        self.bn1 = batch_norm(c)
        block = Bottleneck if model['depth'] == 50 else BasicBlock
        cin = c
        for g, count in enumerate(BLOCKS[model['depth']]):
            blocks = []
            for b in range(count):
                blocks.append(block(cin, channels(64 * 2 ** g, width), 2 if g > 0 and b == 0 else 1))
                cin = blocks[-1].out_channels
            setattr(self, f'layer{g + 1}', nn.Sequential(*blocks))
        self.out_width = cin
        norm = model.get('inputNormalization')
        self.register_buffer('mean', torch.tensor(norm['mean'] if norm else [0.0] * 3).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(norm['std'] if norm else [1.0] * 3).view(1, 3, 1, 1), persistent=False)
        init_convs(self)

    def forward(self, x):
        x = (x - self.mean) / self.std
        x = F.relu(self.bn1(self.conv1(x)))
        if not self.small_stem:
            x = F.max_pool2d(x, 3, 2, 1) if self.model.get('padding') == 'torch' else max_pool_same(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean((2, 3))


def init_convs(module):
    # The app's variance scaling (fan-in, truncated normal): TF divides the std by 0.8796 to undo the truncation.
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
            nn.init.trunc_normal_(m.weight, 0.0, std, -2 * std, 2 * std)


def head_layer(cin, cout, relu):
    """Dense (no bias) -> BN -> ReLU, at the indices the importer reads as head_dense/head_bn."""
    dense = nn.Linear(cin, cout, bias=False)
    nn.init.normal_(dense.weight, 0.0, HEAD_INIT_STDDEV)
    layers = [dense, nn.BatchNorm1d(cout, eps=BN_EPSILON, momentum=BN_MOMENTUM)]
    return layers + ([nn.ReLU()] if relu else [])


class PretrainNet(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.encoder = Encoder(model)
        h = self.encoder.out_width
        layers = head_layer(h, h, True) + head_layer(h, h, True) + head_layer(h, model.get('projectionDim') or 128, False)
        self.head = nn.Module()
        self.head.layers = nn.Sequential(*layers)
        # The last projection BN has no centre: a shift means nothing before L2 normalisation.
        self.head.layers[7].bias.requires_grad_(False)

    def forward(self, x):
        return self.head.layers(self.encoder(x))


class Classifier(nn.Module):
    """Encoder -> head layer 1 -> fc, the app's classifier (fine-tuning starts from the middle of the head)."""

    def __init__(self, model, num_classes):
        super().__init__()
        self.encoder = Encoder(model)
        h = self.encoder.out_width
        self.head = nn.Module()
        self.head.layers = nn.Sequential(*head_layer(h, h, True))
        self.fc = nn.Linear(h, num_classes)
        nn.init.normal_(self.fc.weight, 0.0, HEAD_INIT_STDDEV)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        return self.fc(self.head.layers(self.encoder(x)))


def flat_state(net):
    """Weights under the torchvision names the importer maps: the encoder's at the top level."""
    out = {}
    for key, value in net.state_dict().items():
        if key.endswith('num_batches_tracked'):
            continue
        out[key[len('encoder.'):] if key.startswith('encoder.') else key] = value
    return out


def load_flat_state(net, state, strict=True):
    prefixed = {(k if k.startswith(('head.', 'fc.')) else 'encoder.' + k): v for k, v in state.items()}
    missing, unexpected = net.load_state_dict(prefixed, strict=False)
    missing = [k for k in missing if not k.endswith('num_batches_tracked')]
    if strict and (missing or unexpected):
        raise SystemExit(f'weights do not fit: missing {missing}, unexpected {unexpected}')


# ---------------------------------------------------------------- LARS, schedule, losses

def lars_parameters(net):
    """(name, parameter, excluded) for every trained parameter. BN scale/shift, biases and the supervised
    classifier skip weight decay and the trust ratio, as in the app (the classifier starts near zero)."""
    out = []
    for module_name, module in net.named_modules():
        for name, p in module.named_parameters(recurse=False):
            if p.requires_grad:
                excluded = isinstance(module, nn.modules.batchnorm._BatchNorm) or name == 'bias' or module_name == 'fc'
                out.append((f'{module_name}.{name}' if module_name else name, p, excluded))
    return out


class Lars:
    def __init__(self, net, weight_decay, momentum=0.9, trust=0.001):
        self.params = lars_parameters(net)
        self.weight_decay, self.momentum, self.trust = weight_decay, momentum, trust
        self.velocity = {n: torch.zeros_like(p) for n, p, _ in self.params}

    @torch.no_grad()
    def step(self, lr):
        for name, p, excluded in self.params:
            if p.grad is None:
                continue
            g = p.grad if excluded or self.weight_decay == 0 else p.grad + self.weight_decay * p
            rate = lr
            if not excluded:
                wn, gn = p.norm(), g.norm()
                rate = lr * (self.trust * wn / gn).item() if wn > 0 and gn > 0 else lr
            v = self.velocity[name]
            v.mul_(self.momentum).add_(g, alpha=rate)
            p.sub_(v)


def learning_rate(step, peak, warmup, total):
    if step < warmup:
        return peak * step / warmup
    decay = total - warmup
    if decay == 0:
        return peak
    return 0.5 * peak * (1 + math.cos(math.pi * min(1.0, (step - warmup) / decay)))


class GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward hands each rank the summed gradient of its own slice."""

    @staticmethod
    def forward(ctx, x):
        out = [torch.zeros_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x.contiguous())
        return torch.cat(out)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        n = grad.shape[0] // dist.get_world_size()
        return grad[dist.get_rank() * n:(dist.get_rank() + 1) * n]


def nt_xent(z1, z2, temperature, world):
    """SimCLR's loss over this rank's 2n anchors; every rank's projections are candidates."""
    n = z1.shape[0]
    local = F.normalize(torch.cat([z1, z2]), dim=1, eps=1e-6)
    if world.size > 1:
        a, b = GatherWithGrad.apply(local[:n]), GatherWithGrad.apply(local[n:])
        candidates, offset, total = torch.cat([a, b]), world.rank * n, n * world.size
    else:
        candidates, offset, total = local, 0, n
    i = torch.arange(n, device=z1.device)
    own = torch.cat([i + offset, i + offset + total])
    positive = torch.cat([i + offset + total, i + offset])
    is_self = F.one_hot(own, candidates.shape[0]).bool()
    logits = (local @ candidates.t() / temperature).masked_fill(is_self, -1e9)
    loss = F.cross_entropy(logits, positive)
    top1 = (logits.argmax(1) == positive).float().mean()
    return loss, top1


# ---------------------------------------------------------------- augmentations (the app's, batched)

def crop_boxes(n, height, width, area_range, rng):
    """Inception-style crops as the app samples them: [y1, x1, y2, x2] between outer pixel centres."""
    def norm(v, size):
        return v / (size - 1) if size > 1 else 0.0

    def box(top, left, ch, cw):
        return [norm(top, height), norm(left, width), norm(top + ch - 1, height), norm(left + cw - 1, width)]

    boxes = []
    for _ in range(n):
        chosen = box(0, 0, height, width)
        for _ in range(10):
            area = rng.uniform(*area_range) * height * width
            ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            cw, ch = math.sqrt(area * ratio), math.sqrt(area / ratio)
            if cw <= width and ch <= height:
                chosen = box(rng.uniform(0, height - ch), rng.uniform(0, width - cw), ch, cw)
                break
        boxes.append(chosen)
    return boxes


def resized_crops(images, boxes, size):
    """Bilinear crop-and-resize with box corners on pixel centres (align_corners=True)."""
    b = torch.tensor(boxes, dtype=images.dtype, device=images.device)
    theta = torch.zeros(len(boxes), 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = b[:, 3] - b[:, 1]
    theta[:, 0, 2] = b[:, 1] + b[:, 3] - 1
    theta[:, 1, 1] = b[:, 2] - b[:, 0]
    theta[:, 1, 2] = b[:, 0] + b[:, 2] - 1
    grid = F.affine_grid(theta, [len(boxes), 3, size, size], align_corners=True)
    return F.grid_sample(images, grid, mode='bilinear', padding_mode='border', align_corners=True)


def per_image(values, like):
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(-1, 1, 1, 1)


def flip(images, flags):
    return torch.where(per_image(flags, images).bool(), images.flip(3), images)


def adjust_hsv(x, saturation, hue):
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    value = x.max(1, keepdim=True).values
    chroma = value - x.min(1, keepdim=True).values
    sat = chroma / value.clamp_min(1e-12)
    safe = chroma.clamp_min(1e-12)
    sixths = torch.where(value == r, (g - b) / safe, torch.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4))
    h = sixths / 6 + per_image(hue, x)
    h = h - h.floor()
    s = (sat * per_image(saturation, x)).clamp(0, 1)

    def channel(n):
        k = (h * 6 + n) / 6
        k = (k - k.floor()) * 6
        return value - value * s * torch.minimum(k, 4 - k).clamp(0, 1)

    return torch.cat([channel(5), channel(3), channel(1)], 1)


def color_jitter(x, strength, rng):
    n = x.shape[0]
    s = 0.8 * strength
    order = ['brightness', 'contrast', 'saturation', 'hue']
    rng.shuffle(order)
    factors = {k: [] for k in order}
    for _ in range(n):
        on = rng.random() < 0.8
        factors['brightness'].append(rng.uniform(max(0, 1 - s), 1 + s) if on else 1.0)
        factors['contrast'].append(rng.uniform(max(0, 1 - s), 1 + s) if on else 1.0)
        factors['saturation'].append(rng.uniform(max(0, 1 - s), 1 + s) if on else 1.0)
        factors['hue'].append(rng.uniform(-0.2 * strength, 0.2 * strength) if on else 0.0)
    for op in order:
        if op == 'brightness':
            x = x * per_image(factors['brightness'], x)
        elif op == 'contrast':
            mean = x.mean((2, 3), keepdim=True)
            x = (x - mean) * per_image(factors['contrast'], x) + mean
        elif op == 'saturation':
            x = adjust_hsv(x, factors['saturation'], [0.0] * n)
        else:
            x = adjust_hsv(x, [1.0] * n, factors['hue'])
        x = x.clamp(0, 1)
    return x


def grayscale(x, flags):
    luma = (x * torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return torch.where(per_image(flags, x).bool(), luma.expand_as(x), x)


def gaussian_blur(x, sigmas, kernel_size):
    radius = (kernel_size - 1) // 2
    if radius < 1:
        return x
    n, c, h, w = x.shape
    taps = []
    for sigma in sigmas:
        k = [math.exp(-((i - radius) ** 2) / (2 * sigma * sigma)) if sigma > 0 else float(i == radius) for i in range(kernel_size)]
        total = sum(k)
        taps += [[v / total for v in k]] * c
    kernel = torch.tensor(taps, dtype=x.dtype, device=x.device)
    y = F.pad(x.reshape(1, n * c, h, w), [radius] * 4, mode='reflect')
    y = F.conv2d(y, kernel.view(n * c, 1, 1, kernel_size), groups=n * c)
    y = F.conv2d(y, kernel.view(n * c, 1, kernel_size, 1), groups=n * c)
    return y.view(n, c, h, w)


def pretrain_view(images, size, rng):
    n, _, h, w = images.shape
    strength, blur = (0.5, False) if size <= SMALL_IMAGE_MAX else (1.0, True)
    boxes = crop_boxes(n, h, w, PRETRAIN_CROP_AREA, rng)
    flips = [rng.random() < 0.5 for _ in range(n)]
    x = flip(resized_crops(images, boxes, size), flips)
    x = color_jitter(x, strength, rng)
    x = grayscale(x, [rng.random() < 0.2 for _ in range(n)])
    if blur:
        sigmas = [rng.uniform(0.1, 2) if rng.random() < 0.5 else 0.0 for _ in range(n)]
        x = gaussian_blur(x, sigmas, 2 * ((size // 10) // 2) + 1)
    return x.clamp(0, 1)


def finetune_view(images, size, rng):
    n, _, h, w = images.shape
    boxes = crop_boxes(n, h, w, FINETUNE_CROP_AREA, rng)
    return flip(resized_crops(images, boxes, size), [rng.random() < 0.5 for _ in range(n)]).clamp(0, 1)


# ---------------------------------------------------------------- data

class Pixels:
    """The app's decoded pixels: uint8 rows of size x size x 3, read as NCHW floats in [0, 1]."""

    def __init__(self, folder, manifest):
        info = manifest['pixels']
        self.size = info['imageSize']
        self.rows = np.memmap(os.path.join(folder, info['file']), dtype=np.uint8, mode='r',
                              shape=(info['rows'], self.size, self.size, 3))

    def batch(self, rows, device):
        array = np.stack([self.rows[r] for r in rows])
        return torch.from_numpy(array).to(device).permute(0, 3, 1, 2).float().div(255)


class World:
    def __init__(self):
        self.size = int(os.environ.get('WORLD_SIZE', '1'))
        self.rank = int(os.environ.get('RANK', '0'))
        local = int(os.environ.get('LOCAL_RANK', '0'))
        if torch.cuda.is_available():
            torch.cuda.set_device(local)
            self.device = torch.device('cuda', local)
        else:
            self.device = torch.device('cpu')
        if self.size > 1:
            dist.init_process_group('nccl' if self.device.type == 'cuda' else 'gloo')

    @property
    def main(self):
        return self.rank == 0

    def log(self, text):
        if self.main:
            print(text, flush=True)

    def barrier(self):
        if self.size > 1:
            dist.barrier()


def mix_pairs(views, targets, alpha, rng):
    """Mixup as the app does it: each view blended with a shuffled partner by its own share ~ Beta(alpha, alpha)."""
    n = views.shape[0]
    shares = torch.tensor([rng.betavariate(alpha, alpha) for _ in range(n)], device=views.device)
    partners = list(range(n))
    rng.shuffle(partners)
    s4, s2 = shares.view(n, 1, 1, 1), shares.view(n, 1)
    return s4 * views + (1 - s4) * views[partners], s2 * targets + (1 - s2) * targets[partners]


def epoch_order(count, seed, epoch, balanced_labels=None):
    """The same order on every rank; with balanced labels every class is drawn equally often (with replacement)."""
    rng = random.Random(seed * 1_000_003 + epoch)
    if balanced_labels is None:
        order = list(range(count))
        rng.shuffle(order)
        return order
    groups = {}
    for position, label in enumerate(balanced_labels):
        groups.setdefault(label, []).append(position)
    groups = list(groups.values())
    return [rng.choice(rng.choice(groups)) for _ in range(count)]


# ---------------------------------------------------------------- files

def write_safetensors(path, tensors, metadata):
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        data = tensors[name].detach().to('cpu', torch.float32).contiguous().numpy().tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(tensors[name].shape), 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header['__metadata__'] = {'contrast': json.dumps(metadata)}
    text = json.dumps(header).encode('utf8')
    text += b' ' * (-len(text) % 8)
    temp = path + '.tmp'
    with open(temp, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(temp, path)


def read_safetensors(path):
    with open(path, 'rb') as f:
        length = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(length))
        data = f.read()
    tensors = {}
    for name, entry in header.items():
        if name == '__metadata__':
            continue
        begin, end = entry['data_offsets']
        tensors[name] = torch.from_numpy(np.frombuffer(data[begin:end], dtype=np.float32).copy()).view(entry['shape'])
    return tensors, json.loads(header.get('__metadata__', {}).get('contrast', '{}'))


def save_atomically(obj, path):
    temp = path + '.tmp'
    torch.save(obj, temp)
    os.replace(temp, path)


# ---------------------------------------------------------------- training

class Stage:
    """What a stage trains on and how, from the manifest's config for it and the command line."""

    def __init__(self, kind, manifest, args, world, examples, balanced_labels=None):
        if examples < 2:
            raise SystemExit(f'{kind}: {examples} image(s) is too few to train on (need at least 2)')
        self.kind, self.examples, self.balanced_labels = kind, examples, balanced_labels
        self.config = manifest['stages'][kind]
        self.model = self.config['model']
        self.seed = int(self.config['seed'])
        batch = args.batch or self.config.get('batchSize') or DEFAULT_BATCH
        # Every process takes an equal share of the global batch.
        self.batch = max(world.size, min(batch, examples) // world.size * world.size)
        epochs = args.epochs or self.config.get('epochs') or DEFAULT_EPOCHS[kind]
        self.per_epoch = max(1, examples // self.batch)
        self.total_steps = epochs * self.per_epoch
        if args.max_steps:
            self.total_steps = min(self.total_steps, args.max_steps)
        self.peak_lr = self.config.get('learningRate') or LR_PER_SQRT_BATCH[kind] * math.sqrt(self.batch)
        self.warmup = int(math.floor(self.config['warmupFraction'] * self.total_steps + 0.5))  # JavaScript's Math.round


class Trainer:
    def __init__(self, args, world, manifest, pixels):
        self.args, self.world, self.manifest, self.pixels = args, world, manifest, pixels
        self.out = args.out
        images = manifest['images']
        self.classes = manifest['classes']
        index = {name: i for i, name in enumerate(self.classes)}
        with_pixels = [im for im in images if im.get('pixelRow') is not None]
        self.trainable = [im['pixelRow'] for im in with_pixels if im.get('split') != 'test']

        def labelled(split):
            rows = [(im['pixelRow'], index[im['label']]) for im in with_pixels if im.get('split') == split and im.get('label') in index]
            return [r for r, _ in rows], [l for _, l in rows]

        self.train_rows, self.train_labels = labelled('train')
        self.val_rows, self.val_labels = labelled('val')

    def checkpoint_path(self, kind):
        return os.path.join(self.out, 'checkpoints', f'{kind}.pt')

    def weights_path(self, kind):
        return os.path.join(self.out, f'{kind}.safetensors')

    def wrap(self, net):
        net = net.to(self.world.device)
        if self.world.size == 1:
            return net, net
        if self.world.device.type == 'cuda':
            # The app's batch norm sees the whole batch; across GPUs that is SyncBatchNorm.
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        ddp = nn.parallel.DistributedDataParallel(net, device_ids=[self.world.device.index] if self.world.device.type == 'cuda' else None)
        return ddp, net

    def loop(self, stage, net, ddp, step_fn, calibration=None):
        """The shared step loop: seeded order, schedule, checkpoints, resume, best epoch on validation."""
        world, args = self.world, self.args
        lars = Lars(net, stage.config['weightDecay'])
        state = {'step': 0, 'best': -1.0, 'best_weights': None}
        path = self.checkpoint_path(stage.kind)
        if os.path.exists(path):
            saved = torch.load(path, map_location='cpu')
            load_flat_state(net, saved['weights'])
            for name, v in saved['velocity'].items():
                lars.velocity[name].copy_(v)
            state = {'step': saved['step'], 'best': saved['best'], 'best_weights': saved['best_weights']}
            world.log(f'{stage.kind}: resumed from {path} at step {state["step"]} of {stage.total_steps}')
        per_rank = stage.batch // world.size
        last_save = time.time()

        def save():
            if world.main:
                save_atomically({'weights': flat_state(net), 'velocity': lars.velocity, **state}, path)

        world.log(f'{stage.kind}: {stage.total_steps} steps, {stage.per_epoch} per epoch, batch {stage.batch} '
                  f'({per_rank} per process x {world.size}), peak lr {stage.peak_lr:.4g}')
        while state['step'] < stage.total_steps:
            step = state['step']
            epoch, position = divmod(step, stage.per_epoch)
            order = epoch_order(stage.examples, stage.seed, epoch, stage.balanced_labels)
            start = position * stage.batch + world.rank * per_rank
            positions = order[start:start + per_rank]
            lr = learning_rate(step, stage.peak_lr, stage.warmup, stage.total_steps)
            rng = random.Random(f'{stage.seed}:{stage.kind}:{step}:{world.rank}')  # the same draws after a resume
            ddp.train()
            net.zero_grad(set_to_none=True)
            loss, metric = step_fn(positions, rng)
            loss.backward()
            lars.step(lr)
            state['step'] = step + 1
            if state['step'] % max(1, stage.per_epoch // 5) == 0 or state['step'] == stage.total_steps:
                world.log(f'{stage.kind} step {state["step"]}/{stage.total_steps} loss {loss.item():.4f} {metric} lr {lr:.4g}')
            epoch_done = state['step'] % stage.per_epoch == 0 or state['step'] == stage.total_steps
            if epoch_done and calibration is not None:
                self.end_classifier_epoch(net, state, calibration, stage.batch, keep_last=bool(stage.config.get('mixup')))
            if epoch_done or (args.checkpoint_steps and state['step'] % args.checkpoint_steps == 0) \
                    or time.time() - last_save > 60 * args.checkpoint_minutes:
                save()
                last_save = time.time()
            world.barrier()
        if state['best_weights'] is not None:
            load_flat_state(net, state['best_weights'])
        return state

    @torch.no_grad()
    def end_classifier_epoch(self, net, state, calibration, batch, keep_last):
        """Keeps the best epoch on validation, or with mixup the last one, as the app does (EpochKept)."""
        recalibrate_batch_norm(net, self.pixels, calibration, batch, self.world.device)
        accuracy = self.accuracy(net) if self.val_rows else None
        if accuracy is None or keep_last or accuracy > state['best']:
            state['best'] = -1.0 if accuracy is None else accuracy
            state['best_weights'] = {k: v.clone() for k, v in flat_state(net).items()}
        if accuracy is not None:
            self.world.log(f'  validation accuracy {accuracy:.4f} (best {state["best"]:.4f})')

    @torch.no_grad()
    def probabilities(self, net, rows):
        """As the studio predicts: the mean of the probabilities of each image and its mirror image."""
        net.eval()
        out = []
        for start in range(0, len(rows), 256):
            x = self.pixels.batch(rows[start:start + 256], self.world.device)
            out.append(((F.softmax(net(x), 1) + F.softmax(net(x.flip(3)), 1)) / 2).cpu())
        return torch.cat(out) if out else torch.zeros(0, len(self.classes))

    def accuracy(self, net):
        predicted = self.probabilities(net, self.val_rows).argmax(1)
        return (predicted == torch.tensor(self.val_labels)).float().mean().item()

    # -------- the three stages

    def pretrain(self):
        stage = Stage('pretrain', self.manifest, self.args, self.world, len(self.trainable))
        net = PretrainNet(stage.model)
        ddp, net = self.wrap(net)
        size, temperature = stage.model['imageSize'], stage.config['temperature']

        def step(positions, rng):
            images = self.pixels.batch([self.trainable[p] for p in positions], self.world.device)
            views = torch.cat([pretrain_view(images, size, rng), pretrain_view(images, size, rng)])
            z = ddp(views)
            loss, top1 = nt_xent(*z.chunk(2), temperature, self.world)
            return loss, f'top1 {top1.item():.3f}'

        state = self.loop(stage, net, ddp, step)
        return net, stage, state

    def finetune(self, pretrained):
        balanced = self.train_labels if self.manifest['stages']['finetune'].get('balanced') else None
        stage = Stage('finetune', self.manifest, self.args, self.world, len(self.train_rows), balanced)
        net = Classifier(stage.model, len(self.classes))
        if pretrained is not None and not stage.config.get('supervised'):
            load_flat_state(net, {k: v for k, v in pretrained.items() if not k.startswith('head.layers.') or int(k.split('.')[2]) < 3}, strict=False)
        ddp, net = self.wrap(net)
        labels = torch.tensor(self.train_labels)
        size = stage.model['imageSize']

        alpha = stage.config.get('mixup', 0)

        def step(positions, rng):
            images = self.pixels.batch([self.train_rows[p] for p in positions], self.world.device)
            target = F.one_hot(labels[positions], len(self.classes)).float().to(self.world.device)
            views = finetune_view(images, size, rng)
            if alpha > 0:
                views, target = mix_pairs(views, target, alpha, rng)
            logits = ddp(views)
            loss = -(target * F.log_softmax(logits, 1)).sum(1).mean()
            return loss, f'accuracy {(logits.argmax(1) == target.argmax(1)).float().mean().item():.3f}'

        state = self.loop(stage, net, ddp, step, calibration=self.train_rows)
        return net, stage, state

    def distill(self, teacher_weights, teacher_model):
        stage = Stage('distill', self.manifest, self.args, self.world, len(self.trainable))
        teacher = Classifier(teacher_model, len(self.classes))
        load_flat_state(teacher, teacher_weights)
        teacher = teacher.to(self.world.device).eval()
        student = Classifier(stage.model, len(self.classes))
        same = all(stage.model[k] == teacher_model[k] for k in ('depth', 'width', 'sk'))
        if same:
            load_flat_state(student, teacher_weights)  # self-distillation starts from the teacher
        ddp, student = self.wrap(student)
        tau, label_weight = stage.config.get('tau', 1), stage.config.get('labelWeight', 0)
        labels = torch.tensor(self.train_labels)
        size = stage.model['imageSize']

        def step(positions, rng):
            images = self.pixels.batch([self.trainable[p] for p in positions], self.world.device)
            view = finetune_view(images, size, rng)
            n = view.shape[0]
            picks = []
            if label_weight > 0 and self.train_rows:
                picks = [rng.randrange(len(self.train_rows)) for _ in range(min(n, len(self.train_rows)))]
                view = torch.cat([view, finetune_view(self.pixels.batch([self.train_rows[p] for p in picks], self.world.device), size, rng)])
            with torch.no_grad():
                target = F.softmax(teacher(view[:n]) / tau, 1)
            logits = ddp(view)
            loss = -(target * F.log_softmax(logits[:n] / tau, 1)).sum(1).mean()
            if picks:
                loss = loss + label_weight * F.cross_entropy(logits[n:], labels[picks].to(self.world.device))
            return loss, ''

        state = self.loop(stage, student, ddp, step, calibration=self.trainable)
        return student, stage, state

    # -------- outputs

    def finish(self, kind, net, stage, state):
        if self.world.main:
            weights = flat_state(net)
            meta = {
                'format': 'contrast-trainer/1',
                'stage': kind,
                'model': stage.model,
                'classes': self.classes if kind != 'pretrain' else None,
                'project': self.manifest['project'],
                'config': stage.config,
                'fromRun': self.manifest.get('fromRun'),
                'steps': state['step'],
                'epochs': round(state['step'] / stage.per_epoch, 2),
                'valAccuracy': state['best'] if state['best'] >= 0 else None,
                'processes': self.world.size,
                'device': self.world.device.type,
                'torch': torch.__version__,
            }
            write_safetensors(self.weights_path(kind), weights, meta)
            if kind != 'pretrain':
                self.write_predictions(kind, net)
            print(f'{kind}: wrote {self.weights_path(kind)}', flush=True)
        self.world.barrier()

    def write_predictions(self, kind, net):
        images = [im for im in self.manifest['images'] if im.get('pixelRow') is not None]
        probs = self.probabilities(net, [im['pixelRow'] for im in images])
        with open(os.path.join(self.out, f'{kind}-predictions.csv'), 'w', newline='') as f:
            out = csv.writer(f, lineterminator='\n')
            out.writerow(['path', 'predicted'] + self.classes)
            for im, p in zip(images, probs.tolist()):
                out.writerow([im['path'], self.classes[max(range(len(p)), key=lambda i: p[i])]] + [repr(v) for v in p])


@torch.no_grad()
def recalibrate_batch_norm(net, pixels, rows, batch, device):
    """Batch-norm statistics as the running mean over up to 16 training-mode passes (the app's recalibration)."""
    layers = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    size = max(2, batch)
    count = min(CALIBRATION_BATCHES, math.ceil(len(rows) / size))
    total = min(len(rows), count * size)
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average
    net.train()
    for k in range(count):
        positions = [rows[(j * len(rows)) // total] for j in range(k, total, count)]
        if len(positions) < 2:
            break
        net(pixels.batch(positions, device))
    for layer in layers:
        layer.momentum = BN_MOMENTUM


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument('--data', default=here, help='the exported folder (default: this program\'s)')
    parser.add_argument('--out', default=os.path.join(here, 'output'), help='where checkpoints and weights go (default: DATA/output)')
    parser.add_argument('--stages', default='pretrain,finetune,distill', help='comma-separated, in order')
    parser.add_argument('--epochs', type=int, help='epochs of every stage (default: each stage\'s config)')
    parser.add_argument('--batch', type=int, help='global batch of every stage, split over the processes')
    parser.add_argument('--max-steps', type=int, help='stop each stage after this many steps (a short trial)')
    parser.add_argument('--checkpoint-minutes', type=float, default=10)
    parser.add_argument('--checkpoint-steps', type=int, default=0, help='also checkpoint every this many steps')
    parser.add_argument('--threads', type=int, help='CPU threads per process (default: PyTorch\'s)')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with open(os.path.join(args.data, 'manifest.json')) as f:
        manifest = json.load(f)
    stages = [s for s in args.stages.split(',') if s]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise SystemExit(f'unknown stage(s) {unknown}; the stages are {", ".join(STAGES)}')
    world = World()
    os.makedirs(os.path.join(args.out, 'checkpoints'), exist_ok=True)
    trainer = Trainer(args, world, manifest, Pixels(args.data, manifest))
    torch.manual_seed(int(manifest['stages']['pretrain']['seed']))
    previous = {}
    for kind in STAGES:
        path = trainer.weights_path(kind)
        if kind not in stages:
            if os.path.exists(path):
                previous[kind] = read_safetensors(path)
            continue
        if os.path.exists(path):
            world.log(f'{kind}: already done ({path})')
            previous[kind] = read_safetensors(path)
            continue
        if kind == 'pretrain':
            net, stage, state = trainer.pretrain()
        elif kind == 'finetune':
            net, stage, state = trainer.finetune(previous['pretrain'][0] if 'pretrain' in previous else None)
        else:
            if 'finetune' not in previous:
                raise SystemExit('distill needs a teacher: run the finetune stage first')
            weights, meta = previous['finetune']
            net, stage, state = trainer.distill(weights, meta['model'])
        trainer.finish(kind, net, stage, state)
        previous[kind] = (flat_state(net), {'model': stage.model})
    if world.size > 1:
        dist.destroy_process_group()


if __name__ == '__main__':
    sys.exit(main())
