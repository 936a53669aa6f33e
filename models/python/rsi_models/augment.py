"""Training-time augmentation (torch only, CPU) for RGB building crops and multispectral patches."""
import math

import torch
import torch.nn.functional as F


def dihedral(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Rotate the last two dims by k*90 degrees and optionally flip horizontally."""
    if k:
        x = torch.rot90(x, k, dims=(-2, -1))
    if flip:
        x = torch.flip(x, dims=(-1,))
    return x


def random_scaled_crop(img: torch.Tensor, mask: torch.Tensor, out: int, gen: torch.Generator,
                       scale_range=(0.67, 1.5)):
    """Random crop of a 3 x H x W float image (+ H x W mask) at a random scale, resized to out x out.

    scale s > 1 enlarges the content (the crop taken from the source is out / s pixels wide).
    """
    _, h, w = img.shape
    lo, hi = math.log(scale_range[0]), math.log(scale_range[1])
    s = math.exp(lo + (hi - lo) * torch.rand((), generator=gen).item())
    c = int(round(out / s))
    c = max(16, min(c, h, w))
    y = int(torch.randint(0, h - c + 1, (), generator=gen))
    x = int(torch.randint(0, w - c + 1, (), generator=gen))
    im = img[:, y:y + c, x:x + c].unsqueeze(0)
    m = mask[y:y + c, x:x + c].float()[None, None]
    if c != out:
        im = F.interpolate(im, size=(out, out), mode="bilinear", align_corners=False,
                           antialias=c > out)
        m = F.interpolate(m, size=(out, out), mode="bilinear", align_corners=False)
    return im[0], (m[0, 0] > 0.5).long()


def colour_jitter(img: torch.Tensor, gen: torch.Generator, p_gray: float = 0.1) -> torch.Tensor:
    """Photometric jitter of a 3 x H x W float image in 0..255."""
    def u(a, b):
        return a + (b - a) * torch.rand((), generator=gen).item()

    x = img
    gray = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).unsqueeze(0)
    # saturation
    x = gray + (x - gray) * u(0.6, 1.4)
    # per-channel gain (white balance)
    gains = 0.9 + 0.2 * torch.rand(3, 1, 1, generator=gen)
    x = x * gains
    # brightness and contrast
    mean = x.mean()
    x = (x - mean) * u(0.7, 1.3) + mean * u(0.75, 1.3)
    # gamma
    if torch.rand((), generator=gen).item() < 0.3:
        x = 255.0 * (x.clamp(0, 255) / 255.0) ** u(0.7, 1.4)
    if torch.rand((), generator=gen).item() < p_gray:
        g = 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]
        x = g.unsqueeze(0).expand(3, -1, -1).clone()
    if torch.rand((), generator=gen).item() < 0.15:
        k = torch.tensor([1.0, 2.0, 1.0])
        k = (k[:, None] * k[None, :]) / 16.0
        x = F.conv2d(F.pad(x.unsqueeze(1), (1, 1, 1, 1), mode="replicate"),
                     k.view(1, 1, 3, 3)).squeeze(1)
    if torch.rand((), generator=gen).item() < 0.3:
        x = x + torch.randn(x.shape, generator=gen) * u(1.0, 8.0)
    return x.clamp(0, 255)
