"""UPerNet / FCN decode heads and an encoder-decoder wrapper, key-compatible with mmseg 0.x.

State_dict names follow mmsegmentation 0.x (UPerHead, FCNHead, BaseDecodeHead) built from
mmcv's ConvModule with norm_cfg=BN/SyncBN: a ConvModule is `.conv` (no bias, because a
norm follows) + `.bn` + a parameter-free `.activate` ReLU. Checkpoints saved by mmseg
(`state_dict` with `backbone.*`, `decode_head.*`, `auxiliary_head.*`) therefore load with
strict=True. Everything here is TorchScript-scriptable: sizes are read from tensors at run
time, never baked in.
"""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvModule(nn.Module):
    """mmcv ConvModule(conv -> BN -> ReLU) with its key names (conv.*, bn.*)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)  # SyncBN in the configs == BN at inference
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class _PoolConv(nn.Sequential):
    """One PPM branch; an nn.Sequential so the keys are `<i>.1.conv.weight` as in mmseg."""

    def __init__(self, scale: int, in_channels: int, channels: int):
        super().__init__(nn.AdaptiveAvgPool2d(scale), ConvModule(in_channels, channels, 1))


class UPerHead(nn.Module):
    """UPerNet head (PPM on the last level + FPN), mmseg 0.x `UPerHead`.

    forward(List[Tensor]) -> logits at the resolution of the first input (1/4 for UPerNet).
    """

    def __init__(self, in_channels: List[int], channels: int = 512, num_classes: int = 19,
                 pool_scales: Sequence[int] = (1, 2, 3, 6), dropout_ratio: float = 0.1,
                 align_corners: bool = False):
        super().__init__()
        self.in_channels = list(in_channels)
        self.channels = channels
        self.num_classes = num_classes
        self.align_corners = align_corners
        top = self.in_channels[-1]
        self.psp_modules = nn.ModuleList([_PoolConv(s, top, channels) for s in pool_scales])
        self.bottleneck = ConvModule(top + len(pool_scales) * channels, channels, 3, padding=1)
        self.lateral_convs = nn.ModuleList(
            [ConvModule(c, channels, 1) for c in self.in_channels[:-1]])
        self.fpn_convs = nn.ModuleList(
            [ConvModule(channels, channels, 3, padding=1) for _ in self.in_channels[:-1]])
        self.fpn_bottleneck = ConvModule(len(self.in_channels) * channels, channels, 3, padding=1)
        # Parameter-free, identity in eval(); kept so train/eval behaviour matches mmseg.
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)

    def psp_forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [x]
        for ppm in self.psp_modules:
            outs.append(F.interpolate(ppm(x), size=x.shape[2:], mode="bilinear",
                                      align_corners=self.align_corners))
        return self.bottleneck(torch.cat(outs, dim=1))

    def forward(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        laterals: List[torch.Tensor] = []
        for i, l_conv in enumerate(self.lateral_convs):
            laterals.append(l_conv(inputs[i]))
        laterals.append(self.psp_forward(inputs[len(inputs) - 1]))
        n = len(laterals)
        for i in range(n - 1, 0, -1):  # top-down path
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[2:], mode="bilinear",
                align_corners=self.align_corners)
        outs: List[torch.Tensor] = []
        for i, f_conv in enumerate(self.fpn_convs):
            outs.append(f_conv(laterals[i]))
        outs.append(laterals[n - 1])
        for i in range(n - 1, 0, -1):
            outs[i] = F.interpolate(outs[i], size=outs[0].shape[2:], mode="bilinear",
                                    align_corners=self.align_corners)
        x = self.fpn_bottleneck(torch.cat(outs, dim=1))
        return self.conv_seg(self.dropout(x))


class FCNHead(nn.Module):
    """mmseg 0.x `FCNHead` (used as the auxiliary head): convs.<i>.*, [conv_cat.*], conv_seg.*."""

    def __init__(self, in_channels: int, channels: int = 256, num_classes: int = 19,
                 in_index: int = 2, num_convs: int = 1, concat_input: bool = False,
                 kernel_size: int = 3, dropout_ratio: float = 0.1):
        super().__init__()
        assert num_convs >= 1
        self.in_index = in_index
        self.concat_input = concat_input
        pad = kernel_size // 2
        convs = [ConvModule(in_channels, channels, kernel_size, padding=pad)]
        for _ in range(num_convs - 1):
            convs.append(ConvModule(channels, channels, kernel_size, padding=pad))
        self.convs = nn.Sequential(*convs)
        self.conv_cat = (ConvModule(in_channels + channels, channels, kernel_size, padding=pad)
                         if concat_input else nn.Identity())
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)

    def forward(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        x = inputs[self.in_index]
        out = self.convs(x)
        if self.concat_input:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return self.conv_seg(self.dropout(out))


class EncoderDecoder(nn.Module):
    """mmseg-style EncoderDecoder for whole-tile inference on arbitrary H x W.

    The input is zero-padded bottom/right to a multiple of `size_multiple` (mmseg's Pad
    transform pads normalised images with 0 the same way), the logits are upsampled
    bilinearly (align_corners=False, as mmseg's encode_decode) to the padded size and
    cropped back, so the output is N x classes x H x W. The pad amounts are computed from
    the tensor shape inside forward, so a scripted model is correct at every size.
    The auxiliary head is kept only so official checkpoints load strictly; it is not run.
    """

    def __init__(self, backbone: nn.Module, decode_head: nn.Module,
                 auxiliary_head: Optional[nn.Module] = None, size_multiple: int = 32):
        super().__init__()
        self.backbone = backbone
        self.decode_head = decode_head
        if auxiliary_head is not None:
            self.auxiliary_head = auxiliary_head
        self.size_multiple = int(size_multiple)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[2]
        w = x.shape[3]
        m = self.size_multiple
        ph = (m - h % m) % m
        pw = (m - w % m) % m
        if ph > 0 or pw > 0:
            x = F.pad(x, [0, pw, 0, ph])
        feats: List[torch.Tensor] = self.backbone(x)
        out = self.decode_head(feats)
        out = F.interpolate(out, size=[h + ph, w + pw], mode="bilinear", align_corners=False)
        return out[:, :, :h, :w]
