"""Deterministic weights and output digests for checking RSP models against the official code.

``fill_fan_in`` gives two implementations that share state_dict keys and shapes identical
weights: values depend only on the seed, the SORTED key list and each tensor's shape, not on
module registration order or initialisers. Unlike ``deterministic.fill_deterministic`` (a fixed
0.02 scale) weight matrices are scaled by 1/sqrt(fan_in), so the deep RSP networks keep O(1)
activations and non-uniform attention: a wrong index, mask or head split changes the digests
far above the tolerance. Buffers derived from the architecture (``relative_position_index``,
Swin's precomputed ``attn_mask``) keep their computed values.
"""
import math
from typing import Dict, List, Union

import torch
import torch.nn as nn

from .. import metadata

DERIVED_BUFFERS = ("relative_position_index", "attn_mask")


@torch.no_grad()
def fill_fan_in(module: nn.Module, seed: int) -> None:
    """Overwrite every learned floating state_dict tensor of ``module`` in place.

    Sorted keys, one torch.Generator(seed), u ~ U(-1, 1) drawn in float64 per tensor:
      tensors with >= 2 dims: u * sqrt(3 / fan_in)  (unit-variance preserving, fan_in = numel/shape[0])
      BatchNorm running_var: 1 + 0.5 u;  running_mean: 0.1 u;  num_batches_tracked: 0
      other 1-d ``*.weight`` (norm scales): 1 + 0.1 u;  other 1-d tensors (biases): 0.1 u
    """
    g = torch.Generator()
    g.manual_seed(int(seed))
    sd = module.state_dict()
    for key in sorted(sd.keys()):
        t = sd[key]
        if key.endswith(DERIVED_BUFFERS):
            continue
        if not t.is_floating_point():
            if key.endswith("num_batches_tracked"):
                t.zero_()
            continue
        u = torch.rand(tuple(t.shape), generator=g, dtype=torch.float64) * 2.0 - 1.0
        if key.endswith("running_var"):
            v = 1.0 + 0.5 * u
        elif key.endswith("running_mean"):
            v = 0.1 * u
        elif t.dim() >= 2:
            fan_in = max(1, t.numel() // t.shape[0])
            v = u * math.sqrt(3.0 / fan_in)
        elif key.endswith("weight"):
            v = 1.0 + 0.1 * u
        else:
            v = 0.1 * u
        t.copy_(v.to(t.dtype))


def tensor_digest(t: torch.Tensor, n: int = 8) -> Dict[str, object]:
    flat = t.detach().to(torch.float64).reshape(-1)
    return {"shape": [int(s) for s in t.shape], "sum": float(flat.sum()),
            "abs_sum": float(flat.abs().sum()), "first": [float(v) for v in flat[:n]]}


@torch.no_grad()
def output_digest(module: nn.Module, shape: List[int]) -> Union[Dict[str, object], List[Dict[str, object]]]:
    """Digest of ``module`` on the ramp input (rsi_models.metadata.ramp); lists for backbones."""
    out = module(metadata.ramp(shape))
    if isinstance(out, (list, tuple)):
        return [tensor_digest(o) for o in out]
    return tensor_digest(out)


def digest_error(a, b) -> float:
    """Largest relative deviation between two digests (abs error / max(1, |reference|)).

    ``sum`` and ``abs_sum`` are scaled by the reference abs_sum, sample values by max(1, |v|).
    """
    if isinstance(a, list):
        if len(a) != len(b):
            return float("inf")
        return max(digest_error(x, y) for x, y in zip(a, b))
    if a["shape"] != b["shape"]:
        return float("inf")
    scale = max(1.0, abs(b["abs_sum"]))
    err = max(abs(a["sum"] - b["sum"]), abs(a["abs_sum"] - b["abs_sum"])) / scale
    for x, y in zip(a["first"], b["first"]):
        err = max(err, abs(x - y) / max(1.0, abs(y)))
    return err


def key_shapes(module_or_sd) -> Dict[str, List[int]]:
    sd = module_or_sd.state_dict() if isinstance(module_or_sd, nn.Module) else module_or_sd
    return {k: [int(s) for s in v.shape] for k, v in sd.items()}
