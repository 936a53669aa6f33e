"""Architecture registry for ``rsi_convert.py``: how to build each supported official model and
what its official preprocessing / tiling hints are.

Each entry: ``build(num_classes, depths=None) -> nn.Module`` (``depths`` shrinks the network for
tests, same code paths), the task, defaults for the metadata document and the official source.
Segmentation models are an mmseg EncoderDecoder (``upernet.py``): UPerHead + FCN auxiliary head
on the RSP backbones, with the in_channels of the official RSP mmseg configs.
"""
from typing import Callable, Dict, List, Optional, Sequence

import torch.nn as nn

RSP_URL = "https://github.com/ViTAE-Transformer/RSP"
RVSA_URL = "https://github.com/ViTAE-Transformer/Remote-Sensing-RVSA"

# ImageNet statistics on 0..1 (RSP scene code: timm IMAGENET_DEFAULT_MEAN/STD after ToTensor)
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# mmseg img_norm_cfg of the RSP configs: mean 123.675/116.28/103.53, std 58.395/57.12/57.375 on
# 0..255, to_rgb=True; expressed with scale 1/255 on 0..1 (they are the same numbers / 255)
MMSEG_MEAN = [123.675 / 255.0, 116.28 / 255.0, 103.53 / 255.0]
MMSEG_STD = [58.395 / 255.0, 57.12 / 255.0, 57.375 / 255.0]


class Arch:
    def __init__(self, name: str, task: str, build: Callable[..., nn.Module], source: str,
                 description: str, mean: List[float], std: List[float], tile_size: int,
                 multiple_of: int, halo: int, default_depths: Optional[Sequence[int]],
                 backbone: str, config: str, url: str = RSP_URL, license: str = "MIT (RSP repository licence; see the checkpoint's source)"):
        self.name = name
        self.task = task
        self.build = build
        self.source = source
        self.description = description
        self.mean = mean
        self.std = std
        self.tile_size = tile_size
        self.multiple_of = multiple_of
        self.halo = halo
        self.default_depths = default_depths
        self.backbone = backbone
        self.config = config
        self.url = url
        self.license = license


def _scene_resnet(num_classes: int, depths=None):
    from .resnet import R50_DEPTHS, ResNet50
    return ResNet50(num_classes, depths or R50_DEPTHS)


def _scene_swin(num_classes: int, depths=None):
    from .swin import SWIN_T_DEPTHS, SwinTransformer
    return SwinTransformer(num_classes, depths or SWIN_T_DEPTHS)


def _scene_vitae(num_classes: int, depths=None):
    from .vitae_v2 import VITAE_S_DEPTHS, ViTAEv2
    return ViTAEv2(num_classes, depths or VITAE_S_DEPTHS, window_size=7)


def _upernet(backbone: nn.Module, in_channels: List[int], num_classes: int, size_multiple: int):
    from .upernet import EncoderDecoder, FCNHead, UPerHead
    # decode/auxiliary heads exactly as configs/_base_/models/upernet_*.py of RSP
    head = UPerHead(in_channels=in_channels, channels=512, num_classes=num_classes,
                    pool_scales=(1, 2, 3, 6))
    aux = FCNHead(in_channels=in_channels[2], channels=256, num_classes=num_classes, in_index=2)
    return EncoderDecoder(backbone, head, aux, size_multiple=size_multiple)


def _seg_resnet(num_classes: int, depths=None):
    from .resnet import R50_DEPTHS, ResNetBackbone
    # ResNet and Swin accept any size (the mmseg backbones pad internally where needed): no padding,
    # so whole-image results equal the official mmseg inference at every size.
    return _upernet(ResNetBackbone(depths or R50_DEPTHS), [256, 512, 1024, 2048], num_classes, 1)


def _seg_swin(num_classes: int, depths=None):
    from .swin import SWIN_T_DEPTHS, SwinBackbone
    return _upernet(SwinBackbone(depths or SWIN_T_DEPTHS), [96, 192, 384, 768], num_classes, 1)


def _seg_vitae(num_classes: int, depths=None):
    from .vitae_v2 import VITAE_S_DEPTHS, ViTAEv2Backbone
    # the official ViTAE backbone needs multiples of 32
    return _upernet(ViTAEv2Backbone(depths or VITAE_S_DEPTHS), [64, 128, 256, 512], num_classes, 32)


def _seg_rvsa(num_classes: int, depths=None, img_size: int = 512, kvdiff: bool = False,
              vitae: bool = False):
    from .rvsa import build_rvsa_upernet  # provided by the RVSA module (lazy: optional here)
    depth = int(depths[0]) if depths else 12
    return build_rvsa_upernet(num_classes=num_classes, depth=depth, img_size=img_size, kvdiff=kvdiff,
                              vitae=vitae)


def rvsa_kwargs(sd) -> dict:
    """img_size / kvdiff / vitae of an RVSA checkpoint, from its keys (any wrapper prefix):
    pos_embed has (img_size/16)^2 tokens; the RVSA-diamond variant has separate key/value
    sampling branches (``attn.sampling_offsets_k``); the ViTAE-B backbone
    (``ViTAE_NC_Win_RVSA_V3_WSZ7``) has NormalCell blocks with a convolutional ``PCM`` branch and
    ``attn.q_bias`` / ``attn.v_bias`` instead of ``attn.qkv.bias`` (key names recorded from the
    official code in models/python/fidelity/reference/rvsa_vitb_upernet_loveda_keys.json)."""
    keys = [k for k in sd if "blocks." in k]
    kw = {"kvdiff": any(".attn.sampling_offsets_k." in k for k in keys),
          "vitae": any(".PCM." in k or k.endswith(".attn.q_bias") for k in keys)}
    pe = None
    for k in sd:
        if k == "backbone.pos_embed" or k.endswith(".backbone.pos_embed"):
            pe = sd[k]
            break
    if pe is not None and pe.dim() == 3:
        grid = int(round(pe.shape[1] ** 0.5))
        if grid * grid == pe.shape[1]:
            kw["img_size"] = grid * 16
    return kw


def rvsa_description(kw: dict) -> str:
    """Arch description of the RVSA variant ``rvsa_kwargs`` found."""
    name = "ViTAE-B" if kw.get("vitae") else "ViT-B"
    variant = "RVSA-kvdiff (separate key/value sampling)" if kw.get("kvdiff") else "RVSA"
    return "UperNet with the %s %s backbone" % (variant, name)


_SEG_SOURCE = "Semantic Segmentation (mmseg UperNet)"
# tile.multiple_of: every model here accepts any H x W (ViTAE pads to 32 inside, the ViTAE
# UperNet pads in EncoderDecoder); 32 for the ViTAE UperNet is an efficiency hint (no padding).
# Official RSP segmentation test_cfg: mode='slide', crop 512, stride 384 -> 128 px overlap;
# halo = overlap / 2 is what that tiling discards on each side.
REGISTRY: Dict[str, Arch] = {
    "rsp-resnet50": Arch("rsp-resnet50", "scene", _scene_resnet, "Scene Recognition/models/resnet.py",
                         "RSP ResNet-50 MillionAID scene classifier (51 classes)", IMAGENET_MEAN,
                         IMAGENET_STD, 224, 1, 0, (3, 4, 6, 3), "resnet50", "resnet50(num_classes=51)"),
    "rsp-swin-t": Arch("rsp-swin-t", "scene", _scene_swin, "Scene Recognition/models/swin_transformer.py",
                       "RSP Swin-T MillionAID scene classifier (51 classes)", IMAGENET_MEAN,
                       IMAGENET_STD, 224, 1, 0, (2, 2, 6, 2), "swin_t",
                       "configs/swin_tiny_patch4_window7_224.yaml"),
    "rsp-vitaev2-s": Arch("rsp-vitaev2-s", "scene", _scene_vitae,
                          "Scene Recognition/models/ViTAE_Window_NoShift",
                          "RSP ViTAEv2-S MillionAID scene classifier (51 classes)", IMAGENET_MEAN,
                          IMAGENET_STD, 224, 1, 0, (2, 2, 8, 2), "vitaev2_s",
                          "ViTAE_Window_NoShift_12_basic_stages4_14(img_size=224, num_classes=51, window_size=7)"),
    "rsp-resnet50-upernet": Arch("rsp-resnet50-upernet", "segmentation", _seg_resnet, _SEG_SOURCE,
                                 "UperNet with the RSP ResNet-50 backbone", MMSEG_MEAN, MMSEG_STD,
                                 512, 1, 64, (3, 4, 6, 3), "resnet50",
                                 "configs/upernet/upernet_our_r50_512x512_80k_potsdam.py"),
    "rsp-swin-t-upernet": Arch("rsp-swin-t-upernet", "segmentation", _seg_swin, _SEG_SOURCE,
                               "UperNet with the RSP Swin-T backbone", MMSEG_MEAN, MMSEG_STD,
                               512, 1, 64, (2, 2, 6, 2), "swin_t",
                               "configs/swin/upernet_swin_tiny_patch4_window7_512x512_80k_potsdam.py"),
    "rsp-vitaev2-s-upernet": Arch("rsp-vitaev2-s-upernet", "segmentation", _seg_vitae, _SEG_SOURCE,
                                  "UperNet with the RSP ViTAEv2-S backbone", MMSEG_MEAN, MMSEG_STD,
                                  512, 32, 64, (2, 2, 8, 2), "vitaev2_s",
                                  "configs/vitae_win/upernet_vitae_win_window7_512x512_80k_potsdam_epoch100.py"),
    "rvsa-vitb-upernet": Arch("rvsa-vitb-upernet", "segmentation", _seg_rvsa, "Semantic Segmentation (mmseg UperNet)",
                              "UperNet with the RVSA ViT-B / ViTAE-B backbone", MMSEG_MEAN, MMSEG_STD,
                              512, 32, 64, (12,), "rvsa_vitb", "RVSA UperNet config", url=RVSA_URL),
}

# known mmseg datasets of the RSP/RVSA segmentation checkpoints: (gsd hint in metres, note)
DATASET_HINTS = {
    "potsdam": (0.05, "ISPRS Potsdam true orthophotos, 5 cm"),
    "loveda": (0.3, "LoveDA (Google Earth imagery of Nanjing, Changzhou, Wuhan), 0.3 m"),
    "isaid": (0.5, "iSAID (DOTA imagery, GSD varies, roughly 0.1-4.5 m)"),
}


def get(name: str) -> Arch:
    if name not in REGISTRY:
        raise KeyError("unknown architecture %r (known: %s)" % (name, ", ".join(sorted(REGISTRY))))
    return REGISTRY[name]
