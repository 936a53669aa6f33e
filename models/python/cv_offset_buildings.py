#!/usr/bin/python3
"""Choose the building model's decision threshold (a building-logit offset) by cross-validation.

Takes the run directories of train_buildings.py --inria-fold K/N for K = 0 .. N-1 (one each). Every
inria crop (inria/train + inria/val, pooled and sorted by name as the runs split them) is predicted
by the one run that held it out; over all crops pooled, the offset with the highest building IoU is
chosen (grid -3 .. 3, step 0.1, ties to the smallest |offset|: rsi_models.metrics.best_logit_offset).

With --apply MODEL --out OUT, the offset is added to the building-logit bias of the exported model
file MODEL (weights otherwise unchanged) and written, re-verified, to OUT (--version sets its version).
inria/test is never read here.

Example (from models/python):
  /usr/bin/python3 cv_offset_buildings.py runs/buildings16 runs/buildings17 runs/buildings18 \\
      --apply ../../data/models/buildings.pt --out /tmp/buildings-1.2.1.pt --version 1.2.1
"""
import argparse
import json
import os
import shlex
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rsi_models import data, exporting, quantization  # noqa: E402
from rsi_models.evaluation import prepare, segment  # noqa: E402
from rsi_models.metrics import best_logit_offset, binary_counts, iou_f1  # noqa: E402
from train_buildings import fold_split, inria_fold  # noqa: E402


@torch.no_grad()
def held_out_margins(runs, data_root):
    """[(run, fold, [(crop name, margin, truth), ...], its training command)] for runs covering
    folds 0..N-1 once each."""
    crops = data.load_inria(data_root, "train") + data.load_inria(data_root, "val")
    folds = []
    for run in runs:
        model, doc, metrics = exporting.load_checkpoint(os.path.join(run, "best.pt"))
        if "inria_fold" not in metrics:
            raise SystemExit("%s: not an --inria-fold run" % run)
        k, n = inria_fold(metrics["inria_fold"])
        mo = int(getattr(model, "multiple_of", 1))
        rows = []
        for s in fold_split(crops, k, n)[1]:
            out = segment(model, prepare(s.image, doc), mo)[0]
            rows.append((s.name, (out[1] - out[0]).numpy(), s.mask.astype(bool)))
        folds.append((run, (k, n), rows, doc["provenance"]["command"]))
    ns = {f[1][1] for f in folds}
    ks = sorted(f[1][0] for f in folds)
    if len(ns) != 1 or ks != list(range(next(iter(ns)))):
        raise SystemExit("the runs must be folds 0..N-1 of one N, each once; got %s"
                         % [f[1] for f in folds])
    return folds


def pooled_iou(rows, offset):
    tot = np.zeros(4, dtype=np.int64)
    for _, m, g in rows:
        tot += binary_counts(m + offset > 0, g)
    return iou_f1(tot)


def apply_offset(model_path, offset, out_path, version, report, command=None):
    scripted, doc = exporting.load_file(model_path)
    eager = quantization.rebuild_eager(scripted, doc)
    if eager is None or not hasattr(eager, "head"):
        raise SystemExit("%s: not a BuildingNet file this script can rebuild" % model_path)
    with torch.no_grad():
        eager.head.bias[1] += offset
    doc = {k: v for k, v in doc.items() if k not in ("weights_sha256", "golden")}
    if version:
        doc["version"] = version
    if command:  # how the file came to be: the training command of MODEL, then this one
        doc["provenance"]["command"] = doc["provenance"]["command"] + " && " + command
    metrics = doc["provenance"].setdefault("metrics", {})
    metrics["building_logit_offset"] = dict(report, method="cross-validation over the inria crops "
                                            "(cv_offset_buildings.py)", applied_to=os.path.basename(model_path))
    final = exporting.export(eager, doc, out_path)
    print("wrote %s (version %s, building-logit offset %+.1f)" % (out_path, final["version"], offset))
    return final


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run directories of train_buildings.py --inria-fold K/N")
    p.add_argument("--data-root", default=data.default_data_root())
    p.add_argument("--apply", metavar="MODEL", help="exported building model file to shift")
    p.add_argument("--out", help="where --apply writes the shifted model")
    p.add_argument("--version", help="version of the written model")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if bool(args.apply) != bool(args.out):
        p.error("--apply and --out go together")
    torch.set_num_threads(args.threads)

    folds = held_out_margins(args.runs, args.data_root)
    rows = [r for _, _, fr, _ in folds for r in fr]
    best = best_logit_offset(np.concatenate([m.ravel() for _, m, _ in rows]),
                             np.concatenate([g.ravel() for _, _, g in rows]))
    off = best["offset"]
    print("%-28s %-5s %5s  %-9s %-9s" % ("run", "fold", "crops", "IoU at 0", "IoU at %+.1f" % off))
    per_fold = []
    for run, (k, n), fr, _ in folds:
        i0, i1 = pooled_iou(fr, 0.0)[0], pooled_iou(fr, off)[0]
        per_fold.append({"run": run, "fold": "%d/%d" % (k, n), "crops": len(fr), "iou_at_zero": i0,
                         "iou_at_offset": i1})
        print("%-28s %-5s %5d  %.4f    %.4f" % (run, "%d/%d" % (k, n), len(fr), i0, i1))
    f0, f1 = pooled_iou(rows, 0.0)[1], pooled_iou(rows, off)[1]
    print("all %d crops pooled: IoU %.4f (F1 %.4f) at offset 0, %.4f (F1 %.4f) at the chosen offset %+.1f"
          % (len(rows), best["iou_at_zero"], f0, best["iou"], f1, off))
    report = {"offset": off, "crops": len(rows), "cv_iou_at_zero": best["iou_at_zero"],
              "cv_iou_at_offset": best["iou"], "folds": per_fold,
              "fold_commands": [f[3] for f in folds]}
    print(json.dumps(report))
    if args.apply:
        if off == 0.0:
            print("offset 0: nothing to apply")
        else:
            command = "/usr/bin/python3 " + " ".join(shlex.quote(a) for a in sys.argv)
            apply_offset(args.apply, off, args.out, args.version,
                         {k: v for k, v in report.items() if k != "folds"}, command)
    return report


if __name__ == "__main__":
    main()
