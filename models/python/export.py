#!/usr/bin/python3
"""Export an rsi training checkpoint to a TorchScript model file with embedded rsi.json.

Scripts the network (torch.jit.script), completes the metadata (weights_sha256, golden values on the
"ramp" input, validation metrics from the checkpoint), validates it against docs/MODEL_FORMAT.md,
saves, reloads the file and checks that the TorchScript output equals the eager output
(max abs diff <= 1e-5).

For segmentation models, --halo measure measures the effective receptive-field half-width on the
held-out buildings-extra 512x512 images (smallest context margin that changes building probabilities
by <= 0.05) and sets tile.halo to it and tile.overlap to 2 x halo.

Examples (from the repository root):
  /usr/bin/python3 models/python/export.py --checkpoint models/python/runs/buildings/best.pt \\
      --out data/models/buildings.pt --halo measure
  /usr/bin/python3 models/python/export.py --checkpoint models/python/runs/eurosat13/final.pt \\
      --out data/models/eurosat13.pt
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rsi_models import data, exporting, metadata, nets, receptive  # noqa: E402


@torch.no_grad()
def tune_bias(model, head, doc, samples):
    """Add to the building logit the offset (grid -3..3, step 0.1) that maximises pooled IoU."""
    import numpy as np
    from rsi_models.evaluation import prepare
    from rsi_models.metrics import best_logit_offset
    diffs, gts = [], []
    for s in samples:
        out = model(prepare(s.image, doc))[0]
        diffs.append((out[1] - out[0]).numpy().ravel())
        gts.append(s.mask.ravel().astype(bool))
    best = best_logit_offset(np.concatenate(diffs), np.concatenate(gts))
    head.bias[1] += best["offset"]
    return {"offset": best["offset"], "inria_val_iou_before": float(best["iou_at_zero"]),
            "inria_val_iou_after": float(best["iou"])}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--name", help="override metadata name")
    p.add_argument("--version", help="override metadata version")
    p.add_argument("--tile-size", type=int, help="override tile.size")
    p.add_argument("--halo", default=None,
                   help="segmentation only: an integer, or 'measure' (needs the shared data)")
    p.add_argument("--halo-tolerance", type=float, default=0.05)
    p.add_argument("--tune-bias", action="store_true",
                   help="segmentation only: choose the building-vs-background logit offset that "
                        "maximises pooled building IoU on inria/val and fold it into the last "
                        "layer's bias (a decision-threshold choice made on validation data)")
    p.add_argument("--flip-tta", action="store_true",
                   help="segmentation only: wrap the network in nets.FlipTTA (mean over 4 flips)")
    p.add_argument("--data-root", default=data.default_data_root())
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cpu-graph", choices=metadata.CPU_GRAPHS,
                   help="how the C++ runtime prepares the model for the CPU (metadata cpu_graph; default "
                        "optimize_for_inference): channels_last is faster for the building U-Net")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    model, doc, metrics = exporting.load_checkpoint(args.checkpoint)
    if args.name:
        doc["name"] = args.name
    if args.version:
        doc["version"] = args.version
    if args.tile_size:
        doc["tile"]["size"] = args.tile_size
    if args.cpu_graph and args.cpu_graph != "optimize_for_inference":
        doc["cpu_graph"] = args.cpu_graph
    if doc["task"] == "segmentation":
        if hasattr(model, "multiple_of"):  # BuildingNet (checked before any wrapping)
            doc["tile"]["multiple_of"] = int(model.multiple_of)
        head = model.head
        if args.flip_tta:
            model = nets.FlipTTA(model).eval()
            metrics["flip_tta"] = True
            doc["description"] = doc.get("description", "") + " Flip test-time augmentation " \
                "(mean of 4 flips) is built in."
        if args.tune_bias:
            res = tune_bias(model, head, doc, data.load_inria(args.data_root, "val"))
            print("logit offset chosen on inria/val: %s" % json.dumps(res))
            metrics["building_logit_offset"] = res
        th = receptive.theoretical_halo(model, doc["input"]["bands"])
        metrics["halo_theoretical"] = th
        print("theoretical receptive-field half-width: %d px" % th)
        if args.halo is not None:
            if args.halo == "measure":
                imgs = []
                mean = torch.tensor(doc["input"]["mean"]).view(1, -1, 1, 1)
                std = torch.tensor(doc["input"]["std"]).view(1, -1, 1, 1)
                for s in data.load_buildings_extra(args.data_root, "val"):
                    if min(s.image.shape[1:]) >= 512:
                        x = torch.from_numpy(s.image).float().unsqueeze(0)
                        imgs.append((x * doc["input"]["scale"] - mean) / std)
                mo = doc["tile"].get("multiple_of", 1)
                res = receptive.measured_halo(model, imgs, step=2 * mo, tol=args.halo_tolerance)
                print("measured effective halo: %s" % json.dumps(res))
                halo = int(res["halo"])
                metrics["halo_measured"] = res
            else:
                halo = int(args.halo)
            doc["tile"]["halo"] = halo
            doc["tile"]["overlap"] = 2 * halo
    if metrics:
        doc["provenance"]["metrics"] = metrics
    final = exporting.export(model, doc, args.out)
    info = exporting.verify_file(args.out, eager=model)
    size_mb = os.path.getsize(args.out) / 1e6
    print("wrote %s (%.2f MB, %d parameters); TorchScript vs eager max abs diff %.3g"
          % (args.out, size_mb, nets.count_params(model), info["_max_abs_diff"]))
    print(metadata.dumps(final))


if __name__ == "__main__":
    main()
