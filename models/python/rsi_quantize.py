#!/usr/bin/python3
"""int8 static quantization (CPU) of an rsi model file, calibrated on real tiles.

Loads an rsi TorchScript model (rsi.json embedded, docs/MODEL_FORMAT.md), quantizes it statically
(int8 weights per channel, uint8 activations calibrated on a few tiles normalised exactly as the
metadata says), and writes a new rsi model whose metadata records "precision": "int8" and a
"quantization" block (engine, method, calibration). weights_sha256 and golden are recomputed for
the quantized module; the file is written under a temporary name, reloaded and verified, then
renamed into place.

Default calibration tiles (from ../shared/data or $RSI_DATA_ROOT): inria/train/images for
segmentation models, the EuroSAT training patches (<Class>_1.._10, never the validation ones) for
scene models.

Examples (from the repository root):
  /usr/bin/python3 models/python/rsi_quantize.py data/models/buildings.pt -o buildings-int8.pt
  /usr/bin/python3 models/python/rsi_quantize.py data/models/eurosat13.pt -o eurosat13-int8.pt --tiles 40

Stage lines ("quantize: ...") go to stderr unless --quiet or --json. Errors are one line
"rsi model quantize: FILE: problem" naming the file at fault (the model, a calibration image, the
output).
Exit status: 0 written; 1 failure (missing or unreadable model or calibration images, output that
cannot be written, verification failed); 2 refused (bad arguments, existing output without
--overwrite, unsupported engine, already quantized).
"""
import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rsi_models import outputs  # noqa: E402  (no torch: handlers in place before the slow imports)
COMMAND = "rsi model quantize"  # what the user typed: every message starts with it
if __name__ == "__main__":
    outputs.handle_termination(COMMAND)  # the command, not an importing test

import torch  # noqa: E402

from rsi_models import data, exporting, metadata  # noqa: E402
from rsi_models.outputs import Interrupted  # noqa: E402
from rsi_models import quantization as quant  # noqa: E402

DEFAULT_TILES = {"segmentation": 16, "scene": 50}
REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


class Refused(Exception):
    """Unusable arguments (exit 2)."""


class FileProblem(Exception):
    """A missing, unreadable or unwritable file (exit 1); the message starts with the name of the
    file at fault (the model, a calibration image or folder, the output) and is printed as it is."""


def _tmp_pattern(out: str):
    """outputs.atomic_output's temporary name for ``out`` (".<name>.<random>.tmp" beside it)."""
    return re.compile(r"(?:[^\s'\"]*/)?\.%s\.[A-Za-z0-9_]+\.tmp" % re.escape(os.path.basename(out)))


def without_tmp(text: str, out: str) -> str:
    """``text`` with the temporary file's name replaced by the output's (never shown to the user)."""
    return _tmp_pattern(out).sub(lambda _: out, text)


def write_failure(e: BaseException, out: str) -> FileProblem:
    """"OUT: cannot write: reason" for an error writing the output or its temporary file: no
    "[Errno N]", no temporary name, no torch "[enforce fail at ...]" banner."""
    if isinstance(e, OSError) and e.strerror:
        reason = e.strerror
    else:
        lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
        reason = re.sub(r"^\[enforce fail at [^\]]*\]\s*", "", lines[0]) if lines else type(e).__name__
    return FileProblem("%s: cannot write: %s" % (out, without_tmp(reason, out)))


def probe_output_folder(out: str) -> None:
    """An unwritable output folder fails here, in one line naming ``out``, before minutes of work."""
    try:
        outputs.probe_output_folder(out)
    except OSError as e:
        raise write_failure(e, out)


def progress(args, text: str) -> None:
    """A stage line on stderr (a run takes ~15 s or more), unless --quiet or --json."""
    if not (getattr(args, "quiet", False) or getattr(args, "json", False)):
        print("quantize: %s" % text, file=sys.stderr, flush=True)
    outputs.raise_if_interrupted()  # each stage starts only when no signal came (its raise can be lost)


def default_calibration(doc, data_root: str):
    if doc["task"] == "segmentation":
        return quant.list_images([os.path.join(data_root, "inria", "train", "images")]), \
            "inria/train/images"
    files = []
    for f, _ in data.eurosat_files(data_root):
        n = os.path.splitext(os.path.basename(f))[0].rsplit("_", 1)[-1]
        if n.isdigit() and int(n) not in data.EUROSAT_VAL_NUMBERS:
            files.append(f)
    return files, "eurosat training patches (<Class>_1.._10)"


def relative_name(path: str, data_root: str) -> str:
    path = os.path.abspath(path)
    root = os.path.abspath(data_root)
    return os.path.relpath(path, root) if path.startswith(root + os.sep) else os.path.basename(path)


def repo_relative(arg: str) -> str:
    """Paths inside the repository are recorded relative to it (no directory names in metadata)."""
    a = os.path.abspath(arg) if os.sep in arg else arg
    return os.path.relpath(a, REPO) if a.startswith(REPO + os.sep) else arg


def quantize(args) -> dict:
    if args.engine not in torch.backends.quantized.supported_engines:
        raise Refused("--engine %s is not supported by this torch (supported: %s)" % (
            args.engine, ", ".join(e for e in torch.backends.quantized.supported_engines if e != "none")))
    if not os.path.isfile(args.model):
        raise FileProblem("%s: no such model file" % args.model)
    # As every rsi command: the output's folder must exist (a typo is not a new folder), and the
    # output is never the input, even with --overwrite.
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise FileProblem("%s: the folder %s does not exist" % (args.out, folder))
    if os.path.exists(args.out) and os.path.samefile(args.out, args.model):
        raise Refused("%s is the input model of this run; write the int8 model elsewhere" % args.out)
    if os.path.exists(args.out) and not args.overwrite:
        raise Refused("%s exists (use --overwrite)" % args.out)
    torch.backends.quantized.engine = args.engine
    probe_output_folder(args.out)  # an unwritable folder is said now, not after the work
    try:
        scripted, doc = exporting.load_file(args.model)
    except RuntimeError as e:  # torch's own words do not name the file
        first = (str(e).strip().splitlines() or [""])[0]
        raise FileProblem("%s: not a TorchScript model (%s)" % (args.model, first))
    except OSError as e:
        raise FileProblem("%s: cannot read: %s" % (args.model, e.strerror or e))
    if doc.get("precision", "fp32") != "fp32" or "quantization" in doc:
        raise Refused("%s is already quantized (precision %s)" % (args.model, doc.get("precision")))
    if quant.weights_sha256(scripted) != doc["weights_sha256"]:
        raise ValueError("%s: weights_sha256 does not match the weights" % args.model)
    why = quant.unsupported_reason(scripted, args.engine)
    if why:  # before reading calibration tiles: known limits are said up front
        raise Refused("%s: %s" % (args.model, why))

    data_root = args.data_root or os.environ.get("RSI_DATA_ROOT") or data.default_data_root()
    try:  # these messages name the file or folder at fault (not the model)
        if args.calibration:
            files, source = quant.list_images(args.calibration), "given files"
        else:
            files, source = default_calibration(doc, data_root)
    except FileNotFoundError as e:
        raise FileProblem(str(e))
    if not files:
        raise FileProblem("%s: no calibration images" % (", ".join(args.calibration) if args.calibration else data_root))
    n = args.tiles if args.tiles else DEFAULT_TILES[doc["task"]]
    if args.tiles and len(files) < n and not args.quiet:
        # One tile per file (its centre): fewer files than tiles asked gives fewer tiles. Said, not silent.
        print("rsi model quantize: warning: --tiles %d but %d calibration file(s): one tile each, %d tiles"
              % (n, len(files), len(files)), file=sys.stderr)
    files = quant.spread(files, n)
    progress(args, "reading %d calibration tile(s)" % len(files))
    try:
        tiles = quant.load_tiles(files, doc)
    except ValueError as e:  # "<image>: reason": the image is at fault
        raise FileProblem(str(e))

    # The fp32 model must run on a tile first: a model that fails there was reported as an architecture
    # graph-mode quantization does not support, and one returning a tuple as an AttributeError.
    try:
        with torch.no_grad():
            probe = scripted(tiles[0])
    except (Interrupted, KeyboardInterrupt):
        raise
    except Exception as e:  # noqa: BLE001 - a model can fail in any way
        raise FileProblem("%s: the fp32 model fails on a calibration tile: %s" % (args.model, one_line_error(e, "")))
    if not isinstance(probe, torch.Tensor):
        raise Refused("%s: the model returns a %s, not a tensor: int8 quantization takes a model with one output tensor"
                      % (args.model, type(probe).__name__))

    eager = None if args.method == "jit" else quant.rebuild_eager(scripted, doc)
    if args.method == "fx" and eager is None:
        raise Refused("--method fx: %s is not an rsi_models architecture this script can rebuild "
                      "(use --method jit)" % args.model)
    method = "fx" if eager is not None else "jit"
    progress(args, "calibrating on %d tile(s) and converting (%s, %s engine)" % (len(tiles), method, args.engine))
    if eager is not None:
        q = quant.quantize_fx(eager, tiles, args.engine)
    else:
        try:
            q = quant.quantize_graph(scripted, tiles, args.engine)
        except (Interrupted, KeyboardInterrupt):
            raise
        except Exception as e:  # noqa: BLE001 - torch's graph-mode passes fail in many ways
            root, backbone = quant.architecture_of(scripted)
            raise Refused("%s: TorchScript graph-mode quantization does not support this architecture (%s): %s"
                          % (args.model, "/".join(n for n in (root, backbone) if n) or "unknown",
                             one_line_error(e, "")))
    q.eval()
    progress(args, "verifying against the fp32 model")
    calib_agreement = quant.agreement(scripted, q, tiles)

    src = {"name": doc["name"], "version": doc["version"], "weights_sha256": doc["weights_sha256"],
           "file": os.path.basename(args.model)}
    out = dict(doc)
    out["name"] = doc["name"] + "-int8"
    out["description"] = (doc.get("description", "").rstrip(". ") + ". " if doc.get("description") else "") + \
        "int8 static quantization (%s engine) of %s %s." % (args.engine, doc["name"], doc["version"])
    out["precision"] = "int8"
    out.pop("cpu_graph", None)  # an fp32 choice; int8 graphs are prepared their own way
    out["quantization"] = {
        "engine": args.engine,
        "method": "fx static (rsi_models.nets architecture)" if method == "fx" else "torchscript graph-mode static",
        "weights": "int8, per output channel, symmetric",
        "activations": "uint8, per tensor, affine (histogram observer)",
        "calibration": {"tiles": len(tiles), "source": source,
                        "files": [relative_name(f, data_root) for f in files],
                        "normalisation": "input.scale, input.mean, input.std of this metadata",
                        "argmax_agreement_with_source": round(calib_agreement, 6)},
        "source_model": src,
        "script": "models/python/rsi_quantize.py",
        "command": " ".join(shlex.quote(repo_relative(a)) for a in
                            ["/usr/bin/python3", "models/python/rsi_quantize.py"] + list(args.argv)),
    }
    out["weights_sha256"] = quant.weights_sha256(q)
    out["golden"] = metadata.golden(q, metadata.golden_shape(out))
    metadata.validate(out)

    # Atomic output: a temporary file in the destination folder, verified, then renamed. Errors
    # name the output the user gave, never the temporary file.
    progress(args, "writing and verifying %s" % args.out)

    def save(tmp):
        try:
            torch.jit.save(q, tmp, _extra_files={"rsi.json": metadata.dumps(out)})
        except (OSError, RuntimeError) as e:
            raise write_failure(e, args.out)

    try:
        with outputs.atomic_output(args.out, args.overwrite) as tmp:
            save(tmp)
            if getattr(args, "isa_capped_here", False):
                # The golden values as the runtime will compute them: with the CPU's own oneDNN kernels
                # (VNNI where it has it), in a fresh process that runs only the golden input's size. They
                # can differ from the capped kernels' by one step of a quantized output.
                golden = golden_uncapped(tmp, out["golden"]["shape"], args.engine)
                if golden != out["golden"]:
                    out["golden"] = golden
                    save(tmp)
                verify(tmp, out, golden_check=False, name=args.out)
                if golden_uncapped(tmp, out["golden"]["shape"], args.engine) != out["golden"]:
                    raise AssertionError("%s: golden values do not reproduce after reload" % args.out)
            else:
                verify(tmp, out, name=args.out)
    except (outputs.OutputExists, outputs.AppearedMeanwhile):
        raise
    except OSError as e:  # creating the temporary file, renaming it into place
        raise write_failure(e, args.out)
    return {"out": args.out, "method": method, "engine": args.engine, "tiles": len(tiles),
            "agreement": calib_agreement, "weights_sha256": out["weights_sha256"]}


GOLDEN_SCRIPT = (
    "import json, sys, torch\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "from rsi_models import metadata\n"
    "torch.backends.quantized.engine = sys.argv[3]\n"
    "m = torch.jit.load(sys.argv[2], map_location='cpu')\n"
    "m.eval()\n"
    "print(json.dumps(metadata.golden(m, json.loads(sys.argv[4]))))\n")


def golden_uncapped(path: str, shape, engine: str) -> dict:
    """Golden values of the model file ``path`` computed in a child process without this script's
    oneDNN cap."""
    env = dict(os.environ)
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    here = os.path.dirname(os.path.abspath(__file__))
    done = subprocess.run([sys.executable, "-c", GOLDEN_SCRIPT, here, path, engine, json.dumps(shape)],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError("computing the golden values in a fresh process failed: %s" % done.stderr.strip()[-300:])
    return json.loads(done.stdout)


def verify(path: str, doc, golden_check: bool = True, name: str = "") -> None:
    """Reload the written file: same metadata, hash and (unless told otherwise) golden values.
    Errors name ``name`` (the output the user gave) rather than ``path`` (its temporary file)."""
    name = name or path
    m, got = exporting.load_file(path)
    if got != json.loads(metadata.dumps(doc)):
        raise AssertionError("%s: metadata does not round-trip" % name)
    if quant.weights_sha256(m) != doc["weights_sha256"]:
        raise AssertionError("%s: weights_sha256 does not match the reloaded weights" % name)
    if not golden_check:
        return
    g = metadata.golden(m, doc["golden"]["shape"])
    if abs(g["output_sum"] - doc["golden"]["output_sum"]) > 1e-4 * max(1.0, abs(doc["golden"]["output_abs_sum"])):
        raise AssertionError("%s: golden values do not reproduce after reload" % name)


def one_line_error(e: BaseException, model: str) -> str:
    """The cause in one line, naming the model file: TorchScript's interpreter errors start with a
    banner and end with the actual error; other exceptions (a forward returning a dict, ...) get their
    type, as their message alone may not say what went wrong."""
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    text = lines[0] if lines else repr(e)
    if lines and lines[0].startswith("The following operation failed in the TorchScript interpreter"):
        text = lines[-1]
    if not isinstance(e, (OSError, ValueError, RuntimeError, AssertionError, metadata.MetadataError)):
        text = "%s: %s" % (type(e).__name__, text)
    return text if model in text else "%s: %s" % (model, text)


def report_failure(message: str, exit_code: int, as_json: bool) -> int:
    """The one-line error on stderr and, with --json, the document every rsi command prints on stdout
    when it fails: {"command", "error", "exit_code"} (stdout was empty)."""
    print("%s: %s" % (COMMAND, message), file=sys.stderr)
    if as_json:
        print(json.dumps({"command": COMMAND, "error": message, "exit_code": exit_code}, indent=1))
    return exit_code


class OneLineParser(argparse.ArgumentParser):
    """Usage errors in one line, "rsi model quantize: <argparse's message> (see --help)", exit 2."""

    json_requested = False  # set from the words before parsing: the error may come before --json is read

    def error(self, message):
        report_failure("%s (see --help)" % message, 2, self.json_requested)
        sys.exit(2)


def main(argv=None) -> int:
    p = OneLineParser(prog=COMMAND, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="rsi model file (.pt with rsi.json)")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--calibration", nargs="+", metavar="DIR_OR_FILE",
                   help="calibration images (folders are searched recursively); default: see above")
    p.add_argument("--tiles", type=int, default=0,
                   help="calibration tiles: the centre tile of that many files spread over the list, so at most "
                   "one per file (default 16 segmentation, 50 scene)")
    p.add_argument("--engine", default="onednn", choices=["qnnpack", "onednn", "fbgemm"],
                   help="quantized engine the model is prepared for and run with (default onednn)")
    p.add_argument("--method", default="auto", choices=["auto", "fx", "jit"],
                   help="fx: rebuild the rsi_models architecture; jit: TorchScript graph mode; "
                        "auto: fx when possible")
    p.add_argument("--data-root", help="shared data folder (default ../shared/data or $RSI_DATA_ROOT)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout instead of the line")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print nothing on success: no stage lines or warnings on stderr, no summary line")
    argv = sys.argv[1:] if argv is None else list(argv)
    p.json_requested = "--json" in argv[:argv.index("--")] if "--" in argv else "--json" in argv
    try:
        args = p.parse_args(argv)
        if args.tiles < 0:
            p.error("--tiles must be >= 1")
        if args.threads < 1:
            p.error("--threads must be >= 1")
    except SystemExit as e:  # --help (0) or a usage error (2, already printed in one line)
        return e.code if isinstance(e.code, int) else 2
    args.isa_capped_here = quant.cap_onednn_isa()  # before any forward pass (see quantization.ONEDNN_ISA_CAP)
    args.argv = argv
    torch.set_num_threads(args.threads)
    # torch.ao's observer and FX deprecation notices would bury the one-line result on stderr.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.")
    try:
        with outputs.raising_on_termination():
            r = quantize(args)
    except (Refused, outputs.OutputExists) as e:
        return report_failure(str(e), 2, args.json)
    except (Interrupted, KeyboardInterrupt):
        print("%s: interrupted" % COMMAND, file=sys.stderr)
        return outputs.INTERRUPTED_EXIT
    except (FileProblem, outputs.AppearedMeanwhile) as e:  # the message names the file at fault
        return report_failure(without_tmp(str(e), args.out), 1, args.json)
    except OSError as e:  # "FILE: reason", never "[Errno N]"
        name = e.filename if isinstance(e.filename, str) else args.model
        text = "%s: %s" % (name, e.strerror) if e.strerror else one_line_error(e, args.model)
        return report_failure(without_tmp(text, args.out), 1, args.json)
    except Exception as e:  # one line naming the model, never a traceback (a model can fail in any way)
        return report_failure(without_tmp(one_line_error(e, args.model), args.out), 1, args.json)
    if args.json:
        print(json.dumps({"output": r["out"], "precision": "int8", "engine": r["engine"], "method": r["method"],
                          "calibration_tiles": r["tiles"], "argmax_agreement": r["agreement"],
                          "weights_sha256": r["weights_sha256"]}, indent=1))
    elif not args.quiet:
        print("wrote %s (int8, %s engine, %s method, %d calibration tiles, argmax agreement %.4f on them)"
              % (r["out"], r["engine"], r["method"], r["tiles"], r["agreement"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
