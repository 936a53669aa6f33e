"""The rsi.json metadata document (docs/MODEL_FORMAT.md): build, validate, hash, golden values."""
import hashlib
import json
import math
from typing import Any, Dict, List

import torch

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

TASKS = ("segmentation", "scene")
OUTPUTS = ("logits", "probabilities")
ACTIVATIONS = ("softmax", "sigmoid")
SINGLE_BAND = ("replicate", "refuse")
RESCALE = ("none", "percentile", "minmax")
GDAL_TYPES = ("Byte", "Int8", "UInt16", "Int16", "UInt32", "Int32", "UInt64", "Int64",
              "Float32", "Float64")


class MetadataError(ValueError):
    """A malformed rsi.json document; the message names the field."""


# How the C++ runtime prepares an fp32 model for the CPU (docs/MODEL_FORMAT.md, cpu_graph).
CPU_GRAPHS = ("optimize_for_inference", "channels_last")

def weights_sha256(module: torch.nn.Module) -> str:
    """SHA-256 (hex) of every state_dict tensor, in state_dict order, as float32 little-endian.

    state_dict order is the module tree in depth-first pre-order, each module's parameters (in
    registration order) followed by its buffers; integer buffers such as BatchNorm's
    num_batches_tracked are included, converted to float32.
    """
    h = hashlib.sha256()
    for _, t in module.state_dict().items():
        a = t.detach().to(torch.float32).contiguous().cpu().numpy()
        h.update(a.astype("<f4", copy=False).tobytes())
    return h.hexdigest()


def ramp(shape: List[int]) -> torch.Tensor:
    """The deterministic "ramp" input: element i (flat, C order) = ((i*37) % 255)/255 - 0.5."""
    n = 1
    for s in shape:
        n *= int(s)
    i = torch.arange(n, dtype=torch.int64)
    return (((i * 37) % 255).to(torch.float64) / 255.0 - 0.5).to(torch.float32).reshape(shape)


def golden_shape(doc: Dict[str, Any]) -> List[int]:
    c = int(doc["input"]["bands"])
    if doc["task"] == "scene":
        s = int(doc["tile"]["size"])
        return [1, c, s, s]
    return [1, c, 64, 64]


@torch.no_grad()
def golden(module, shape: List[int]) -> Dict[str, Any]:
    out = module(ramp(shape)).to(torch.float64)
    flat = out.reshape(-1)
    return {"input": "ramp", "shape": [int(s) for s in shape],
            "output_sum": float(flat.sum()), "output_abs_sum": float(flat.abs().sum()),
            "output_sample": [float(v) for v in flat[:8]]}


def _get(doc: Dict[str, Any], path: str, required: bool = True):
    cur: Any = doc
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            if required:
                raise MetadataError("missing required field '%s'" % path)
            return None
        cur = cur[part]
    return cur


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(float(v)))


def _check(cond: bool, path: str, msg: str):
    if not cond:
        raise MetadataError("field '%s': %s" % (path, msg))


def validate(doc: Dict[str, Any]) -> None:
    """Raise MetadataError (naming the field) unless doc follows docs/MODEL_FORMAT.md."""
    _check(isinstance(doc, dict), "<root>", "must be a JSON object")
    _check(_get(doc, "format") == "rsi-model", "format", "must be \"rsi-model\"")
    _check(_get(doc, "format_version") == 1 and _is_int(doc["format_version"]),
           "format_version", "must be 1")
    for f in ("name", "version", "license"):
        v = _get(doc, f)
        _check(isinstance(v, str) and v != "", f, "must be a non-empty string")
    task = _get(doc, "task")
    _check(task in TASKS, "task", "must be one of %s" % (TASKS,))
    if "description" in doc:
        _check(isinstance(doc["description"], str), "description", "must be a string")

    c = _get(doc, "input.bands")
    _check(_is_int(c) and c >= 1, "input.bands", "must be an integer >= 1")
    names = _get(doc, "input.band_names")
    _check(isinstance(names, list) and len(names) == c and all(isinstance(n, str) and n for n in names),
           "input.band_names", "must list %s non-empty strings" % c)
    sb = _get(doc, "input.source_bands", required=False)
    if sb is not None:
        _check(isinstance(sb, list) and len(sb) == c and all(_is_int(b) and b >= 1 for b in sb),
               "input.source_bands", "must list %s integers >= 1 (1-based)" % c)
    sbc = _get(doc, "input.source_band_count", required=False)
    if sbc is not None:
        _check(_is_int(sbc) and 1 <= sbc <= 65535, "input.source_band_count", "must be an integer between 1 and 65535")
        _check(sb is not None, "input.source_band_count", "needs input.source_bands (the bands it numbers)")
        _check(max(sb) <= sbc, "input.source_bands", "band %s is past input.source_band_count %s" % (max(sb), sbc))
    dr = _get(doc, "input.data_range")
    _check(isinstance(dr, list) and len(dr) == 2 and all(_is_num(v) for v in dr) and dr[0] < dr[1],
           "input.data_range", "must be [min, max] numbers with min < max")
    sc = _get(doc, "input.scale")
    _check(_is_num(sc) and sc != 0, "input.scale", "must be a finite non-zero number")
    mean = _get(doc, "input.mean")
    _check(isinstance(mean, list) and len(mean) == c and all(_is_num(v) for v in mean),
           "input.mean", "must list %s numbers" % c)
    std = _get(doc, "input.std")
    _check(isinstance(std, list) and len(std) == c and all(_is_num(v) and v > 0 for v in std),
           "input.std", "must list %s numbers, all > 0" % c)

    bm = doc.get("band_mapping")
    if bm is not None:
        _check(isinstance(bm, dict), "band_mapping", "must be an object")
        if "single_band" in bm:
            _check(bm["single_band"] in SINGLE_BAND, "band_mapping.single_band",
                   "must be one of %s" % (SINGLE_BAND,))
        if "rescale" in bm:
            _check(bm["rescale"] in RESCALE, "band_mapping.rescale", "must be one of %s" % (RESCALE,))
        if "rescale_when" in bm:
            rw = bm["rescale_when"]
            _check(isinstance(rw, list) and all(t in GDAL_TYPES for t in rw),
                   "band_mapping.rescale_when", "must list GDAL data type names")
        for f in ("low", "high"):
            if f in bm:
                _check(_is_num(bm[f]) and 0 <= bm[f] <= 100, "band_mapping." + f,
                       "must be a percentile in 0..100")
        if "low" in bm and "high" in bm:
            _check(bm["low"] < bm["high"], "band_mapping.low", "must be below band_mapping.high")

    size = _get(doc, "tile.size")
    _check(_is_int(size) and size >= 1, "tile.size", "must be an integer >= 1")
    ov = _get(doc, "tile.overlap")
    _check(_is_int(ov) and 0 <= ov < size, "tile.overlap", "must be an integer in 0..tile.size-1")
    ostr = _get(doc, "tile.output_stride")
    _check(_is_int(ostr) and ostr >= 1, "tile.output_stride", "must be an integer >= 1")
    halo = _get(doc, "tile.halo")
    _check(_is_int(halo) and halo >= 0, "tile.halo", "must be an integer >= 0")
    mo = _get(doc, "tile.multiple_of", required=False)
    if mo is not None:
        _check(_is_int(mo) and mo >= 1, "tile.multiple_of", "must be an integer >= 1")
        _check(size % mo == 0, "tile.size", "must be a multiple of tile.multiple_of (%s)" % mo)
    if task == "segmentation":
        _check(size % ostr == 0, "tile.size", "must be a multiple of tile.output_stride")
    gsd = _get(doc, "gsd_m")
    _check(_is_num(gsd) and gsd > 0, "gsd_m", "must be a number > 0")

    out = _get(doc, "output")
    _check(out in OUTPUTS, "output", "must be one of %s" % (OUTPUTS,))
    act = doc.get("output_activation", "softmax")
    _check(act in ACTIVATIONS, "output_activation", "must be one of %s" % (ACTIVATIONS,))

    classes = _get(doc, "classes")
    _check(isinstance(classes, list) and len(classes) >= 1, "classes", "must be a non-empty list")
    levels = _get(doc, "hierarchy.levels", required=False)
    if levels is not None:
        _check(isinstance(levels, list) and len(levels) >= 1 and all(isinstance(l, str) for l in levels),
               "hierarchy.levels", "must list level names")
    seen = set()
    for i, cl in enumerate(classes):
        p = "classes[%d]" % i
        _check(isinstance(cl, dict), p, "must be an object")
        _check(_is_int(cl.get("id")) and cl["id"] == i, p + ".id",
               "must be the output channel index %d" % i)
        _check(isinstance(cl.get("name"), str) and cl["name"] != "", p + ".name",
               "must be a non-empty string")
        _check(cl["name"] not in seen, p + ".name", "duplicate class name %r" % cl["name"])
        seen.add(cl["name"])
        col = cl.get("color")
        _check(isinstance(col, list) and len(col) == 3 and all(_is_int(v) and 0 <= v <= 255 for v in col),
               p + ".color", "must be [r,g,b] integers in 0..255")
        if "parents" in cl:
            par = cl["parents"]
            _check(isinstance(par, list) and all(isinstance(v, str) for v in par), p + ".parents",
                   "must list strings")
            if levels is not None:
                _check(len(par) == len(levels) - 1, p + ".parents",
                       "must have hierarchy.levels - 1 = %d entries" % (len(levels) - 1))
    if act == "sigmoid":
        _check(len(classes) == 2, "output_activation",
               "sigmoid needs exactly 2 classes (background, foreground)")

    for f in ("provenance.script", "provenance.command"):
        v = _get(doc, f)
        _check(isinstance(v, str) and v != "", f, "must be a non-empty string")
    d = _get(doc, "provenance.data")
    _check(isinstance(d, list) and len(d) >= 1 and all(isinstance(v, str) for v in d),
           "provenance.data", "must list strings")
    if _get(doc, "provenance.metrics", required=False) is not None:
        _check(isinstance(doc["provenance"]["metrics"], dict), "provenance.metrics", "must be an object")

    sha = _get(doc, "weights_sha256")
    _check(isinstance(sha, str) and len(sha) == 64 and all(ch in "0123456789abcdef" for ch in sha),
           "weights_sha256", "must be 64 lower-case hex digits")

    g = doc.get("golden")
    if g is not None:
        _check(isinstance(g, dict), "golden", "must be an object")
        _check(g.get("input") == "ramp", "golden.input", "must be \"ramp\"")
        sh = g.get("shape")
        _check(isinstance(sh, list) and len(sh) == 4 and all(_is_int(v) and v >= 1 for v in sh),
               "golden.shape", "must be [N,C,H,W] positive integers")
        _check(sh[1] == c, "golden.shape", "channel count must equal input.bands")
        for f in ("output_sum", "output_abs_sum"):
            _check(_is_num(g.get(f)), "golden." + f, "must be a number")
        smp = g.get("output_sample")
        _check(isinstance(smp, list) and len(smp) >= 1 and all(_is_num(v) for v in smp),
               "golden.output_sample", "must list numbers")

    if "cpu_graph" in doc:
        _check(doc["cpu_graph"] in CPU_GRAPHS, "cpu_graph", "must be one of %s" % (CPU_GRAPHS,))


def check_against_module(doc: Dict[str, Any], module) -> None:
    """Consistency of a document with the module it describes (hash, class count, golden)."""
    sha = weights_sha256(module)
    _check(doc["weights_sha256"] == sha, "weights_sha256",
           "does not match the module (%s != %s)" % (doc["weights_sha256"], sha))
    shape = golden_shape(doc)
    with torch.no_grad():
        out = module(ramp(shape))
    k = len(doc["classes"])
    if doc.get("output_activation", "softmax") == "sigmoid":
        k = 1
    _check(out.dim() == (2 if doc["task"] == "scene" else 4) and out.shape[1] == k, "classes",
           "module returns %s, expected %d output channels for task %s"
           % (list(out.shape), k, doc["task"]))
    if doc["task"] == "segmentation":
        st = doc["tile"]["output_stride"]
        _check(out.shape[2] * st == shape[2] and out.shape[3] * st == shape[3], "tile.output_stride",
               "output %s does not match input %s" % (list(out.shape), shape))


def dumps(doc: Dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=False)
