#!/usr/bin/python3
"""Do two polygon layers hold the same features? (rsi vectorize vs gdal_polygonize.py)

    /usr/bin/python3 bench/compare_polygons.py RSI.gpkg GDAL.gpkg [--where "DN = 1"]

Matches features by their envelope (rounded to 1 mm) and compares area and vertex-free shape
(area of the symmetric difference). Prints one JSON line: counts, total areas, matched, the largest
area difference and the largest symmetric-difference area; exits 1 when the layers differ.
"""
import argparse
import json
import sys

from osgeo import ogr

ogr.UseExceptions()


def load(path, where):
    ds = ogr.Open(path)
    layer = ds.GetLayer(0)
    if where:
        layer.SetAttributeFilter(where)
    out = {}
    for f in layer:
        g = f.GetGeometryRef().Clone()
        e = g.GetEnvelope()
        key = tuple(round(v, 3) for v in e)
        out.setdefault(key, []).append(g)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--where-a", default="")
    ap.add_argument("--where-b", default="")
    args = ap.parse_args()
    a, b = load(args.a, args.where_a), load(args.b, args.where_b)
    count_a = sum(len(v) for v in a.values())
    count_b = sum(len(v) for v in b.values())
    area_a = sum(g.GetArea() for v in a.values() for g in v)
    area_b = sum(g.GetArea() for v in b.values() for g in v)
    matched, worst_area, worst_symdiff = 0, 0.0, 0.0
    for key, ga in a.items():
        gb = b.get(key, [])
        for g in ga:
            best = None
            for h in gb:
                d = abs(g.GetArea() - h.GetArea())
                if best is None or d < best[0]:
                    best = (d, h)
            if best is None:
                continue
            matched += 1
            worst_area = max(worst_area, best[0])
            worst_symdiff = max(worst_symdiff, g.SymDifference(best[1]).GetArea())
    same = count_a == count_b == matched and worst_symdiff < 1e-6
    print(json.dumps({"features_a": count_a, "features_b": count_b, "matched": matched,
                      "area_a": round(area_a, 3), "area_b": round(area_b, 3),
                      "max_area_difference": worst_area, "max_symmetric_difference_area": worst_symdiff,
                      "same": same}))
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
