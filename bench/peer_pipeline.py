#!/usr/bin/python3
"""A Python tiled-inference pipeline written the way users commonly write one: the peer baseline
that bench/peer_bench.sh times against `rsi buildings`.

Written for rsi's benchmarks from scratch, modelled on the common approach (rasterio windowed reads,
TorchScript model, smooth-window blending into full-size float64 numpy accumulators, argmax,
rasterio GeoTIFF out); no code is copied from any project.

    /usr/bin/python3 bench/peer_pipeline.py IMAGE -o MASK.tif [-m data/models/buildings.pt]
        [--tile-size 512] [--overlap 128] [--batch 4] [--threads 2] [--window rsi|spline]
    /usr/bin/python3 bench/peer_pipeline.py --agreement MASK_A.tif MASK_B.tif   # fraction of equal pixels

What it shares with rsi, so the comparison is like for like: the same .pt file, fp32,
`torch.inference_mode()`, the same thread count, tile size, overlap and batch, the same tile grid
(rsi's default edge policy "shift": the last tile of a row/column moved in to the border, origins kept
on the model's downsampling lattice (tile.multiple_of) as rsi's segmentation keeps them, the move of
the last row spread evenly over all rows),
the normalisation the model's embedded rsi.json prescribes (x * input.scale - mean) / std
(docs/MODEL_FORMAT.md; no rescale for Byte images), softmax before blending, argmax after, and the
source's CRS and geotransform on the output.

What it does the common way (the cost we measure): the model is used as loaded (no freezing),
each tile is read separately (overlapping pixels are read again), and the blended probabilities
and weights live in full-size float64 arrays, so memory grows with the image area.

--window rsi (default) uses the same weights as rsi's default `--blend hann` (a taper across the
overlap only that skips the model's halo; image borders untapered), so the two masks should agree
to within float rounding. --window spline is the usual whole-tile window (quadratic smoothstep from
every tile edge); same cost, slightly different masks near tile edges.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import rasterio
from rasterio.windows import Window
import torch


def load_model(path, freeze=False):
    extra = {"rsi.json": ""}
    model = torch.jit.load(path, map_location="cpu", _extra_files=extra)
    model.eval()
    if freeze:  # not the common way; lets the benchmark attribute the forward-time gap to graph optimisation
        model = torch.jit.optimize_for_inference(torch.jit.freeze(model))
    text = extra["rsi.json"]
    if not text:
        sys.exit("peer_pipeline.py: %s has no embedded rsi.json" % path)
    return model, json.loads(text)


def tile_origins(extent, tile, overlap, spread=False, align=1):
    """Tile origins along one axis, rsi's 'shift' grid: regular stride, the last one moved in to end at
    the border, rounded up to a multiple of `align` (rsi keeps origins on the model's downsampling
    lattice, so the last tile may overhang the border by less than `align` pixels, padded).
    spread (rsi's segmentation rows): the last one's move shared out evenly over all steps, in whole
    `align` units."""
    if extent <= tile:
        return [0]
    stride = tile - overlap
    count = (extent - tile + stride - 1) // stride + 1
    last = -(-(extent - tile) // align) * align
    origins = [min(i * stride, last) for i in range(count)]
    if spread and count > 1:
        units = origins[-1] // align
        origins = [align * (i * units // (count - 1)) for i in range(count)]
    return origins


def rsi_hann_profile(length, overlap, halo, flat_start, flat_end):
    """1-D weights equal to rsi's hann blending (tiling/blend_weights.cpp), recomputed here."""
    w = np.ones(length, dtype=np.float64)
    if overlap <= 0:
        return w
    margin = max(0, min(halo, (overlap - 1) // 2))
    ramp = overlap - 2 * margin
    d = np.arange(min(overlap, length))
    t = (d - margin + 0.5) / ramp
    edge = np.where(d < margin, 1e-6, np.where(d >= overlap - margin, 1.0, np.sin(np.pi / 2 * t) ** 2))
    edge = np.maximum(edge.astype(np.float32), np.float32(1e-6)).astype(np.float64)
    if not flat_start:
        w[: len(d)] = np.minimum(w[: len(d)], edge)
    if not flat_end:
        w[length - len(d):] = np.minimum(w[length - len(d):], edge[::-1])
    return w


def spline_profile(length):
    """Whole-tile window: quadratic smoothstep of the distance to the nearest tile edge."""
    d = np.minimum(np.arange(length), np.arange(length)[::-1]) + 0.5
    u = np.clip(d / (length / 2.0), 0.0, 1.0)
    return np.where(u < 0.5, 2 * u * u, 1 - 2 * (1 - u) ** 2)


def run(args):
    torch.set_num_threads(args.threads)
    model, meta = load_model(args.model, args.freeze)
    inp = meta["input"]
    tile = args.tile_size or meta["tile"]["size"]
    overlap = meta["tile"]["overlap"] if args.overlap is None else args.overlap
    halo = meta["tile"]["halo"]
    bands = inp.get("source_bands", list(range(1, inp["bands"] + 1)))
    scale = float(inp["scale"])
    mean = np.array(inp["mean"], dtype=np.float32).reshape(-1, 1, 1)
    std = np.array(inp["std"], dtype=np.float32).reshape(-1, 1, 1)
    sigmoid = meta.get("output_activation", "softmax") == "sigmoid"
    n_classes = len(meta["classes"])

    t0 = time.perf_counter()
    model_s = 0.0
    with rasterio.open(args.image) as src:
        if any(src.dtypes[b - 1] != "uint8" for b in bands):
            sys.exit("peer_pipeline.py: only Byte images (no band rescaling) are supported")
        H, W = src.height, src.width
        profile = src.profile
        align = math.lcm(int(meta["tile"].get("multiple_of", 1)), int(meta["tile"].get("output_stride", 1)))
        if overlap % align:
            overlap = (overlap // align + 1) * align  # as rsi raises it
        ys, xs = tile_origins(H, tile, overlap, True, align), tile_origins(W, tile, overlap, False, align)
        windows = [(y, x) for y in ys for x in xs]

        # Full-size accumulators, as the common approach keeps them.
        acc = np.zeros((n_classes, H, W), dtype=np.float64)
        wsum = np.zeros((H, W), dtype=np.float64)

        def weight(y, x):
            if args.window == "spline":
                ry, rx = spline_profile(tile), spline_profile(tile)
            else:
                ry = rsi_hann_profile(tile, overlap, halo, y <= 0, y + tile >= H)
                rx = rsi_hann_profile(tile, overlap, halo, x <= 0, x + tile >= W)
            return np.outer(ry, rx)

        def flush(batch):
            nonlocal model_s
            x = torch.from_numpy(np.stack([b[2] for b in batch]))
            t = time.perf_counter()
            with torch.inference_mode():
                logits = model(x)
                if sigmoid:
                    p1 = torch.sigmoid(logits[:, 0])
                    probs = torch.stack([1 - p1, p1], dim=1)
                else:
                    probs = torch.softmax(logits, dim=1)
            model_s += time.perf_counter() - t
            probs = probs.numpy()
            for (y, x0, _), p in zip(batch, probs):
                h, w = min(tile, H - y), min(tile, W - x0)
                wt = weight(y, x0)[:h, :w]
                acc[:, y:y + h, x0:x0 + w] += p[:, :h, :w] * wt
                wsum[y:y + h, x0:x0 + w] += wt

        batch = []
        for y, x in windows:
            # boundless only matters for images smaller than a tile; padding becomes 0 in model space.
            raw = src.read(bands, window=Window(x, y, tile, tile), boundless=True, fill_value=0)
            arr = (raw.astype(np.float32) * scale - mean) / std
            h, w = min(tile, H - y), min(tile, W - x)
            if h < tile or w < tile:
                arr[:, h:, :] = 0
                arr[:, :, w:] = 0
            batch.append((y, x, arr.astype(np.float32)))
            if len(batch) == args.batch:
                flush(batch)
                batch = []
        if batch:
            flush(batch)

    mask = np.argmax(acc / wsum, axis=0).astype(np.uint8)
    profile.update(driver="GTiff", count=1, dtype="uint8", compress="deflate", tiled=True,
                   blockxsize=256, blockysize=256, nodata=None, photometric=None, interleave="band")
    with rasterio.open(args.output, "w", **profile) as dst:
        dst.write(mask, 1)
    total = time.perf_counter() - t0
    if not args.quiet:
        print(json.dumps({"tiles": len(windows), "seconds": round(total, 3), "model_seconds": round(model_s, 3),
                          "threads": args.threads, "tile": tile, "overlap": overlap, "batch": args.batch,
                          "window": args.window, "frozen": args.freeze, "output": args.output}))


def agreement(a, b):
    """Fraction of pixels with equal values, read block by block (both masks must share the grid)."""
    with rasterio.open(a) as ra, rasterio.open(b) as rb:
        if (ra.width, ra.height) != (rb.width, rb.height):
            sys.exit("peer_pipeline.py: %s and %s differ in size" % (a, b))
        if not ra.transform.almost_equals(rb.transform) or ra.crs != rb.crs:
            sys.exit("peer_pipeline.py: %s and %s differ in georeferencing" % (a, b))
        equal = 0
        step = 1024
        for y in range(0, ra.height, step):
            win = Window(0, y, ra.width, min(step, ra.height - y))
            equal += int(np.count_nonzero(ra.read(1, window=win) == rb.read(1, window=win)))
        return equal / float(ra.width * ra.height)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("image", nargs="?")
    ap.add_argument("-o", "--output")
    ap.add_argument("-m", "--model", default=None, help="TorchScript model with rsi.json (default: data/models/buildings.pt)")
    ap.add_argument("--tile-size", type=int, default=0, help="default: the model's tile.size")
    ap.add_argument("--overlap", type=int, default=None, help="default: the model's tile.overlap")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--window", choices=("rsi", "spline"), default="rsi")
    ap.add_argument("--freeze", action="store_true",
                    help="freeze + optimize_for_inference the model as rsi does (not the common way; for attribution)")
    ap.add_argument("--agreement", nargs=2, metavar=("MASK_A", "MASK_B"),
                    help="print the fraction of equal pixels of two masks and exit")
    ap.add_argument("--min-agreement", type=float, default=None, help="with --agreement: exit 1 below this fraction")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args()
    if args.agreement:
        f = agreement(*args.agreement)
        print("%.6f" % f)
        if args.min_agreement is not None and f < args.min_agreement:
            sys.exit("peer_pipeline.py: masks agree on %.4f%% of pixels, below %.4f%%" % (100 * f, 100 * args.min_agreement))
        return
    if not args.image or not args.output:
        ap.error("IMAGE and -o MASK are required")
    if args.model is None:
        args.model = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "models", "buildings.pt")
    run(args)


if __name__ == "__main__":
    main()
