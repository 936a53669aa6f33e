"""Network architectures of the rsi default models.

All modules here are written to be compiled with ``torch.jit.script``: no Python-side integer
sizes are baked in, so the scripted segmentation network accepts any H and W that are multiples
of its downsampling factor (``BuildingNet.multiple_of``).
"""
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class Blur(nn.Conv2d):
    """Fixed binomial low-pass filter ([1, 2, 1] x [1, 2, 1] / 16, per channel, zero padding).

    Put in front of a stride-2 layer it removes the frequencies that subsampling would alias, so the
    output depends less on a pixel's position modulo the stride (anti-aliased downsampling, after
    Zhang 2019). A depthwise convolution with frozen weights rather than a functional call, so that
    TorchScript, FX quantization and the receptive-field measurement treat it as any other layer."""

    def __init__(self, channels: int):
        super().__init__(channels, channels, 3, padding=1, groups=channels, bias=False)
        k1 = torch.tensor([1.0, 2.0, 1.0])
        k2 = torch.outer(k1, k1) / 16.0
        with torch.no_grad():
            self.weight.copy_(k2.expand(channels, 1, 3, 3))
        self.weight.requires_grad_(False)


class ResBlock(nn.Module):
    """Two 3x3 conv + BN layers with an identity (or 1x1 projected) shortcut.

    With ``antialias`` a stride-2 block low-passes its input first (``Blur``): blur then strided
    convolution equals convolution, blur and subsampling, and the shortcut becomes blur-pool + 1x1."""

    def __init__(self, cin: int, cout: int, stride: int = 1, antialias: bool = False):
        super().__init__()
        self.blur = Blur(cin) if (antialias and stride != 1) else nn.Identity()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        else:
            self.short = nn.Sequential()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blur(x)
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.short(x), inplace=True)


class DecoderBlock(nn.Module):
    """Upsample x2 (bilinear), concatenate the skip feature, fuse with two 3x3 conv layers."""

    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.fuse1 = ConvBNReLU(cin + cskip, cout)
        self.fuse2 = ConvBNReLU(cout, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=[skip.shape[2], skip.shape[3]], mode="bilinear",
                          align_corners=False)
        x = torch.cat([x, skip], 1)
        return self.fuse2(self.fuse1(x))


class BuildingNet(nn.Module):
    """Compact residual U-Net for binary building segmentation.

    Encoder: a full-resolution stem followed by ``len(widths) - 1`` stride-2 residual stages
    (each stage = ``depth`` residual blocks); decoder: bilinear upsampling + skip concatenation.
    Output: ``N x num_classes x H x W`` logits. H and W must be multiples of ``2**(len(widths)-1)``.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 2,
                 widths: List[int] = (16, 32, 64, 128, 192), depth: int = 1,
                 dec_widths: List[int] = (16, 24, 48, 96), antialias: bool = False):
        super().__init__()
        widths = list(widths)
        dec_widths = list(dec_widths)
        assert len(dec_widths) == len(widths) - 1
        self.multiple_of = 2 ** (len(widths) - 1)
        self.stem = nn.Sequential(ConvBNReLU(in_channels, widths[0]), ConvBNReLU(widths[0], widths[0]))
        stages = []
        for i in range(1, len(widths)):
            blocks = [ResBlock(widths[i - 1], widths[i], stride=2, antialias=antialias)]
            for _ in range(depth - 1):
                blocks.append(ResBlock(widths[i], widths[i]))
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        decs = []
        cin = widths[-1]
        for i in range(len(widths) - 2, -1, -1):
            decs.append(DecoderBlock(cin, widths[i], dec_widths[i]))
            cin = dec_widths[i]
        self.decoders = nn.ModuleList(decs)
        self.head = nn.Conv2d(cin, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats: List[torch.Tensor] = []
        x = self.stem(x)
        for stage in self.stages:
            feats.append(x)
            x = stage(x)
        n = len(feats)
        i = 0
        for dec in self.decoders:
            x = dec(x, feats[n - 1 - i])
            i += 1
        return self.head(x)


class SceneNet(nn.Module):
    """Compact CNN scene classifier with global pooling (any H, W; trained on 64x64).

    A full-resolution 3x3 stem, then one stride-2 residual block per further width.

    The classifier sees the globally pooled convolutional features concatenated with the per-band
    mean and standard deviation of the (normalised) input, which carries most of the spectral signal.
    """

    def __init__(self, in_channels: int = 13, num_classes: int = 10,
                 widths: List[int] = (32, 64, 128), dropout: float = 0.3):
        super().__init__()
        widths = list(widths)
        layers: List[nn.Module] = [ConvBNReLU(in_channels, widths[0])]
        cin = widths[0]
        for w in widths[1:]:
            layers.append(ResBlock(cin, w, stride=2))
            cin = w
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin + 2 * in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x).mean(dim=[2, 3])
        m = x.mean(dim=[2, 3])
        s = x.std(dim=[2, 3], unbiased=False)
        return self.fc(self.dropout(torch.cat([f, m, s], 1)))


class SpectralSceneNet(nn.Module):
    """Scene classifier that pools per-pixel spectral embeddings as well as spatial features.

    1x1 convolutions embed every pixel's spectrum; the mean and standard deviation of that embedding
    over the patch (what the land cover is made of, and how mixed it is) are concatenated with the
    mean and max of a small stride-4 spatial CNN on top (texture / structure), then classified.
    """

    def __init__(self, in_channels: int = 13, num_classes: int = 10, width: int = 32,
                 dropout: float = 0.3):
        super().__init__()
        self.spectral = nn.Sequential(ConvBNReLU(in_channels, width, k=1), ConvBNReLU(width, width, k=1))
        self.spatial = nn.Sequential(ConvBNReLU(width, width), ConvBNReLU(width, 2 * width, stride=2),
                                     ConvBNReLU(2 * width, 2 * width, stride=2))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(6 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.spectral(x)
        f = self.spatial(e)
        feats = torch.cat([e.mean(dim=[2, 3]), e.std(dim=[2, 3], unbiased=False),
                           f.mean(dim=[2, 3]), f.amax(dim=[2, 3])], 1)
        return self.fc(self.dropout(feats))


def _quantiles(values: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Quantiles ``q`` along the last dimension, computed in float32 and returned in the input's
    dtype: torch.quantile takes float and double only, and a model run in bf16 or fp16 (the C++
    runtime's --precision) converts its inputs and buffers to that type."""
    return torch.quantile(values.float(), q.float(), dim=-1).to(values.dtype)


class StatsSceneNet(nn.Module):
    """Scene classifier: fixed convolutional statistics with global pooling + a learned linear layer.

    Per band it pools the mean, standard deviation, 10/50/90 % quantiles and the mean absolute
    horizontal + vertical difference (a fixed [-1, 1] gradient filter, i.e. texture energy) at
    ``scales`` scales (2x2 average pooling between scales). The features are standardised with
    statistics of the training set (buffers) and classified by one linear layer. Few parameters:
    suited to the 10 labelled patches per class available here. Any H, W >= 2**scales.
    """

    def __init__(self, in_channels: int = 13, num_classes: int = 10, scales: int = 2):
        super().__init__()
        self.scales = scales
        self.register_buffer("quantiles", torch.tensor([0.1, 0.5, 0.9]))
        nfeat = in_channels * (2 + scales + 3)
        self.register_buffer("feat_mean", torch.zeros(nfeat))
        self.register_buffer("feat_std", torch.ones(nfeat))
        self.fc = nn.Linear(nfeat, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        f: List[torch.Tensor] = [x.mean(dim=[2, 3]), x.std(dim=[2, 3], unbiased=False)]
        z = x
        for _ in range(self.scales):
            gx = (z[:, :, :, 1:] - z[:, :, :, :-1]).abs().mean(dim=[2, 3])
            gy = (z[:, :, 1:, :] - z[:, :, :-1, :]).abs().mean(dim=[2, 3])
            f.append(gx + gy)
            z = F.avg_pool2d(z, 2)
        q = _quantiles(x.flatten(2), self.quantiles)  # Q x N x C
        f.append(q.permute(1, 2, 0).flatten(1))
        return torch.cat(f, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc((self.features(x) - self.feat_mean) / self.feat_std)


class FeatureSceneNet(nn.Module):
    """Scene classifier over a configurable set of fixed, pooled features + one learned linear layer.

    A superset of ``StatsSceneNet`` used by models/python/select_scene_recipe.py to compare recipes
    (any H, W >= 16). Per band (input normalised with the metadata's mean/std):

    * always: mean, standard deviation, 10/50/90 % quantiles and, at ``scales`` scales (2x2 average
      pooling between), the texture energy mean|dx| + mean|dy| (the ``StatsSceneNet`` features);
    * ``aniso``: per scale also |mean|dx| - mean|dy||, mean|d1| + mean|d2| and |mean|d1| - mean|d2||
      (d1, d2 = the two diagonal differences): rotation/flip invariant (dihedral) anisotropy;
    * ``tensor``: per scale the square roots of the two eigenvalues of the globally averaged
      gradient structure tensor (orientation-free line/edge dominance);
    * ``index_a``/``index_b`` (0-based band pairs): per pair the normalised difference
      (A - B) / (A + B + 1e-3) of the reflectances (the input un-normalised with ``in_mean``/``in_std``)
      pooled as mean, std and 10/50/90 % quantiles (e.g. NDVI, NDWI, NDBI);
    * ``rf_filters`` > 0: MOSAIKS-style random features: ``rf_filters`` fixed random
      ``rf_size`` x ``rf_size`` filters over all bands (Gaussian, unit norm, generated from
      ``rf_seed``; stored as a buffer), valid convolution, global means of ReLU(r) and ReLU(-r);
      with ``rf_symmetric`` every filter is expanded to its 8 dihedral versions and the pooled
      responses are averaged over them (features invariant to flips / 90-degree rotations).

    The features are standardised with training-set statistics (buffers) and classified by ``fc``.
    """

    def __init__(self, in_channels: int = 13, num_classes: int = 10, scales: int = 2,
                 aniso: bool = False, tensor: bool = False,
                 index_a: List[int] = (), index_b: List[int] = (),
                 in_mean: List[float] = (), in_std: List[float] = (),
                 rf_filters: int = 0, rf_size: int = 3, rf_seed: int = 0,
                 rf_symmetric: bool = False):
        super().__init__()
        index_a, index_b = list(index_a), list(index_b)
        assert len(index_a) == len(index_b)
        self.scales = scales
        self.aniso = aniso
        self.tensor = tensor
        self.n_index = len(index_a)
        self.rf_filters = rf_filters
        self.rf_symmetric = rf_symmetric
        self.register_buffer("quantiles", torch.tensor([0.1, 0.5, 0.9]))
        self.register_buffer("index_a", torch.tensor(index_a, dtype=torch.long))
        self.register_buffer("index_b", torch.tensor(index_b, dtype=torch.long))
        if self.n_index > 0:
            assert len(in_mean) == in_channels and len(in_std) == in_channels
            self.register_buffer("in_mean", torch.tensor(list(in_mean), dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("in_std", torch.tensor(list(in_std), dtype=torch.float32).view(1, -1, 1, 1))
        else:
            self.register_buffer("in_mean", torch.zeros(1, in_channels, 1, 1))
            self.register_buffer("in_std", torch.ones(1, in_channels, 1, 1))
        if rf_filters > 0:
            g = torch.Generator().manual_seed(rf_seed)
            w = torch.randn(rf_filters, in_channels, rf_size, rf_size, generator=g)
            w = w / w.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            if rf_symmetric:  # filter-major: [f0 t0..t7, f1 t0..t7, ...]
                ws = []
                for i in range(rf_filters):
                    for k in range(4):
                        r = torch.rot90(w[i], k, [1, 2])
                        ws.append(r)
                        ws.append(torch.flip(r, [2]))
                w = torch.stack(ws)
            self.register_buffer("rf_weight", w)
        else:
            self.register_buffer("rf_weight", torch.zeros(0, in_channels, rf_size, rf_size))
        per_scale = 1 + (3 if aniso else 0) + (2 if tensor else 0)
        nfeat = in_channels * (5 + per_scale * scales) + 5 * self.n_index + 2 * rf_filters
        self.register_buffer("feat_mean", torch.zeros(nfeat))
        self.register_buffer("feat_std", torch.ones(nfeat))
        self.fc = nn.Linear(nfeat, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        f: List[torch.Tensor] = [x.mean(dim=[2, 3]), x.std(dim=[2, 3], unbiased=False)]
        q = _quantiles(x.flatten(2), self.quantiles)  # Q x N x C
        f.append(q.permute(1, 2, 0).flatten(1))
        z = x
        for _ in range(self.scales):
            gx = (z[:, :, :, 1:] - z[:, :, :, :-1]).abs().mean(dim=[2, 3])
            gy = (z[:, :, 1:, :] - z[:, :, :-1, :]).abs().mean(dim=[2, 3])
            f.append(gx + gy)
            if self.aniso:
                d1 = (z[:, :, 1:, 1:] - z[:, :, :-1, :-1]).abs().mean(dim=[2, 3])
                d2 = (z[:, :, 1:, :-1] - z[:, :, :-1, 1:]).abs().mean(dim=[2, 3])
                f.append((gx - gy).abs())
                f.append(d1 + d2)
                f.append((d1 - d2).abs())
            if self.tensor:
                # gradients at the centres of the 2x2 pixel blocks (exactly dihedral invariant)
                ex = 0.5 * (z[:, :, 1:, 1:] - z[:, :, 1:, :-1] + z[:, :, :-1, 1:] - z[:, :, :-1, :-1])
                ey = 0.5 * (z[:, :, 1:, 1:] - z[:, :, :-1, 1:] + z[:, :, 1:, :-1] - z[:, :, :-1, :-1])
                jxx = (ex * ex).mean(dim=[2, 3])
                jyy = (ey * ey).mean(dim=[2, 3])
                jxy = (ex * ey).mean(dim=[2, 3])
                half = 0.5 * (jxx + jyy)
                root = torch.sqrt(0.25 * (jxx - jyy) ** 2 + jxy * jxy)
                f.append(torch.sqrt((half + root).clamp_min(0.0)))
                f.append(torch.sqrt((half - root).clamp_min(0.0)))
            z = F.avg_pool2d(z, 2)
        if self.n_index > 0:
            r = x * self.in_std + self.in_mean
            a = r.index_select(1, self.index_a)
            b = r.index_select(1, self.index_b)
            nd = (a - b) / (a + b + 1e-3)
            f.append(nd.mean(dim=[2, 3]))
            f.append(nd.std(dim=[2, 3], unbiased=False))
            qn = _quantiles(nd.flatten(2), self.quantiles)
            f.append(qn.permute(1, 2, 0).flatten(1))
        if self.rf_filters > 0:
            resp = F.conv2d(x, self.rf_weight)
            pos = F.relu(resp).mean(dim=[2, 3])
            neg = F.relu(-resp).mean(dim=[2, 3])
            if self.rf_symmetric:
                pos = pos.view(pos.shape[0], self.rf_filters, 8).mean(2)
                neg = neg.view(neg.shape[0], self.rf_filters, 8).mean(2)
            f.append(pos)
            f.append(neg)
        return torch.cat(f, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc((self.features(x) - self.feat_mean) / self.feat_std)


class FlipTTA(nn.Module):
    """Test-time augmentation wrapper: mean of the logits of ``net`` over the 4 flips of the input
    (identity, horizontal, vertical, both). Works for any H, W the wrapped network accepts; 4x cost."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        y = y + torch.flip(self.net(torch.flip(x, [3])), [3])
        y = y + torch.flip(self.net(torch.flip(x, [2])), [2])
        y = y + torch.flip(self.net(torch.flip(x, [2, 3])), [2, 3])
        return y * 0.25


ARCHITECTURES = {
    "StatsSceneNet": StatsSceneNet,
    "FeatureSceneNet": FeatureSceneNet,
    "SpectralSceneNet": SpectralSceneNet,
    "BuildingNet": BuildingNet,
    "SceneNet": SceneNet,
}


def build(arch: str, kwargs: dict) -> nn.Module:
    if arch not in ARCHITECTURES:
        raise ValueError("unknown architecture %r (known: %s)" % (arch, ", ".join(ARCHITECTURES)))
    return ARCHITECTURES[arch](**kwargs)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
