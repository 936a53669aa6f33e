#!/usr/bin/python3
"""Every supported foundation-model architecture, end to end through rsi on real imagery.

For each architecture: build it (full size, or depth-reduced with --small), give it deterministic
random weights, save them in the official checkpoint format (RSP: a training checkpoint with a pickled
config and optimizer state; RVSA / UperNet: an mmseg checkpoint with meta CLASSES), convert with
`rsi model convert`, time it with `rsi model check` at its native tile size, and run it through
`rsi scene` (NAIP, RGB bands) or `rsi segment` (an Inria crop) on real imagery, checking the outputs
are georeferenced like the input. Prints one JSON line per architecture and a Markdown table.

Usage: bench/foundation_models.py RSI_BINARY SHARED_DATA_DIR [--small] [--arch NAME ...] [--work DIR]
(ctest `foundation.end_to_end` runs it with --small.)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models", "python"))
import torch  # noqa: E402
from osgeo import gdal  # noqa: E402

from rsi_models.foundation import registry, rsp_digest  # noqa: E402

gdal.UseExceptions()
SMALL = {"rsp-resnet50": [1, 1, 1, 1], "rsp-swin-t": [2, 2, 2, 2], "rsp-vitaev2-s": [1, 1, 1, 1],
         "rsp-resnet50-upernet": [1, 1, 1, 1], "rsp-swin-t-upernet": [2, 2, 2, 2],
         "rsp-vitaev2-s-upernet": [1, 1, 1, 1], "rvsa-vitb-upernet": [4]}
SEG_CLASSES = ("impervious_surface", "building", "low_vegetation", "tree", "car")


def save_official(arch, depths, path, seed=3):
    n = 51 if arch.task == "scene" else len(SEG_CLASSES)
    model = arch.build(n, depths).eval()
    rsp_digest.fill_fan_in(model, seed)
    sd = dict(model.state_dict())
    if arch.task == "scene":  # an RSP training checkpoint (the converter must not need yacs)
        obj = {"model": sd, "optimizer": {"state": {}, "param_groups": []}, "epoch": 1, "max_accuracy": 0.0}
    else:  # an mmseg checkpoint
        obj = {"meta": {"CLASSES": SEG_CLASSES}, "state_dict": sd}
    torch.save(obj, path)
    return sum(p.numel() for p in model.parameters())


def run(cmd):
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("FAILED (%d): %s\n%s%s" % (r.returncode, " ".join(cmd), r.stdout[-2000:], r.stderr[-2000:]))
    return r.stdout, time.time() - t


def same_georeference(a, b):
    x, y = gdal.Open(a), gdal.Open(b)
    return x.GetProjection() != "" and x.GetProjection() == y.GetProjection()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rsi")
    ap.add_argument("data")
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--arch", nargs="*")
    ap.add_argument("--work")
    a = ap.parse_args()
    naip = os.path.join(a.data, "naip")
    naip_image = sorted(os.path.join(naip, f) for f in os.listdir(naip) if f.endswith(".tif"))[0]
    inria = os.path.join(a.data, "inria", "test", "images")
    inria_image = sorted(os.path.join(inria, f) for f in os.listdir(inria) if f.endswith(".tif"))[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = a.work or tmp
        for name in a.arch or sorted(SMALL):
            arch = registry.get(name)
            depths = SMALL[name] if a.small else None
            ckpt = os.path.join(work, name + ".pth")
            params = save_official(arch, depths, ckpt)
            model = os.path.join(work, name + ".pt")
            cmd = [a.rsi, "model", "convert", "--arch", name, "--task", arch.task, "--checkpoint", ckpt, "-o", model]
            if depths:
                cmd += ["--depths"] + [str(d) for d in depths]
            if arch.task == "segmentation":
                cmd += ["--gsd", "0.3"]  # the Inria crop's pixel size, so no resampling
            _, convert_s = run(cmd)
            # CI (--small): segmentation at 128-pixel tiles keeps the UperNet head's cost to seconds.
            tile = ["--tile-size", "128"] if a.small and arch.task == "segmentation" else []
            out, _ = run([a.rsi, "model", "check", model, "--json", "--quiet", "--iterations", "1", "--batch", "1"] + tile)
            check = json.loads(out)
            if arch.task == "scene":
                result = os.path.join(work, name + "_scene.tif")
                _, e2e_s = run([a.rsi, "scene", naip_image, "-o", result, "-m", model, "--bands", "1,2,3", "--no-resample",
                                "--quiet"])
                image = naip_image
            else:
                result = os.path.join(work, name + "_mask.tif")
                _, e2e_s = run([a.rsi, "segment", inria_image, "-o", result, "-m", model, "--quiet", "--no-manifest"] +
                               (tile + ["--overlap", "32"] if tile else []))
                image = inria_image
            ds = gdal.Open(result)
            georef_ok = arch.task == "segmentation" or same_georeference(result, image)
            if not georef_ok:
                sys.exit("%s: %s is not georeferenced like %s" % (name, result, image))
            if arch.task == "segmentation" and (ds.RasterXSize, ds.RasterYSize) != (256, 256):
                sys.exit("%s: mask is %dx%d" % (name, ds.RasterXSize, ds.RasterYSize))
            row = {"arch": name, "task": arch.task, "params_m": round(params / 1e6, 2), "small": a.small,
                   "tile": check.get("tile_size"), "check": {k: check.get(k) for k in
                                                             ("batch", "optimized_batch_ms", "eager_batch_ms", "speedup",
                                                              "tiles_per_second", "golden_ok")},
                   "convert_s": round(convert_s, 1), "end_to_end_s": round(e2e_s, 1),
                   "output": os.path.basename(result), "size": [ds.RasterXSize, ds.RasterYSize]}
            print(json.dumps(row), flush=True)
            rows.append(row)
    print("\n| architecture | params (M) | tile | ms per tile, optimised | ms per tile, eager | speed-up | end to end (s) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        c = r["check"]
        b = max(1, c.get("batch") or 1)
        print("| %s | %s | %s | %.0f | %.0f | %.2fx | %s |" % (r["arch"], r["params_m"], r["tile"], c["optimized_batch_ms"] / b,
                                                             (c.get("eager_batch_ms") or 0) / b, c.get("speedup") or 0,
                                                             r["end_to_end_s"]))


if __name__ == "__main__":
    main()
