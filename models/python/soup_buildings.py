#!/usr/bin/python3
"""Average the weights of several building-model checkpoints (a "model soup") and score it on inria/val.

Every input is a training checkpoint of the same architecture: RUN/best.pt (its selected weights) or
RUN/last.pt:model / RUN/last.pt:ema (the raw or EMA weights at the end of that run). Parameters and
BatchNorm running statistics are averaged uniformly (num_batches_tracked is taken from the first).
Averaging only makes sense for checkpoints that share an initialisation and stayed in one basin, as
runs of the same recipe from the same seed do. The output is a best.pt-style checkpoint for
export.py, with the soup's inria/val and buildings-extra hold-out scores; inria/test is never read.

    /usr/bin/python3 models/python/soup_buildings.py --out models/python/runs/soup1/best.pt \\
        models/python/runs/buildings4/best.pt models/python/runs/buildings5/best.pt
"""
import argparse
import copy
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_buildings  # noqa: E402
from rsi_models import data, nets  # noqa: E402


def load_weights(spec: str):
    """(state_dict, arch_kwargs or None, meta or None, training command) of 'path' (best.pt) or
    'path:model|ema' (last.pt)."""
    path, _, part = spec.partition(":")
    ck = torch.load(path, map_location="cpu")
    if part:
        if part not in ("model", "ema") or part not in ck:
            raise SystemExit("%s: no '%s' weights (use :model or :ema with a last.pt)" % (path, part))
        return ck[part], None, None, ck.get("command", "")
    if "state_dict" not in ck:
        raise SystemExit("%s: not a best.pt checkpoint (for a last.pt add :model or :ema)" % path)
    return ck["state_dict"], ck["arch_kwargs"], ck["meta"], ck["meta"]["provenance"]["command"]


def average(states):
    keys = list(states[0].keys())
    for s in states[1:]:
        if list(s.keys()) != keys or any(s[k].shape != states[0][k].shape for k in keys):
            raise SystemExit("the checkpoints do not share one architecture")
    out = {}
    for k in keys:
        if states[0][k].is_floating_point():
            out[k] = sum(s[k].double() for s in states).div(len(states)).to(states[0][k].dtype)
        else:
            out[k] = states[0][k].clone()  # num_batches_tracked
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="best.pt, or last.pt:model / last.pt:ema")
    p.add_argument("--out", required=True, help="output checkpoint (best.pt format)")
    p.add_argument("--like", help="a best.pt whose architecture and metadata the soup takes (its weights are "
                                  "not averaged in); default: the first best.pt input")
    p.add_argument("--data-root", default=data.default_data_root())
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    loaded = [load_weights(s) for s in args.inputs]
    templates = ([load_weights(args.like)] if args.like else []) + loaded
    arch_kwargs = next((a for _, a, _, _ in templates if a is not None), None)
    meta = next((m for _, _, m, _ in templates if m is not None), None)
    if arch_kwargs is None:
        raise SystemExit("one input (or --like) must be a best.pt: it carries the architecture and metadata")
    model = nets.build("BuildingNet", arch_kwargs)
    model.load_state_dict(average([s for s, _, _, _ in loaded]))

    iv, fv = train_buildings.evaluate(model, data.load_inria(args.data_root, "val"))
    ie, fe = train_buildings.evaluate(model, data.load_buildings_extra(args.data_root, "val"))
    metrics = {"inria_val_iou": iv, "inria_val_f1": fv, "extra_val_iou": ie, "extra_val_f1": fe,
               "weights": "soup of %d" % len(args.inputs)}
    meta = copy.deepcopy(meta)
    # The commands that trained the ingredients, then the averaging itself.
    commands = []
    for _, _, _, c in loaded:
        if c and c not in commands:
            commands.append(c)
    soup = "/usr/bin/python3 models/python/soup_buildings.py --out %s %s" % (args.out, " ".join(args.inputs))
    meta["provenance"]["command"] = " ; ".join("(%s)" % c for c in commands) + " ; " + soup
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save({"arch": "BuildingNet", "arch_kwargs": arch_kwargs, "state_dict": model.state_dict(),
                "meta": meta, "metrics": metrics}, args.out)
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
