#!/usr/bin/python3
"""Train the rsi default building segmentation model (BuildingNet, a compact residual U-Net).

Training data: inria/train plus buildings-extra (whu_east_asia, nzlnd, crowdai, inria_more) minus a
fixed hold-out (one file per subset, see rsi_models.data.BUILDINGS_EXTRA_VAL). Model selection: pooled
building IoU on inria/val. inria/test is never read here.

Example (from the repository root):
  /usr/bin/python3 models/python/train_buildings.py --out models/python/runs/buildings
The run directory receives best.pt (best-on-inria/val weights + metadata for export.py),
last.pt (full training state, resumable with --resume) and log.txt.
"""
import argparse
import copy
import json
import os
import shlex
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rsi_models import augment, data, nets  # noqa: E402
from rsi_models.metadata import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from rsi_models.metrics import binary_counts, iou_f1  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=data.default_data_root())
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--iters", type=int, default=1200)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=192)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--wd", type=float, default=1e-4)
    p.add_argument("--inria-frac", type=float, default=0.5,
                   help="fraction of every batch drawn from inria/train (rest: buildings-extra)")
    p.add_argument("--widths", default="16,32,64,128,192")
    p.add_argument("--dec-widths", default="16,24,48,96")
    p.add_argument("--depth", type=int, default=1)
    p.add_argument("--antialias", action="store_true",
                   help="blur (fixed [1,2,1] binomial) before every stride-2 stage: anti-aliased "
                        "downsampling")
    p.add_argument("--dice-weight", type=float, default=1.0)
    p.add_argument("--lovasz-weight", type=float, default=0.0,
                   help="weight of the per-image Lovasz hinge loss on the building margin "
                        "(a convex surrogate of 1 - IoU); 0 = off")
    p.add_argument("--ema", type=float, default=0.99)
    p.add_argument("--ema-buffers", action="store_true",
                   help="average BatchNorm running statistics in the EMA model too (default: copy "
                        "them from the trained model, as in the first training stage)")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--train-on-val", action="store_true",
                   help="add inria/val to the inria training crops (a final refit on train+val): no "
                        "model selection; best.pt receives the final EMA weights")
    p.add_argument("--inria-fold", metavar="K/N",
                   help="cross-validation over the 34 inria crops: pool inria/train and inria/val "
                        "(sorted by name), hold out every N-th crop from the K-th (0-based), train on "
                        "the rest; no model selection (best.pt receives the final EMA weights); the "
                        "held-out crops are logged as inria_fold")
    p.add_argument("--init", help="start from the weights of this best.pt (a second training stage); "
                                  "the recorded command becomes '<its command> && <this command>'")
    return p.parse_args(argv)


def normalise(x: torch.Tensor) -> torch.Tensor:
    """x: N x 3 x H x W float in 0..255 -> ImageNet-normalised."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x / 255.0 - mean) / std


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = torch.softmax(logits, 1)[:, 1]
    t = target.float()
    inter = (p * t).sum()
    return 1.0 - (2.0 * inter + 1.0) / (p.sum() + t.sum() + 1.0)


def lovasz_hinge_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image Lovasz hinge (Berman et al., 2018) on the margin building - background logit.

    The hinge errors are sorted in decreasing order; the weights are the increments of the Jaccard
    loss as the pixels are added one by one in that order, so the weighted sum is the Lovasz
    extension of 1 - IoU evaluated at the error vector. Averaged over the images of the batch.
    """
    margin = (logits[:, 1] - logits[:, 0]).flatten(1)
    labels = target.flatten(1).float()
    losses = []
    for m, t in zip(margin, labels):
        errors = 1.0 - m * (2.0 * t - 1.0)
        errors_sorted, order = torch.sort(errors, descending=True)
        t_sorted = t[order]
        positives = t_sorted.sum()
        intersection = positives - t_sorted.cumsum(0)
        union = positives + (1.0 - t_sorted).cumsum(0)
        jaccard = 1.0 - intersection / union
        weights = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
        losses.append(torch.dot(F.relu(errors_sorted), weights))
    return torch.stack(losses).mean()


@torch.no_grad()
def evaluate(model, samples):
    model.eval()
    tot = np.zeros(4, dtype=np.int64)
    for s in samples:
        x = normalise(torch.from_numpy(s.image).float().unsqueeze(0))
        pred = model(x).argmax(1)[0].numpy()
        tot += binary_counts(pred, s.mask)
    return iou_f1(tot)


class Sampler:
    def __init__(self, samples, gen):
        self.samples = samples
        w = np.array([s.mask.size for s in samples], dtype=np.float64)
        self.w = torch.tensor(w / w.sum())
        self.gen = gen

    def draw(self):
        return self.samples[int(torch.multinomial(self.w, 1, generator=self.gen))]


def make_batch(args, inria_sampler, extra_sampler, gen):
    xs, ys = [], []
    n_inria = int(round(args.batch * args.inria_frac))
    for i in range(args.batch):
        s = (inria_sampler if i < n_inria else extra_sampler).draw()
        img = torch.from_numpy(s.image).float()
        m = torch.from_numpy(s.mask)
        img, m = augment.random_scaled_crop(img, m, args.crop, gen)
        k = int(torch.randint(0, 4, (), generator=gen))
        flip = bool(torch.randint(0, 2, (), generator=gen))
        img = augment.dihedral(img, k, flip)
        m = augment.dihedral(m, k, flip)
        img = augment.colour_jitter(img, gen)
        xs.append(img)
        ys.append(m)
    return normalise(torch.stack(xs)), torch.stack(ys)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    logf = open(os.path.join(args.out, "log.txt"), "a")

    def log(*a):
        line = " ".join(str(x) for x in a)
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    train_inria = data.load_inria(args.data_root, "train")
    train_extra = data.load_buildings_extra(args.data_root, "train")
    val_inria = data.load_inria(args.data_root, "val")
    val_extra = data.load_buildings_extra(args.data_root, "val")
    if args.inria_fold and args.train_on_val:
        raise SystemExit("--inria-fold and --train-on-val exclude each other")
    if args.train_on_val:
        train_inria = train_inria + val_inria  # inria/val is then logged, but it is training data
    if args.inria_fold:
        k, n = inria_fold(args.inria_fold)
        train_inria, val_inria = fold_split(train_inria + val_inria, k, n)
    log("train: %d inria + %d buildings-extra; val: %d inria/val + %d buildings-extra hold-out"
        % (len(train_inria), len(train_extra), len(val_inria), len(val_extra)))

    arch_kwargs = dict(in_channels=3, num_classes=2,
                       widths=[int(v) for v in args.widths.split(",")],
                       dec_widths=[int(v) for v in args.dec_widths.split(",")], depth=args.depth)
    if args.antialias:  # only when set, so that older checkpoints' arch_kwargs still match --init
        arch_kwargs["antialias"] = True
    model = nets.BuildingNet(**arch_kwargs)
    ema = copy.deepcopy(model)
    for p in ema.parameters():
        p.requires_grad_(False)
    # frozen layers (the anti-aliasing blur) stay out of the optimiser, weight decay included
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr,
                            weight_decay=args.wd)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.iters,
                                                pct_start=0.05, div_factor=20, final_div_factor=200)
    command = "/usr/bin/python3 " + " ".join(shlex.quote(a) for a in sys.argv if a != "--resume")
    if args.init:
        init = torch.load(args.init, map_location="cpu")
        if init["arch_kwargs"] != arch_kwargs:
            raise SystemExit("--init checkpoint has a different architecture: %s" % init["arch_kwargs"])
        model.load_state_dict(init["state_dict"])
        ema.load_state_dict(init["state_dict"])
        command = init["meta"]["provenance"]["command"] + " && " + command
        log("initialised from %s (%s)" % (args.init, json.dumps(init.get("metrics", {}))))
    start_it, best, history, elapsed0 = 0, {"iou": -1.0}, [], 0.0
    last_path = os.path.join(args.out, "last.pt")
    if args.resume and os.path.exists(last_path):
        st = torch.load(last_path)
        model.load_state_dict(st["model"])
        ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        gen.set_state(st["gen"])
        torch.set_rng_state(st["torch_rng"])
        start_it, best, history, elapsed0 = st["iter"], st["best"], st["history"], st["elapsed"]
        command = st["command"]
        old_iters = st["args"]["iters"]
        this = "/usr/bin/python3 " + " ".join(shlex.quote(a) for a in sys.argv)
        if old_iters != args.iters:
            # shortened / lengthened schedule: a fresh one-cycle schedule over args.iters steps,
            # fast-forwarded to the current iteration (the learning rate jumps accordingly)
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=args.lr, total_steps=args.iters, pct_start=0.05, div_factor=20,
                final_div_factor=200)
            for _ in range(start_it):
                sched.step()
            log("schedule changed from %d to %d iterations at iteration %d (lr now %.3g)"
                % (old_iters, args.iters, start_it, sched.get_last_lr()[0]))
        command = "%s  # stopped after iteration %d, then: %s" % (command, start_it, this)
        log("resumed at iteration %d" % start_it)
    log("params %d, command: %s" % (nets.count_params(model), command))

    inria_sampler = Sampler(train_inria, gen)
    extra_sampler = Sampler(train_extra, gen)
    t0 = time.time()
    run_loss = 0.0
    for it in range(start_it, args.iters):
        model.train()
        x, y = make_batch(args, inria_sampler, extra_sampler, gen)
        logits = model(x)
        loss = F.cross_entropy(logits, y) + args.dice_weight * soft_dice_loss(logits, y)
        if args.lovasz_weight > 0:
            loss = loss + args.lovasz_weight * lovasz_hinge_loss(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(args.ema).add_(pm.detach(), alpha=1 - args.ema)
            for be, bm in zip(ema.buffers(), model.buffers()):
                if args.ema_buffers and be.is_floating_point():
                    be.mul_(args.ema).add_(bm, alpha=1 - args.ema)  # BN running statistics
                else:
                    be.copy_(bm)
        run_loss += loss.item()
        done = it + 1
        if done % args.eval_every == 0 or done == args.iters:
            elapsed = elapsed0 + time.time() - t0
            rec = {"iter": done, "loss": run_loss / args.eval_every, "lr": sched.get_last_lr()[0],
                   "minutes": elapsed / 60}
            run_loss = 0.0
            for tag, m in (("model", model), ("ema", ema)):
                iv, fv = evaluate(m, val_inria)
                ie, fe = evaluate(m, val_extra)
                inria = "inria_fold" if args.inria_fold else "inria_val"  # the held-out inria crops
                rec[tag] = {inria + "_iou": iv, inria + "_f1": fv, "extra_val_iou": ie,
                            "extra_val_f1": fe}
                if args.train_on_val or args.inria_fold:
                    select = tag == "ema" and done == args.iters  # no selection: final EMA weights
                else:
                    select = iv > best["iou"]
                if select:
                    best = {"iou": iv, "iter": done, "which": tag, "metrics": rec[tag]}
                    metrics = dict(rec[tag])
                    if args.train_on_val:  # inria/val is training data here: not to be read as validation
                        for k in ("inria_val_iou", "inria_val_f1"):
                            metrics[k.replace("inria_val", "inria_val_trained_on")] = metrics.pop(k)
                    meta = building_meta(args, command)
                    torch.save({"arch": "BuildingNet", "arch_kwargs": arch_kwargs,
                                "state_dict": copy.deepcopy(m.state_dict()), "meta": meta,
                                "metrics": dict(metrics, iter=done, weights=tag,
                                                train_minutes=round(elapsed / 60, 1),
                                                **({"inria_fold": args.inria_fold} if args.inria_fold else {}))},
                               os.path.join(args.out, "best.pt"))
            history.append(rec)
            log(json.dumps(rec))
            log("best so far: %s" % json.dumps(best))
            torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                        "sched": sched.state_dict(), "gen": gen.get_state(),
                        "torch_rng": torch.get_rng_state(), "iter": done, "best": best,
                        "history": history, "elapsed": elapsed, "command": command,
                        "args": vars(args)}, last_path)
    log("finished: best %s" % json.dumps(best))


def inria_fold(text):
    """'K/N' -> (K, N) with 0 <= K < N, N >= 2."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise SystemExit("--inria-fold: expected K/N, got %r" % text)
    if n < 2 or not 0 <= k < n:
        raise SystemExit("--inria-fold: need 0 <= K < N and N >= 2, got %r" % text)
    return k, n


def fold_split(samples, k, n):
    """(training, held out): the held-out part is every n-th sample from the k-th, in name order."""
    ordered = sorted(samples, key=lambda s: s.name)
    held = [s for i, s in enumerate(ordered) if i % n == k]
    kept = [s for i, s in enumerate(ordered) if i % n != k]
    return kept, held


def building_meta(args, command):
    """The rsi.json document of the building model, less weights_sha256/golden/metrics."""
    return {
        "format": "rsi-model", "format_version": 1,
        "name": "rsi-buildings-unet", "version": "1.0.0", "task": "segmentation",
        "description": "Compact residual U-Net for building footprints in ~0.3 m RGB aerial imagery.",
        "input": {"bands": 3, "band_names": ["red", "green", "blue"], "source_bands": [1, 2, 3],
                  "data_range": [0, 255], "scale": 1.0 / 255.0,
                  "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "band_mapping": {"single_band": "replicate", "rescale": "percentile", "low": 2, "high": 98},
        # halo / overlap are measured and filled in by export.py (--halo); these are placeholders
        "tile": {"size": 512, "overlap": 128, "output_stride": 1, "halo": 64, "multiple_of": 16},
        "gsd_m": 0.3, "output": "logits", "output_activation": "softmax",
        "classes": [{"id": 0, "name": "background", "color": [0, 0, 0]},
                    {"id": 1, "name": "building", "color": [255, 64, 64]}],
        "license": "Weights trained by rsi on the Inria Aerial Image Labeling, WHU building and "
                   "crowdAI mapping challenge samples listed in provenance.data; research use "
                   "only, subject to those datasets' terms (see ../shared/data/README.md).",
        "provenance": {
            "data": [("inria/train + inria/val (34 crops of austin1, chicago1)" if args.train_on_val
                      else "inria/train + inria/val less fold %s (cross-validation)" % args.inria_fold
                      if args.inria_fold else "inria/train (25 crops of austin1, chicago1)"),
                     "buildings-extra/whu_east_asia (WHU building dataset, 5 of 6)",
                     "buildings-extra/nzlnd (WHU New Zealand, 2 of 3)",
                     "buildings-extra/crowdai (crowdAI mapping challenge, 5 of 6)",
                     "buildings-extra/inria_more (Inria, 9 of 10)",
                     ("model selection: none (final EMA weights of a fixed schedule)"
                      if args.train_on_val or args.inria_fold else "model selection: inria/val")],
            "script": "models/python/train_buildings.py",
            "command": command,
        },
    }


if __name__ == "__main__":
    main()
