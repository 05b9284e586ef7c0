"""PyTorch side of the weight-import tests (test/integration/import_weights.test.ts).

Builds a ResNet with random weights in one of the layouts `contrast import-weights` reads, gives
its batch norms realistic statistics (a few training-mode passes over noise, then random
affine parameters, so eval-mode outputs depend on every BN vector), saves it as a PyTorch
checkpoint (torch.save, zip format) and as .safetensors, and writes the encoder features it
computes on the test's pixels:

  torchvision  torchvision.models.resnet18/34/50 at width 1, or the same modules (torchvision's
               BasicBlock/Bottleneck, the same attribute names) at any other width;
  simclrv2     the layout of the SimCLRv2 PyTorch conversion (Separius/SimCLRv2-Pytorch):
               {'resnet': net.* + fc.*, 'head': layers.*}, ResNet-50 with or without selective
               kernels, written here from that layout's description.

usage: torch_weights.py <torchvision|simclrv2> <depth> <width> <sk 0|1> <out prefix>
                        <pixels.bin> <count> <size>
pixels.bin: uint8 [count, size, size, 3] RGB, as the engine's decodePixels gives them.
Writes <prefix>.pth, <prefix>.safetensors and <prefix>.features.bin (float32 [count, features],
computed in float64), and prints PyTorch's own float32 error against them as JSON.
No weights are downloaded: every network starts from random initialisation.
"""
import json
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import BasicBlock, Bottleneck

BLOCKS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3]}
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def scaled(base, width):
    return max(1, round(base * width))


class ScaledResNet(nn.Module):
    """torchvision's ResNet with every channel count scaled: the same modules and key names."""

    def __init__(self, depth, width):
        super().__init__()
        block = Bottleneck if depth == 50 else BasicBlock
        self.inplanes = scaled(64, width)
        self.conv1 = nn.Conv2d(3, self.inplanes, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        for g, count in enumerate(BLOCKS[depth]):
            setattr(self, f'layer{g + 1}', self.group(block, scaled(64 * 2 ** g, width), count, 1 if g == 0 else 2))
        self.fc = nn.Linear(self.inplanes, 1000)

    def group(self, block, planes, count, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False), nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(count - 1)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def torchvision_network(depth, width):
    if width == 1:
        return getattr(torchvision.models, f'resnet{depth}')()  # random init, nothing downloaded
    return ScaledResNet(depth, width)


def normalized(images):
    return (images - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def torchvision_features(network, images):
    network.fc = nn.Identity()
    return network(normalized(images))


# ---- the SimCLRv2 conversion's layout ----

def conv(cin, cout, kernel=3, stride=1):
    return nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, bias=False)


def bn_relu(channels, relu=True):
    """Sequential(BN[, ReLU]): its BN's keys are `.0.*`, as in the conversion."""
    return nn.Sequential(nn.BatchNorm2d(channels), *([nn.ReLU()] if relu else []))


class SelectiveKernel(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        mid = max(int(cout * 0.0625), 32)
        self.main_conv = nn.Sequential(conv(cin, 2 * cout, 3, stride), bn_relu(2 * cout))
        self.mixing_conv = nn.Sequential(conv(cout, mid, 1), bn_relu(mid), conv(mid, 2 * cout, 1))

    def forward(self, x):
        branches = torch.stack(torch.chunk(self.main_conv(x), 2, dim=1))
        pooled = branches.sum(0).mean(dim=[2, 3], keepdim=True)
        logits = torch.stack(torch.chunk(self.mixing_conv(pooled), 2, dim=1))
        return (branches * F.softmax(logits, dim=0)).sum(0)


class Projection(nn.Module):
    def __init__(self, cin, cout, stride, sk):
        super().__init__()
        if sk:  # ResNet-D: pool, then a stride-1 1x1 conv
            self.shortcut = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.AvgPool2d(2, stride), conv(cin, cout, 1))
        else:
            self.shortcut = conv(cin, cout, 1, stride)
        self.bn = bn_relu(cout, relu=False)

    def forward(self, x):
        return self.bn(self.shortcut(x))


class SimclrBottleneck(nn.Module):
    def __init__(self, cin, planes, stride, sk, project):
        super().__init__()
        self.projection = Projection(cin, 4 * planes, stride, sk) if project else nn.Identity()
        middle = [SelectiveKernel(planes, planes, stride)] if sk else [conv(planes, planes, 3, stride), bn_relu(planes)]
        self.net = nn.Sequential(conv(cin, planes, 1), bn_relu(planes), *middle, conv(planes, 4 * planes, 1), bn_relu(4 * planes, relu=False))

    def forward(self, x):
        return F.relu(self.projection(x) + self.net(x))


class SimclrBlocks(nn.Module):
    def __init__(self, count, cin, planes, stride, sk):
        super().__init__()
        self.blocks = nn.ModuleList([SimclrBottleneck(cin, planes, stride, sk, True)] + [SimclrBottleneck(4 * planes, planes, 1, sk, False) for _ in range(count - 1)])

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


class SimclrResNet(nn.Module):
    def __init__(self, width, sk):
        super().__init__()
        half = int(64 * width) // 2
        stem = [conv(3, half, 3, 2), bn_relu(half), conv(half, half), bn_relu(half), conv(half, 2 * half)] if sk else [conv(3, 2 * half, 7, 2)]
        groups = [nn.Sequential(*stem, bn_relu(2 * half), nn.MaxPool2d(3, 2, 1))]
        cin = 2 * half
        for g, count in enumerate(BLOCKS[50]):
            planes = int(64 * width) * 2 ** g
            groups.append(SimclrBlocks(count, cin, planes, 1 if g == 0 else 2, sk))
            cin = 4 * planes
        self.net = nn.Sequential(*groups)
        self.fc = nn.Linear(cin, 1000)
        self.channels_out = cin

    def forward(self, x):
        return self.net(x).mean(dim=[2, 3])


def simclr_head(channels, out=128):
    layers = []
    for i in range(3):
        last = i == 2
        layers += [nn.Linear(channels, out if last else channels, bias=False), nn.BatchNorm1d(out if last else channels)]
        if not last:
            layers.append(nn.ReLU())
    head = nn.Module()
    head.layers = nn.ModuleList(layers)
    return head


# ---- realistic batch-norm values, saving, features ----

def calibrate(modules, run, images):
    """
    Random γ and β, then running statistics from a training-mode pass over the test's own images:
    activations stay near unit scale in eval mode, as in a trained network, so the comparison
    measures the conversion rather than float32 rounding amplified by exploding activations.
    """
    generator = torch.Generator().manual_seed(11)
    bns = [m for module in modules for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for m in bns:
            m.weight.uniform_(0.5, 1.5, generator=generator)
            m.bias.normal_(0, 0.1, generator=generator)
            m.momentum = None  # the running statistics become this pass's
        # A random network amplifies every perturbation block after block (float32 rounding too);
        # trained ResNets are tamer, their residual branches ending in small gains, and so is this one.
        for m in residual_branch_ends(modules):
            m.weight.uniform_(0.1, 0.3, generator=generator)
    for module in modules:
        module.train()
    with torch.no_grad():
        run(calibration_set(images))
    for module in modules:
        module.eval()


def residual_branch_ends(modules):
    """The last batch norm of every residual branch (torchvision's bn2/bn3, the conversion's net[-1])."""
    for module in modules:
        for block in module.modules():
            if isinstance(block, (BasicBlock, Bottleneck)):
                yield block.bn3 if isinstance(block, Bottleneck) else block.bn2
            elif isinstance(block, SimclrBottleneck):
                yield block.net[-1][0]


def calibration_set(images):
    """The images flipped and shifted: statistics over more than the few compared images, as a trained network's are."""
    variants = [images, images.flip(3), images.flip(2), images.roll(images.shape[2] // 4, 2), images.roll(images.shape[3] // 3, 3)]
    return torch.cat(variants + [v.flip(2).flip(3) for v in variants[3:]])


def flatten(state, prefix=''):
    out = {}
    for key, value in state.items():
        if isinstance(value, dict):
            out.update(flatten(value, f'{prefix}{key}.'))
        else:
            out[f'{prefix}{key}'] = value
    return out


def save_safetensors(state, file):
    """The documented format: u64 header length, JSON header, raw little-endian bytes."""
    header, chunks, offset = {'__metadata__': {'format': 'pt'}}, [], 0
    dtypes = {torch.float32: 'F32', torch.int64: 'I64'}
    for name, tensor in flatten(state).items():
        data = tensor.detach().contiguous().numpy().tobytes()
        header[name] = {'dtype': dtypes[tensor.dtype], 'shape': list(tensor.shape), 'data_offsets': [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b' ' * (-len(text) % 8)
    with open(file, 'wb') as out:
        out.write(struct.pack('<Q', len(text)) + text)
        for chunk in chunks:
            out.write(chunk)


def main():
    layout, depth, width, sk, prefix, pixels_file, count, size = sys.argv[1:]
    depth, width, sk, count, size = int(depth), float(width), sk == '1', int(count), int(size)
    torch.manual_seed(5)
    with open(pixels_file, 'rb') as f:
        pixels = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
    images = pixels.view(count, size, size, 3).permute(0, 3, 1, 2).float() / 255
    if layout == 'torchvision':
        network = torchvision_network(depth, width)
        calibrate([network], network, normalized(images))
        state = network.state_dict()
        features = lambda x: torchvision_features(network, x)
    else:
        network = SimclrResNet(width, sk)
        head = simclr_head(network.channels_out)
        calibrate([network, head], lambda x: run_head(head, network(x)), images)
        state = {'resnet': network.state_dict(), 'head': head.state_dict()}
        features = network
    torch.save(state, f'{prefix}.pth')
    save_safetensors(state, f'{prefix}.safetensors')
    with torch.no_grad():
        single = features(images)
        network.double()  # the reference: float64, so float32's own rounding shows beside ours
        exact = features(images.double())
    with open(f'{prefix}.features.bin', 'wb') as out:
        out.write(exact.numpy().astype('<f4').tobytes())
    print(json.dumps({'torchFloat32Error': relative_errors(single.double(), exact)}))


def relative_errors(values, reference):
    """Per image: the largest difference over the largest reference value."""
    return [float((v - r).abs().max() / r.abs().max()) for v, r in zip(values, reference)]


def run_head(head, features):
    for layer in head.layers:
        features = layer(features)
    return features


if __name__ == '__main__':
    main()
