"""einops.rearrange for plain axis / parenthesised-group patterns (no ellipsis, no 1)."""
import re
from functools import reduce


def _parse(side):
    groups = []
    for m in re.finditer(r"\(([^)]*)\)|(\w+)", side):
        groups.append(m.group(1).split() if m.group(1) is not None else [m.group(2)])
    return groups


def _prod(xs):
    return reduce(lambda a, b: a * b, xs, 1)


def rearrange(tensor, pattern, **sizes):
    lhs, rhs = pattern.split("->")
    left, right = _parse(lhs), _parse(rhs)
    assert len(left) == tensor.dim(), (pattern, tuple(tensor.shape))
    sizes = dict(sizes)
    for group, dim in zip(left, tensor.shape):
        unknown = [n for n in group if n not in sizes]
        known = _prod(sizes[n] for n in group if n in sizes)
        assert len(unknown) <= 1, pattern
        if unknown:
            sizes[unknown[0]] = dim // known
        assert _prod(sizes[n] for n in group) == dim, (pattern, group, dim)
    flat = [n for g in left for n in g]
    t = tensor.reshape([sizes[n] for n in flat])
    t = t.permute([flat.index(n) for g in right for n in g])
    return t.reshape([_prod(sizes[n] for n in g) for g in right])


def repeat(*args, **kwargs):  # imported by the RVSA backbone, never called there
    raise NotImplementedError
