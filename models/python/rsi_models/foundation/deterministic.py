"""Deterministic, framework-independent weights for fidelity checks.

Two implementations of the same architecture (ours and an official one) that share
state_dict keys and shapes get bit-identical weights from `fill_deterministic`, because
the values depend only on the seed, the SORTED key list and each tensor's shape -- not on
module registration order or on initialisers. Digests recorded from the official code can
then be re-checked against our model without the official code being present.
"""
from typing import Any, Dict, Set

import torch
import torch.nn as nn

_NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm,
               nn.modules.instancenorm._InstanceNorm)


def _norm_weight_keys(module: nn.Module) -> Set[str]:
    keys = set()
    for name, m in module.named_modules():
        if isinstance(m, _NORM_TYPES):
            keys.add((name + "." if name else "") + "weight")
    return keys


@torch.no_grad()
def fill_deterministic(module: nn.Module, seed: int) -> None:
    """Overwrite every floating state_dict tensor of `module` in place.

    Sorted key order, one torch.Generator seeded with `seed`:
      * norm-layer weights (BatchNorm/LayerNorm/GroupNorm/InstanceNorm): 1 + 0.1 * N(0,1)
      * BatchNorm running_var: U(0.5, 1.5)   (keeps the normalisation well conditioned)
      * every other floating tensor (weights, biases, running_mean, embeddings,
        position tables): 0.02 * N(0,1)
      * num_batches_tracked: 0
      * other integer buffers (e.g. relative_position_index): left as computed.
    Values are drawn in float64 and cast, so the fill does not depend on the dtype.
    """
    g = torch.Generator()
    g.manual_seed(int(seed))
    norm_w = _norm_weight_keys(module)
    sd = module.state_dict(keep_vars=True)
    for key in sorted(sd.keys()):
        t = sd[key]
        if t is None:
            continue
        if not t.is_floating_point():
            if key.endswith("num_batches_tracked"):
                t.zero_()
            continue
        shape = tuple(t.shape)
        if key in norm_w:
            v = 1.0 + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
        elif key.endswith("running_var"):
            v = 0.5 + torch.rand(shape, generator=g, dtype=torch.float64)
        else:
            v = 0.02 * torch.randn(shape, generator=g, dtype=torch.float64)
        t.data.copy_(v.to(t.dtype))


def tensor_digest(t: torch.Tensor, samples: int = 64) -> Dict[str, Any]:
    """Small JSON-able fingerprint of a tensor: shape, mean, mean |x|, std and `samples`
    values at evenly spaced flat (C-order) indices."""
    v = t.detach().to(torch.float64).reshape(-1)
    idx = torch.linspace(0, v.numel() - 1, min(samples, v.numel()), dtype=torch.float64).round().long()
    return {
        "shape": [int(s) for s in t.shape],
        "mean": float(v.mean()),
        "abs_mean": float(v.abs().mean()),
        "std": float(v.std()) if v.numel() > 1 else 0.0,
        "sample_index": [int(i) for i in idx],
        "sample": [float(x) for x in v[idx]],
    }


def digest_diff(t: torch.Tensor, ref: Dict[str, Any]) -> float:
    """Max abs difference between `t` and a recorded digest (inf on a shape mismatch)."""
    if [int(s) for s in t.shape] != list(ref["shape"]):
        return float("inf")
    v = t.detach().to(torch.float64).reshape(-1)
    got = v[torch.tensor(ref["sample_index"], dtype=torch.long)]
    d = float((got - torch.tensor(ref["sample"], dtype=torch.float64)).abs().max())
    for k in ("mean", "abs_mean"):
        d = max(d, abs(float(getattr(v.abs() if k == "abs_mean" else v, "mean")()) - ref[k]))
    return d
