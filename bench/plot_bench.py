#!/usr/bin/python3
"""Summarise and plot bench/peer_bench.sh results: rsi buildings vs the Python peer pipeline.

    /usr/bin/python3 bench/plot_bench.py RESULTS_DIR [RESULTS_DIR ...] [--md report.md] [--png docs/bench_time_rss.png]

Each RESULTS_DIR holds runs.tsv (one row per timed run) and facts.tsv (pure-model rate, mask
agreement, machine, load average) as peer_bench.sh writes them; several directories are merged (e.g. a
2000-8000 run with a later rsi-only 16000 run). Prints the markdown report (medians, min-max, ratios
against the issue's targets) and, with --png, draws wall time and peak RSS against image size
(log-log, median with min-max bars).
"""
import argparse
import csv
import os
import statistics
import sys
from collections import defaultdict

# Targets from the issue "Performance: beat the Python peers", judged at TARGET_SIZE.
TARGET_SIZE = 8000
TARGET_WALL = 0.5         # rsi wall / peer wall
TARGET_RSS = 0.25         # rsi peak RSS / peer peak RSS
TARGET_RSS_GROWTH = 1.2   # rsi peak RSS at the largest size / at 2000²

LABELS = {"rsi": "`rsi buildings`", "peer": "Python peer (`bench/peer_pipeline.py`)"}


def med(xs):
    return statistics.median(xs)


def rng(xs, f="%.2f"):
    return (f + " (" + f + "–" + f + ")") % (med(xs), min(xs), max(xs))


def load(dirs):
    runs = defaultdict(list)     # (size, tool) -> [row]
    facts = defaultdict(list)    # (size, key) -> [value]
    for d in dirs:
        with open(os.path.join(d, "runs.tsv")) as f:
            for r in csv.DictReader(f, delimiter="\t"):
                r["size"] = int(r["size"])
                r["wall"] = float(r["wall_s"])
                r["cpu"] = float(r["user_s"]) + float(r["sys_s"])
                r["rss"] = int(r["maxrss_kb"]) / 1024.0
                r["tiles"] = int(r["tiles"] or 0)
                r["load1"] = float(r["load1"]) if r.get("load1") else None  # empty: not recorded
                r["model"] = float(r["model_s"]) if r.get("model_s") else None  # time inside forward calls
                runs[(r["size"], r["tool"])].append(r)
        fp = os.path.join(d, "facts.tsv")
        if os.path.exists(fp):
            with open(fp) as f:
                for r in csv.DictReader(f, delimiter="\t"):
                    facts[(int(r["size"]), r["key"])].append(r["value"])
    return runs, facts


def report(runs, facts, targets):
    sizes = sorted({s for s, _ in runs})
    out = []
    p = out.append
    first = lambda k: facts.get((0, k), ["?"])[0]
    loads = [r["load1"] for rs in runs.values() for r in rs if r["load1"] is not None]
    p("Machine: %s cores (%s), BLAS %s; rsi: %s; Python peer: torch %s. Threads %s, tile %s, overlap %s, "
      "batch %s; repetitions (interleaved): %s. Started %s; load average at start %s, at end %s; "
      "1-minute load at the start of each run %.1f–%.1f (**shared machine**)." % (
          first("cores"), first("cpu"), first("blas"), first("rsi_version"), first("torch_python"),
          first("threads"), first("tile"), first("overlap"), first("batch"),
          ", ".join("%d at %d²" % (max(len(runs[(s, t)]) for t in ("rsi", "peer") if (s, t) in runs), s) for s in sizes),
          first("date_utc"), first("load_start"), facts.get((0, "load_end"), ["?"])[-1],
          min(loads) if loads else 0, max(loads) if loads else 0))
    p("")
    p("Median (min–max). In forward s: the tool's own timer around its model calls (from its JSON summary). "
      "Pure model s = tiles / the tiles/s of `rsi model check` (the same optimised forward, same tile size "
      "and batch, no I/O) measured in the same run.")
    p("")
    p("| size | tool | tiles | wall s | CPU s (user+sys) | peak RSS MB | in forward s | pure model s | wall / pure model |")
    p("|---|---|---|---|---|---|---|---|---|")
    pure = {}
    for s in sizes:
        rates = [float(v) for v in facts.get((s, "pure_tiles_per_s"), [])]
        for t in ("rsi", "peer"):
            rs = runs.get((s, t))
            if not rs:
                continue
            tiles = rs[0]["tiles"]
            pm = tiles / med(rates) if rates and tiles else None
            pure[s] = pm
            fwd = [r["model"] for r in rs if r["model"] is not None]
            p("| %d² | %s | %d | %s | %s | %s | %s | %s | %s |" % (
                s, LABELS[t], tiles, rng([r["wall"] for r in rs]), rng([r["cpu"] for r in rs]),
                rng([r["rss"] for r in rs], "%.0f"), rng(fwd, "%.1f") if fwd else "–", "–" if pm is None else "%.1f" % pm,
                "–" if pm is None else "%.2fx" % (med([r["wall"] for r in rs]) / pm)))
    p("")

    def ratio(s, key):
        a, b = runs.get((s, "rsi")), runs.get((s, "peer"))
        if not a or not b:
            return None
        m = med([r[key] for r in a]) / med([r[key] for r in b])
        by_rep = {r["rep"]: r[key] for r in b}
        paired = [r[key] / by_rep[r["rep"]] for r in a if r["rep"] in by_rep and by_rep[r["rep"]] > 0]
        return m, paired

    def cell(x, target=None, size=None):
        if x is None:
            return "–"
        m, paired = x
        s = "%.2fx" % m
        if paired and len(paired) > 1:
            s += " [%.2f–%.2f]" % (min(paired), max(paired))
        if target is not None and targets and size == TARGET_SIZE:
            s += " ✅" if m <= target else " ❌"
        return s

    p("rsi / peer, ratios of medians (per-repetition ratios in brackets); targets judged at %d²." % TARGET_SIZE)
    p("")
    p("| size | wall (target ≤ %.2fx) | CPU | peak RSS (target ≤ %.2fx) | mask agreement |" % (TARGET_WALL, TARGET_RSS))
    p("|---|---|---|---|---|")
    for s in sizes:
        if (s, "peer") not in runs:
            continue
        ag = facts.get((s, "agreement"))
        p("| %d² | %s | %s | %s | %s |" % (
            s, cell(ratio(s, "wall"), TARGET_WALL, s), cell(ratio(s, "cpu")), cell(ratio(s, "rss"), TARGET_RSS, s),
            "%.4f%%" % (100 * float(ag[0])) if ag else "–"))
    p("")

    p("Peak RSS (MB, median) by image size:")
    p("")
    p("| tool | " + " | ".join("%d²" % s for s in sizes) + " | largest / smallest |")
    p("|---|" + "---|" * (len(sizes) + 1))
    growth = {}
    for t in ("rsi", "peer"):
        vals = [(s, med([r["rss"] for r in runs[(s, t)]])) for s in sizes if (s, t) in runs]
        if not vals:
            continue
        g = vals[-1][1] / vals[0][1] if len(vals) > 1 else None
        growth[t] = (g, vals[0][0], vals[-1][0])
        d = dict(vals)
        p("| %s | %s | %s |" % (LABELS[t], " | ".join("%.0f" % d[s] if s in d else "–" for s in sizes),
                               "–" if g is None else "%.2fx (%d² → %d²)" % (g, vals[0][0], vals[-1][0])))
    p("")
    if targets:
        p("Against the targets:")
        p("")
        w, r = ratio(TARGET_SIZE, "wall"), ratio(TARGET_SIZE, "rss")
        if w:
            p("- wall time rsi / peer at %d²: %.2fx (target ≤ %.2fx) %s" % (TARGET_SIZE, w[0], TARGET_WALL, "✅" if w[0] <= TARGET_WALL else "❌"))
        else:
            p("- wall time rsi / peer at %d²: not measured" % TARGET_SIZE)
        if r:
            p("- peak RSS rsi / peer at %d²: %.2fx (target ≤ %.2fx) %s" % (TARGET_SIZE, r[0], TARGET_RSS, "✅" if r[0] <= TARGET_RSS else "❌"))
        else:
            p("- peak RSS rsi / peer at %d²: not measured" % TARGET_SIZE)
        g = growth.get("rsi")
        if g and g[0] is not None:
            p("- rsi peak RSS growth %d² → %d²: %.2fx for %.0fx the pixels (target ≤ %.2fx) %s" % (
                g[1], g[2], g[0], (g[2] / g[1]) ** 2, TARGET_RSS_GROWTH, "✅" if g[0] <= TARGET_RSS_GROWTH else "❌"))
    return "\n".join(out), sizes


def plot(runs, sizes, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=80)
    style = {"rsi": dict(color="#c0392b", marker="o", label="rsi buildings"),
             "peer": dict(color="#2c3e50", marker="s", label="Python peer")}
    for ax, key, title, unit in ((axes[0], "wall", "Wall time", "seconds"), (axes[1], "rss", "Peak RSS", "MB")):
        for t in ("rsi", "peer"):
            xs = [s for s in sizes if (s, t) in runs]
            if not xs:
                continue
            vals = [[r[key] for r in runs[(s, t)]] for s in xs]
            m = [med(v) for v in vals]
            lo = [a - min(v) for a, v in zip(m, vals)]
            hi = [max(v) - a for a, v in zip(m, vals)]
            ax.errorbar(xs, m, yerr=[lo, hi], capsize=3, linewidth=1.5, markersize=5, **style[t])
            for x, y in zip(xs, m):
                ax.annotate("%.0f" % y, (x, y), textcoords="offset points", xytext=(4, -11 if t == "rsi" else 5), fontsize=7,
                            color=style[t]["color"])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes)
        ax.set_xticklabels(["%d²" % s if s < 1000 else "%dk²" % (s // 1000) for s in sizes])
        ax.minorticks_off()
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: "%g" % v))
        ax.set_xlabel("image size (pixels, 3-band Byte)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("rsi buildings vs a Python tiled-inference pipeline (same model, tiles, batch, threads)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    print("plot: %s (%d KB)" % (path, os.path.getsize(path) // 1024), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", help="peer_bench.sh result directories")
    ap.add_argument("--md", help="also write the report there")
    ap.add_argument("--png", help="draw the plot there")
    ap.add_argument("--no-targets", action="store_true", help="no target verdicts (smoke runs)")
    args = ap.parse_args()
    runs, facts = load(args.dirs)
    if not runs:
        sys.exit("plot_bench.py: no runs in %s" % " ".join(args.dirs))
    text, sizes = report(runs, facts, not args.no_targets)
    print(text)
    if args.md:
        with open(args.md, "w") as f:
            f.write(text + "\n")
    if args.png:
        plot(runs, sizes, args.png)


if __name__ == "__main__":
    main()
