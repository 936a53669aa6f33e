"""ResNet-50 as used by RSP (github.com/ViTAE-Transformer/RSP), own implementation.

The RSP scene classifier ("Scene Recognition/models/resnet.py", ``resnet50(num_classes=51)``) is
the torchvision-style ResNet v1.5 (stride on the 3x3 conv), keys ``conv1``, ``bn1``,
``layer<i>.<j>.{conv1,bn1,conv2,bn2,conv3,bn3,downsample.0,downsample.1}``, ``fc``. The mmseg
backbone ``Our_ResNet`` ("Semantic Segmentation/mmseg/models/backbones/our_resnet.py") has the same
keys without ``fc`` and returns the outputs of layer1..layer4 (strides 4, 8, 16, 32).
``depths`` (blocks per stage, default 3, 4, 6, 3) lets tests build reduced networks.
"""
from typing import List, Sequence

import torch
import torch.nn as nn

R50_DEPTHS = (3, 4, 6, 3)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: bool = False):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False),
                                         nn.BatchNorm2d(out)) if downsample else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


def _stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [Bottleneck(inplanes, planes, stride,
                         downsample=stride != 1 or inplanes != planes * Bottleneck.expansion)]
    for _ in range(1, blocks):
        layers.append(Bottleneck(planes * Bottleneck.expansion, planes))
    return nn.Sequential(*layers)


class _ResNetBody(nn.Module):
    def __init__(self, depths: Sequence[int], in_chans: int = 3):
        super().__init__()
        if len(depths) != 4:
            raise ValueError("ResNet has 4 stages (depths=%r)" % (list(depths),))
        self.conv1 = nn.Conv2d(in_chans, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _stage(64, 64, int(depths[0]), 1)
        self.layer2 = _stage(256, 128, int(depths[1]), 2)
        self.layer3 = _stage(512, 256, int(depths[2]), 2)
        self.layer4 = _stage(1024, 512, int(depths[3]), 2)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))


class ResNet50(_ResNetBody):
    """RSP ResNet-50 scene classifier (51 MillionAID classes by default)."""

    def __init__(self, num_classes: int = 51, depths: Sequence[int] = R50_DEPTHS, in_chans: int = 3):
        super().__init__(depths, in_chans)
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.fc(torch.flatten(x.mean(dim=(2, 3), keepdim=True), 1))


class ResNetBackbone(_ResNetBody):
    """RSP mmseg ``Our_ResNet`` backbone; forward -> [C2, C3, C4, C5] (256..2048 channels)."""

    def __init__(self, depths: Sequence[int] = R50_DEPTHS, in_chans: int = 3):
        super().__init__(depths, in_chans)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x1 = self.layer1(self.stem(x))
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        x4 = self.layer4(x3)
        return [x1, x2, x3, x4]


def resnet50(num_classes: int = 51, depths: Sequence[int] = R50_DEPTHS) -> ResNet50:
    return ResNet50(num_classes=num_classes, depths=depths)
