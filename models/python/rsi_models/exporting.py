"""Scripting, metadata embedding and verification of rsi model files."""
import copy
import json
import os
from typing import Any, Dict, Optional, Tuple

import torch

from . import metadata, nets, outputs

MAX_DIFF = 1e-5


def load_checkpoint(path: str) -> Tuple[torch.nn.Module, Dict[str, Any], Dict[str, Any]]:
    """A training checkpoint -> (eager model in eval mode, metadata document draft, metrics)."""
    ck = torch.load(path, map_location="cpu")
    for k in ("arch", "arch_kwargs", "state_dict", "meta"):
        if k not in ck:
            raise ValueError("%s: not an rsi training checkpoint (no '%s')" % (path, k))
    model = nets.build(ck["arch"], ck["arch_kwargs"])
    model.load_state_dict(ck["state_dict"])
    model.eval()
    return model, copy.deepcopy(ck["meta"]), dict(ck.get("metrics", {}))


def _check_shapes(doc) -> list:
    """Input shapes used for the eager/TorchScript comparison (several H, W for segmentation)."""
    c = doc["input"]["bands"]
    if doc["task"] == "scene":
        s = doc["tile"]["size"]
        return [[1, c, s, s], [3, c, s, s]]
    m = doc["tile"].get("multiple_of", 1)
    return [[1, c, 64, 64], [2, c, 3 * m, 5 * m], [1, c, 8 * m, 4 * m]]


@torch.no_grad()
def max_diff(a: torch.nn.Module, b: torch.nn.Module, shapes, seed: int = 0) -> float:
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for sh in shapes:
        for x in (metadata.ramp(sh), torch.randn(sh, generator=g)):
            ya, yb = a(x), b(x)
            if ya.shape != yb.shape:
                raise AssertionError("output shapes differ: %s vs %s" % (list(ya.shape), list(yb.shape)))
            worst = max(worst, float((ya - yb).abs().max()))
    return worst


def export(model: torch.nn.Module, doc: Dict[str, Any], out_path: str,
           max_abs_diff: float = MAX_DIFF, overwrite: bool = True) -> Dict[str, Any]:
    """Script ``model``, complete ``doc`` (weights_sha256, golden), validate it, save ``out_path``
    with ``rsi.json`` embedded, reload the file and check it against the eager model.

    The file is written under a temporary name and renamed into place once verified (an existing
    one is replaced only with ``overwrite``: outputs.atomic_output). Returns the final document.
    Raises on any inconsistency, leaving no file.
    """
    model = model.eval()
    doc = copy.deepcopy(doc)
    doc["weights_sha256"] = metadata.weights_sha256(model)
    scripted = torch.jit.script(model)
    doc["golden"] = metadata.golden(scripted, metadata.golden_shape(doc))
    metadata.validate(doc)
    metadata.check_against_module(doc, model)
    text = metadata.dumps(doc)
    d = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(d, exist_ok=True)
    with outputs.atomic_output(out_path, overwrite) as tmp:
        torch.jit.save(scripted, tmp, _extra_files={"rsi.json": text})
        verify_file(tmp, eager=model, max_abs_diff=max_abs_diff)
    return doc


def load_file(path: str) -> Tuple[torch.jit.ScriptModule, Dict[str, Any]]:
    """Load an rsi model file: (TorchScript module in eval mode, validated metadata document)."""
    extra = {"rsi.json": ""}
    m = torch.jit.load(path, map_location="cpu", _extra_files=extra)
    m.eval()
    text = extra["rsi.json"]
    if not text:
        raise metadata.MetadataError("%s: no embedded rsi.json" % path)
    doc = json.loads(text)
    try:
        metadata.validate(doc)
    except metadata.MetadataError as e:
        raise metadata.MetadataError("%s: %s" % (path, e))
    return m, doc


def rewrite_metadata(model_path: str, out_path: str, edit, version: Optional[str] = None,
                     command: Optional[str] = None) -> Dict[str, Any]:
    """Save ``model_path`` again as ``out_path`` with its rsi.json changed by ``edit(doc)``.

    The graph, the weights and the golden values stay as they are; ``version`` replaces the version
    when given, ``command`` is appended to provenance.command. The file is checked after writing (hash
    and golden values) and removed when it does not pass."""
    module, doc = load_file(model_path)
    edit(doc)
    if version:
        doc["version"] = version
    if command:
        doc["provenance"]["command"] = doc["provenance"]["command"] + " && " + command
    metadata.validate(doc)
    torch.jit.save(module, out_path, _extra_files={"rsi.json": metadata.dumps(doc)})
    try:
        verify_file(out_path)
    except Exception:
        os.remove(out_path)
        raise
    return doc


def verify_file(path: str, eager: Optional[torch.nn.Module] = None,
                max_abs_diff: float = MAX_DIFF) -> Dict[str, Any]:
    """Reload ``path`` and check hash, golden values and (given ``eager``) equality with eager."""
    m, doc = load_file(path)
    metadata.check_against_module(doc, m)
    g = metadata.golden(m, doc["golden"]["shape"])
    ref = doc["golden"]
    tol = 1e-4 * max(1.0, abs(ref["output_abs_sum"]))
    if abs(g["output_sum"] - ref["output_sum"]) > tol or \
            abs(g["output_abs_sum"] - ref["output_abs_sum"]) > tol or \
            max(abs(a - b) for a, b in zip(g["output_sample"], ref["output_sample"])) > 1e-5:
        raise AssertionError("%s: golden values do not reproduce" % path)
    if eager is not None:
        diff = max_diff(eager.eval(), m, _check_shapes(doc))
        if diff > max_abs_diff:
            raise AssertionError("%s: TorchScript output differs from eager output by %g > %g"
                                 % (path, diff, max_abs_diff))
        doc = dict(doc)
        doc["_max_abs_diff"] = diff
    return doc
