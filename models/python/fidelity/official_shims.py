"""Minimal stand-ins for the timm / mmcv / mmseg helpers that the official RSP model files import,
so those files can be imported from a checkout (outside this repository) without installing
timm, mmcv or mmsegmentation. Only what the RSP backbones touch at construction / inference
is provided; training-time behaviour (drop path) is implemented for completeness only.

Usage: ``install()`` once, then ``load_scene(official_dir)`` / ``load_seg_backbones(official_dir)``.
"""
import importlib
import math
import os
import sys
import types

import torch
import torch.nn as nn


def _module(name: str, **attrs) -> types.ModuleType:
    m = sys.modules.get(name)
    if m is None:
        m = types.ModuleType(name)
        sys.modules[name] = m
    for k, v in attrs.items():
        setattr(m, k, v)
    if "." in name:
        parent, child = name.rsplit(".", 1)
        setattr(_module(parent), child, m)
    return m


class DropPath(nn.Module):
    def __init__(self, p=0.0):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.p == 0.0 or not self.training:
            return x
        keep = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device) >= self.p
        return x * keep / (1 - self.p)


def to_2tuple(x):
    return tuple(x) if isinstance(x, (list, tuple)) else (x, x)


def trunc_normal_(t, mean=0.0, std=1.0, a=-2.0, b=2.0):
    return nn.init.trunc_normal_(t, mean=mean, std=std, a=a, b=b)


def trunc_normal_init(module, mean=0.0, std=1.0, a=-2.0, b=2.0, bias=0.0):
    trunc_normal_(module.weight, mean, std, a, b)
    if getattr(module, "bias", None) is not None:
        nn.init.constant_(module.bias, bias)


def constant_init(module, val, bias=0.0):
    nn.init.constant_(module.weight, val)
    if getattr(module, "bias", None) is not None:
        nn.init.constant_(module.bias, bias)


def kaiming_init(module, *a, **k):
    nn.init.kaiming_normal_(module.weight)


def build_norm_layer(cfg, num_features, postfix=""):
    t = (cfg or {}).get("type", "BN")
    if t not in ("BN", "SyncBN", "BN2d"):
        raise NotImplementedError(t)
    return "bn" + str(postfix), nn.BatchNorm2d(num_features)


class _Registry:
    def __init__(self):
        self.d = {}

    def register_module(self, *a, **k):
        def deco(cls):
            self.d[cls.__name__] = cls
            return cls
        if a and isinstance(a[0], type):
            return deco(a[0])
        return deco


def _unsupported(*a, **k):
    raise NotImplementedError("not needed for the RSP fidelity check")


def install():
    """Register the shim modules in sys.modules (idempotent)."""
    _module("timm")
    _module("timm.models")
    _module("timm.models.layers", DropPath=DropPath, to_2tuple=to_2tuple, trunc_normal_=trunc_normal_)
    _module("timm.models.helpers", load_pretrained=_unsupported)
    _module("timm.models.registry", register_model=lambda f: f)
    _module("mmcv")
    _module("mmcv.cnn", constant_init=constant_init, kaiming_init=kaiming_init,
            build_norm_layer=build_norm_layer, build_conv_layer=_unsupported,
            build_plugin_layer=_unsupported)
    _module("mmcv.cnn.utils")
    _module("mmcv.cnn.utils.weight_init", constant_init=constant_init, trunc_normal_=trunc_normal_,
            trunc_normal_init=trunc_normal_init)
    _module("mmcv.runner", BaseModule=nn.Module, ModuleList=nn.ModuleList, _load_checkpoint=_unsupported)
    _module("mmseg")
    _module("mmseg.utils", get_root_logger=lambda *a, **k: __import__("logging").getLogger("mmseg"))
    _module("mmseg.models")
    reg = _Registry()
    _module("mmseg.models.builder", BACKBONES=reg, HEADS=reg)


def _package(name: str, path: str) -> types.ModuleType:
    """A namespace package pointing at an official folder, WITHOUT running its __init__.py."""
    pkg = _module(name)
    pkg.__path__ = [path]
    return pkg


def load_scene(official_dir: str):
    """-> (resnet50, SwinTransformer, ViTAE_Window_NoShift_12_basic_stages4_14) from
    "Scene Recognition/models" (the package __init__ / build.py are not executed)."""
    install()
    _package("rsp_scene_models", os.path.join(official_dir, "Scene Recognition", "models"))
    res = importlib.import_module("rsp_scene_models.resnet")
    swin = importlib.import_module("rsp_scene_models.swin_transformer")
    vitae = importlib.import_module("rsp_scene_models.ViTAE_Window_NoShift.models")
    return res.resnet50, swin.SwinTransformer, vitae.ViTAE_Window_NoShift_12_basic_stages4_14


def load_seg_backbones(official_dir: str):
    """-> (Our_ResNet, swin, ViTAE_Window_NoShift_basic) mmseg backbone classes."""
    install()
    root = os.path.join(official_dir, "Semantic Segmentation", "mmseg", "models", "backbones")
    _package("mmseg.models.backbones", root)
    r = importlib.import_module("mmseg.models.backbones.our_resnet")
    s = importlib.import_module("mmseg.models.backbones.swin_transformer")
    v = importlib.import_module("mmseg.models.backbones.ViTAE_Window_NoShift.base_model")
    return r.Our_ResNet, s.swin, v.ViTAE_Window_NoShift_basic


# Arguments of the RSP mmseg configs (configs/_base_/models/upernet_*.py + potsdam overrides).
SEG_BACKBONE_ARGS = {
    "swin": dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
                 mlp_ratio=4.0, qkv_bias=True, qk_scale=None, drop_rate=0.0, attn_drop_rate=0.0,
                 drop_path_rate=0.3, ape=False, patch_norm=True, out_indices=(0, 1, 2, 3),
                 use_checkpoint=False),
    "vitae": dict(RC_tokens_type=["swin", "swin", "transformer", "transformer"],
                  NC_tokens_type=["swin", "swin", "transformer", "transformer"], stages=4,
                  embed_dims=[64, 64, 128, 256], token_dims=[64, 128, 256, 512],
                  downsample_ratios=[4, 2, 2, 2], NC_depth=[2, 2, 8, 2], NC_heads=[1, 2, 4, 8],
                  RC_heads=[1, 1, 2, 4], mlp_ratio=4.0, NC_group=[1, 32, 64, 128],
                  RC_group=[1, 16, 32, 64], img_size=512, window_size=7, drop_path_rate=0.3),
    "resnet": dict(layers=[3, 4, 6, 3], norm_cfg=dict(type="SyncBN", requires_grad=True)),
}
