#!/usr/bin/python3
"""ctest eval.object_f1_reference: `rsi eval` object F1 on the real RarePlanes outlines (plain and
class-aware) must equal object_f1_reference.py, an independent restatement of solaris's loop.

Usage: check_object_f1.py RSI_BINARY SHARED_DATA_DIR
"""
import json
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
rsi, data = sys.argv[1], sys.argv[2]
root = os.path.join(data, "rareplanes", "eval_vector")
if not os.path.isdir(root):
    sys.exit("real test data missing: %s (the tests need ../shared/data beside the repository)" % root)
preds, gt = os.path.join(root, "preds"), os.path.join(root, "gt")
for extra in ([], ["--class-field", "class", "--truth-class-field", "make"]):
    ours = json.loads(subprocess.run([rsi, "eval", preds, gt, "--json", "--quiet"] + extra, check=True,
                                     capture_output=True, text=True).stdout)
    ref = json.loads(subprocess.run([sys.executable, os.path.join(here, "object_f1_reference.py"), preds, gt] + extra,
                                    check=True, capture_output=True, text=True).stdout)
    for key in ("true_positives", "false_positives", "false_negatives"):
        if ours[key] != ref[key]:
            sys.exit("%s %s: rsi %s, reference %s" % (extra, key, ours[key], ref[key]))
    for name, (tp, fp, fn) in ref["classes"].items():
        mine = ours["classes"][name]
        if (mine["true_positives"], mine["false_positives"], mine["false_negatives"]) != (tp, fp, fn):
            sys.exit("class %s: rsi %s, reference %s" % (name, mine, (tp, fp, fn)))
    print("ok", extra or "plain", {k: ours[k] for k in ("true_positives", "false_positives", "false_negatives", "f1")})
