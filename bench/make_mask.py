#!/usr/bin/python3
"""Generate large building masks (0 background, 1 building) for the vectorisation benchmark.

The real Inria ground-truth crops (../shared/data/inria/{train,val,test}/gt/*.tif, 256x256, 255 =
building) are laid side by side in a random order, each under one of the 8 dihedral transforms
(fixed seed), into an N x N Byte mask: every building outline is a real one. The mosaic is given a
UTM georeference at the crops' 0.3 m pixel size (EPSG:32616), written as a tiled, DEFLATE-compressed
GeoTIFF (the usual form of a mask), under --outdir (default /tmp/rsi-bench), never into the repository.

    /usr/bin/python3 bench/make_mask.py 4000 16000     # -> /tmp/rsi-bench/mask_4000.tif ...

Prints one output path per size; an existing output of the right size is reused (--force regenerates).
"""
import argparse
import glob
import os
import sys

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))
CROP = 256


def crops(data_root):
    paths = sorted(glob.glob(os.path.join(data_root, "inria", "*", "gt", "*.tif")))
    if not paths:
        sys.exit("make_mask.py: no Inria ground truth under %s/inria/*/gt (the benchmarks need ../shared/data)" % data_root)
    out = []
    for p in paths:
        a = gdal.Open(p).ReadAsArray()
        if a.shape != (CROP, CROP):
            continue
        out.append((a > 0).astype(np.uint8))
    return out


def make(size, data_root, outdir, force, seed=0):
    out = os.path.join(outdir, "mask_%d.tif" % size)
    if os.path.exists(out) and not force:
        try:
            ds = gdal.Open(out)
            if ds.RasterXSize == size and ds.RasterYSize == size:
                return out
        except RuntimeError:
            pass
    tiles = crops(data_root)
    rng = np.random.default_rng(seed)
    n = (size + CROP - 1) // CROP
    tmp = out + ".part"
    dst = gdal.GetDriverByName("GTiff").Create(
        tmp, size, size, 1, gdal.GDT_Byte,
        options=["TILED=YES", "BLOCKXSIZE=512", "BLOCKYSIZE=512", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER"])
    dst.SetGeoTransform([400000.0, 0.3, 0.0, 3750000.0, 0.0, -0.3])
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32616)
    dst.SetProjection(srs.ExportToWkt())
    band = dst.GetRasterBand(1)
    for r in range(n):
        row = np.empty((CROP, n * CROP), dtype=np.uint8)
        for c in range(n):
            t = tiles[int(rng.integers(len(tiles)))]
            t = np.rot90(t, int(rng.integers(4)))
            if rng.integers(2):
                t = t[:, ::-1]
            row[:, c * CROP:(c + 1) * CROP] = t
        y0 = r * CROP
        h = min(CROP, size - y0)
        band.WriteArray(row[:h, :size], 0, y0)
    dst.FlushCache()
    dst = None
    os.replace(tmp, out)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sizes", nargs="+", type=int)
    ap.add_argument("--data-root", default=os.environ.get("RSI_DATA_ROOT", DEFAULT_DATA))
    ap.add_argument("--outdir", default="/tmp/rsi-bench")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    for size in args.sizes:
        print(make(size, args.data_root, args.outdir, args.force))


if __name__ == "__main__":
    main()
