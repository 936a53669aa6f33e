#!/usr/bin/python3
"""Record in an rsi model file how many bands its training imagery had (metadata input.source_band_count).

A model whose default source bands pick some bands of a larger stack (eurosat-rgbn reads bands 4,3,2,8
of EuroSAT's 13-band Sentinel-2 patches) names that stack's band count, so that the C++ runtime warns
about the source bands only for images with another band count. The weights, the graph and the golden
values stay as they are; only the embedded rsi.json changes (and the version, when given; this command
is appended to provenance.command). docs/MODEL_FORMAT.md describes the field.

Example (from the repository root):
  /usr/bin/python3 models/python/set_source_band_count.py data/models/eurosat-rgbn.pt --count 13 \\
      --version 1.0.2 --out /tmp/eurosat-rgbn.pt
"""
import argparse
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rsi_models import exporting, metadata  # noqa: E402


def set_source_band_count(model_path, count, out_path, version=None, command=None):
    def edit(doc):
        if "source_bands" not in doc["input"]:
            raise SystemExit("%s: the metadata names no input.source_bands for a band count to number" % model_path)
        doc["input"]["source_band_count"] = count
    return exporting.rewrite_metadata(model_path, out_path, edit, version, command)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="rsi model file")
    p.add_argument("--count", type=int, required=True, help="band count of the imagery the source bands are numbered in")
    p.add_argument("--out", required=True, help="output model file (may not be MODEL itself)")
    p.add_argument("--version", help="new metadata version")
    args = p.parse_args(argv)
    if os.path.abspath(args.out) == os.path.abspath(args.model):
        p.error("--out must differ from MODEL (write elsewhere, then move it)")
    command = "set_source_band_count.py %s --count %d%s" % (
        os.path.basename(args.model), args.count, " --version " + shlex.quote(args.version) if args.version else "")
    try:
        doc = set_source_band_count(args.model, args.count, args.out, args.version, command)
    except metadata.MetadataError as e:
        raise SystemExit("%s: %s; nothing written" % (args.model, e))
    print("wrote %s (version %s, source bands %s of %d)" % (
        args.out, doc["version"], ",".join(map(str, doc["input"]["source_bands"])), args.count))


if __name__ == "__main__":
    main()
