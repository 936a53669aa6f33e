"""Swin Transformer (Swin-T) as used by RSP (github.com/ViTAE-Transformer/RSP), own implementation.

Two entry points with the official state_dict names and shapes:

* ``SwinTransformer`` -- the scene classifier of "Scene Recognition/models/swin_transformer.py"
  (keys ``patch_embed.*``, ``layers.<i>.blocks.<j>.*``, ``layers.<i>.downsample.*``, ``norm.*``,
  ``head.*``; shifted blocks also carry the ``attn_mask`` buffer the official code precomputes
  for 224 x 224 input).
* ``SwinBackbone`` -- the mmseg backbone "Semantic Segmentation/mmseg/models/backbones/
  swin_transformer.py" (type ``swin``): the same blocks, ``norm0..norm3`` on the four outputs,
  no ``norm``/``head``; returns the four feature maps (strides 4, 8, 16, 32).

Both accept any input size: the image is padded to a multiple of the patch size, every block pads
its feature map to a multiple of the window and crops back, odd maps are padded before patch
merging, and the shifted-window attention mask is computed in ``forward`` from the padded size
(the official classifier precomputes it for 224 only). All sizes are read from tensors at run
time, so ``torch.jit.script`` gives a module that is correct at every input size.

Shift rule: the official classifier disables the shift in a stage whose map is not larger than
the window (stage 4 at 224: 7 x 7) -- ``shift_small_maps=False`` reproduces that, decided per
forward from the actual map size; the mmseg backbone always shifts odd blocks
(``shift_small_maps=True``). Dropout / drop-path are omitted: inference only.
"""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

SWIN_T_DEPTHS = (2, 2, 6, 2)
SWIN_T_HEADS = (3, 6, 12, 24)


def relative_position_index(ws: int) -> torch.Tensor:
    """(ws*ws, ws*ws) int64 index into the (2ws-1)^2 bias table, as in the Swin reference."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij"))
    flat = coords.flatten(1)
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += ws - 1
    rel[:, :, 1] += ws - 1
    rel[:, :, 0] *= 2 * ws - 1
    return rel.sum(-1)


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) with H, W multiples of ws -> (B * nW, ws*ws, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """(B * nW, ws*ws, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // ws) * (w // ws))
    x = windows.view(b, h // ws, w // ws, ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


def shift_attention_mask(hp: int, wp: int, ws: int, shift: int, device: torch.device) -> torch.Tensor:
    """(nW, ws*ws, ws*ws) mask of 0 / -100 for the cyclically shifted windows of an hp x wp map.

    Same regions as the reference's three h/w slices (0:-ws, -ws:-shift, -shift:), computed with
    tensor ops from the run-time size so nothing is baked into a scripted graph.
    """
    r = torch.arange(hp, device=device)
    c = torch.arange(wp, device=device)
    rid = (r >= hp - ws).to(torch.int64) + (r >= hp - shift).to(torch.int64)
    cid = (c >= wp - ws).to(torch.int64) + (c >= wp - shift).to(torch.int64)
    region = (rid[:, None] * 3 + cid[None, :]).to(torch.float32).view(1, hp, wp, 1)
    mw = window_partition(region, ws).squeeze(-1)
    diff = mw.unsqueeze(1) - mw.unsqueeze(2)
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, out: Optional[int] = None):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim if out is None else out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows with a learned relative position bias."""

    def __init__(self, dim: int, ws: int, num_heads: int):
        super().__init__()
        self.ws = ws
        self.num_heads = num_heads
        self.scale = float((dim // num_heads) ** -0.5)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * ws - 1) * (2 * ws - 1), num_heads))
        self.register_buffer("relative_position_index", relative_position_index(ws))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        b_, n, c = x.shape
        qkv = self.qkv(x).reshape(b_, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        attn = attn + bias.view(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b_ // nw, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, n, n)
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(b_, n, c)
        return self.proj(x)


class SwinBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, ws: int, shifted: bool, mlp_ratio: float = 4.0):
        super().__init__()
        self.ws = ws
        # the shift itself (and whether it applies) is decided per forward by the stage
        self.shifted = shifted
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, ws, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, h: int, w: int, shift: int,
                mask: Optional[torch.Tensor]) -> torch.Tensor:
        b, l, c = x.shape
        ws = self.ws
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        # pad after the norm with zeros, bottom/right, like the reference
        pad_b = (ws - h % ws) % ws
        pad_r = (ws - w % ws) % ws
        x = F.pad(x, [0, 0, 0, pad_r, 0, pad_b])
        hp = h + pad_b
        wp = w + pad_r
        if shift > 0:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        x = self.attn(window_partition(x, ws), mask)
        x = window_reverse(x, ws, hp, wp)
        if shift > 0:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        x = x[:, :h, :w, :].reshape(b, h * w, c)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, l, c = x.shape
        x = x.view(b, h, w, c)
        x = F.pad(x, [0, 0, 0, w % 2, 0, h % 2])  # odd maps: pad one row/column (mmseg)
        x0 = x[:, 0::2, 0::2, :]
        x1 = x[:, 1::2, 0::2, :]
        x2 = x[:, 0::2, 1::2, :]
        x3 = x[:, 1::2, 1::2, :]
        x = torch.cat([x0, x1, x2, x3], -1).view(b, -1, 4 * c)
        return self.reduction(self.norm(x))


class BasicLayer(nn.Module):
    def __init__(self, dim: int, depth: int, num_heads: int, ws: int, downsample: bool,
                 shift_small_maps: bool, mask_resolution: int = 0):
        super().__init__()
        self.ws = ws
        self.shift_small_maps = shift_small_maps
        self.blocks = nn.ModuleList([SwinBlock(dim, num_heads, ws, i % 2 == 1) for i in range(depth)])
        self.has_shifted = depth > 1
        self.downsample = PatchMerging(dim) if downsample else None
        if mask_resolution > ws:
            # The official classifier stores the mask it precomputed for 224 input as a buffer;
            # kept (unused) so its checkpoints load strictly. forward() recomputes masks.
            for blk in self.blocks:
                if blk.shifted:
                    blk.register_buffer("attn_mask", shift_attention_mask(
                        mask_resolution, mask_resolution, ws, ws // 2, torch.device("cpu")))

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        ws = self.ws
        shift = ws // 2
        if not self.shift_small_maps and min(h, w) <= ws:
            shift = 0  # official classifier: no shift when the map fits in one window
        mask: Optional[torch.Tensor] = None
        if shift > 0 and self.has_shifted:
            hp = h + (ws - h % ws) % ws
            wp = w + (ws - w % ws) % ws
            mask = shift_attention_mask(hp, wp, ws, shift, x.device).to(x.dtype)
        for blk in self.blocks:
            if blk.shifted:
                x = blk(x, h, w, shift, mask)
            else:
                x = blk(x, h, w, 0, None)
        return x


class PatchEmbed(nn.Module):
    def __init__(self, patch: int = 4, in_chans: int = 3, dim: int = 96):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch
        h = x.shape[2]
        w = x.shape[3]
        x = F.pad(x, [0, (p - w % p) % p, 0, (p - h % p) % p])
        x = self.proj(x)  # B C Wh Ww
        return x


class _SwinBody(nn.Module):
    def __init__(self, depths: Sequence[int], num_heads: Sequence[int], embed_dim: int, ws: int,
                 shift_small_maps: bool, mask_resolution: int, in_chans: int = 3):
        super().__init__()
        self.num_layers = len(depths)
        self.patch_embed = PatchEmbed(4, in_chans, embed_dim)
        self.layers = nn.ModuleList()
        res = mask_resolution // 4
        for i in range(self.num_layers):
            self.layers.append(BasicLayer(embed_dim * 2 ** i, int(depths[i]), int(num_heads[i]), ws,
                                          i < self.num_layers - 1, shift_small_maps,
                                          res if mask_resolution > 0 else 0))
            res = res // 2
        self.num_features = [embed_dim * 2 ** i for i in range(self.num_layers)]


class SwinTransformer(_SwinBody):
    """RSP Swin-T scene classifier: ``SwinTransformer(num_classes=51)`` (img_size=224, window 7).

    ``img_size`` only sets the shape of the stored, unused ``attn_mask`` buffers (checkpoint
    compatibility); the network runs at any input size.
    """

    def __init__(self, num_classes: int = 51, depths: Sequence[int] = SWIN_T_DEPTHS,
                 num_heads: Sequence[int] = SWIN_T_HEADS, embed_dim: int = 96,
                 window_size: int = 7, img_size: int = 224, in_chans: int = 3):
        super().__init__(depths, num_heads, embed_dim, window_size, False, img_size, in_chans)
        nf = self.num_features[-1]
        self.norm = nn.LayerNorm(nf)
        self.head = nn.Linear(nf, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        h = x.shape[2]
        w = x.shape[3]
        x = self.patch_embed.norm(x.flatten(2).transpose(1, 2))
        for layer in self.layers:
            x = layer(x, h, w)
            if layer.downsample is not None:
                x = layer.downsample(x, h, w)
                h = (h + 1) // 2
                w = (w + 1) // 2
        x = self.norm(x).mean(dim=1)
        return self.head(x)


class SwinBackbone(_SwinBody):
    """RSP mmseg Swin-T backbone (config ``upernet_swin``); forward -> [C1..C4] at strides 4..32."""

    def __init__(self, depths: Sequence[int] = SWIN_T_DEPTHS, num_heads: Sequence[int] = SWIN_T_HEADS,
                 embed_dim: int = 96, window_size: int = 7, in_chans: int = 3):
        super().__init__(depths, num_heads, embed_dim, window_size, True, 0, in_chans)
        if len(depths) != 4:
            raise ValueError("SwinBackbone has 4 stages (depths=%r)" % (list(depths),))
        # separate attributes, not a ModuleList: the official keys are norm0.* .. norm3.*
        self.norm0 = nn.LayerNorm(self.num_features[0])
        self.norm1 = nn.LayerNorm(self.num_features[1])
        self.norm2 = nn.LayerNorm(self.num_features[2])
        self.norm3 = nn.LayerNorm(self.num_features[3])

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self.patch_embed(x)
        h = x.shape[2]
        w = x.shape[3]
        x = self.patch_embed.norm(x.flatten(2).transpose(1, 2))
        outs: List[torch.Tensor] = []
        i = 0
        for layer in self.layers:
            x = layer(x, h, w)
            b = x.shape[0]
            y = self._norm(i, x)
            outs.append(y.view(b, h, w, -1).permute(0, 3, 1, 2).contiguous())
            if layer.downsample is not None:
                x = layer.downsample(x, h, w)
                h = (h + 1) // 2
                w = (w + 1) // 2
            i += 1
        return outs

    def _norm(self, i: int, x: torch.Tensor) -> torch.Tensor:
        # norm<i> are separate attributes (official key names); TorchScript cannot getattr by a
        # run-time string, so dispatch explicitly (4 stages in every RSP configuration).
        if i == 0:
            return self.norm0(x)
        if i == 1:
            return self.norm1(x)
        if i == 2:
            return self.norm2(x)
        return self.norm3(x)
