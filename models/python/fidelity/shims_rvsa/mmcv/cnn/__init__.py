"""ConvModule with mmcv's structure and names: conv (bias only without norm), `bn`, `activate`."""
import torch.nn as nn

from ..utils import Registry

MODELS = Registry("models")


class ConvModule(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias="auto", conv_cfg=None, norm_cfg=None,
                 act_cfg=dict(type="ReLU"), inplace=True, **kwargs):
        super().__init__()
        assert conv_cfg is None
        with_norm = norm_cfg is not None
        if bias == "auto":
            bias = not with_norm
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=padding, dilation=dilation, groups=groups, bias=bias)
        self.norm_name = None
        if with_norm:
            assert norm_cfg["type"] in ("BN", "SyncBN", "BN2d"), norm_cfg
            self.norm_name = "bn"  # mmcv's abbreviation for (Sync)BatchNorm
            self.add_module("bn", nn.BatchNorm2d(out_channels))
        self.activate = None
        if act_cfg is not None:
            assert act_cfg["type"] == "ReLU", act_cfg
            self.activate = nn.ReLU(inplace=inplace)

    def forward(self, x, activate=True, norm=True):
        x = self.conv(x)
        if norm and self.norm_name:
            x = self.bn(x)
        if activate and self.activate is not None:
            x = self.activate(x)
        return x
