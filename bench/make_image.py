#!/usr/bin/python3
"""Generate large, realistic test rasters for the benchmarks.

The real SpaceNet Las Vegas scene (../shared/data/spacenet/vegas_rgb.tif, 1300x1300, RGB+alpha Byte,
EPSG:4326) is mirrored (reflect: tile, flipped tile, tile, ...) in both directions into an N x N
3-band Byte tiled GeoTIFF, so every pixel is real imagery and there are no seams. The result is
georeferenced: same origin, pixel size and CRS as the source, extended to N x N pixels.

    /usr/bin/python3 bench/make_image.py 4000 16000                # -> /tmp/rsi-bench/bench_4000.tif ...
    /usr/bin/python3 bench/make_image.py --outdir /tmp/x --block 256 --co COMPRESS=LZW 2000

Prints one output path per size. An existing output with the right size is reused (use --force to
regenerate). Never writes into the repository: outputs go to --outdir (default /tmp/rsi-bench).
"""
import argparse
import os
import sys

import numpy as np
from osgeo import gdal

gdal.UseExceptions()

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_SOURCE = os.path.normpath(os.path.join(REPO, "..", "shared", "data", "spacenet", "vegas_rgb.tif"))


def reflect_index(n, period):
    """Indices 0..n-1 mapped onto a source of length `period` by mirroring (abc cba abc ...)."""
    i = np.arange(n) % (2 * period)
    return np.where(i < period, i, 2 * period - 1 - i)


def make(size, source, outdir, block, creation_options, force):
    name = "bench_%d.tif" % size
    out = os.path.join(outdir, name)
    if os.path.exists(out) and not force:
        try:
            ds = gdal.Open(out)
            if ds.RasterXSize == size and ds.RasterYSize == size and ds.RasterCount == 3:
                return out
        except RuntimeError:
            pass
    src = gdal.Open(source)
    if src.RasterCount < 3:
        sys.exit("make_image.py: %s: needs at least 3 bands, has %d" % (source, src.RasterCount))
    # Bands 1-3 only (the SpaceNet scene's band 4 is alpha).
    data = np.stack([src.GetRasterBand(b).ReadAsArray() for b in (1, 2, 3)])  # (3, H, W)
    if data.dtype != np.uint8:
        sys.exit("make_image.py: %s: expected Byte bands" % source)
    h, w = data.shape[1], data.shape[2]
    cols = reflect_index(size, w)
    rows = reflect_index(size, h)

    tmp = out + ".part"
    drv = gdal.GetDriverByName("GTiff")
    opts = ["TILED=YES", "BLOCKXSIZE=%d" % block, "BLOCKYSIZE=%d" % block, "BIGTIFF=IF_SAFER",
            "INTERLEAVE=PIXEL"] + list(creation_options)
    dst = drv.Create(tmp, size, size, 3, gdal.GDT_Byte, options=opts)
    gt = src.GetGeoTransform()
    dst.SetGeoTransform(gt)  # same origin and pixel size, extended extent
    dst.SetProjection(src.GetProjection())
    for b, ci in zip((1, 2, 3), (gdal.GCI_RedBand, gdal.GCI_GreenBand, gdal.GCI_BlueBand)):
        dst.GetRasterBand(b).SetColorInterpretation(ci)
    # Pre-expand columns once (3 x h x size, ~12 MB per 1000 pixels of width at h=1300).
    wide = data[:, :, cols]
    for y0 in range(0, size, block):
        y1 = min(size, y0 + block)
        strip = wide[:, rows[y0:y1], :]
        dst.WriteRaster(0, y0, size, y1 - y0, strip.tobytes(), band_list=[1, 2, 3])
    dst.FlushCache()
    dst = None
    os.replace(tmp, out)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sizes", nargs="+", type=int, help="image side(s) in pixels, e.g. 4000 16000")
    ap.add_argument("--outdir", default=os.environ.get("RSI_BENCH_DIR", "/tmp/rsi-bench"))
    ap.add_argument("--source", default=DEFAULT_SOURCE, help="RGB(A) Byte raster to mirror (bands 1-3)")
    ap.add_argument("--block", type=int, default=512, choices=(256, 512), help="GeoTIFF block size")
    ap.add_argument("--co", action="append", default=[], help="extra creation option (default: none, i.e. uncompressed)")
    ap.add_argument("--force", action="store_true", help="regenerate even if the output exists")
    args = ap.parse_args()

    outdir = os.path.abspath(args.outdir)
    if outdir == REPO or outdir.startswith(REPO + os.sep):
        sys.exit("make_image.py: refusing to write into the repository (%s)" % outdir)
    if not os.path.exists(args.source):
        sys.exit("make_image.py: source raster missing: %s (the benchmarks need ../shared/data)" % args.source)
    os.makedirs(outdir, exist_ok=True)
    for n in args.sizes:
        if n < 1:
            sys.exit("make_image.py: size must be positive: %d" % n)
        print(make(n, args.source, outdir, args.block, args.co, args.force))


if __name__ == "__main__":
    main()
