#!/usr/bin/python3
"""Script an rsi model file again from the current rsi_models network code, keeping its weights.

For a fix to a network's forward that leaves its fp32 outputs as they were (e.g. StatsSceneNet's
quantiles computed in float32, so that the C++ runtime's --precision bf16|fp16 can run it): the eager
network is rebuilt from the file's weights (rsi_models.quantization.rebuild_eager, which checks that it
reproduces the file), scripted again and saved with the same metadata. The weights' SHA-256 must stay
the same and the golden values must agree with the recorded ones; only the version changes (when
given) and this command is appended to provenance.command.

Example (from the repository root):
  /usr/bin/python3 models/python/rescript.py data/models/eurosat13.pt --version 1.0.1 --out /tmp/eurosat13.pt
"""
import argparse
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rsi_models import exporting, quantization  # noqa: E402


def rescript(model_path, out_path, version=None, command=None):
    scripted, doc = exporting.load_file(model_path)
    if doc.get("precision", "fp32") != "fp32":
        raise SystemExit("%s: only fp32 models are scripted again (this one is %s)" % (model_path, doc["precision"]))
    eager = quantization.rebuild_eager(scripted, doc)
    if eager is None:
        raise SystemExit("%s: not an rsi_models architecture this script can rebuild" % model_path)
    old_sha, old_golden = doc["weights_sha256"], doc["golden"]
    if version:
        doc["version"] = version
    if command:
        doc["provenance"]["command"] = doc["provenance"]["command"] + " && " + command
    new = exporting.export(eager, doc, out_path)  # re-records hash and golden values, verifies the file
    tol = 1e-4 * max(1.0, abs(old_golden["output_abs_sum"]))
    same = new["weights_sha256"] == old_sha and \
        abs(new["golden"]["output_sum"] - old_golden["output_sum"]) <= tol and \
        abs(new["golden"]["output_abs_sum"] - old_golden["output_abs_sum"]) <= tol
    if not same:
        os.remove(out_path)
        raise SystemExit("%s: scripted again, the weights or outputs changed; nothing written" % model_path)
    return new


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="rsi model file (fp32, an rsi_models architecture)")
    p.add_argument("--out", required=True, help="output model file (may not be MODEL itself)")
    p.add_argument("--version", help="new metadata version")
    args = p.parse_args(argv)
    if os.path.abspath(args.out) == os.path.abspath(args.model):
        p.error("--out must differ from MODEL (write elsewhere, then move it)")
    command = "rescript.py %s%s" % (os.path.basename(args.model),
                                    " --version " + shlex.quote(args.version) if args.version else "")
    doc = rescript(args.model, args.out, args.version, command)
    print("wrote %s (version %s, weights %s)" % (args.out, doc["version"], doc["weights_sha256"][:12]))


if __name__ == "__main__":
    main()
