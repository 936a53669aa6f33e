"""Writes the small model fixtures the C++ tests load (data/fixtures/*.pt).

Each is a tiny randomly initialised network with a fixed seed, saved as TorchScript with (or on
purpose without, or with broken) rsi.json metadata. Regenerate with:

    /usr/bin/python3 models/python/make_fixtures.py --out data/fixtures
"""
import argparse
import json
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rsi_models.metadata import golden, golden_shape, weights_sha256  # noqa: E402

COMMAND = "/usr/bin/python3 models/python/make_fixtures.py --out data/fixtures"


class TinySegmenter(nn.Module):
    """Three 3x3 convolutions, no downsampling: receptive-field half-width 3 pixels."""

    def __init__(self, bands: int = 3, classes: int = 2):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(bands, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, classes, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class TinyScene(nn.Module):
    def __init__(self, bands: int = 4, classes: int = 3):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(bands, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))


def document(module, name, task, bands, classes, tile, overlap, halo, activation="softmax", **extra):
    doc = {
        "format": "rsi-model", "format_version": 1, "name": name, "version": "0.0.1", "task": task,
        "description": "test fixture: a tiny randomly initialised network",
        "input": {"bands": bands, "band_names": ["b%d" % (i + 1) for i in range(bands)],
                  "source_bands": list(range(1, bands + 1)), "data_range": [0, 255],
                  "scale": 1.0 / 255.0, "mean": [0.5] * bands, "std": [0.25] * bands},
        "band_mapping": {"single_band": "replicate", "rescale": "percentile", "low": 2, "high": 98},
        "tile": {"size": tile, "overlap": overlap, "output_stride": 1, "halo": halo, "multiple_of": 1},
        "gsd_m": 0.3, "output": "logits", "output_activation": activation,
        "classes": [{"id": i, "name": n, "color": c} for i, (n, c) in enumerate(classes)],
        "license": "CC0 (test fixture)",
        "provenance": {"data": ["none (random weights)"], "script": "models/python/make_fixtures.py",
                       "command": COMMAND},
        "weights_sha256": weights_sha256(module),
    }
    doc.update(extra)
    doc["golden"] = golden(module, golden_shape(doc))
    return doc


class NanSegmenter(torch.nn.Module):
    """2 output channels of NaN at the input's size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 2, x.shape[2], x.shape[3]), float("nan"))


def save(module, path, doc=None, raw=None):
    scripted = torch.jit.script(module)
    files = {}
    if doc is not None:
        files["rsi.json"] = json.dumps(doc, indent=1)
    if raw is not None:
        files["rsi.json"] = raw
    scripted.save(path, _extra_files=files)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    out = lambda name: os.path.join(args.out, name)  # noqa: E731

    torch.manual_seed(7)
    seg = TinySegmenter().eval()
    two = [("background", [0, 0, 0]), ("building", [255, 64, 64])]
    save(seg, out("tiny_segmenter.pt"), document(seg, "tiny-segmenter", "segmentation", 3, two, 64, 8, 3))

    torch.manual_seed(8)
    sig = TinySegmenter(classes=1).eval()
    save(sig, out("tiny_sigmoid.pt"),
         document(sig, "tiny-sigmoid", "segmentation", 3, two, 64, 8, 3, activation="sigmoid"))

    torch.manual_seed(9)
    scene = TinyScene().eval()
    three = [("field", [255, 255, 0]), ("forest", [0, 128, 0]), ("water", [0, 0, 255])]
    save(scene, out("tiny_scene.pt"), document(scene, "tiny-scene", "scene", 4, three, 16, 0, 0))

    # Four leaf classes under a two-level hierarchy (like MillionAID's three levels).
    torch.manual_seed(10)
    tree = TinyScene(classes=4).eval()
    leaves = [("dry_field", [200, 200, 0]), ("paddy", [150, 200, 0]), ("marsh", [0, 150, 150]), ("lake", [0, 0, 255])]
    doc = document(tree, "tiny-hierarchy", "scene", 4, leaves, 16, 0, 0, hierarchy={"levels": ["level1", "level2", "level3"]})
    parents = [["land", "farmland"], ["land", "farmland"], ["land", "wetland"], ["water", "lake_area"]]
    for c, p in zip(doc["classes"], parents):
        c["parents"] = p
    save(tree, out("tiny_hierarchy.pt"), doc)

    save(seg, out("no_metadata.pt"))
    bad = document(seg, "bad", "segmentation", 3, two, 64, 8, 3)
    bad["input"]["std"] = [0.25, 0.0, 0.25]
    save(seg, out("bad_metadata.pt"), bad)
    # Declares 3 classes while the network outputs 2 channels.
    wrong = document(seg, "wrong-output", "segmentation", 3, two + [("road", [128, 128, 128])], 64, 8, 3)
    wrong["golden"] = None
    del wrong["golden"]
    save(seg, out("wrong_output.pt"), wrong)
    # A broken network: every output NaN (the runtime must refuse it rather than map class 0).
    nan_net = NanSegmenter().eval()
    broken = document(nan_net, "nan-output", "segmentation", 3, two, 64, 8, 3)
    del broken["golden"]
    save(nan_net, out("nan_output.pt"), broken)
    print("fixtures written to", args.out)


if __name__ == "__main__":
    main()
