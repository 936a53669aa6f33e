#!/usr/bin/python3
"""Convert an official foundation-model checkpoint (RSP / RVSA) into an rsi model file.

Loads the checkpoint with a restricted unpickler (no yacs/mmcv needed, no pickled code run),
maps its keys onto this repository's implementation of the architecture, REFUSES it (exit 2)
unless every model key is present with the right shape, REPORTS checkpoint keys the model does
not use, and writes a self-describing TorchScript model (rsi.json embedded, docs/MODEL_FORMAT.md)
through rsi_models.exporting.export (scripted == eager is verified on reload).

Examples (from the repository root):
  /usr/bin/python3 models/python/rsi_convert.py --arch rsp-vitaev2-s --task scene \\
      --checkpoint rsp-vitaev2-s-ckpt.pth -o data/models/rsp-vitaev2-s-millionaid.pt
  /usr/bin/python3 models/python/rsi_convert.py --arch rsp-swin-t-upernet --task segmentation \\
      --checkpoint upernet_swin_potsdam.pth -o data/models/rsp-swin-t-upernet-potsdam.pt

An existing output is replaced only with --overwrite; the file appears once verified, never half
written. Stage lines ("convert: ...") go to stderr unless --quiet. Errors are one line
"rsi model convert: FILE: problem" (a mismatching checkpoint also lists the keys at fault).
Exit status: 0 written; 1 failed (missing or unreadable checkpoint or --classes file, missing output
folder, write or verification failure); 2 refused (bad options, a checkpoint that does not match
--arch, existing output without --overwrite); 130 interrupted (Ctrl-C, SIGTERM).
"""
import argparse
import json
import os
import re
import shlex
import sys
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rsi_models import outputs  # noqa: E402  (no torch: handlers in place before the slow imports)

COMMAND = "rsi model convert"  # what the user typed: every message starts with it
if __name__ == "__main__":
    outputs.handle_termination(COMMAND)  # the command, not an importing test

import torch  # noqa: E402

from rsi_models import exporting  # noqa: E402
from rsi_models.foundation import checkpoint as ckpt_mod  # noqa: E402
from rsi_models.foundation import millionaid, registry  # noqa: E402
from rsi_models.foundation.rsp_digest import DERIVED_BUFFERS  # noqa: E402


class Refused(Exception):
    """The checkpoint or the arguments cannot produce a faithful model; the message says why (exit 2)."""


class CheckpointRefused(Refused):
    """Refused for what the checkpoint holds: the message is printed after the checkpoint's path."""


class FileProblem(Exception):
    """A missing, unreadable or unwritable file (exit 1); the message starts with that file's name."""


def _tmp_pattern(out: str):
    """outputs.atomic_output's temporary name for ``out`` (".<name>.<random>.tmp" beside it)."""
    return re.compile(r"(?:[^\s'\"]*/)?\.%s\.[A-Za-z0-9_]+\.tmp" % re.escape(os.path.basename(out)))


def _without_tmp(text: str, out: str) -> str:
    """``text`` with the temporary file's name replaced by the output's (never shown to the user)."""
    return _tmp_pattern(out).sub(lambda _: out, text)


def os_error_line(e: OSError, out: str, default: str) -> str:
    """'FILE: reason' for an OSError, without Python's "[Errno N]" text: the output (or its
    temporary) is "cannot write"; another file is named as it is."""
    reason = e.strerror or str(e)
    name = e.filename if isinstance(e.filename, str) else None
    if name is None or name == out or _tmp_pattern(out).fullmatch(name) or \
            os.path.abspath(name) == os.path.abspath(out):
        if name is None and default != out:
            return "%s: %s" % (default, reason)
        return "%s: cannot write: %s" % (out, reason)
    return "%s: %s" % (name, reason)


def probe_output_folder(out: str) -> None:
    """An unwritable output folder fails here, in one line naming ``out``, before minutes of work."""
    try:
        outputs.probe_output_folder(out)
    except OSError as e:
        raise FileProblem("%s: cannot write: %s" % (out, e.strerror or e))


def progress(args, text: str) -> None:
    """A stage line on stderr (a conversion takes from seconds to minutes), unless --quiet."""
    if not getattr(args, "quiet", False):
        print("convert: %s" % text, file=sys.stderr, flush=True)
    outputs.raise_if_interrupted()  # each stage starts only when no signal came (its raise can be lost)


WRAPPER_PREFIXES = ("module.", "model.", "backbone.")
# BatchNorm step counters: never used by an eval-mode forward; some exporters drop them
FILLED_BUFFERS = ("num_batches_tracked",)
LIST_KEYS = 10  # keys named per category in a refusal


def _strip_prefixes(sd: Dict[str, torch.Tensor], model_keys) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """Remove wrapper prefixes ('module.', 'model.', 'backbone.' for scene models, also nested
    such as 'module.model.') from the checkpoint keys that match a model key only without them.
    Keys matching as they are win; a stripped key that would collide with another is left as it
    is (then reported unused). Returns the new dict and the prefixes removed (most used first)."""
    target: Dict[str, str] = {}
    for k in sd:
        if k in model_keys:
            continue
        cur = k
        while True:
            p = next((p for p in WRAPPER_PREFIXES if cur.startswith(p)), None)
            if p is None:
                break
            cur = cur[len(p):]
            if cur in model_keys:
                target[k] = cur
                break
    taken: Dict[str, int] = {}
    for k, t in target.items():
        taken[t] = taken.get(t, 0) + 1
    out: Dict[str, torch.Tensor] = {}
    counts: Dict[str, int] = {}
    for k, v in sd.items():
        t = target.get(k)
        if t is not None and t not in sd and taken[t] == 1:
            out[t] = v
            prefix = k[: len(k) - len(t)]
            counts[prefix] = counts.get(prefix, 0) + 1
        else:
            out[k] = v
    return out, sorted(counts, key=lambda p: (-counts[p], p))


def _unwrapped(key: str) -> str:
    """``key`` without any leading wrapper prefixes."""
    again = True
    while again:
        again = False
        for p in WRAPPER_PREFIXES:
            if key.startswith(p):
                key, again = key[len(p):], True
    return key


CLASSIFIER_KEYS = ("head.weight", "fc.weight", "decode_head.conv_seg.weight")


def num_classes_of(arch: registry.Arch, sd: Dict[str, torch.Tensor]) -> int:
    """Outputs of the checkpoint's classifier; its key may carry wrapper prefixes (the prefixes
    are stripped later, against the keys of the model built for this class count)."""
    def outputs(key: str) -> int:
        n = int(sd[key].shape[0]) if sd[key].dim() > 0 else 0
        if n < 1:  # a model with no classes was built and written
            raise CheckpointRefused("its classifier %s has no outputs (shape %s)" % (key, list(sd[key].shape)))
        return n

    # Exact keys first, over all of them: a segmentation checkpoint's decode_head.conv_seg.weight wins
    # over a leftover backbone.fc.weight (whose "backbone." is also a wrapper prefix).
    for k in CLASSIFIER_KEYS:
        if k in sd:
            return outputs(k)
    for k in CLASSIFIER_KEYS:
        found = [c for c in sd if _unwrapped(c) == k]
        if found:
            return outputs(sorted(found, key=len)[0])
    raise CheckpointRefused("cannot find the classifier in the checkpoint (no head.weight, fc.weight or "
                  "decode_head.conv_seg.weight): not a %s checkpoint" % arch.name)


def _key_list(keys: List[str]) -> str:
    return ", ".join(keys[:LIST_KEYS]) + (", ..." if len(keys) > LIST_KEYS else "")


def match_state_dict(model: torch.nn.Module, sd: Dict[str, torch.Tensor]):
    """-> (state_dict to load, unused checkpoint keys, notes). Raises Refused naming the keys:
    the missing ones, the checkpoint's keys the model does not have, wrong shapes (first
    LIST_KEYS of each, with counts)."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    wrong = [(k, list(sd[k].shape), list(own[k].shape)) for k in own
             if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    unused = sorted(k for k in sd if k not in own)
    notes = []
    # derived buffers (window index / precomputed shift mask) are recomputed by this
    # implementation; a checkpoint from another training size may store other shapes
    for k, got, want in list(wrong):
        if k.endswith(DERIVED_BUFFERS):
            wrong.remove((k, got, want))
            notes.append("%s: checkpoint shape %s differs, recomputed value used (derived buffer)" % (k, got))
    missing_real = [k for k in missing if not k.endswith(DERIVED_BUFFERS + FILLED_BUFFERS)]
    for k in missing:
        if k.endswith(DERIVED_BUFFERS):
            notes.append("%s: not in checkpoint, recomputed value used (derived buffer)" % k)
    counters = [k for k in missing if k.endswith(FILLED_BUFFERS)]
    if counters:
        notes.append("%d BatchNorm num_batches_tracked buffer(s) not in checkpoint, filled with 0 "
                     "(unused at inference): %s" % (len(counters), _key_list(counters)))
    if missing_real or wrong:
        lines = []
        if missing_real:
            lines.append("%d model key(s) missing from the checkpoint: %s" % (len(missing_real), _key_list(missing_real)))
        if unused:
            lines.append("%d checkpoint key(s) the model does not have: %s" % (len(unused), _key_list(unused)))
        if wrong:
            lines.append("%d key(s) with the wrong shape:" % len(wrong))
        for k, got, want in wrong[:LIST_KEYS]:
            lines.append("key %s has shape %s in the checkpoint, the model needs %s" % (k, got, want))
        raise CheckpointRefused("checkpoint does not match the architecture:\n  " + "\n  ".join(lines))
    load = {k: (sd[k] if k in sd and tuple(sd[k].shape) == tuple(own[k].shape) else own[k]) for k in own}
    return load, unused, notes


def read_classes(path: str) -> List[dict]:
    """--classes: a JSON list of names or of {"name", "color"} objects, or a text file with one
    class per line ("name" or "name r g b"). Raises FileProblem naming the file."""
    try:
        with open(path) as f:
            text = f.read()
    except UnicodeDecodeError:
        raise FileProblem("%s: not a text file (--classes)" % path)
    except OSError as e:
        raise FileProblem("%s: cannot read --classes: %s" % (path, e.strerror or e))
    out = []
    if path.lower().endswith(".json"):
        try:
            data = json.loads(text)
        except ValueError as e:
            raise FileProblem("%s: not valid JSON (%s)" % (path, e))
        if isinstance(data, dict) and "classes" in data:
            data = data["classes"]
        if not isinstance(data, list):
            raise FileProblem("%s: expected a list of class names or objects with 'name'" % path)
        for i, c in enumerate(data):
            if isinstance(c, str):
                out.append({"name": c})
            elif isinstance(c, dict) and "name" in c:
                out.append({k: c[k] for k in ("name", "color", "parents") if k in c})
            else:
                raise FileProblem("%s: entry %d is neither a name nor an object with 'name'" % (path, i))
    else:
        for number, line in enumerate(text.splitlines(), 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            e = {"name": parts[0]}
            if len(parts) >= 4:
                try:
                    e["color"] = [int(v) for v in parts[1:4]]
                except ValueError:
                    raise FileProblem("%s: line %d: the colour must be three integers (name r g b)" % (path, number))
            out.append(e)
    return out


def _default_color(i: int) -> List[int]:
    return [(i * 97 + 40) % 256, (i * 57 + 90) % 256, (i * 137 + 160) % 256]


def class_entries(arch, n: int, args, meta) -> Tuple[List[dict], Optional[List[str]], List[str], str]:
    """-> (classes, hierarchy levels or None, provenance data, source description)."""
    if args.classes:
        given = read_classes(args.classes)
        if len(given) != n:
            raise Refused("--classes %s lists %d classes, the checkpoint's classifier has %d outputs"
                          % (args.classes, len(given), n))
        entries = [{"id": i, "name": c["name"], "color": c.get("color", _default_color(i)),
                    **({"parents": c["parents"]} if "parents" in c else {})} for i, c in enumerate(given)]
        return entries, None, [os.path.basename(args.classes)], "--classes " + args.classes
    if arch.task == "scene":
        if n == len(millionaid.CLASSES):
            return (millionaid.class_entries(), list(millionaid.LEVELS), ["MillionAID (51 third-level classes)"],
                    "MillionAID hierarchy (rsi_models/foundation/millionaid.py)")
        raise CheckpointRefused("the classifier has %d outputs, not the 51 MillionAID classes (a fine-tuned "
                      "checkpoint?): pass --classes with its class names in label order" % n)
    names, palette = ckpt_mod.mmseg_classes(meta)
    if names is None:
        raise CheckpointRefused("the checkpoint has no mmseg meta CLASSES: pass --classes with the %d class "
                      "names in label order" % n)
    if len(names) < n:
        raise CheckpointRefused("meta CLASSES lists %d names, the decode head has %d outputs: pass --classes"
                      % (len(names), n))
    # Potsdam: CLASSES has 6 names but num_classes=5 (index 5 'clutter' is the ignore_index)
    entries = [{"id": i, "name": names[i],
                "color": (palette[i] if palette and i < len(palette) else _default_color(i))}
               for i in range(n)]
    return entries, None, [_dataset_of(names) or "mmseg dataset (meta CLASSES)"], "checkpoint meta CLASSES/PALETTE"


def _dataset_of(names: List[str]) -> Optional[str]:
    s = set(n.lower() for n in names)
    if "impervious_surface" in s:
        return "potsdam"
    if "ship" in s and "harbor" in s:
        return "isaid"
    if "barren" in s and ("agricultural" in s or "agriculture" in s):
        return "loveda"
    return None


def build_doc(arch, args, entries, levels, data, class_source, sha, info, unused, notes, n_params,
              description: Optional[str] = None, default_tile: Optional[int] = None) -> dict:
    tile = args.tile_size or default_tile or arch.tile_size
    if tile % arch.multiple_of:
        raise Refused("--tile-size %d is not a multiple of %d" % (tile, arch.multiple_of))
    if arch.task == "scene":
        gsd = args.gsd if args.gsd else 1.0
        tile_doc = {"size": tile, "overlap": 0, "output_stride": 1, "halo": 0,
                    "multiple_of": arch.multiple_of}
    else:
        ds = _dataset_of([e["name"] for e in entries])
        gsd = args.gsd if args.gsd else registry.DATASET_HINTS.get(ds, (0.5, ""))[0]
        halo = arch.halo
        tile_doc = {"size": tile, "overlap": min(2 * halo, tile - 1), "output_stride": 1,
                    "halo": halo, "multiple_of": arch.multiple_of}
    doc = {
        "format": "rsi-model", "format_version": 1,
        "name": args.name or arch.name,
        "version": args.version or "1.0.0",
        "task": arch.task,
        "description": "%s, converted from the official checkpoint %s (%s)." % (
            description or arch.description, os.path.basename(args.checkpoint), arch.url),
        "input": {"bands": 3, "band_names": ["red", "green", "blue"], "source_bands": [1, 2, 3],
                  "data_range": [0, 255], "scale": 1.0 / 255.0,
                  "mean": [float(v) for v in arch.mean], "std": [float(v) for v in arch.std]},
        "band_mapping": {"single_band": "refuse", "rescale": "percentile", "low": 2, "high": 98},
        "tile": tile_doc,
        "gsd_m": float(gsd),
        "output": "logits", "output_activation": "softmax",
        "classes": entries,
        "license": arch.license,
        "provenance": {
            "data": data,
            "script": "models/python/rsi_convert.py",
            "command": " ".join(shlex.quote(a) for a in ["/usr/bin/python3", "models/python/rsi_convert.py"]
                                + list(args.argv)),
            "source": arch.url,
            "source_code": arch.source,
            "source_config": arch.config,
            "checkpoint": {"file": os.path.basename(args.checkpoint), "sha256": sha,
                           "container": info.get("container"),
                           "stripped_prefixes": info.get("stripped", [])},
            "unused_checkpoint_keys": unused,
            "classes_from": class_source,
            "parameters": n_params,
        },
    }
    if notes:
        doc["provenance"]["notes"] = notes
    if levels:
        doc["hierarchy"] = {"levels": levels}
    return doc


def variant_defaults(arch: registry.Arch, extra: dict) -> Tuple[Optional[str], Optional[int]]:
    """(description, default tile size) of the variant ``registry.rvsa_kwargs`` found; (None, None)
    for the architectures without variants. The RVSA tile default is the training crop (the
    pos_embed grid): 512 LoveDA / Potsdam, 896 iSAID."""
    if not arch.name.startswith("rvsa"):
        return None, None
    tile = extra.get("img_size")
    return registry.rvsa_description(extra), (tile if tile and tile % arch.multiple_of == 0 else None)


def convert(args) -> dict:
    if os.path.exists(args.out) and not args.overwrite:
        raise Refused("%s exists (use --overwrite)" % args.out)
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):  # a typo is not a new folder (as every rsi command)
        raise FileProblem("%s: the output folder %s does not exist" % (args.out, folder))
    if os.path.exists(args.out) and os.path.samefile(args.out, args.checkpoint):
        raise Refused("%s is the checkpoint this run converts; write the model elsewhere" % args.out)
    arch = registry.get(args.arch)
    if args.task and args.task != arch.task:
        raise Refused("--arch %s is a %s model, not --task %s" % (arch.name, arch.task, args.task))
    probe_output_folder(args.out)  # an unwritable folder is said now, not after the work
    if not os.path.exists(args.checkpoint):
        raise FileProblem("%s: no such checkpoint file" % args.checkpoint)
    if not os.path.isfile(args.checkpoint):
        raise FileProblem("%s: not a file (--checkpoint needs the .pth checkpoint)" % args.checkpoint)
    obj = ckpt_mod.load_official(args.checkpoint)
    try:
        sd, info = ckpt_mod.state_dict_from(obj)
    except ValueError as e:  # a readable file without weights: the input is at fault
        raise FileProblem("%s: %s" % (args.checkpoint, e))
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    n = num_classes_of(arch, sd)  # tolerates wrapper prefixes (stripped below)
    depths = [int(d) for d in args.depths] if args.depths else None
    extra = registry.rvsa_kwargs(sd) if arch.name.startswith("rvsa") else {}
    progress(args, "building %s (%d classes) and matching the weights" % (arch.name, n))
    model = arch.build(n, depths, **extra).eval()
    sd, stripped = _strip_prefixes(sd, set(model.state_dict().keys()))
    info["stripped"] = ([info["stripped_prefix"]] if info.get("stripped_prefix") else []) + stripped
    load, unused, notes = match_state_dict(model, sd)
    model.load_state_dict(load, strict=True)
    entries, levels, data, class_source = class_entries(arch, n, args, info.get("meta"))
    sha = ckpt_mod.sha256_file(args.checkpoint)
    n_params = sum(p.numel() for p in model.parameters())
    description, default_tile = variant_defaults(arch, extra)
    doc = build_doc(arch, args, entries, levels, data, class_source, sha, info, unused, notes, n_params,
                    description, default_tile)
    progress(args, "writing and verifying %s" % args.out)
    try:
        final = exporting.export(model, doc, args.out, overwrite=args.overwrite)
    except RuntimeError as e:  # torch.jit.save failing on the temporary file: a write failure
        text = str(e).strip()
        if not _tmp_pattern(args.out).search(text):
            raise
        line = re.sub(r"^\[enforce fail at [^\]]*\]\s*", "", text.splitlines()[0])
        raise FileProblem("%s: cannot write: %s" % (args.out, _without_tmp(line, args.out)))
    report = {"out": args.out, "arch": arch.name, "variant": extra, "classes": n, "parameters": n_params,
              "checkpoint_sha256": sha, "weights_container": info.get("container"),
              "stripped_prefixes": info["stripped"], "unused_keys": unused, "notes": notes,
              "golden": final["golden"]}
    return report


class OneLineParser(argparse.ArgumentParser):
    """Usage errors in one line, "rsi model convert: <argparse's message> (see --help)", exit 2."""

    def error(self, message):
        print("%s: %s (see --help)" % (COMMAND, message), file=sys.stderr)
        sys.exit(2)


def main(argv=None) -> int:
    p = OneLineParser(prog=COMMAND, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", required=True, choices=sorted(registry.REGISTRY))
    p.add_argument("--task", choices=["scene", "segmentation"])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--classes", help="class names (JSON list / objects, or text: one per line, 'name [r g b]')")
    p.add_argument("--tile-size", type=int)
    p.add_argument("--gsd", type=float, help="ground sample distance hint in metres")
    p.add_argument("--name")
    p.add_argument("--version")
    p.add_argument("--depths", nargs="+", help="blocks per stage (tests: reduced networks)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("-q", "--quiet", action="store_true", help="no stage lines on stderr")
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = p.parse_args(argv)
        if args.threads < 1:
            p.error("--threads must be >= 1")
        if args.tile_size is not None and args.tile_size < 1:
            p.error("--tile-size must be >= 1")
        if args.gsd is not None and not args.gsd > 0:
            p.error("--gsd must be > 0")
    except SystemExit as e:  # --help (0) or a usage error (2, already printed in one line)
        return e.code if isinstance(e.code, int) else 2
    args.argv = argv
    torch.set_num_threads(args.threads)
    try:
        with outputs.raising_on_termination():
            report = convert(args)
    except CheckpointRefused as e:
        print("%s: %s: %s" % (COMMAND, args.checkpoint, e), file=sys.stderr)
        return 2
    except (Refused, outputs.OutputExists) as e:
        print("%s: %s" % (COMMAND, e), file=sys.stderr)
        return 2
    except FileProblem as e:
        print("%s: %s" % (COMMAND, e), file=sys.stderr)
        return 1
    except ckpt_mod.UnreadableCheckpoint as e:
        print("%s: %s: %s" % (COMMAND, e.path, e.what), file=sys.stderr)
        return 1
    except (outputs.Interrupted, KeyboardInterrupt):
        print("%s: interrupted" % COMMAND, file=sys.stderr)
        return outputs.INTERRUPTED_EXIT
    except outputs.AppearedMeanwhile as e:
        print("%s: %s" % (COMMAND, e), file=sys.stderr)
        return 1
    except OSError as e:  # e.g. a checkpoint that cannot be opened: "FILE: reason", no "[Errno N]"
        print("%s: %s" % (COMMAND, os_error_line(e, args.out, args.checkpoint)), file=sys.stderr)
        return 1
    except (RuntimeError, AssertionError, ValueError) as e:
        text = _without_tmp(str(e).strip(), args.out)
        print("%s: %s" % (COMMAND, text.splitlines()[0] if text else repr(e)), file=sys.stderr)
        return 1
    for k in report["unused_keys"]:
        print("unused checkpoint key: %s" % k)
    for nline in report["notes"]:
        print("note: %s" % nline)
    print("wrote %s (%s, %d classes, %d parameters, %d unused checkpoint keys)"
          % (report["out"], report["arch"], report["classes"], report["parameters"],
             len(report["unused_keys"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
