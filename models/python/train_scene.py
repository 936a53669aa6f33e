#!/usr/bin/python3
"""Train an rsi EuroSAT scene classifier (SceneNet) on the shared EuroSAT patches.

Split (fixed, see rsi_models.data.EUROSAT_VAL_NUMBERS): <Class>_1 .. _10 train (100 patches),
<Class>_11 .. _14 validation (40 patches). The validation patches are only evaluated after training:
no model selection or early stopping (the weights after the last epoch are kept).

Models:
  --bands all   13 bands B01..B12 (eurosat13)
  --bands rgbn  source bands 4,3,2,8 = red, green, blue, nir (eurosat-rgbn)

Architectures: StatsSceneNet (default, eurosat13 / eurosat-rgbn 1.0.0), FeatureSceneNet with
--recipe NAME (a recipe of rsi_models.scene_recipes.CANDIDATES, as compared by
select_scene_recipe.py), SceneNet / SpectralSceneNet (learned CNNs, earlier experiments).

Example (from the repository root):
  /usr/bin/python3 models/python/train_scene.py --bands all --out models/python/runs/eurosat13
"""
import argparse
import json
import os
import shlex
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rsi_models import augment, data, nets, scene_recipes  # noqa: E402
from rsi_models.metrics import confusion_matrix  # noqa: E402

BAND_SETS = {
    # The EuroSAT GeoTIFFs store B8A LAST (B01..B08, B09, B10, B11, B12, B8A), not between B08
    # and B09: training-set means per file band are ... B08 0.240, band 9 0.080 (B09 water vapour),
    # band 10 0.0012 (B10 cirrus), band 11 0.176 (B11), band 12 0.105 (B12), band 13 0.270 (B8A,
    # close to B08). The names below follow the file order.
    "all": (list(range(1, 14)), list(data.EUROSAT_BANDS)),
    "rgbn": ([4, 3, 2, 8], ["red", "green", "blue", "nir"]),
}
CLASS_COLORS = {
    "AnnualCrop": [255, 211, 0], "Forest": [0, 100, 0], "HerbaceousVegetation": [124, 205, 124],
    "Highway": [128, 128, 128], "Industrial": [160, 32, 240], "Pasture": [205, 170, 125],
    "PermanentCrop": [255, 140, 0], "Residential": [220, 20, 60], "River": [30, 144, 255],
    "SeaLake": [0, 0, 139],
}
SCALE = 1.0 / 10000.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=data.default_data_root())
    p.add_argument("--bands", choices=sorted(BAND_SETS), required=True)
    p.add_argument("--out", required=True, help="run directory (receives final.pt and log.txt)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--wd", type=float, default=5e-4)
    p.add_argument("--arch", choices=["StatsSceneNet", "FeatureSceneNet", "SceneNet",
                                      "SpectralSceneNet"], default="StatsSceneNet")
    p.add_argument("--recipe", choices=sorted(scene_recipes.ALL_RECIPES),
                   help="fixed-feature recipe (rsi_models.scene_recipes.CANDIDATES); required for "
                        "--arch FeatureSceneNet, which is then implied; sets the L2 strength "
                        "(--l2 ignored)")
    p.add_argument("--version", default=None, help="metadata version (default 1.0.0; 1.1.0 with --recipe)")
    p.add_argument("--l2", type=float, default=0.01,
                   help="StatsSceneNet: L2 penalty on the linear weights (full-batch L-BFGS fit)")
    p.add_argument("--widths", default="32", help="SceneNet widths / SpectralSceneNet width")
    p.add_argument("--inner-val", action="store_true",
                   help="recipe selection mode: train on <Class>_1..7, evaluate on <Class>_8..10 "
                        "(the validation split _11..14 is not read at all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    logf = open(os.path.join(args.out, "log.txt"), "w")

    def log(*a):
        line = " ".join(str(x) for x in a)
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    command = "/usr/bin/python3 " + " ".join(shlex.quote(a) for a in sys.argv)
    source_bands, band_names = BAND_SETS[args.bands]
    idx = [b - 1 for b in source_bands]
    xtr, ytr, names_tr = data.eurosat_split(args.data_root, "train")
    if args.inner_val:
        num = np.array([int(os.path.splitext(n)[0].rsplit("_", 1)[-1]) for n in names_tr])
        inner = num >= 8
        xva, yva = xtr[inner], ytr[inner]
        xtr, ytr = xtr[~inner], ytr[~inner]
        log("inner-val mode: train on _1.._7, evaluate on _8.._10 (validation split not read)")
    else:
        xva, yva, _ = data.eurosat_split(args.data_root, "val")
    xtr = torch.from_numpy(xtr[:, idx] * SCALE)
    xva = torch.from_numpy(xva[:, idx] * SCALE)
    # normalisation statistics from the training patches only
    mean = xtr.mean(dim=(0, 2, 3))
    std = xtr.std(dim=(0, 2, 3)).clamp_min(1e-4)
    log("train %d, val %d patches; bands %s; mean %s std %s" % (
        len(ytr), len(yva), band_names, mean.tolist(), std.tolist()))

    def norm(x):
        return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)

    c = len(idx)
    if args.recipe or args.arch == "FeatureSceneNet":
        if not args.recipe:
            raise SystemExit("--arch FeatureSceneNet needs --recipe")
        return fit_recipe(args, log, command, source_bands, band_names, mean, std, norm,
                          xtr, ytr, xva, yva, names_tr)
    if args.arch == "StatsSceneNet":
        return fit_stats(args, log, command, source_bands, band_names, mean, std, norm,
                         xtr, ytr, xva, yva, names_tr)
    if args.arch == "SceneNet":
        arch_kwargs = dict(in_channels=c, num_classes=len(data.EUROSAT_CLASSES),
                           widths=[int(v) for v in args.widths.split(",")], dropout=0.3)
    else:
        arch_kwargs = dict(in_channels=c, num_classes=len(data.EUROSAT_CLASSES),
                           width=int(args.widths.split(",")[0]), dropout=0.3)
    model = nets.build(args.arch, arch_kwargs)
    log("%s %s: %d parameters" % (args.arch, arch_kwargs, nets.count_params(model)))
    steps_per_epoch = (len(ytr) + args.batch - 1) // args.batch
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr,
                                                total_steps=args.epochs * steps_per_epoch,
                                                pct_start=0.1)
    ytr_t = torch.from_numpy(ytr)
    t0 = time.time()
    for ep in range(args.epochs):
        model.train()
        perm = torch.randperm(len(ytr), generator=gen)
        tot, correct = 0.0, 0
        for s in range(0, len(ytr), args.batch):
            b = perm[s:s + args.batch]
            xs = []
            for i in b.tolist():
                x = xtr[i]
                k = int(torch.randint(0, 4, (), generator=gen))
                flip = bool(torch.randint(0, 2, (), generator=gen))
                x = augment.dihedral(x, k, flip)
                # illumination / calibration jitter: global gain and small per-band gains
                gain = 0.85 + 0.3 * torch.rand((), generator=gen)
                x = x * gain * (1 + 0.05 * torch.randn(c, 1, 1, generator=gen))
                x = x + 0.01 * torch.randn(x.shape, generator=gen) * std.view(-1, 1, 1)
                xs.append(x)
            xb = norm(torch.stack(xs))
            yb = ytr_t[b]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(b)
            correct += int((logits.argmax(1) == yb).sum())
        if (ep + 1) % 10 == 0 or ep == 0:
            log("epoch %d loss %.4f train-acc %.3f (%.1f s)" % (
                ep + 1, tot / len(ytr), correct / len(ytr), time.time() - t0))

    # final evaluation on the validation split (reported, not used for any choice)
    model.eval()
    with torch.no_grad():
        pred = model(norm(xva)).argmax(1).numpy()
    acc = float((pred == yva).mean())
    cm = confusion_matrix(yva, pred, len(data.EUROSAT_CLASSES))
    log("validation accuracy %.4f" % acc)
    log("confusion matrix (rows = true, cols = predicted):\n%s" % cm)
    minutes = (time.time() - t0) / 60
    meta = scene_meta(args, command, source_bands, band_names, mean.tolist(), std.tolist())
    ckpt = {"arch": args.arch, "arch_kwargs": arch_kwargs, "state_dict": model.state_dict(),
            "meta": meta,
            "metrics": {"val_accuracy": acc, "val_patches": int(len(yva)),
                        "val_split": ("inner: <Class>_8..10 (3 per class)" if args.inner_val
                          else "<Class>_11..14 (4 per class)"),
                        "confusion_matrix": cm.tolist(), "train_minutes": round(minutes, 1)}}
    torch.save(ckpt, os.path.join(args.out, "final.pt"))
    log(json.dumps(ckpt["metrics"]))


def fit_stats(args, log, command, source_bands, band_names, mean, std, norm, xtr, ytr, xva, yva,
              names_tr):
    t0 = time.time()
    c = len(source_bands)
    arch_kwargs = dict(in_channels=c, num_classes=len(data.EUROSAT_CLASSES), scales=2)
    ytr_t = torch.from_numpy(ytr)
    with torch.no_grad():
        feats = nets.StatsSceneNet(**arch_kwargs).features(norm(xtr))
    # 5-fold cross-validation on the training patches (fold = (patch number - 1) mod 5): the
    # figure used to choose the recipe; the validation split plays no part
    num = np.array([int(os.path.splitext(n)[0].rsplit("_", 1)[-1]) for n in names_tr])
    if args.inner_val:
        num = num[num < 8]
    cv = []
    for k in range(5):
        te = torch.from_numpy((num - 1) % 5 == k)
        m = scene_recipes.fit_linear(nets.StatsSceneNet(**arch_kwargs), feats[~te], ytr_t[~te], args.l2)
        with torch.no_grad():
            cv.append(float((m.fc((feats[te] - m.feat_mean) / m.feat_std).argmax(1)
                             == ytr_t[te]).float().mean()))
    log("5-fold CV accuracy on the training patches: %.3f (%s)"
        % (np.mean(cv), ", ".join("%.2f" % v for v in cv)))
    model = scene_recipes.fit_linear(nets.StatsSceneNet(**arch_kwargs), feats, ytr_t, args.l2).eval()
    with torch.no_grad():
        train_acc = float((model(norm(xtr)).argmax(1) == ytr_t).float().mean())
        pred = model(norm(xva)).argmax(1).numpy()
    acc = float((pred == yva).mean())
    cm = confusion_matrix(yva, pred, len(data.EUROSAT_CLASSES))
    log("train accuracy %.4f; validation accuracy %.4f" % (train_acc, acc))
    log("confusion matrix (rows = true, cols = predicted):\n%s" % cm)
    meta = scene_meta(args, command, source_bands, band_names, mean.tolist(), std.tolist())
    ckpt = {"arch": "StatsSceneNet", "arch_kwargs": arch_kwargs, "state_dict": model.state_dict(),
            "meta": meta,
            "metrics": {"val_accuracy": acc, "val_patches": int(len(yva)),
                        "val_split": ("inner: <Class>_8..10 (3 per class)" if args.inner_val
                                      else "<Class>_11..14 (4 per class)"),
                        "confusion_matrix": cm.tolist(), "train_accuracy": train_acc,
                        "cv5_train_accuracy": float(np.mean(cv)),
                        "train_minutes": round((time.time() - t0) / 60, 2)}}
    torch.save(ckpt, os.path.join(args.out, "final.pt"))
    log(json.dumps(ckpt["metrics"]))


def fit_recipe(args, log, command, source_bands, band_names, mean, std, norm, xtr, ytr, xva, yva,
               names_tr):
    """A scene_recipes recipe: fixed pooled features + linear layer (L2 nested-chosen by 4-fold CV
    on the training patches when the recipe says so, optional dihedral feature augmentation)."""
    t0 = time.time()
    rec = scene_recipes.ALL_RECIPES[args.recipe]
    c = len(source_bands)
    ncls = len(data.EUROSAT_CLASSES)

    def make():
        return scene_recipes.build(rec, c, ncls, mean.tolist(), std.tolist())
    arch_kwargs = scene_recipes.arch_kwargs(rec, c, ncls, mean.tolist(), std.tolist())
    ytr_t = torch.from_numpy(ytr)
    feats = scene_recipes.recipe_features(rec, make(), norm(xtr))
    log("recipe %s (%s): %s %d features" % (args.recipe, rec["desc"], rec["arch"], feats.shape[-1]))
    # 5-fold CV on the training patches, folds (patch number - 1) mod 5 as for StatsSceneNet
    # (input normalisation from all training patches; nested L2 chosen inside each fold)
    num = np.array([int(os.path.splitext(n)[0].rsplit("_", 1)[-1]) for n in names_tr])
    if args.inner_val:
        num = num[num < 8]
    cv = []
    for k in range(5):
        te = np.flatnonzero((num - 1) % 5 == k)
        tr = np.flatnonzero((num - 1) % 5 != k)
        m, _ = scene_recipes.fit_recipe(rec, make, feats, ytr_t, tr, seed=k)
        cv.append(float((scene_recipes.logits(m, scene_recipes._plain(feats, te)).argmax(1)
                         == ytr_t[torch.from_numpy(te)]).float().mean()))
    log("5-fold CV accuracy on the training patches: %.3f (%s)"
        % (np.mean(cv), ", ".join("%.2f" % v for v in cv)))
    model, l2 = scene_recipes.fit_recipe(rec, make, feats, ytr_t, np.arange(len(ytr)), seed=0)
    model.eval()
    log("L2 %g%s" % (l2, " (chosen by stratified 4-fold CV on the training patches)"
                     if rec["l2"] == "nested" else ""))
    with torch.no_grad():
        train_acc = float((model(norm(xtr)).argmax(1) == ytr_t).float().mean())
        pred = model(norm(xva)).argmax(1).numpy()
    acc = float((pred == yva).mean())
    cm = confusion_matrix(yva, pred, ncls)
    log("train accuracy %.4f; validation accuracy %.4f" % (train_acc, acc))
    log("confusion matrix (rows = true, cols = predicted):\n%s" % cm)
    meta = scene_meta(args, command, source_bands, band_names, mean.tolist(), std.tolist())
    ckpt = {"arch": rec["arch"], "arch_kwargs": arch_kwargs, "state_dict": model.state_dict(),
            "meta": meta,
            "metrics": {"val_accuracy": acc, "val_patches": int(len(yva)),
                        "val_split": ("inner: <Class>_8..10 (3 per class)" if args.inner_val
                                      else "<Class>_11..14 (4 per class)"),
                        "confusion_matrix": cm.tolist(), "train_accuracy": train_acc,
                        "cv5_train_accuracy": float(np.mean(cv)), "recipe": args.recipe,
                        "l2": l2, "train_minutes": round((time.time() - t0) / 60, 2)}}
    torch.save(ckpt, os.path.join(args.out, "final.pt"))
    log(json.dumps(ckpt["metrics"]))


def scene_meta(args, command, source_bands, band_names, mean, std):
    name = "eurosat13" if args.bands == "all" else "eurosat-rgbn"
    version = args.version or ("1.1.0" if args.recipe else "1.0.0")
    return {
        "format": "rsi-model", "format_version": 1,
        "name": "rsi-" + name, "version": version, "task": "scene",
        "description": "EuroSAT land-use scene classifier for 64x64 Sentinel-2 L1C patches (%s)." % (
            "13 bands" if args.bands == "all" else "red, green, blue, nir"),
        "input": {"bands": len(source_bands), "band_names": band_names,
                  "source_bands": source_bands, "source_band_count": 13,  # EuroSAT's 13-band stack
                  "data_range": [0, 10000], "scale": SCALE,
                  "mean": [float(v) for v in mean],
                  "std": [float(v) for v in std]},
        "band_mapping": {"single_band": "refuse", "rescale": "none"},
        "tile": {"size": 64, "overlap": 0, "output_stride": 1, "halo": 0, "multiple_of": 1},
        "gsd_m": 10, "output": "logits", "output_activation": "softmax",
        "classes": [{"id": i, "name": c, "color": CLASS_COLORS[c]}
                    for i, c in enumerate(data.EUROSAT_CLASSES)],
        "license": "MIT (weights trained by rsi on EuroSAT, MIT licence)",
        "provenance": {
            "data": ["eurosat: <Class>_1..10 of each of the 10 classes (100 patches, Sentinel-2, MIT)"],
            "script": "models/python/train_scene.py",
            "command": command,
        },
    }


if __name__ == "__main__":
    main()
