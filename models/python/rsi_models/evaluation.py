"""Evaluation of exported rsi model files (TorchScript + rsi.json) on the shared data.

Inputs are prepared exactly as the metadata says (source_bands, scale, mean, std), so these numbers
check the file as the C++ runtime would use it on already band-mapped data.
"""
from typing import Any, Dict

import numpy as np
import torch
import torch.nn.functional as F

from . import data, exporting
from .metrics import binary_counts, confusion_matrix, iou_f1


def prepare(raw: np.ndarray, doc: Dict[str, Any]) -> torch.Tensor:
    """raw: C_src x H x W array -> 1 x C x H x W normalised float32 tensor per the metadata."""
    inp = doc["input"]
    bands = inp.get("source_bands") or list(range(1, inp["bands"] + 1))
    x = torch.from_numpy(np.ascontiguousarray(raw[[b - 1 for b in bands]])).float()
    x = x * float(inp["scale"])
    mean = torch.tensor(inp["mean"], dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(inp["std"], dtype=torch.float32).view(-1, 1, 1)
    return ((x - mean) / std).unsqueeze(0)


@torch.no_grad()
def segment(model, x: torch.Tensor, multiple_of: int) -> torch.Tensor:
    """Run a segmentation model on a whole image, reflect-padding H, W up to the multiple."""
    h, w = x.shape[2], x.shape[3]
    ph = (-h) % multiple_of
    pw = (-w) % multiple_of
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect")
    return model(x)[:, :, :h, :w]


@torch.no_grad()
def evaluate_buildings(model_path: str, data_root: str, split: str = "test") -> Dict[str, Any]:
    """Pooled pixel IoU / F1 of the building class on inria/<split> (whole 256x256 crops)."""
    model, doc = exporting.load_file(model_path)
    if doc["task"] != "segmentation":
        raise ValueError("%s is not a segmentation model" % model_path)
    names = [c["name"] for c in doc["classes"]]
    bidx = names.index("building")
    sigmoid = doc.get("output_activation", "softmax") == "sigmoid"
    mo = int(doc["tile"].get("multiple_of", 1))
    total = np.zeros(4, dtype=np.int64)
    per_image = {}
    for s in data.load_inria(data_root, split):
        out = segment(model, prepare(s.image, doc), mo)
        pred = (out[0, 0] > 0) if sigmoid else (out[0].argmax(0) == bidx)
        c = binary_counts(pred.numpy(), s.mask)
        total += c
        per_image[s.name] = round(iou_f1(c)[0], 4)
    iou, f1 = iou_f1(total)
    tp, fp, fn, tn = (int(v) for v in total)
    return {"split": "inria/" + split, "images": len(per_image), "iou": iou, "f1": f1,
            "precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1),
            "pixel_accuracy": (tp + tn) / float(total.sum()), "per_image_iou": per_image}


@torch.no_grad()
def evaluate_scene(model_path: str, data_root: str, split: str = "val") -> Dict[str, Any]:
    """Accuracy and confusion matrix of a EuroSAT scene model on the fixed split."""
    model, doc = exporting.load_file(model_path)
    if doc["task"] != "scene":
        raise ValueError("%s is not a scene model" % model_path)
    names = [c["name"] for c in doc["classes"]]
    if names != data.EUROSAT_CLASSES:
        raise ValueError("%s: classes %s are not the EuroSAT classes" % (model_path, names))
    x, y, files = data.eurosat_split(data_root, split)
    xs = torch.cat([prepare(a, doc) for a in x])
    pred = model(xs).argmax(1).numpy()
    cm = confusion_matrix(y, pred, len(names))
    return {"split": "eurosat " + split, "patches": int(len(y)), "accuracy": float((pred == y).mean()),
            "confusion_matrix": cm.tolist(), "classes": names,
            "errors": [(f, names[int(t)], names[int(p)]) for f, t, p in zip(files, y, pred) if t != p]}


def format_confusion(cm, names) -> str:
    short = [n[:6] for n in names]
    lines = ["true \\ pred".ljust(22) + " ".join(s.rjust(6) for s in short)]
    for n, row in zip(names, cm):
        lines.append(n.ljust(22) + " ".join(str(v).rjust(6) for v in row))
    return "\n".join(lines)
