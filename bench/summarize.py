#!/usr/bin/python3
"""Summarize bench/tile_bench.sh raw results (TSV) as markdown: medians, min-max, ratios, RSS by size.

    /usr/bin/python3 bench/summarize.py /tmp/rsi-bench/tile_bench_<stamp>.tsv
"""
import argparse
import csv
import statistics
import sys
from collections import defaultdict

LABELS = {
    "rsi": "`rsi tile` (GTiff)",
    "retile": "`gdal_retile.py` (GTiff)",
    "translate": "`gdal_translate` (1 copy)",
    "rsi_png": "`rsi tile --format PNG`",
    "retile_png": "`gdal_retile.py -of PNG`",
    "rsi_startup": "`rsi --version` (start-up only)",
}
ORDER = ["rsi", "retile", "translate", "rsi_png", "retile_png", "rsi_startup"]

# Targets from the issue.
TARGET_RETILE = 3.0      # retile / rsi >= 3
TARGET_TRANSLATE = 1.5   # rsi / translate <= 1.5
TARGET_RSS_GROWTH = 1.25  # peak RSS at the largest size / at the smallest size (flat = ~1)


def med(xs):
    return statistics.median(xs)


def fmt_range(xs, f="%.2f"):
    return (f + " (" + f + "–" + f + ")") % (med(xs), min(xs), max(xs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tsv")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--overlap", type=int, default=64)
    args = ap.parse_args()

    runs = defaultdict(list)   # (size, tool) -> [row]
    with open(args.tsv) as f:
        for r in csv.DictReader(f, delimiter="\t"):
            r["wall"] = float(r["wall_s"])
            r["cpu"] = float(r["user_s"]) + float(r["sys_s"])
            r["rss"] = int(r["maxrss_kb"]) / 1024.0
            r["files"] = int(r["files"])
            r["mb"] = int(r["bytes"]) / 1e6
            runs[(int(r["size"]), r["tool"])].append(r)
    if not runs:
        sys.exit("summarize.py: no results in %s" % args.tsv)
    sizes = sorted({s for s, _ in runs})
    tools = [t for t in ORDER if any((s, t) in runs for s in sizes)]
    reps = max(len(v) for v in runs.values())

    out = []
    p = out.append
    p("Tile size %d, overlap %d; %d repetition(s) per tool and size, interleaved; "
      "median (min–max)." % (args.tile, args.overlap, reps))
    p("")
    p("| size | tool | wall s | CPU s (user+sys) | peak RSS MB | files | MB written |")
    p("|---|---|---|---|---|---|---|")
    for s in sizes:
        for t in tools:
            rs = runs.get((s, t))
            if not rs:
                continue
            p("| %d² | %s | %s | %s | %s | %d | %.0f |" % (
                s, LABELS.get(t, t), fmt_range([r["wall"] for r in rs]), fmt_range([r["cpu"] for r in rs]),
                fmt_range([r["rss"] for r in rs], "%.0f"), rs[0]["files"], med([r["mb"] for r in rs])))
    p("")

    def ratio(s, num, den, key="wall"):
        a, b = runs.get((s, num)), runs.get((s, den))
        if not a or not b:
            return None
        of_medians = med([r[key] for r in a]) / med([r[key] for r in b])
        by_rep = {r["rep"]: r[key] for r in b}
        paired = [r[key] / by_rep[r["rep"]] for r in a if r["rep"] in by_rep and by_rep[r["rep"]] > 0]
        return of_medians, paired

    p("Ratios of medians (per-repetition ratios min–max in brackets):")
    p("")
    p("| size | wall: retile / rsi (target ≥ %.1f) | wall: rsi / translate (target ≤ %.1f) | CPU: retile / rsi | CPU: rsi / translate | PNG wall: retile / rsi |"
      % (TARGET_RETILE, TARGET_TRANSLATE))
    p("|---|---|---|---|---|---|")
    verdict = {}

    def cell(x, target=None, higher_better=True):
        if x is None:
            return "–"
        m, paired = x
        ok = ""
        if target is not None:
            ok = " ✅" if (m >= target if higher_better else m <= target) else " ❌"
        rng = " [%.2f–%.2f]" % (min(paired), max(paired)) if paired else ""
        return "%.2fx%s%s" % (m, rng, ok)

    for s in sizes:
        a = ratio(s, "retile", "rsi")
        b = ratio(s, "rsi", "translate")
        verdict[s] = (a, b)
        p("| %d² | %s | %s | %s | %s | %s |" % (
            s, cell(a, TARGET_RETILE, True), cell(b, TARGET_TRANSLATE, False),
            cell(ratio(s, "retile", "rsi", "cpu")), cell(ratio(s, "rsi", "translate", "cpu")),
            cell(ratio(s, "retile_png", "rsi_png"))))
    p("")

    p("Peak RSS (MB, median) by image size:")
    p("")
    p("| tool | " + " | ".join("%d²" % s for s in sizes) + " | largest / smallest |")
    p("|---|" + "---|" * (len(sizes) + 1))
    rss_growth = {}
    for t in tools:
        vals = [med([r["rss"] for r in runs[(s, t)]]) if (s, t) in runs else None for s in sizes]
        known = [v for v in vals if v is not None]
        g = known[-1] / known[0] if len(known) > 1 else None
        rss_growth[t] = g
        p("| %s | %s | %s |" % (LABELS.get(t, t), " | ".join("–" if v is None else "%.0f" % v for v in vals),
                               "–" if g is None else "%.2fx" % g))
    p("")

    p("Against the targets:")
    p("")
    for s in sizes:
        a, b = verdict[s]
        if a:
            how = ("rsi %.2fx faster" % a[0]) if a[0] >= 1 else ("rsi %.2fx slower" % (1 / a[0]))
            p("- %d²: wall gdal_retile.py / rsi = %.2fx, %s (target ≥ %.1fx): %s" % (
                s, a[0], how, TARGET_RETILE, "met" if a[0] >= TARGET_RETILE else "MISSED"))
        if b:
            p("- %d²: wall rsi / gdal_translate = %.2fx (target ≤ %.1fx): %s" % (
                s, b[0], TARGET_TRANSLATE, "met" if b[0] <= TARGET_TRANSLATE else "MISSED"))
    g = rss_growth.get("rsi")
    if g is not None:
        p("- peak RSS of rsi grows %.2fx from %d² to %d² (%.0fx the pixels; target: flat, ≤ %.2fx): %s" % (
            g, sizes[0], sizes[-1], (sizes[-1] / sizes[0]) ** 2, TARGET_RSS_GROWTH,
            "met" if g <= TARGET_RSS_GROWTH else "MISSED"))
    print("\n".join(out))


if __name__ == "__main__":
    main()
