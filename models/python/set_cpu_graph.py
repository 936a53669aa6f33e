#!/usr/bin/python3
"""Record in an rsi model file how the C++ runtime should prepare it for the CPU (metadata cpu_graph).

The weights, the graph and the golden values stay as they are; only the embedded rsi.json changes
(cpu_graph, and optionally the version, with this command appended to provenance.command). Which
graph is faster depends on the network: time both with `rsi model check MODEL` (its "alternative"
line) before choosing. docs/MODEL_FORMAT.md describes the field.

Example (from the repository root):
  /usr/bin/python3 models/python/set_cpu_graph.py data/models/buildings.pt --cpu-graph channels_last \\
      --version 1.2.2 --out /tmp/buildings-1.2.2.pt
"""
import argparse
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rsi_models import exporting, metadata  # noqa: E402


def set_cpu_graph(model_path, cpu_graph, out_path, version=None, command=None):
    def edit(doc):
        if doc.get("precision", "fp32") != "fp32":
            raise SystemExit("%s: cpu_graph applies to fp32 models; this one is %s" % (model_path, doc["precision"]))
        if cpu_graph == "optimize_for_inference":
            doc.pop("cpu_graph", None)  # the default is not written
        else:
            doc["cpu_graph"] = cpu_graph
    return exporting.rewrite_metadata(model_path, out_path, edit, version, command)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="rsi model file (fp32)")
    p.add_argument("--cpu-graph", required=True, choices=metadata.CPU_GRAPHS)
    p.add_argument("--out", required=True, help="output model file (may not be MODEL itself)")
    p.add_argument("--version", help="new metadata version")
    args = p.parse_args(argv)
    if os.path.abspath(args.out) == os.path.abspath(args.model):
        p.error("--out must differ from MODEL (write elsewhere, then move it)")
    command = "set_cpu_graph.py %s --cpu-graph %s%s" % (
        os.path.basename(args.model), args.cpu_graph, " --version " + shlex.quote(args.version) if args.version else "")
    doc = set_cpu_graph(args.model, args.cpu_graph, args.out, args.version, command)
    print("wrote %s (version %s, cpu_graph %s)" % (args.out, doc["version"], doc.get("cpu_graph", "optimize_for_inference")))


if __name__ == "__main__":
    main()
