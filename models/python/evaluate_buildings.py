#!/usr/bin/python3
"""Evaluate exported rsi models (TorchScript files with rsi.json) on the shared data.

Segmentation models: pooled pixel IoU and F1 of the building class on inria/test (whole 256x256
crops, reflect-padded to tile.multiple_of if needed). Scene models: accuracy and confusion matrix on
the fixed EuroSAT validation split (<Class>_11..14).

Examples (from the repository root):
  /usr/bin/python3 models/python/evaluate_buildings.py data/models/buildings.pt
  /usr/bin/python3 models/python/evaluate_buildings.py data/models/eurosat13.pt data/models/eurosat-rgbn.pt
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rsi_models import data, evaluation, exporting  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="rsi model files (.pt)")
    p.add_argument("--data-root", default=data.default_data_root())
    p.add_argument("--split", default=None,
                   help="inria split for segmentation (default test), EuroSAT split for scene (default val)")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {}
    for path in args.models:
        _, doc = exporting.load_file(path)
        if doc["task"] == "segmentation":
            r = evaluation.evaluate_buildings(path, args.data_root, args.split or "test")
            print("%s (%s) on %s (%d crops): building IoU %.4f  F1 %.4f  precision %.4f  recall %.4f"
                  % (path, doc["name"], r["split"], r["images"], r["iou"], r["f1"], r["precision"],
                     r["recall"]))
            print("  per image IoU: %s" % json.dumps(r["per_image_iou"]))
        else:
            r = evaluation.evaluate_scene(path, args.data_root, args.split or "val")
            print("%s (%s) on %s (%d patches): accuracy %.4f"
                  % (path, doc["name"], r["split"], r["patches"], r["accuracy"]))
            print(evaluation.format_confusion(r["confusion_matrix"], r["classes"]))
            for f, t, pr in r["errors"]:
                print("  wrong: %s  true %s  predicted %s" % (f, t, pr))
        results[path] = r
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
