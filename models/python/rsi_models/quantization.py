"""int8 static quantization of rsi model files (CPU): calibration input, quantization, hashing.

Two methods:
  * "fx": the eager architecture is rebuilt from rsi_models.nets (the bundled models' own source),
    its weights are loaded from the TorchScript file (checked to reproduce it), and FX graph-mode
    static quantization is applied, then the result is scripted. Clean quantized graph (residual
    adds, concatenations and upsampling stay in int8).
  * "jit": TorchScript graph-mode quantization (quantize_jit) of the loaded module itself, for any
    other model; tensors kept in Python lists (U-Net skips) are dequantized around them.
"""
import copy
import glob
import hashlib
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from . import metadata, nets
from .outputs import Interrupted

ENGINES = ("qnnpack", "onednn", "fbgemm")  # what the C++ runtime accepts in the metadata
IMAGE_EXTENSIONS = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".jp2", ".img", ".vrt")


# --------------------------------------------------------------------------- hashing

# With its AVX-512 VNNI kernels, oneDNN 2.6 (Debian's, under torch 1.13) keeps a quantized convolution's
# weights in a layout chosen for the first input size it ran and cannot reorder them for a size that
# needs another ("could not create a primitive descriptor for a reorder primitive": 512² after 128²
# fails, seen on a Zen 4 EPYC). Calibration and the checks here run several sizes through one module,
# so this script caps oneDNN at plain AVX-512, whose layouts do not depend on the size (fp32
# convolutions use AVX-512 either way). The C++ runtime instead runs each input size on a module of
# its own and keeps the faster VNNI kernels. The cap is read once, at oneDNN's first primitive, so it
# must be set before the first forward pass.
ONEDNN_ISA_CAP = "AVX512_CORE"


def cap_onednn_isa() -> bool:
    """Caps oneDNN at ONEDNN_ISA_CAP unless the user chose a cap (ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA).
    Returns whether this call set the cap."""
    if not os.environ.get("ONEDNN_MAX_CPU_ISA") and not os.environ.get("DNNL_MAX_CPU_ISA"):
        os.environ["ONEDNN_MAX_CPU_ISA"] = ONEDNN_ISA_CAP
        return True
    return False


def _packed_tensors(obj) -> List[torch.Tensor]:
    """Weight (dequantized) and bias of a quantized packed-parameters object (conv or linear)."""
    w, b = obj.unpack()
    out = [w.dequantize() if w.is_quantized else w]
    if b is not None:
        out.append(b)
    return out


def _has_unpack(value) -> bool:
    return isinstance(value, torch.ScriptObject) and value._has_method("unpack")


def weights_sha256(module) -> str:
    """docs/MODEL_FORMAT.md weights_sha256 of a TorchScript module, quantized or not.

    Per module in depth-first pre-order: its parameters, its buffers, then (int8 models) the
    weight and bias of each quantized packed-parameters attribute (weight dequantized), all as
    float32 little-endian. For a float module this equals metadata.weights_sha256 (state_dict order);
    the C++ runtime (models/torch_backend.cpp) walks the same way.
    """
    h = hashlib.sha256()

    def feed(t: torch.Tensor):
        a = t.detach().to(torch.float32).contiguous().cpu().numpy()
        h.update(a.astype("<f4", copy=False).tobytes())

    def walk(m):
        for _, p in m.named_parameters(recurse=False):
            feed(p)
        for _, b in m.named_buffers(recurse=False):
            feed(b)
        if isinstance(m, torch.jit.ScriptModule):
            attrs = torch._C._jit_debug_module_iterators(m._c)["named_attributes"]
            for _, v in attrs:
                if _has_unpack(v):
                    for t in _packed_tensors(v):
                        feed(t)
        for _, c in m.named_children():
            walk(c)

    walk(module)
    return h.hexdigest()


# --------------------------------------------------------------------------- calibration input

def list_images(sources: List[str]) -> List[str]:
    """Files given directly, plus the image files under given folders (recursive, sorted)."""
    files = []
    for s in sources:
        if os.path.isdir(s):
            found = [f for f in glob.glob(os.path.join(s, "**", "*"), recursive=True)
                     if os.path.isfile(f) and f.lower().endswith(IMAGE_EXTENSIONS)]
            if not found:
                raise FileNotFoundError("%s: no image files (%s) in this folder"
                                        % (s, ", ".join(IMAGE_EXTENSIONS)))
            files.extend(sorted(found))
        elif os.path.isfile(s):
            files.append(s)
        else:
            raise FileNotFoundError("%s: no such file or folder" % s)
    return files


def spread(items: List[Any], n: int) -> List[Any]:
    """n items evenly spread over the list (deterministic; all when n >= len)."""
    if n <= 0 or n >= len(items):
        return list(items)
    return [items[(i * len(items)) // n] for i in range(n)]


def read_image(path: str) -> Tuple[np.ndarray, str]:
    """C x H x W array and the GDAL data type name of band 1."""
    from osgeo import gdal
    gdal.UseExceptions()
    ds = gdal.Open(path)
    a = ds.ReadAsArray()
    if a.ndim == 2:
        a = a[None]
    return a, gdal.GetDataTypeName(ds.GetRasterBand(1).DataType)


def prepare(raw: np.ndarray, dtype_name: str, doc: Dict[str, Any]) -> torch.Tensor:
    """Source bands -> 1 x C x H x W model input, as the C++ runtime feeds it: band selection
    (1-band images replicated when the metadata allows), the metadata's rescale for the data types
    it names (per-image percentiles/min-max here, sampled statistics in C++), scale, mean, std."""
    inp = doc["input"]
    c = int(inp["bands"])
    bands = inp.get("source_bands") or list(range(1, c + 1))
    bm = doc.get("band_mapping") or {}
    if raw.shape[0] == 1 and c > 1:
        if bm.get("single_band", "refuse") != "replicate":
            raise ValueError("1-band image for a %d-band model that does not replicate bands" % c)
        x = np.repeat(raw, c, axis=0).astype(np.float64)
    else:
        if max(bands) > raw.shape[0]:
            raise ValueError("the model reads source band %d, the image has %d" % (max(bands), raw.shape[0]))
        x = raw[[b - 1 for b in bands]].astype(np.float64)
    rescale = bm.get("rescale", "none")
    when = bm.get("rescale_when", ["UInt16", "Int16", "UInt32", "Int32", "Float32", "Float64"])
    if rescale != "none" and dtype_name in when:
        lo_r, hi_r = inp["data_range"]
        for i in range(c):
            v = x[i]
            if rescale == "percentile":
                lo, hi = np.percentile(v, [bm.get("low", 2), bm.get("high", 98)])
            else:
                lo, hi = float(v.min()), float(v.max())
            if hi > lo:
                x[i] = np.clip(lo_r + (v - lo) * (hi_r - lo_r) / (hi - lo), lo_r, hi_r)
    t = torch.from_numpy(x).float() * float(inp["scale"])
    mean = torch.tensor(inp["mean"], dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(inp["std"], dtype=torch.float32).view(-1, 1, 1)
    return ((t - mean) / std).unsqueeze(0)


def fit_tile(x: torch.Tensor, doc: Dict[str, Any]) -> torch.Tensor:
    """Centre crop to at most tile.size, and (segmentation) down to a multiple of tile.multiple_of."""
    size = int(doc["tile"]["size"])
    mo = int(doc["tile"].get("multiple_of", 1)) if doc["task"] == "segmentation" else 1
    h, w = x.shape[2], x.shape[3]
    th, tw = min(h, size), min(w, size)
    th, tw = th - th % mo, tw - tw % mo
    if th < 1 or tw < 1:
        raise ValueError("image %dx%d is smaller than the model's multiple %d" % (w, h, mo))
    y0, x0 = (h - th) // 2, (w - tw) // 2
    return x[:, :, y0:y0 + th, x0:x0 + tw].contiguous()


def load_tiles(files: List[str], doc: Dict[str, Any]) -> List[torch.Tensor]:
    out = []
    for f in files:
        try:
            raw, dtype_name = read_image(f)
            out.append(fit_tile(prepare(raw, dtype_name, doc), doc))
        except Interrupted:
            raise  # Ctrl-C or SIGTERM while this file was read: an interruption, not a problem of the file
        except Exception as e:  # noqa: BLE001 - any reader/shape problem names the file
            raise ValueError("%s: %s" % (f, e))
    return out


# --------------------------------------------------------------------------- eager rebuild

def _count_blocks(sd, prefix: str) -> int:
    n = 0
    while ("%s%d.conv1.weight" % (prefix, n)) in sd:
        n += 1
    return n


def rebuild_eager(scripted, doc: Dict[str, Any]) -> Optional[torch.nn.Module]:
    """The eager rsi_models.nets module a bundled-style TorchScript file was scripted from, with its
    weights, or None when the architecture is not one of ours (or does not reproduce the file)."""
    name = getattr(scripted, "original_name", "")
    sd = scripted.state_dict()
    try:
        if name == "BuildingNet":
            stages = 0
            while ("stages.%d.0.conv1.weight" % stages) in sd:
                stages += 1
            widths = [int(sd["stem.0.0.weight"].shape[0])] + [
                int(sd["stages.%d.0.conv1.weight" % i].shape[0]) for i in range(stages)]
            dec = [0] * stages
            for j in range(stages):  # decoders run deepest first
                dec[stages - 1 - j] = int(sd["decoders.%d.fuse1.0.weight" % j].shape[0])
            model = nets.BuildingNet(in_channels=int(sd["stem.0.0.weight"].shape[1]),
                                     num_classes=int(sd["head.weight"].shape[0]), widths=widths,
                                     depth=_count_blocks(sd, "stages.0."), dec_widths=dec,
                                     antialias="stages.0.0.blur.weight" in sd)
        elif name == "StatsSceneNet":
            c = int(doc["input"]["bands"])
            nfeat = int(sd["feat_mean"].numel())
            if nfeat % c:
                return None
            model = nets.StatsSceneNet(in_channels=c, num_classes=int(sd["fc.weight"].shape[0]),
                                       scales=nfeat // c - 5)
        else:
            return None
        model.load_state_dict(sd, strict=True)
    except (KeyError, RuntimeError, ValueError):
        return None
    model.eval()
    shape = metadata.golden_shape(doc)
    x = metadata.ramp(shape)
    with torch.no_grad():
        if (model(x) - scripted(x)).abs().max().item() > 1e-4:
            return None
    return model


# --------------------------------------------------------------------------- supported architectures

# Converted foundation models (models/python/rsi_convert.py) by TorchScript class name: the root
# module (scene) or the EncoderDecoder's backbone (segmentation).
TRANSFORMER_ARCHITECTURES = {
    "SwinTransformer": "Swin-T", "SwinBackbone": "Swin-T",
    "ViTAEv2": "ViTAEv2-S", "ViTAEv2Backbone": "ViTAEv2-S",
    "RVSAViT": "RVSA ViT-B/ViTAE-B",
}
# oneDNN 2.6 (Debian's, under torch 1.13) int8 1x1 convolutions corrupt the heap with its AMX
# kernels for some small maps (33, 36, 42, 48 pixels seen on a Xeon with AMX: "double free or
# corruption", "corrupted size vs. prev_size", segfaults). ResNet-50 is made of 1x1 convolutions and
# its UperNet pools to 6x6 = 36 pixels, so it crashes at every tile size; tiles at other sizes can
# hit the bug anywhere in the network. qnnpack does not have it.
ONEDNN_UNSAFE_ARCHITECTURES = {"ResNet50": "ResNet-50", "ResNetBackbone": "ResNet-50"}


def architecture_of(scripted) -> Tuple[str, str]:
    """(TorchScript class name of the root, of the backbone for an EncoderDecoder or '')."""
    name = getattr(scripted, "original_name", "") or ""
    backbone = ""
    if name == "EncoderDecoder" and hasattr(scripted, "backbone"):
        backbone = getattr(scripted.backbone, "original_name", "") or ""
    return name, backbone


def unsupported_reason(scripted, engine: str) -> Optional[str]:
    """Why ``scripted`` cannot be quantized with ``engine`` (one line), or None."""
    root, backbone = architecture_of(scripted)
    key = backbone or root
    if key in TRANSFORMER_ARCHITECTURES:
        what = "%s%s" % (TRANSFORMER_ARCHITECTURES[key], " UperNet" if backbone else "")
        return ("int8 quantization does not support %s models: TorchScript graph-mode quantization "
                "(torch 1.13) cannot handle their attention blocks (window shifts, data-dependent "
                "branches and loops); run the fp32 model" % what)
    if engine == "onednn" and key in ONEDNN_UNSAFE_ARCHITECTURES:
        what = "%s%s" % (ONEDNN_UNSAFE_ARCHITECTURES[key], " UperNet" if backbone else "")
        return ("--engine onednn is refused for %s models: oneDNN 2.6's int8 kernels (torch 1.13) corrupt "
                "memory on their 1x1 convolutions over small maps (a crash, 'double free or corruption'); "
                "use --engine qnnpack" % what)
    return None


# --------------------------------------------------------------------------- quantization

def _calibrate(model, tiles: List[torch.Tensor]):
    with torch.no_grad():
        for t in tiles:
            model(t)


def engine_qconfig(engine: str):
    """The engine's default qconfig (per-channel symmetric int8 weights, uint8 per-tensor affine
    activations with histogram observers); for onednn with activations in 7 bits (reduce_range), as
    fbgemm/x86 have: without AVX-512 VNNI, oneDNN multiplies uint8 by int8 in pairs summed in int16
    (vpmaddubsw), which saturates for full-range activations, so results would depend on the CPU. The
    script records its golden values with oneDNN capped at plain AVX-512 (no VNNI) and the C++ runtime
    runs VNNI where it can: an int8 eurosat13 then differed by 1.2 (relative) in its golden logits.
    With 7-bit activations the sums cannot saturate and every ISA computes the same."""
    from torch.ao.quantization import QConfig, get_default_qconfig
    from torch.ao.quantization.observer import HistogramObserver
    qconfig = get_default_qconfig(engine)
    if engine == "onednn":
        qconfig = QConfig(activation=HistogramObserver.with_args(reduce_range=True), weight=qconfig.weight)
    return qconfig


def quantize_fx(eager: torch.nn.Module, tiles: List[torch.Tensor], engine: str):
    """FX static quantization with ``engine_qconfig``, scripted."""
    from torch.ao.quantization import QConfigMapping, quantize_fx as qfx
    qconfig = engine_qconfig(engine)
    if isinstance(eager, nets.StatsSceneNet):
        # Only the classifier is a quantizable op: the pooled statistics (std, quantiles, gradient
        # energy) stay float, int8 inputs would coarsen them for no speed.
        mapping = QConfigMapping().set_module_name("fc", qconfig)
    else:
        mapping = QConfigMapping().set_global(qconfig)
    prepared = qfx.prepare_fx(copy.deepcopy(eager).eval(), mapping, (tiles[0],))
    _calibrate(prepared, tiles)
    converted = qfx.convert_fx(prepared)
    return torch.jit.script(converted.eval())


def quantize_graph(scripted, tiles: List[torch.Tensor], engine: str):
    """TorchScript graph-mode static quantization of the loaded module (any architecture)."""
    from torch.ao.quantization import quantize_jit
    return quantize_jit(scripted, {"": engine_qconfig(engine)}, _calibrate, [tiles], inplace=False)


@torch.no_grad()
def agreement(reference, candidate, tiles: List[torch.Tensor]) -> float:
    """Fraction of output positions (pixels, or scenes) whose argmax class is the same."""
    same = total = 0
    for t in tiles:
        ra, rb = reference(t), candidate(t)
        # one output channel = sigmoid logit of the foreground
        a = (ra[:, 0] > 0) if ra.shape[1] == 1 else ra.argmax(1)
        b = (rb[:, 0] > 0) if rb.shape[1] == 1 else rb.argmax(1)
        same += int((a == b).sum())
        total += a.numel()
    return same / max(total, 1)
