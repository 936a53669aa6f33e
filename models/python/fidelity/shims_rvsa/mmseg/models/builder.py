"""mmseg 0.x builder API over one shared registry (as mmseg 0.21 does)."""
import torch.nn as nn

from mmcv.utils import Registry

MODELS = Registry("models")
BACKBONES = NECKS = HEADS = LOSSES = SEGMENTORS = MODELS


@LOSSES.register_module()
class CrossEntropyLoss(nn.Module):
    """Parameter-free placeholder: inference never computes a loss."""

    def __init__(self, loss_name="loss_ce", **kwargs):
        super().__init__()
        self._loss_name = loss_name

    @property
    def loss_name(self):
        return self._loss_name


def build_backbone(cfg):
    return BACKBONES.build(cfg)


def build_neck(cfg):
    return NECKS.build(cfg)


def build_head(cfg):
    return HEADS.build(cfg)


def build_loss(cfg):
    return LOSSES.build(cfg)


def build_segmentor(cfg, train_cfg=None, test_cfg=None):
    return SEGMENTORS.build(cfg)
