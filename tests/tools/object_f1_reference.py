#!/usr/bin/python3
"""An independent re-statement of the SpaceNet object-F1 rule (solaris Evaluator.eval_iou_spacenet_csv
and Evaluator.eval_iou), written with GDAL's Python bindings, to cross-check `rsi eval` on real data.

Per image pair: ground truth with area >= min_area, proposals with area > min_area, proposals by
descending confidence, each matched to the unmatched truth of highest IoU (first on ties), a true
positive when IoU > threshold. Geometries are compared in the UTM zone of the truth's centre.

Usage: object_f1_reference.py PRED_DIR TRUTH_DIR [--class-field F --truth-class-field G] -> JSON on stdout
"""
import argparse
import json
import math
import os

from osgeo import ogr, osr

ogr.UseExceptions()
osr.UseExceptions()


def load(path, class_field=None, confidence=False):
    ds = ogr.Open(path)
    layer = ds.GetLayer(0)
    srs = layer.GetSpatialRef()
    items = []
    for f in layer:
        g = f.GetGeometryRef()
        if g is None or g.IsEmpty():
            continue
        items.append({"geom": g.Clone(),
                      "conf": f.GetField("confidence") if confidence and f.GetFieldIndex("confidence") >= 0 else 1.0,
                      "cls": f.GetField(class_field) if class_field else None})
    extent = layer.GetExtent()  # minx, maxx, miny, maxy in the layer's axis order (lon, lat)
    return items, srs, extent


def utm_for(extent):
    lon = (extent[0] + extent[1]) / 2
    lat = (extent[2] + extent[3]) / 2
    zone = min(60, max(1, int(math.floor((lon + 180) / 6)) + 1))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG((32600 if lat >= 0 else 32700) + zone)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def score(truth, props, threshold=0.5, min_area=0.0):
    truth = [t for t in truth if t["geom"].GetArea() >= min_area]
    props = sorted([p for p in props if p["geom"].GetArea() > min_area], key=lambda p: -p["conf"])
    open_truth = list(truth)
    tp = fp = 0
    for p in props:
        pg = p["geom"] if p["geom"].IsValid() else p["geom"].Buffer(0)
        best, best_t = None, None
        for t in open_truth:
            if not pg.Intersects(t["geom"]):
                continue
            iou = 0.0
            if pg.IsValid() and t["geom"].IsValid():
                iou = pg.Intersection(t["geom"]).GetArea() / pg.Union(t["geom"]).GetArea()
            if best is None or iou > best:
                best, best_t = iou, t
        if best is not None and best > threshold:
            tp += 1
            open_truth.remove(best_t)
        else:
            fp += 1
    fn = sum(1 for t in open_truth if t["geom"].GetArea() > 0)
    return tp, fp, fn


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pred")
    ap.add_argument("truth")
    ap.add_argument("--class-field")
    ap.add_argument("--truth-class-field")
    a = ap.parse_args()
    total = [0, 0, 0]
    classes = {}
    for name in sorted(os.listdir(a.truth)):
        truth, srs, extent = load(os.path.join(a.truth, name), a.truth_class_field)
        props, psrs, _ = load(os.path.join(a.pred, name), a.class_field, confidence=True)
        utm = utm_for(extent)
        for items, s in ((truth, srs), (props, psrs)):
            ct = osr.CoordinateTransformation(s, utm)
            for it in items:
                it["geom"].Transform(ct)
        if a.class_field:
            for c in sorted({t["cls"] for t in truth} | {p["cls"] for p in props}):
                r = score([t for t in truth if t["cls"] == c], [p for p in props if p["cls"] == c])
                acc = classes.setdefault(c, [0, 0, 0])
                for i in range(3):
                    acc[i] += r[i]
                    total[i] += r[i]
        else:
            r = score(truth, props)
            for i in range(3):
                total[i] += r[i]
    print(json.dumps({"true_positives": total[0], "false_positives": total[1], "false_negatives": total[2],
                      "classes": classes}))


if __name__ == "__main__":
    main()
