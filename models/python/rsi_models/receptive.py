"""Receptive field of a segmentation network: theoretical extent and measured effective halo."""
from typing import List

import torch


def theoretical_halo(model: torch.nn.Module, in_channels: int, size: int = 512) -> int:
    """Half-width (pixels) of the region of the input that can influence one output pixel.

    Computed from the gradient support of the centre output pixel with respect to the input
    (random input, eval mode), i.e. the theoretical receptive field half-width.
    """
    model = model.eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, in_channels, size, size, generator=g, requires_grad=True)
    y = model(x)
    c = size // 2
    y[0, :, c, c].sum().backward()
    nz = (x.grad[0].abs().sum(0) > 0).nonzero()
    if len(nz) == 0:
        return 0
    r = int(max(c - nz[:, 0].min(), nz[:, 0].max() - c, c - nz[:, 1].min(), nz[:, 1].max() - c))
    return r


@torch.no_grad()
def measured_halo(model: torch.nn.Module, images: List[torch.Tensor], step: int,
                  tol: float = 0.05, class_index: int = 1) -> dict:
    """Smallest context margin m (multiple of ``step``) such that cutting the image m pixels away
    changes the probability of ``class_index`` by at most ``tol`` anywhere (effective halo).

    images: normalised 1 x C x H x W tensors with H, W >= 2 * H//2 and multiples of ``step``.
    Cuts are tested at the middle of every image, below (rows) and to the right (columns).
    Returns {"halo": m, "max_diff_by_margin": {m: diff}}.
    """
    model = model.eval()
    diffs = {}
    for img in images:
        full = torch.softmax(model(img), 1)[:, class_index]
        h, w = img.shape[2], img.shape[3]
        for axis in (2, 3):
            n = h if axis == 2 else w
            keep = (n // 2) // step * step
            for m in range(0, n - keep + 1, step):
                if axis == 2:
                    p = torch.softmax(model(img[:, :, :keep + m]), 1)[:, class_index][:, :keep]
                    d = float((p - full[:, :keep]).abs().max())
                else:
                    p = torch.softmax(model(img[:, :, :, :keep + m]), 1)[:, class_index][:, :, :keep]
                    d = float((p - full[:, :, :keep]).abs().max())
                diffs[m] = max(diffs.get(m, 0.0), d)
    ms = sorted(diffs)
    halo = ms[-1]
    for i, m in enumerate(ms):
        if all(diffs[k] <= tol for k in ms[i:]):
            halo = m
            break
    return {"halo": halo, "tolerance": tol, "max_diff_by_margin": {str(k): round(diffs[k], 5) for k in ms}}
