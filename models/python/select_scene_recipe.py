#!/usr/bin/python3
"""Choose the 13-band EuroSAT scene recipe by repeated stratified 5-fold cross-validation on the
100 TRAINING patches (<Class>_1 .. _10). The validation patches (<Class>_11 .. _14) are not read.

Protocol (fixed before any candidate was evaluated; docs/MODELS.md, "How the recipe was chosen"):
  * candidates: rsi_models.scene_recipes.CANDIDATES (8, including "base" = the current recipe);
  * 5 fold seeds; per seed the 100 patches are split into 5 folds with 2 patches of each class
    (rsi_models.scene_recipes.stratified_folds); every candidate sees the same folds;
  * per outer fold the input normalisation (per-band mean / std) is computed from the 80 training
    patches of that fold; recipes with a "nested" L2 choose it from L2_GRID by stratified 4-fold CV
    inside those 80 patches;
  * score = accuracy over the 100 held-out predictions of a seed, averaged over the 5 seeds;
  * adoption rule: the candidate with the best mean CV accuracy (ties: the earlier one in the list)
    replaces the current recipe only if its mean beats "base" by at least 2 points (0.02).

Round 2 (--round 2, session 9): rsi_models.scene_recipes.CANDIDATES_ROUND2 ("base" and two recipes
whose classifier also trains on the features of each patch's 4 corner 48x48 crops), the same folds,
protocol and 2-point rule; written to cv_table_round2.txt before it was run.

Round 3 (--round 3, session 10): rsi_models.scene_recipes.CANDIDATES_ROUND3 ("base" and three
classifiers on the same features: shrinkage LDA with Ledoit-Wolf or nested-CV shrinkage, nearest class
mean), the same folds, protocol and 2-point rule; the "L2" column then shows the LDA shrinkage.

Round 4 (--round 4, session 16): rsi_models.scene_recipes.CANDIDATES_ROUND4 ("base", three ensembles
of L2 logistic layers over random band or feature subsets or bootstrap samples whose probabilities are
averaged, and "base" without quantiles), the same folds, protocol and 2-point rule (docs/MODELS.md 10).

Round 5 (--round 5, session 18): rsi_models.scene_recipes.CANDIDATES_ROUND5 ("base", round 4's "noq"
re-measured, the log of the std / texture-energy features with and without the quantiles, "noq" with a
third texture scale), the same folds, protocol and 2-point rule (docs/MODELS.md 11).

Round 6 (--round 6, session 19): rsi_models.scene_recipes.CANDIDATES_ROUND6 ("base", random forests
on base's and noq-3s's features, extremely randomised trees, and the mean of a random forest's and base's
probabilities; scikit-learn, python3-sklearn), the same folds, protocol and 2-point rule (docs/MODELS.md 12).

Example (from the repository root; writes runs/scene_select/cv_table.txt and cv_results.json):
  /usr/bin/python3 models/python/select_scene_recipe.py --threads 1
  /usr/bin/python3 models/python/select_scene_recipe.py --round 2 --threads 1
  /usr/bin/python3 models/python/select_scene_recipe.py --round 3 --threads 1
  /usr/bin/python3 models/python/select_scene_recipe.py --round 4 --threads 1
  /usr/bin/python3 models/python/select_scene_recipe.py --round 5 --threads 1
  /usr/bin/python3 models/python/select_scene_recipe.py --round 6 --threads 1
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rsi_models import data, scene_recipes as sr  # noqa: E402

SCALE = 1.0 / 10000.0
MARGIN = 0.02


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=data.default_data_root())
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "runs", "scene_select"))
    p.add_argument("--seeds", type=int, default=5, help="number of fold seeds (0 .. seeds-1)")
    p.add_argument("--round", type=int, default=1, choices=(1, 2, 3, 4, 5, 6),
                   help="candidate set: 1 = CANDIDATES (session 5), 2 = CANDIDATES_ROUND2 (session 9), "
                   "3 = CANDIDATES_ROUND3 (session 10), 4 = CANDIDATES_ROUND4 (session 16), "
                   "5 = CANDIDATES_ROUND5 (session 18), 6 = CANDIDATES_ROUND6 (session 19)")
    p.add_argument("--candidates", help="comma-separated subset of the round's candidates")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    candidates = {1: sr.CANDIDATES, 2: sr.CANDIDATES_ROUND2, 3: sr.CANDIDATES_ROUND3,
                  4: sr.CANDIDATES_ROUND4, 5: sr.CANDIDATES_ROUND5,
                  6: sr.CANDIDATES_ROUND6}[args.round]
    names = args.candidates.split(",") if args.candidates else list(candidates)
    suffix = "" if args.round == 1 else "_round%d" % args.round
    os.makedirs(args.out, exist_ok=True)

    # training patches only: eurosat_split("train") skips the validation files before reading them
    x, y, files = data.eurosat_split(args.data_root, "train")
    nums = {int(os.path.splitext(f)[0].rsplit("_", 1)[-1]) for f in files}
    assert not nums & set(data.EUROSAT_VAL_NUMBERS), "validation patches must not be read"
    assert len(y) == 100
    x = torch.from_numpy(x * SCALE)
    yt = torch.from_numpy(y)
    ncls = len(data.EUROSAT_CLASSES)

    pred = {n: np.full((args.seeds, len(y)), -1, dtype=np.int64) for n in names}
    l2_used = {n: [] for n in names}
    nfeat = {}
    secs = {n: 0.0 for n in names}
    for seed in range(args.seeds):
        fold = sr.stratified_folds(y, 5, seed)
        for k in range(5):
            tr, te = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
            xtr = x[torch.from_numpy(tr)]
            mean = xtr.mean(dim=(0, 2, 3))
            std = xtr.std(dim=(0, 2, 3)).clamp_min(1e-4)
            xn = (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
            for n in names:
                t0 = time.time()
                rec = candidates[n]

                def make(rec=rec, mean=mean, std=std):
                    return sr.build(rec, 13, ncls, mean.tolist(), std.tolist())
                feats = sr.recipe_features(rec, make(), xn)
                m, l2 = sr.fit_recipe(rec, make, feats, yt, tr, seed=100 * seed + k)
                nfeat[n] = int(getattr(m, "n_features", feats.shape[-1]))
                pred[n][seed, te] = sr.logits(m, sr._plain(feats, te)).argmax(1).numpy()
                l2_used[n].append(l2)
                secs[n] += time.time() - t0
            print("seed %d fold %d: %s" % (seed, k, "  ".join(
                "%s %.2f" % (n, float((pred[n][seed, te] == y[te]).mean())) for n in names)),
                flush=True)

    res = {}
    for n in names:
        per_seed = (pred[n] == y[None]).mean(1)
        recall = [float((pred[n][:, y == c] == c).mean()) for c in range(ncls)]
        res[n] = {"desc": candidates[n]["desc"], "features": nfeat[n],
                  "mean": float(per_seed.mean()), "sd_over_seeds": float(per_seed.std()),
                  "per_seed": [float(v) for v in per_seed], "class_recall": recall,
                  "l2": sorted(set(l2_used[n])),
                  "l2_median": float(np.median(l2_used[n])), "seconds": round(secs[n], 1)}
    base = res["base"]["mean"] if "base" in res else None
    lines = ["Repeated stratified 5-fold CV on the 100 EuroSAT training patches (<Class>_1..10), "
             "%d fold seeds, 13 bands." % args.seeds,
             "Validation patches (<Class>_11..14) not read. Accuracy over the 100 held-out "
             "predictions per seed; mean and SD over seeds; diff = paired difference to base.",
             "",
             "%-9s %5s %6s %6s %7s %5s  %-34s %6s  %s" % (
                 "candidate", "feat", "mean", "sd", "diff", "wins", "per-seed accuracy",
                 "Hwy", "L2 (median; nested choices)")]
    cls_short = [c[:6] for c in data.EUROSAT_CLASSES]
    for n in names:
        r = res[n]
        diff = r["mean"] - base if base is not None else float("nan")
        wins = "-" if n == "base" or base is None else "%d/%d" % (
            sum(a > b for a, b in zip(r["per_seed"], res["base"]["per_seed"])), args.seeds)
        lines.append("%-9s %5d %6.3f %6.3f %+7.3f %5s  %-34s %6.2f  %g%s" % (
            n, r["features"], r["mean"], r["sd_over_seeds"], diff, wins,
            " ".join("%.2f" % v for v in r["per_seed"]), r["class_recall"][3], r["l2_median"],
            "" if candidates[n]["l2"] != "nested" and candidates[n].get("shrink") != "nested" else " (%s)" % ",".join("%g" % v for v in r["l2"])))
    lines.append("")
    lines.append("Per-class recall (pooled over seeds and folds):")
    lines.append("%-9s " % "" + " ".join("%6s" % c for c in cls_short))
    for n in names:
        lines.append("%-9s " % n + " ".join("%6.2f" % v for v in res[n]["class_recall"]))
    lines.append("")
    lines.append("Candidates:")
    for n in names:
        lines.append("  %-9s %s" % (n, res[n]["desc"]))
    if base is not None:
        others = [n for n in names if n != "base"]
        best = max(others, key=lambda n: (res[n]["mean"], -others.index(n)))
        gain = res[best]["mean"] - base
        adopt = gain >= MARGIN - 1e-9
        lines.append("")
        lines.append("Rule (fixed in advance): best candidate by mean CV accuracy = %s (%.3f); "
                     "base %.3f; difference %+.3f -> %s (needs >= +%.3f)." % (
                         best, res[best]["mean"], base, gain,
                         "ADOPT %s" % best if adopt else "KEEP the current model", MARGIN))
        res["_decision"] = {"best": best, "gain": gain, "adopt": bool(adopt)}
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(args.out, "cv_table%s.txt" % suffix), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "cv_results%s.json" % suffix), "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
