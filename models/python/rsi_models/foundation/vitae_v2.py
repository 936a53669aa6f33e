"""ViTAEv2-S ("ViTAE_Window_NoShift_12_basic_stages4_14") as used by RSP, own implementation.

Matches the state_dict names and shapes of the official code in
github.com/ViTAE-Transformer/RSP, "Scene Recognition/models/ViTAE_Window_NoShift" (scene
classifier, ``head.*``) and "Semantic Segmentation/mmseg/models/backbones/ViTAE_Window_NoShift"
(mmseg backbone ``ViTAE_Window_NoShift_basic``: ``norm0..norm3.*`` exist but are not applied, as
in the official forward; outputs are the raw stage tokens at strides 4, 8, 16, 32).

Structure (RSP ViTAEv2-S): 4 stages; each = a reduction cell (RC: multi-dilation conv pyramid
"PRM" + attention + parallel conv branch "PCM") followed by normal cells (NC: attention + PCM +
MLP). Stages 1-2 use non-overlapping 7 x 7 window attention without shift and without relative
position bias (the bias table exists in the checkpoint but is unused, relative_pos=False);
stages 3-4 use global attention. Token dims 64/128/256/512, NC depths 2/2/8/2.

Sizes: the official code assumes every stage halves the map exactly, i.e. inputs that are a
multiple of 32; the classifier additionally hard-codes 224. Here the input is zero-padded
bottom/right to a multiple of 32 (a no-op for official sizes), windows pad to a multiple of 7
inside the model (as the official mmseg version does) and all sizes come from tensors, so
scripted modules work at any size.
"""
import math
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .swin import Mlp, relative_position_index, window_partition, window_reverse

VITAE_S_DEPTHS = (2, 2, 8, 2)
_EMBED = (64, 64, 128, 256)
_TOKENS = (64, 128, 256, 512)
_RATIOS = (4, 2, 2, 2)
_KERNELS = (7, 3, 3, 3)
_DILATIONS = ((1, 2, 3, 4), (1, 2, 3), (1, 2), (1, 2))
_RC_HEADS = (1, 1, 2, 4)
_NC_HEADS = (1, 2, 4, 8)
_RC_GROUPS = (1, 16, 32, 64)
_NC_GROUPS = (1, 32, 64, 128)
_WINDOWED = (True, True, False, False)  # tokens_type 'swin', 'swin', 'transformer', 'transformer'
SIZE_MULTIPLE = 32


class LocalWindowAttention(nn.Module):
    """Window attention (in_dim -> out_dim) on B x N x C tokens of an h x w map, no shift.

    ``relative_position_bias_table`` / ``relative_position_index`` are kept for the official keys;
    RSP trained with relative_pos=False, so they are not used.
    """

    def __init__(self, in_dim: int, out_dim: int, num_heads: int, ws: int = 7):
        super().__init__()
        self.ws = ws
        self.num_heads = num_heads
        self.scale = float((out_dim // num_heads) ** -0.5)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * ws - 1) * (2 * ws - 1), num_heads))
        self.register_buffer("relative_position_index", relative_position_index(ws))
        self.qkv = nn.Linear(in_dim, out_dim * 3)
        self.proj = nn.Linear(out_dim, out_dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        ws = self.ws
        pad_b = (ws - h % ws) % ws
        pad_r = (ws - w % ws) % ws
        x = F.pad(x.view(b, h, w, c), [0, 0, 0, pad_r, 0, pad_b])  # zeros, after the norm
        xw = window_partition(x, ws)
        b_, m, _ = xw.shape
        qkv = self.qkv(xw).reshape(b_, m, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        y = self.proj((attn @ v).transpose(1, 2).reshape(b_, m, -1))
        y = window_reverse(y, ws, h + pad_b, w + pad_r)
        return y[:, :h, :w, :].reshape(b, h * w, -1)


class GlobalAttention(nn.Module):
    """Plain multi-head self-attention (NormalCell 'transformer'); h, w unused."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.scale = float((dim // num_heads) ** -0.5)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = ((qkv[0] @ qkv[1].transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ qkv[2]).transpose(1, 2).reshape(b, n, c))


class TokenAttention(nn.Module):
    """T2T-style attention (in_dim -> out_dim, no qkv bias) with the v skip connection
    (reduction cell 'transformer'); h, w unused."""

    def __init__(self, in_dim: int, out_dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.out_dim = out_dim
        self.scale = float((out_dim // num_heads) ** -0.5)
        self.qkv = nn.Linear(in_dim, out_dim * 3, bias=False)
        self.proj = nn.Linear(out_dim, out_dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.out_dim // self.num_heads)
        qkv = qkv.permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        y = self.proj((attn @ v).transpose(1, 2).reshape(b, n, self.out_dim))
        return v.permute(0, 2, 1, 3).reshape(b, n, self.out_dim) + y


class _RCAttnBlock(nn.Module):
    """The reduction cell's ``attn`` submodule (norm1 / attn / norm2 / mlp), official names."""

    def __init__(self, in_dim: int, out_dim: int, num_heads: int, windowed: bool, ws: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(in_dim)  # default eps 1e-5 in the official RC
        if windowed:
            self.attn = LocalWindowAttention(in_dim, out_dim, num_heads, ws)
        else:
            self.attn = TokenAttention(in_dim, out_dim, num_heads)
        self.norm2 = nn.LayerNorm(out_dim)
        self.mlp = Mlp(out_dim, out_dim)  # mlp_ratio 1.0 in the reduction cells


class PRM(nn.Module):
    """Pyramid reduction: parallel dilated strided convs, concatenated along channels."""

    def __init__(self, in_chans: int, embed_dim: int, kernel: int, stride: int, dilations: Sequence[int]):
        super().__init__()
        self.convs = nn.ModuleList()
        for d in dilations:
            pad = int(math.ceil(((kernel - 1) * d + 1 - stride) / 2))
            self.convs.append(nn.Sequential(
                nn.Conv2d(in_chans, embed_dim, kernel, stride=stride, padding=pad, dilation=d), nn.GELU()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys: List[torch.Tensor] = []
        for conv in self.convs:
            ys.append(conv(x))
        return torch.cat(ys, dim=1)  # same channel order as the official stack/permute/reshape


def _pcm(cin: int, cmid: int, cout: int, strides: Sequence[int], groups: int) -> nn.Sequential:
    # weights at indices 0, 1, 3, 4, 6: the official nn.Sequential layout
    return nn.Sequential(
        nn.Conv2d(cin, cmid, 3, stride=strides[0], padding=1, groups=groups), nn.BatchNorm2d(cmid),
        nn.SiLU(inplace=True),
        nn.Conv2d(cmid, cmid, 3, stride=strides[1], padding=1, groups=groups), nn.BatchNorm2d(cmid),
        nn.SiLU(inplace=True),
        nn.Conv2d(cmid, cout, 3, stride=strides[2], padding=1, groups=groups))


class ReductionCell(nn.Module):
    def __init__(self, in_chans: int, embed_dim: int, token_dim: int, ratio: int, kernel: int,
                 dilations: Sequence[int], heads: int, groups: int, windowed: bool, ws: int):
        super().__init__()
        strides = []
        residual = ratio // 2
        for _ in range(3):
            strides.append(2 if residual > 0 else 1)
            residual = residual // 2
        self.PCM = _pcm(in_chans, embed_dim, token_dim, strides, groups)
        self.PRM = PRM(in_chans, embed_dim, kernel, ratio, dilations)
        self.attn = _RCAttnBlock(embed_dim * len(dilations), token_dim, heads, windowed, ws)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, int, int]:
        """x: B x C x H x W -> (tokens B x N x token_dim, h, w)."""
        y = self.PRM(x)
        b = y.shape[0]
        h = y.shape[2]
        w = y.shape[3]
        y = y.flatten(2).transpose(1, 2)
        t = self.attn.attn(self.attn.norm1(y), h, w)
        conv = self.PCM(x).permute(0, 2, 3, 1).reshape(b, h * w, -1)
        t = t + conv
        return t + self.attn.mlp(self.attn.norm2(t)), h, w


class NormalCell(nn.Module):
    def __init__(self, dim: int, heads: int, groups: int, windowed: bool, ws: int, mlp_ratio: float = 4.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        if windowed:
            self.attn = LocalWindowAttention(dim, dim, heads, ws)
        else:
            self.attn = GlobalAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)
        self.PCM = nn.Sequential(
            nn.Conv2d(dim, hidden, 3, 1, 1, 1, groups), nn.BatchNorm2d(hidden), nn.SiLU(inplace=True),
            nn.Conv2d(hidden, dim, 3, 1, 1, 1, groups), nn.BatchNorm2d(dim), nn.SiLU(inplace=True),
            nn.Conv2d(dim, dim, 3, 1, 1, 1, groups))

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        conv = self.PCM(x.view(b, h, w, c).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).reshape(b, n, c)
        x = x + self.attn(self.norm1(x), h, w) + conv
        return x + self.mlp(self.norm2(x))


class BasicLayer(nn.Module):
    def __init__(self, stage: int, in_chans: int, depth: int, ws: int):
        super().__init__()
        i = stage
        self.RC = ReductionCell(in_chans, _EMBED[i], _TOKENS[i], _RATIOS[i], _KERNELS[i], _DILATIONS[i],
                                _RC_HEADS[i], _RC_GROUPS[i], _WINDOWED[i], ws)
        self.NC = nn.ModuleList([NormalCell(_TOKENS[i], _NC_HEADS[i], _NC_GROUPS[i], _WINDOWED[i], ws)
                                 for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, int, int]:
        t, h, w = self.RC(x)
        for nc in self.NC:
            t = nc(t, h, w)
        return t, h, w


class _ViTAEBody(nn.Module):
    def __init__(self, depths: Sequence[int], window_size: int, in_chans: int = 3):
        super().__init__()
        if len(depths) != 4:
            raise ValueError("ViTAEv2 has 4 stages (depths=%r)" % (list(depths),))
        layers = []
        cin = in_chans
        for i in range(4):
            layers.append(BasicLayer(i, cin, int(depths[i]), window_size))
            cin = _TOKENS[i]
        self.layers = nn.ModuleList(layers)
        self.size_multiple = SIZE_MULTIPLE

    def stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Stage outputs as B x C x h x w maps (input zero-padded to a multiple of 32)."""
        m = self.size_multiple
        ph = (m - x.shape[2] % m) % m
        pw = (m - x.shape[3] % m) % m
        if ph > 0 or pw > 0:
            x = F.pad(x, [0, pw, 0, ph])
        outs: List[torch.Tensor] = []
        for layer in self.layers:
            t, h, w = layer(x)
            x = t.view(t.shape[0], h, w, -1).permute(0, 3, 1, 2)
            outs.append(x)
        return outs


class ViTAEv2(_ViTAEBody):
    """RSP ViTAEv2-S scene classifier: mean of the stage-4 tokens -> ``head``."""

    def __init__(self, num_classes: int = 51, depths: Sequence[int] = VITAE_S_DEPTHS,
                 window_size: int = 7, in_chans: int = 3):
        super().__init__(depths, window_size, in_chans)
        self.head = nn.Linear(_TOKENS[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.stages(x)[-1]
        return self.head(f.mean(dim=(2, 3)))


class ViTAEv2Backbone(_ViTAEBody):
    """RSP mmseg ViTAEv2-S backbone; forward -> 4 maps (64, 128, 256, 512 channels)."""

    def __init__(self, depths: Sequence[int] = VITAE_S_DEPTHS, window_size: int = 7, in_chans: int = 3):
        super().__init__(depths, window_size, in_chans)
        # present in the official backbone (and its checkpoints) but never applied
        self.norm0 = nn.LayerNorm(_TOKENS[0], eps=1e-6)
        self.norm1 = nn.LayerNorm(_TOKENS[1], eps=1e-6)
        self.norm2 = nn.LayerNorm(_TOKENS[2], eps=1e-6)
        self.norm3 = nn.LayerNorm(_TOKENS[3], eps=1e-6)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return self.stages(x)


def ViTAE_Window_NoShift_12_basic_stages4_14(img_size: int = 224, num_classes: int = 51,
                                              window_size: int = 7,
                                              depths: Sequence[int] = VITAE_S_DEPTHS) -> ViTAEv2:
    """Official constructor name; ``img_size`` is accepted for call compatibility only."""
    return ViTAEv2(num_classes=num_classes, depths=depths, window_size=window_size)
