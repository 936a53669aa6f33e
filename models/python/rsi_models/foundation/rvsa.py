"""ViT-B with Rotated Varied-Size window Attention (RVSA) + UperNet, key-compatible with the
official RVSA segmentation code (github ViTAE-Transformer/Remote-Sensing-RVSA, backbone
`ViT_Win_RVSA_V3_WSZ7` / `ViT_Win_RVSA_V3_KVDIFF_WSZ7`, and the ViTAE-B variants
`ViTAE_NC_Win_RVSA_V3_WSZ7` / `..._KVDIFF_WSZ7`; mmseg 0.x UPerHead + FCNHead).

Written from the paper/official behaviour, not copied. Structure (official config):
  patch 16, embed 768, depth 12, 12 heads, MLP 4x, qkv bias, LayerNorm eps 1e-6, absolute
  position embedding without cls token; blocks with (i+1) % 3 != 0 use RVSA with 7x7
  windows, blocks 2, 5, 8, 11 use full attention with decomposed relative positions sized
  for the training grid; features of blocks 3, 5, 7, 11 go through fpn1 (4x up), fpn2
  (2x up), fpn3 (identity), fpn4 (2x max-pool) -> UPerHead(512) + FCNHead(256, in_index 2).

Beyond the official code (which only runs at its training size), the backbone accepts any
token grid: the absolute position embedding is resized bicubically at run time, and the
full-attention relative-position tables are indexed with distances clamped to the trained
range (identical to the official lookup at the training size; at a smaller grid this is an
exact centre crop, i.e. the same token distances mean the same thing; larger distances reuse
the edge entries). Numerical quirks of the official RVSA forward are kept on purpose so the
official checkpoints behave identically (see comments marked "official").
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .upernet import EncoderDecoder, FCNHead, UPerHead


def add_decomposed_rel_pos(attn: torch.Tensor, q: torch.Tensor, q_h: int, q_w: int, k_h: int,
                           k_w: int, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor) -> torch.Tensor:
    """attn[b,n,(qh qw),(kh kw)] += <q, Rh[qh-kh]> + <q, Rw[qw-kw]> (MViTv2-style).

    Only q grid == k grid occurs here. Relative distances are clamped to the table's range,
    so a table trained for a G-token grid (length 2G-1) serves any grid.
    """
    rh = (rel_pos_h.shape[0] - 1) // 2
    rw = (rel_pos_w.shape[0] - 1) // 2
    dev = q.device
    dh = (torch.arange(q_h, device=dev)[:, None] - torch.arange(k_h, device=dev)[None, :]).clamp(-rh, rh) + rh
    dw = (torch.arange(q_w, device=dev)[:, None] - torch.arange(k_w, device=dev)[None, :]).clamp(-rw, rw) + rw
    r_h = rel_pos_h[dh]  # q_h, k_h, C
    r_w = rel_pos_w[dw]  # q_w, k_w, C
    b, n_head, _, dim = q.shape
    r_q = q.reshape(b, n_head, q_h, q_w, dim)
    rel_h = torch.einsum("byhwc,hkc->byhwk", [r_q, r_h])
    rel_w = torch.einsum("byhwc,wkc->byhwk", [r_q, r_w])
    attn = (attn.view(b, n_head, q_h, q_w, k_h, k_w)
            + rel_h[:, :, :, :, :, None] + rel_w[:, :, :, :, None, :])
    return attn.view(b, n_head, q_h * q_w, k_h * k_w)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _QKVMixin(nn.Module):
    """qkv projection. ViTAE-RVSA stores `q_bias`/`v_bias` (k has no bias) instead of a
    bias in `qkv`; the ViT-RVSA checkpoints use a plain `qkv.bias`."""

    def _init_qkv(self, dim: int, qkv_bias: bool, qv_bias: bool):
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias and not qv_bias)
        if qv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = None
            self.v_bias = None

    def _project_qkv(self, x: torch.Tensor) -> torch.Tensor:
        q_bias = self.q_bias
        v_bias = self.v_bias
        if q_bias is not None:
            if v_bias is not None:
                return F.linear(x, self.qkv.weight, torch.cat([q_bias, torch.zeros_like(v_bias), v_bias]))
        return self.qkv(x)


class GlobalAttention(_QKVMixin):
    """Full self-attention with decomposed relative positions (official `Attention`).

    The official tables have 2*G-1 rows for BOTH axes, G = training grid height.
    """

    def __init__(self, dim: int, num_heads: int, grid: int, qkv_bias: bool = True,
                 qv_bias: bool = False):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self._init_qkv(dim, qkv_bias, qv_bias)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * grid - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * grid - 1, head_dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self._project_qkv(x).reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = q * self.scale  # official: relative terms use the scaled q here
        attn = q @ k.transpose(-2, -1)
        attn = add_decomposed_rel_pos(attn, q, H, W, H, W, self.rel_pos_h, self.rel_pos_w)
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, -1)
        return self.proj(x)


def _offset_branch(dim: int, out: int, ws: int) -> nn.Sequential:
    # Sequential(pool, act, conv) so the keys are `<name>.2.weight/bias` as in the official code.
    return nn.Sequential(nn.AvgPool2d(kernel_size=ws, stride=ws), nn.LeakyReLU(),
                         nn.Conv2d(dim, out, kernel_size=1, stride=1))


def _sample(t: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear sampling of ``t`` at ``grid`` (the official grid_sample call). LibTorch 1.13 has
    no bfloat16 grid_sample on the CPU (nor on CUDA): reduced precisions sample in float32 and
    cast back; float32 / float64 inputs take the original call unchanged (bit-identical)."""
    if t.dtype == torch.float32 or t.dtype == torch.float64:
        return F.grid_sample(t, grid.to(t.dtype), mode="bilinear", padding_mode="zeros", align_corners=True)
    out = F.grid_sample(t.float(), grid.float(), mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.to(t.dtype)


def _to_windows(t: torch.Tensor, B: int, nH: int, hd: int, nh: int, nw: int, ws: int) -> torch.Tensor:
    """(B*nH, hd, nh*ws, nw*ws) -> (B*nh*nw, nH, ws*ws, hd)."""
    return (t.reshape(B, nH, hd, nh, ws, nw, ws).permute(0, 3, 5, 1, 4, 6, 2)
            .reshape(B * nh * nw, nH, ws * ws, hd))


class _RVSABase(_QKVMixin):
    """Shared parts of RVSA attention: queries use fixed ws x ws windows; for every window
    and head a scale, an offset and an angle are regressed from the window's mean feature
    and keys/values are bilinearly sampled on the transformed ws x ws grid."""

    def __init__(self, dim: int, num_heads: int, window_size: int, qkv_bias: bool,
                 qv_bias: bool = False):
        super().__init__()
        ws = window_size
        self.num_heads = num_heads
        self.ws = ws
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * ws - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * ws - 1, head_dim))
        self._init_qkv(dim, qkv_bias, qv_bias)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, num_heads))
        # Swin-style pair index; a persistent buffer because the official checkpoints hold it.
        coords = torch.stack(torch.meshgrid([torch.arange(ws), torch.arange(ws)], indexing="ij"))
        flat = coords.flatten(1)
        rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
        rel[:, :, 0] += ws - 1
        rel[:, :, 1] += ws - 1
        rel[:, :, 0] *= 2 * ws - 1
        self.register_buffer("relative_position_index", rel.sum(-1))

    def _prepare(self, x: torch.Tensor, H: int, W: int) -> Tuple[
            torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, List[int]]:
        """Padded NCHW features, window centres, in-window base grid, offset divisor and
        [pad_top, pad_td, pad_left, pad_lr, nh, nw]."""
        B, N, C = x.shape
        ws = self.ws
        dev = x.device
        # official: symmetric zero padding (the odd row/col at bottom/right) to a window multiple
        pad_td = (ws - H % ws) % ws
        pad_lr = (ws - W % ws) % ws
        pt = pad_td // 2
        pl = pad_lr // 2
        eh = H + pad_td
        ew = W + pad_lr
        nh = eh // ws
        nw = ew // ws
        # normalised [-1, 1] pixel coordinates of the padded map (channel 0 = x, 1 = y)
        ref_h = torch.linspace(-1.0, 1.0, eh, device=dev)
        ref_w = torch.linspace(-1.0, 1.0, ew, device=dev)
        image_ref = torch.stack([ref_w.view(1, ew).expand(eh, ew),
                                 ref_h.view(eh, 1).expand(eh, ew)], 0).unsqueeze(0)
        window_ref = F.avg_pool2d(image_ref, [ws, ws]).reshape(1, 2, nh, 1, nw, 1)
        # official: base step = 2*ws/ws/(extent-1), centred on the window
        bh = torch.arange(ws, device=dev) * 2 * ws / ws / (eh - 1)
        bh = bh - bh.mean()
        bw = torch.arange(ws, device=dev) * 2 * ws / ws / (ew - 1)
        bw = bw - bw.mean()
        ch = bh.unsqueeze(0).repeat(nh, 1).reshape(-1)
        cw = bw.unsqueeze(0).repeat(nw, 1).reshape(-1)
        window_coords = torch.stack([cw.view(1, nw * ws).expand(nh * ws, nw * ws),
                                     ch.view(nh * ws, 1).expand(nh * ws, nw * ws)], 0)
        window_coords = window_coords.reshape(1, 2, nh, ws, nw, ws)
        feat = x.transpose(1, 2).reshape(B, C, H, W)
        feat = F.pad(feat, [pl, pad_lr - pl, pt, pad_td - pt])
        # official quirk: the x (column) offset is divided by H//ws and the y offset by W//ws.
        # max(.,1) only guards grids smaller than one window (the official code divides by 0).
        div = torch.tensor([max(H // ws, 1), max(W // ws, 1)], dtype=x.dtype, device=dev).view(1, 2, 1, 1)
        return feat, window_ref, window_coords, div, [pt, pad_td, pl, pad_lr, nh, nw]

    def _grid(self, off: torch.Tensor, scl: torch.Tensor, ang: torch.Tensor,
              window_ref: torch.Tensor, window_coords: torch.Tensor, div: torch.Tensor,
              nh: int, nw: int) -> torch.Tensor:
        """Sampling grid (B*nH, nh*ws, nw*ws, 2) from the regressed offsets/scales/angles."""
        ws = self.ws
        n = off.shape[0] * self.num_heads
        if off.dtype != torch.float32 and off.dtype != torch.float64:
            # reduced precision (bf16 / fp16 weights): sampling coordinates in float32
            off = off.float()
            scl = scl.float()
            ang = ang.float()
            div = div.float()
        off = off.reshape(n, 2, nh, nw) / div
        scl = scl.reshape(n, 2, nh, 1, nw, 1)
        ang = ang.reshape(n, 1, nh, 1, nw, 1)
        wc = window_coords * (scl + 1)  # scale, then rotate about the window centre
        wx = wc[:, 0:1]
        wy = wc[:, 1:2]
        sin = torch.sin(ang)
        cos = torch.cos(ang)
        rot = torch.cat([-wy * sin + wx * cos, wy * cos + wx * sin], dim=1)
        coords = window_ref + rot + off.reshape(n, 2, nh, 1, nw, 1)
        return coords.permute(0, 2, 3, 4, 5, 1).reshape(n, nh * ws, nw * ws, 2)

    def _attend(self, x: torch.Tensor, H: int, W: int, grid_k: torch.Tensor,
                grid_v: torch.Tensor, geo: List[int]) -> torch.Tensor:
        B, N, C = x.shape
        ws = self.ws
        nH = self.num_heads
        hd = C // nH
        pt, pad_td, pl, pad_lr, nh, nw = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5]
        eh = H + pad_td
        ew = W + pad_lr
        n = B * nH
        qkv = self._project_qkv(x).transpose(1, 2).reshape(B, 3, nH, hd, H, W).transpose(0, 1)
        qkv = qkv.reshape(3 * n, hd, H, W)
        qkv = F.pad(qkv, [pl, pad_lr - pl, pt, pad_td - pt]).reshape(3, n, hd, eh, ew)
        q, k, v = qkv[0], qkv[1], qkv[2]
        k = _sample(k, grid_k)
        v = _sample(v, grid_v)
        q = _to_windows(q, B, nH, hd, nh, nw, ws)
        k = _to_windows(k, B, nH, hd, nh, nw, ws)
        v = _to_windows(v, B, nH, hd, nh, nw, ws)
        dots = (q @ k.transpose(-2, -1)) * self.scale
        # official: the relative terms use the unscaled q here (unlike GlobalAttention)
        dots = add_decomposed_rel_pos(dots, q, ws, ws, ws, ws, self.rel_pos_h, self.rel_pos_w)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        dots = dots + bias.view(ws * ws, ws * ws, -1).permute(2, 0, 1).unsqueeze(0)
        out = dots.softmax(dim=-1) @ v  # (B nh nw), nH, ws*ws, hd
        out = (out.reshape(B, nh, nw, nH, ws, ws, hd).permute(0, 3, 6, 1, 4, 2, 5)
               .reshape(B, C, eh, ew))
        out = out[:, :, pt:pt + H, pl:pl + W]
        out = out.permute(0, 2, 3, 1).reshape(B, H * W, C)
        return self.proj(out)


class RVSAttention(_RVSABase):
    """Official `RotatedVariedSizeWindowAttention`: one sampling grid for keys and values."""

    def __init__(self, dim: int, num_heads: int, window_size: int = 7, qkv_bias: bool = True,
                 qv_bias: bool = False):
        super().__init__(dim, num_heads, window_size, qkv_bias, qv_bias)
        self.sampling_offsets = _offset_branch(dim, num_heads * 2, window_size)
        self.sampling_scales = _offset_branch(dim, num_heads * 2, window_size)
        self.sampling_angles = _offset_branch(dim, num_heads, window_size)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        feat, wref, wcoords, div, geo = self._prepare(x, H, W)
        grid = self._grid(self.sampling_offsets(feat), self.sampling_scales(feat),
                          self.sampling_angles(feat), wref, wcoords, div, geo[4], geo[5])
        return self._attend(x, H, W, grid, grid, geo)


class RVSAttentionKVDiff(_RVSABase):
    """Official `RotatedVariedSizeWindowAttention_KVDIFF` (RVSA-diamond): separate grids
    for keys and values."""

    def __init__(self, dim: int, num_heads: int, window_size: int = 7, qkv_bias: bool = True,
                 qv_bias: bool = False):
        super().__init__(dim, num_heads, window_size, qkv_bias, qv_bias)
        self.sampling_offsets_k = _offset_branch(dim, num_heads * 2, window_size)
        self.sampling_scales_k = _offset_branch(dim, num_heads * 2, window_size)
        self.sampling_angles_k = _offset_branch(dim, num_heads, window_size)
        self.sampling_offsets_v = _offset_branch(dim, num_heads * 2, window_size)
        self.sampling_scales_v = _offset_branch(dim, num_heads * 2, window_size)
        self.sampling_angles_v = _offset_branch(dim, num_heads, window_size)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        feat, wref, wcoords, div, geo = self._prepare(x, H, W)
        grid_k = self._grid(self.sampling_offsets_k(feat), self.sampling_scales_k(feat),
                            self.sampling_angles_k(feat), wref, wcoords, div, geo[4], geo[5])
        grid_v = self._grid(self.sampling_offsets_v(feat), self.sampling_scales_v(feat),
                            self.sampling_angles_v(feat), wref, wcoords, div, geo[4], geo[5])
        return self._attend(x, H, W, grid_k, grid_v, geo)


def _make_attn(dim: int, num_heads: int, qkv_bias: bool, window: bool, window_size: int,
               grid: int, kvdiff: bool, qv_bias: bool) -> nn.Module:
    if not window:
        return GlobalAttention(dim, num_heads, grid, qkv_bias, qv_bias)
    if kvdiff:
        return RVSAttentionKVDiff(dim, num_heads, window_size, qkv_bias, qv_bias)
    return RVSAttention(dim, num_heads, window_size, qkv_bias, qv_bias)


class Block(nn.Module):
    """ViT block (official `Block`, no layer scale)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool,
                 window: bool, window_size: int, grid: int, kvdiff: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _make_attn(dim, num_heads, qkv_bias, window, window_size, grid, kvdiff, False)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), H, W)
        return x + self.mlp(self.norm2(x))


class NormalCell(nn.Module):
    """ViTAE NormalCell (official ViTAE-RVSA): attention in parallel with a grouped-conv
    branch `PCM` on the un-normalised tokens, then the MLP; q/v biases instead of qkv.bias."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool,
                 window: bool, window_size: int, grid: int, kvdiff: bool):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        groups = dim // 4  # official: group = embed_dim // 4
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _make_attn(dim, num_heads, qkv_bias, window, window_size, grid, kvdiff, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)
        self.PCM = nn.Sequential(
            nn.Conv2d(dim, hidden, 3, 1, 1, 1, groups), nn.BatchNorm2d(hidden), nn.SiLU(inplace=True),
            nn.Conv2d(hidden, dim, 3, 1, 1, 1, groups))

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        B, N, C = x.shape
        # the official code assumes a square grid (int(sqrt(N))); H x W is the same there
        conv = self.PCM(x.transpose(1, 2).reshape(B, C, H, W)).flatten(2).transpose(1, 2)
        x = x + self.attn(self.norm1(x), H, W)
        x = x + conv
        return x + self.mlp(self.norm2(x))


class UpConv2x(nn.ConvTranspose2d):
    """ConvTranspose2d(dim, dim, 2, stride 2) of the official fpn1/fpn2 (same keys). LibTorch 1.13
    on the CPU returns a wrongly sized map for bfloat16 (the output of a stride-2 convolution,
    silently): bfloat16 inputs are computed in float32 and cast back; other dtypes unchanged."""

    def __init__(self, dim: int):
        super().__init__(dim, dim, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor, output_size: Optional[List[int]] = None) -> torch.Tensor:
        if x.dtype == torch.bfloat16:
            bias = self.bias
            y = F.conv_transpose2d(x.float(), self.weight.float(), None if bias is None else bias.float(),
                                   stride=2)
            return y.to(x.dtype)
        return F.conv_transpose2d(x, self.weight, self.bias, stride=2)


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Norm2d(nn.Module):
    """LayerNorm over channels of an NCHW map (official `Norm2d`, key `ln`)."""

    def __init__(self, dim: int):
        super().__init__()
        self.ln = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()


def default_out_indices(depth: int) -> List[int]:
    """[3, 5, 7, 11] for the official depth 12; the last four blocks for a reduced depth."""
    if depth == 12:
        return [3, 5, 7, 11]
    if depth < 4:
        raise ValueError("RVSA needs depth >= 4 (four feature levels)")
    return [depth - 4, depth - 3, depth - 2, depth - 1]


class RVSAViT(nn.Module):
    """ViT + RVSA backbone returning the four fpn1..fpn4 maps (strides 4, 8, 16, 32)."""

    def __init__(self, img_size: int = 512, patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 768, depth: int = 12, num_heads: int = 12,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, window_size: int = 7,
                 interval: int = 3, out_indices: Optional[Sequence[int]] = None,
                 kvdiff: bool = False, vitae: bool = False):
        super().__init__()
        if patch_size != 16:
            raise ValueError("only the patch-16 neck of the official code is implemented")
        self.embed_dim = embed_dim
        self.patch_size = patch_size
        grid = img_size // patch_size
        self.grid = grid
        self.out_indices: List[int] = list(out_indices) if out_indices is not None else default_out_indices(depth)
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid, embed_dim))
        block = NormalCell if vitae else Block
        self.blocks = nn.ModuleList([
            block(embed_dim, num_heads, mlp_ratio, qkv_bias, window=(i + 1) % interval != 0,
                  window_size=window_size, grid=grid, kvdiff=kvdiff)
            for i in range(depth)])
        # Present in the official checkpoints but unused by the segmentation forward.
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.fpn1 = nn.Sequential(UpConv2x(embed_dim), Norm2d(embed_dim), nn.GELU(), UpConv2x(embed_dim))
        self.fpn2 = nn.Sequential(UpConv2x(embed_dim))
        self.fpn3 = nn.Identity()
        self.fpn4 = nn.MaxPool2d(kernel_size=2, stride=2)

    def pos_embed_for(self, gh: int, gw: int) -> torch.Tensor:
        """The absolute position embedding for a gh x gw token grid (bicubic resize)."""
        if gh == self.grid and gw == self.grid:
            return self.pos_embed
        pe = self.pos_embed.reshape(1, self.grid, self.grid, self.embed_dim).permute(0, 3, 1, 2)
        pe = F.interpolate(pe, size=[gh, gw], mode="bicubic", align_corners=False)
        return pe.flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        B = x.shape[0]
        x = self.patch_embed(x)
        Hp = x.shape[2]
        Wp = x.shape[3]
        x = x.flatten(2).transpose(1, 2) + self.pos_embed_for(Hp, Wp)
        feats: List[torch.Tensor] = []
        for i, blk in enumerate(self.blocks):
            x = blk(x, Hp, Wp)
            if i in self.out_indices:
                feats.append(x.permute(0, 2, 1).reshape(B, -1, Hp, Wp))
        return [self.fpn1(feats[0]), self.fpn2(feats[1]), self.fpn3(feats[2]), self.fpn4(feats[3])]


def build_rvsa_upernet(num_classes: int, depth: int = 12, img_size: int = 512,
                       kvdiff: bool = False, out_indices: Optional[Sequence[int]] = None,
                       vitae: bool = False) -> nn.Module:
    """RVSA ViT-B + UperNet as in the official LoveDA/Potsdam/iSAID configs.

    num_classes: 7 LoveDA (reduce_zero_label), 5 Potsdam (class5), 16 iSAID.
    img_size: the training crop (512 LoveDA/Potsdam, 896 iSAID) -- it fixes the shapes of
      pos_embed and of the full-attention rel_pos tables; any tile size runs at inference.
    depth: fewer blocks for tests (same code paths; out_indices = last four blocks).
    kvdiff: the RVSA-diamond variant (separate key/value sampling).
    vitae: the ViTAE-B backbone (`ViTAE_NC_Win_RVSA_V3_WSZ7`, NormalCell blocks).
    The input is padded to a multiple of the patch size (16): at multiples of 16 the result
    equals the official model's; the RVSA blocks pad to the window multiple internally.
    """
    backbone = RVSAViT(img_size=img_size, depth=depth, kvdiff=kvdiff, out_indices=out_indices,
                       vitae=vitae)
    decode = UPerHead(in_channels=[768, 768, 768, 768], channels=512, num_classes=num_classes,
                      pool_scales=(1, 2, 3, 6), dropout_ratio=0.1, align_corners=False)
    aux = FCNHead(in_channels=768, channels=256, num_classes=num_classes, in_index=2,
                  num_convs=1, concat_input=False)
    return EncoderDecoder(backbone, decode, aux, size_multiple=16)
