"""Loaders for the shared data folder (``../shared/data`` from the repository root).

Everything is loaded eagerly into numpy arrays: the shared samples are small (a few MB).
"""
import glob
import os
from typing import Dict, List, Optional, Tuple

import numpy as np

EUROSAT_CLASSES = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
                   "Pasture", "PermanentCrop", "Residential", "River", "SeaLake"]
# Band order of the EuroSAT GeoTIFFs (1-based file band i -> EUROSAT_BANDS[i-1]). B8A is the LAST
# band in these files (the usual EuroSAT "allBands" layout), as the per-band statistics show: file
# band 9 has mean reflectance 0.08 (B09), band 10 0.001 (B10 cirrus), band 13 0.27 (B8A ~ B08 0.24).
EUROSAT_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11",
                 "B12", "B8A"]
BUILDINGS_EXTRA_SUBSETS = ["whu_east_asia", "nzlnd", "crowdai", "inria_more"]
# Fixed validation hold-out of buildings-extra: the last file (sorted by name) of every subset.
# These files are never trained on.
BUILDINGS_EXTRA_VAL = {
    "whu_east_asia": "1_5802.png",
    "nzlnd": "441.png",
    "crowdai": "6.png",
    "inria_more": "vienna2_63.png",
}


def default_data_root() -> str:
    """``../shared/data`` relative to the repository root (this file is models/python/rsi_models)."""
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.abspath(os.path.join(here, "..", "..", ".."))
    return os.path.abspath(os.path.join(repo, "..", "shared", "data"))


def require_dir(path: str, what: str) -> str:
    if not os.path.isdir(path):
        raise FileNotFoundError(
            "%s not found at %s: the shared data folder (../shared/data from the repository root, "
            "or --data-root) is required" % (what, path))
    return path


def read_raster(path: str) -> np.ndarray:
    """Read a raster as a C x H x W (or H x W for one band) numpy array with GDAL."""
    from osgeo import gdal
    gdal.UseExceptions()
    ds = gdal.Open(path)
    if ds is None:
        raise IOError("cannot open %s" % path)
    return ds.ReadAsArray()


def read_png(path: str) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as im:
        return np.array(im)


def _as_rgb_chw(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        a = np.stack([a, a, a])
    elif a.shape[-1] in (3, 4) and a.shape[0] not in (3, 4):
        a = a.transpose(2, 0, 1)
    return np.ascontiguousarray(a[:3]).astype(np.uint8)


def _as_mask(a: np.ndarray) -> np.ndarray:
    if a.ndim == 3:  # 3-channel PNG masks: use the first channel
        a = a[..., 0] if a.shape[-1] in (3, 4) else a[0]
    return (a > 127).astype(np.uint8)


class Sample:
    __slots__ = ("name", "image", "mask", "source")

    def __init__(self, name: str, image: np.ndarray, mask: np.ndarray, source: str):
        self.name = name      # e.g. "inria/train/austin1_0.tif"
        self.image = image    # 3 x H x W uint8 (RGB)
        self.mask = mask      # H x W uint8 {0,1}
        self.source = source  # "inria" or the buildings-extra subset name


def load_inria(data_root: str, split: str) -> List[Sample]:
    """inria/<split>/{images,gt}/*.tif -> list of samples (sorted by name)."""
    d = require_dir(os.path.join(data_root, "inria", split), "inria/%s" % split)
    out = []
    for f in sorted(glob.glob(os.path.join(d, "images", "*.tif"))):
        base = os.path.basename(f)
        g = os.path.join(d, "gt", base)
        out.append(Sample("inria/%s/%s" % (split, base), _as_rgb_chw(read_raster(f)),
                          _as_mask(read_raster(g)), "inria"))
    if not out:
        raise FileNotFoundError("no images in %s" % d)
    return out


def load_buildings_extra(data_root: str, part: str) -> List[Sample]:
    """buildings-extra subsets. part = "train" (all but the fixed hold-out), "val" or "all"."""
    root = require_dir(os.path.join(data_root, "buildings-extra"), "buildings-extra")
    out = []
    for sub in BUILDINGS_EXTRA_SUBSETS:
        d = os.path.join(root, sub)
        imgdir = os.path.join(d, "images")
        if not os.path.isdir(imgdir):
            imgdir = os.path.join(d, "image")  # crowdai uses "image"
        for f in sorted(glob.glob(os.path.join(imgdir, "*.png"))):
            base = os.path.basename(f)
            is_val = BUILDINGS_EXTRA_VAL.get(sub) == base
            if (part == "train" and is_val) or (part == "val" and not is_val):
                continue
            out.append(Sample("buildings-extra/%s/%s" % (sub, base), _as_rgb_chw(read_png(f)),
                              _as_mask(read_png(os.path.join(d, "gt", base))), sub))
    if not out:
        raise FileNotFoundError("no buildings-extra images under %s" % root)
    return out


def eurosat_files(data_root: str) -> List[Tuple[str, int]]:
    """All EuroSAT patches as (path, class index), classes in folder order, files sorted by number."""
    root = require_dir(os.path.join(data_root, "eurosat"), "eurosat")
    out = []
    for ci, c in enumerate(EUROSAT_CLASSES):
        files = glob.glob(os.path.join(root, c, "*.tif"))
        if not files:
            raise FileNotFoundError("no EuroSAT patches for class %s under %s" % (c, root))

        def num(p):
            stem = os.path.splitext(os.path.basename(p))[0]
            tail = stem.rsplit("_", 1)[-1]
            return (int(tail) if tail.isdigit() else 10 ** 9, stem)
        for f in sorted(files, key=num):
            out.append((f, ci))
    return out


# Fixed validation split of EuroSAT: patches <Class>_11 .. <Class>_14 of every class (4 per class,
# 40 in all) are validation; _1 .. _10 (100) are training. Never used for tuning.
EUROSAT_VAL_NUMBERS = (11, 12, 13, 14)


def eurosat_split(data_root: str, split: str) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """Load the EuroSAT split ("train", "val" or "all"): (N x 13 x 64 x 64 float32, N labels, names)."""
    xs, ys, names = [], [], []
    for f, ci in eurosat_files(data_root):
        stem = os.path.splitext(os.path.basename(f))[0]
        n = int(stem.rsplit("_", 1)[-1])
        is_val = n in EUROSAT_VAL_NUMBERS
        if (split == "train" and is_val) or (split == "val" and not is_val):
            continue
        a = read_raster(f).astype(np.float32)
        if a.shape != (13, 64, 64):
            raise ValueError("%s: expected 13 x 64 x 64, got %s" % (f, a.shape))
        xs.append(a)
        ys.append(ci)
        names.append(os.path.relpath(f, data_root))
    return np.stack(xs), np.array(ys, dtype=np.int64), names
