"""rsi model quantize / models/python/rsi_quantize.py: int8 static quantization of rsi models.

Quantizes the bundled building model (4 Inria train crops) and eurosat-rgbn (20 EuroSAT training
patches) and checks the metadata, the hash, the engine and the argmax agreement with fp32 on
held-out tiles; with RSI_BINARY (the built rsi executable) also that the C++ runtime loads the
result (`rsi model check`: golden values and weights hash) and the CLI error paths.
Needs ../shared/data (or $RSI_DATA_ROOT).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from typing import Tuple

import torch
from osgeo import gdal

import _paths  # noqa: F401  (sys.path)
from rsi_models import data, evaluation, exporting, metadata, nets
from rsi_models import quantization as quant

SCRIPT = os.path.join(_paths.MODELS_PY, "rsi_quantize.py")
RSI = os.environ.get("RSI_BINARY", "")
# Measured argmax agreement with fp32: buildings 0.992 on inria/val (4 calibration tiles, onednn;
# 0.9917 with 16), eurosat-rgbn 1.0 on the 40 validation patches (20 tiles, qnnpack). The margins
# allow about 2 validation patches or 2 % of the pixels.
MIN_AGREEMENT_BUILDINGS = 0.97
MIN_AGREEMENT_SCENE = 0.95


# The script and the C++ runtime must cope with oneDNN's AVX-512 VNNI kernels themselves (the script caps
# oneDNN; the runtime runs each input size on a module of its own): their subprocesses get no cap from
# this process, which sets one for its own forward passes.
OWN_ISA_ENV = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")}
quant.cap_onednn_isa()


def run_script(*args):
    return subprocess.run(["/usr/bin/python3", SCRIPT, *args, "--threads", "2"],
                          capture_output=True, text=True, timeout=600, env=OWN_ISA_ENV)


def require_data():
    if not os.path.isdir(os.path.join(_paths.DATA_ROOT, "inria")):
        raise AssertionError("shared data not found at %s (set RSI_DATA_ROOT)" % _paths.DATA_ROOT)


class QuantizeBundled(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_data()
        cls.tmp = tempfile.mkdtemp(prefix="rsi-quantize-")
        cls.buildings = os.path.join(cls.tmp, "buildings-int8.pt")
        r = run_script(os.path.join(_paths.MODELS_DIR, "buildings.pt"), "-o", cls.buildings,
                       "--tiles", "4", "--engine", "onednn")
        assert r.returncode == 0, r.stderr
        cls.scene = os.path.join(cls.tmp, "rgbn-int8.pt")
        r = run_script(os.path.join(_paths.MODELS_DIR, "eurosat-rgbn.pt"), "-o", cls.scene,
                       "--tiles", "20", "--engine", "qnnpack")
        assert r.returncode == 0, r.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        torch.backends.quantized.engine = "onednn"

    def load(self, path, engine):
        torch.backends.quantized.engine = engine
        return exporting.load_file(path)

    def test_metadata_records_int8_engine_and_calibration(self):
        _, src = exporting.load_file(os.path.join(_paths.MODELS_DIR, "buildings.pt"))
        m, doc = self.load(self.buildings, "onednn")
        self.assertEqual(doc["precision"], "int8")
        q = doc["quantization"]
        self.assertEqual(q["engine"], "onednn")
        self.assertEqual(q["calibration"]["tiles"], 4)
        self.assertTrue(all(f.startswith("inria/train/") for f in q["calibration"]["files"]))
        self.assertEqual(q["source_model"]["weights_sha256"], src["weights_sha256"])
        self.assertNotEqual(doc["weights_sha256"], src["weights_sha256"])
        self.assertEqual(quant.weights_sha256(m), doc["weights_sha256"])
        self.assertEqual(doc["name"], src["name"] + "-int8")
        # The packed int8 weights are part of the hash: the float walk alone differs.
        self.assertNotEqual(metadata.weights_sha256(m), doc["weights_sha256"])
        _, sdoc = self.load(self.scene, "qnnpack")
        self.assertEqual(sdoc["quantization"]["engine"], "qnnpack")

    def test_building_agreement_with_fp32(self):
        fp32, doc = exporting.load_file(os.path.join(_paths.MODELS_DIR, "buildings.pt"))
        q, _ = self.load(self.buildings, "onednn")
        tiles = [evaluation.prepare(s.image, doc) for s in data.load_inria(_paths.DATA_ROOT, "val")]
        a = quant.agreement(fp32, q, tiles)
        self.assertGreaterEqual(a, MIN_AGREEMENT_BUILDINGS)

    def test_scene_agreement_with_fp32(self):
        fp32, doc = exporting.load_file(os.path.join(_paths.MODELS_DIR, "eurosat-rgbn.pt"))
        q, _ = self.load(self.scene, "qnnpack")
        x, _, _ = data.eurosat_split(_paths.DATA_ROOT, "val")
        tiles = [torch.cat([evaluation.prepare(a, doc) for a in x])]
        self.assertGreaterEqual(quant.agreement(fp32, q, tiles), MIN_AGREEMENT_SCENE)

    def test_fewer_files_than_tiles_asked_is_said(self):
        # one tile per file: --tiles 5 over two files calibrates on 2, and says so (it was silent)
        patches = [os.path.join(_paths.DATA_ROOT, "eurosat", c, "%s_1.tif" % c) for c in ("Forest", "River")]
        out = os.path.join(self.tmp, "two.pt")
        r = run_script(os.path.join(_paths.MODELS_DIR, "eurosat-rgbn.pt"), "-o", out, "--calibration", *patches,
                       "--tiles", "5", "--engine", "qnnpack")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("warning: --tiles 5 but 2 calibration file(s): one tile each, 2 tiles", r.stderr)
        self.assertEqual(self.load(out, "qnnpack")[1]["quantization"]["calibration"]["tiles"], 2)

    def test_refuses_existing_output_and_quantized_input(self):
        before = os.path.getmtime(self.buildings)
        r = run_script(os.path.join(_paths.MODELS_DIR, "buildings.pt"), "-o", self.buildings, "--tiles", "1")
        self.assertEqual(r.returncode, 2)
        self.assertIn("exists (use --overwrite)", r.stderr)
        self.assertEqual(os.path.getmtime(self.buildings), before)
        r = run_script(self.scene, "-o", os.path.join(self.tmp, "twice.pt"), "--tiles", "1")
        self.assertEqual(r.returncode, 2)
        self.assertIn("already quantized", r.stderr)
        self.assertEqual([f for f in os.listdir(self.tmp) if f.endswith(".tmp")], [])
        # a missing output folder is not created; the input is never the output, even with --overwrite
        missing = os.path.join(self.tmp, "no-such-folder")
        r = run_script(os.path.join(_paths.MODELS_DIR, "eurosat-rgbn.pt"), "-o", os.path.join(missing, "q.pt"), "--tiles", "1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("does not exist", r.stderr)
        self.assertFalse(os.path.exists(missing))
        copy = os.path.join(self.tmp, "copy.pt")
        shutil.copyfile(os.path.join(_paths.MODELS_DIR, "eurosat-rgbn.pt"), copy)
        r = run_script(copy, "-o", copy, "--overwrite", "--tiles", "1")
        self.assertEqual(r.returncode, 2)
        self.assertIn("is the input model", r.stderr)
        os.remove(copy)

    @staticmethod
    def umask():
        mask = os.umask(0)
        os.umask(mask)
        return mask

    @unittest.skipUnless(RSI, "RSI_BINARY not set (the C++ runtime check needs the built rsi)")
    def test_cpp_runtime_loads_and_checks_int8(self):
        # Tile 512: the memory probe runs 512², then the golden check 64² in the same process (with
        # oneDNN's VNNI kernels the second size needs other weight layouts than the first).
        for path, tile in ((self.buildings, "64"), (self.buildings, "512"), (self.scene, "64")):
            r = subprocess.run([RSI, "model", "check", path, "--json", "--iterations", "1", "--tile-size", tile,
                                "--batch", "1", "--threads", "2"], capture_output=True, text=True, timeout=300,
                               env=OWN_ISA_ENV)
            self.assertEqual(r.returncode, 0, r.stderr)
            j = json.loads(r.stdout)
            self.assertTrue(j["golden_ok"], j)
            self.assertTrue(j["weights_hash_ok"], j)
            self.assertEqual(j["precision"], "int8", j)  # what the weights are (it said fp32)
        # An onednn scene model (only its linear classifier is int8): the golden values the script
        # recorded are those the runtime computes (they once differed by a quantized output step,
        # and 8-bit activations saturated without VNNI), and --json prints a JSON summary.
        onednn_scene = os.path.join(self.tmp, "e13-int8.pt")
        r = subprocess.run([RSI, "model", "quantize", os.path.join(_paths.MODELS_DIR, "eurosat13.pt"), "-o", onednn_scene,
                            "--tiles", "20", "--json", "--threads", "2"], capture_output=True, text=True, timeout=600,
                           env=OWN_ISA_ENV)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["engine"], "onednn")
        self.assertEqual(os.stat(onednn_scene).st_mode & 0o777, 0o666 & ~self.umask())
        r = subprocess.run([RSI, "model", "check", onednn_scene, "--json", "--iterations", "1", "--threads", "2"],
                           capture_output=True, text=True, timeout=300, env=OWN_ISA_ENV)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(json.loads(r.stdout)["golden_ok"])
        r = subprocess.run([RSI, "model", "check", self.buildings, "--precision", "bf16", "--iterations", "1"],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("int8", r.stderr)


class QuantizeSelfContained(unittest.TestCase):
    def test_hash_of_a_float_module_is_unchanged(self):
        torch.manual_seed(0)
        m = nets.BuildingNet(widths=(4, 8, 8), dec_widths=(4, 8)).eval()
        self.assertEqual(quant.weights_sha256(torch.jit.script(m)), metadata.weights_sha256(m))

    def test_errors_are_one_line_naming_the_model(self):
        sys.path.insert(0, _paths.MODELS_PY)
        import rsi_quantize
        banner = RuntimeError("The following operation failed in the TorchScript interpreter.\nTraceback of TorchScript ...\n"
                              "  x = y.view(-1)\nRuntimeError: shape '[-1, 7]' is invalid for input of size 12")
        self.assertEqual(rsi_quantize.one_line_error(banner, "m.pt"),
                         "m.pt: RuntimeError: shape '[-1, 7]' is invalid for input of size 12")
        self.assertEqual(rsi_quantize.one_line_error(AttributeError("'dict' object has no attribute 'shape'"), "m.pt"),
                         "m.pt: AttributeError: 'dict' object has no attribute 'shape'")
        self.assertEqual(rsi_quantize.one_line_error(ValueError("m.pt: weights_sha256 does not match"), "m.pt"),
                         "m.pt: weights_sha256 does not match")

    def test_missing_model_and_bad_engine(self):
        out = os.path.join(tempfile.gettempdir(), "rsi-quantize-never-written.pt")
        r = run_script("/nonexistent/model.pt", "-o", out)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no such model file", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1)
        r = run_script(os.path.join(_paths.MODELS_DIR, "eurosat-rgbn.pt"), "-o", out, "--engine", "fbgemm")
        self.assertEqual(r.returncode, 2)
        self.assertFalse(os.path.exists(out))

    @unittest.skipUnless(RSI, "RSI_BINARY not set")
    def test_an_empty_metadata_document_is_named_by_the_runtime(self):
        # (it was taken for a model without metadata: "give --task --model-bands ...")
        fp32, _ = exporting.load_file(os.path.join(_paths.MODELS_DIR, "eurosat-rgbn.pt"))
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "empty.pt")
            torch.jit.save(fp32, path, _extra_files={"rsi.json": ""})
            r = subprocess.run([RSI, "model", "info", path], capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertEqual(r.stderr, "rsi model info: %s: rsi.json: the metadata document is empty\n" % path)

    @unittest.skipUnless(RSI, "RSI_BINARY not set")
    def test_cli_error_paths(self):
        with tempfile.TemporaryDirectory() as d:
            r = subprocess.run([RSI, "model", "quantize", os.path.join(d, "missing.pt"), "-o", os.path.join(d, "o.pt")],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("no such model", r.stderr)
            existing = os.path.join(d, "o.pt")
            with open(existing, "w") as f:
                f.write("keep")
            r = subprocess.run([RSI, "model", "quantize", "eurosat-rgbn", "-o", existing],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("exists", r.stderr)
            with open(existing) as f:
                self.assertEqual(f.read(), "keep")
            r = subprocess.run([RSI, "model", "quantize", "eurosat-rgbn", "-o", existing, "--engine", "bogus"],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 2, r.stderr)

    @unittest.skipUnless(RSI, "RSI_BINARY not set")
    def test_config_and_ram_reach_the_scripts_gdal(self):
        # (--config and --ram were accepted and ignored: the script reads its tiles with GDAL's
        # Python bindings, which take configuration options from the environment)
        with tempfile.TemporaryDirectory() as d:
            probe = os.path.join(d, "probe.py")
            with open(probe, "w") as f:
                f.write("import json, os\nprint(json.dumps({k: os.environ.get(k) for k in "
                        "('GDAL_CACHEMAX', 'GDAL_SKIP', 'CPL_DEBUG')}))\n")
            env = dict(OWN_ISA_ENV, RSI_QUANTIZE_SCRIPT=probe, GDAL_CACHEMAX="999")
            r = subprocess.run([RSI, "model", "quantize", "eurosat-rgbn", "-o", os.path.join(d, "q.pt"), "--ram", "400",
                                "--config", "GDAL_SKIP", "JPEG", "--config", "CPL_DEBUG", "OFF"],
                               capture_output=True, text=True, timeout=120, env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(json.loads(r.stdout), {"GDAL_CACHEMAX": "100", "GDAL_SKIP": "JPEG", "CPL_DEBUG": "OFF"})
            r = subprocess.run([RSI, "model", "quantize", "eurosat-rgbn", "-o", os.path.join(d, "q.pt"),
                                "--config", "GDAL_CACHEMAX", "64"], capture_output=True, text=True, timeout=120, env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(json.loads(r.stdout)["GDAL_CACHEMAX"], "64")
            # The real script: a GeoTIFF is read without the option, and not with GTiff skipped.
            tile = os.path.join(d, "tile.tif")
            ds = gdal.GetDriverByName("GTiff").Create(tile, 64, 64, 4, gdal.GDT_UInt16)
            ds = None
            out = os.path.join(d, "o.pt")
            plain = subprocess.run([RSI, "model", "quantize", "eurosat-rgbn", "-o", out, "--calibration", tile, "--quiet"],
                                   capture_output=True, text=True, timeout=300, env=OWN_ISA_ENV)
            self.assertEqual(plain.stderr, "rsi model quantize: %s: the model reads source band 8, the image has 4\n" % tile)
            skipped = subprocess.run([RSI, "model", "quantize", "eurosat-rgbn", "-o", out, "--calibration", tile, "--quiet",
                                      "--config", "GDAL_SKIP", "GTiff"], capture_output=True, text=True, timeout=300,
                                     env=OWN_ISA_ENV)
            self.assertEqual(skipped.returncode, 1, skipped.stderr)
            self.assertIn("not recognized as a supported file format", skipped.stderr)
            self.assertFalse(os.path.exists(out))


class QuantizeMessages(unittest.TestCase):
    """The rules of every rsi command (auditor's defects): one line naming the file at fault (the
    output, a calibration image; not always the model), without "[Errno N]" or the temporary file's
    name; usage errors in one line; stage lines on stderr unless --quiet (a run takes ~15 s)."""

    MODEL = os.path.join(_paths.MODELS_DIR, "buildings.pt")

    def image(self):
        require_data()
        return os.path.join(_paths.DATA_ROOT, "inria", "train", "images", "austin1_0.tif")

    def test_unwritable_output_is_named_not_the_model(self):
        r = run_script(self.MODEL, "-o", "/proc/self/q.pt")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stderr, "rsi model quantize: /proc/self/q.pt: cannot write: No such file or directory\n")

    def test_write_failure_after_the_work_names_the_output(self):
        # the folder probe disabled: the temporary file cannot be created once the work is done
        import contextlib
        import io
        sys.path.insert(0, _paths.MODELS_PY)
        import rsi_quantize
        saved = rsi_quantize.probe_output_folder
        rsi_quantize.probe_output_folder = lambda out: None
        err, out = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                rc = rsi_quantize.main([self.MODEL, "-o", "/proc/self/q.pt", "--calibration", self.image(),
                                        "--threads", "2", "--quiet"])
        finally:
            rsi_quantize.probe_output_folder = saved
            torch.set_num_threads(2)
        self.assertEqual(rc, 1, err.getvalue())
        self.assertEqual(err.getvalue(), "rsi model quantize: /proc/self/q.pt: cannot write: No such file or directory\n")
        self.assertEqual(out.getvalue(), "")

    def test_calibration_files_are_named_not_the_model(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "q.pt")
            r = run_script(self.MODEL, "-o", out, "--calibration", "nosuch.tif")
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertEqual(r.stderr, "rsi model quantize: nosuch.tif: no such file or folder\n")
            r = run_script(self.MODEL, "-o", out, "--calibration", "nosuch.tif", "--json")
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertEqual(json.loads(r.stdout), {"command": "rsi model quantize", "exit_code": 1,
                                                    "error": "nosuch.tif: no such file or folder"})
            empty = os.path.join(d, "empty")
            os.mkdir(empty)
            r = run_script(self.MODEL, "-o", out, "--calibration", empty, "--quiet")
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertTrue(r.stderr.startswith("rsi model quantize: %s: no image files (" % empty), r.stderr)
            self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
            bad = os.path.join(d, "notes.tif")
            with open(bad, "w") as f:
                f.write("not an image")
            r = run_script(self.MODEL, "-o", out, "--calibration", bad, "--quiet")
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertTrue(r.stderr.startswith("rsi model quantize: %s: " % bad), r.stderr)
            self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
            self.assertNotIn("buildings.pt", r.stderr)
            self.assertEqual(sorted(os.listdir(d)), ["empty", "notes.tif"])

    def test_a_model_that_fails_or_returns_a_tuple_is_said_so(self):
        # (it said "AttributeError: 'tuple' object has no attribute 'shape'", and a model raising in its
        # forward was "an architecture graph-mode quantization does not support", exit 2)
        require_data()
        fp32, doc = exporting.load_file(os.path.join(_paths.MODELS_DIR, "eurosat-rgbn.pt"))

        class Pair(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
                y = self.inner(x)
                return y, y

        class Failing(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                if x.shape[1] > 0:
                    raise RuntimeError("this model always fails")
                return self.inner(x)

        with tempfile.TemporaryDirectory() as d:
            for name, wrapper in (("pair.pt", Pair), ("failing.pt", Failing)):
                m = torch.jit.script(wrapper(fp32))
                own = dict(doc, weights_sha256=quant.weights_sha256(m))
                own.pop("golden", None)
                path = os.path.join(d, name)
                torch.jit.save(m, path, _extra_files={"rsi.json": metadata.dumps(own)})
                r = run_script(path, "-o", os.path.join(d, "q.pt"), "--tiles", "1", "--json")
                if name == "pair.pt":
                    self.assertEqual(r.returncode, 2, r.stderr)
                    self.assertEqual(r.stderr, "rsi model quantize: %s: the model returns a tuple, not a tensor: int8 "
                                               "quantization takes a model with one output tensor\n" % path)
                else:
                    self.assertEqual(r.returncode, 1, r.stderr)
                    self.assertTrue(r.stderr.startswith("rsi model quantize: %s: the fp32 model fails on a calibration tile: "
                                                        % path), r.stderr)
                    self.assertIn("this model always fails", r.stderr)
                self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
                self.assertEqual(json.loads(r.stdout)["exit_code"], r.returncode)
            self.assertFalse(os.path.exists(os.path.join(d, "q.pt")))

    def test_usage_errors_are_one_line_exit_2(self):
        r = run_script(self.MODEL)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stderr, "rsi model quantize: the following arguments are required: -o/--out (see --help)\n")
        # with --json, also the failure document on stdout, as every rsi command prints (it was empty)
        r = run_script(self.MODEL, "--json")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(json.loads(r.stdout), {"command": "rsi model quantize", "exit_code": 2,
                                                "error": "the following arguments are required: -o/--out (see --help)"})
        r = run_script(self.MODEL, "-o", "q.pt", "--tiles", "x")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stderr, "rsi model quantize: argument --tiles: invalid int value: 'x' (see --help)\n")

    def test_stage_lines_unless_quiet(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "q.pt")
            r = run_script(self.MODEL, "-o", out, "--calibration", self.image())
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stderr.splitlines(), [
                "quantize: reading 1 calibration tile(s)",
                "quantize: calibrating on 1 tile(s) and converting (fx, onednn engine)",
                "quantize: verifying against the fp32 model",
                "quantize: writing and verifying %s" % out])
            self.assertTrue(r.stdout.startswith("wrote %s (int8, onednn engine, fx method, 1 calibration tiles" % out),
                            r.stdout)
            r = run_script(self.MODEL, "-o", out, "--calibration", self.image(), "--overwrite", "--quiet")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual((r.stdout, r.stderr), ("", ""))
            self.assertEqual(os.listdir(d), ["q.pt"])


class QuantizeFoundationModels(unittest.TestCase):
    """Converted RSP/RVSA models (models/python/rsi_convert.py): transformers are refused, and the
    oneDNN engine for ResNet-50 (its int8 1x1 convolutions corrupt the heap with oneDNN 2.6's
    AMX kernels), each in one line naming the model, before any calibration."""

    def test_unsupported_architectures_are_named(self):
        from rsi_models.foundation import resnet, swin, vitae_v2
        cases = ((swin.SwinTransformer(5, [2, 2, 2, 2]), "qnnpack", "does not support Swin-T models"),
                 (vitae_v2.ViTAEv2(5, [1, 1, 1, 1]), "qnnpack", "does not support ViTAEv2-S models"),
                 (resnet.ResNet50(5, [1, 1, 1, 1]), "onednn", "--engine onednn is refused for ResNet-50 models"))
        for m, engine, expect in cases:
            with self.subTest(model=type(m).__name__):
                why = quant.unsupported_reason(torch.jit.script(m.eval()), engine)
                self.assertIn(expect, why)
                self.assertEqual(len(why.splitlines()), 1)
        self.assertIsNone(quant.unsupported_reason(torch.jit.script(resnet.ResNet50(5, [1, 1, 1, 1]).eval()), "qnnpack"))
        self.assertIsNone(quant.unsupported_reason(torch.jit.script(nets.BuildingNet(widths=(4, 8, 8), dec_widths=(4, 8)).eval()),
                                                   "onednn"))

    def test_converted_resnet_with_onednn_is_refused_in_one_line(self):
        import rsi_convert
        from rsi_models.foundation import resnet
        with tempfile.TemporaryDirectory() as d:
            ck = os.path.join(d, "r50.pth")
            torch.save({"model": resnet.ResNet50(51, [1, 1, 1, 1]).state_dict()}, ck)
            model = os.path.join(d, "r50.pt")
            import contextlib
            import io
            with contextlib.redirect_stdout(io.StringIO()):
                rc = rsi_convert.main(["--arch", "rsp-resnet50", "--checkpoint", ck, "-o", model,
                                       "--tile-size", "64", "--depths", "1", "1", "1", "1", "--threads", "2"])
            self.assertEqual(rc, 0)
            out = os.path.join(d, "q.pt")
            r = run_script(model, "-o", out, "--engine", "onednn", "--calibration", d)
            self.assertEqual(r.returncode, 2, r.stderr)
            lines = [line for line in r.stderr.strip().splitlines() if line.startswith("rsi model quantize")]
            self.assertEqual(len(lines), 1, r.stderr)
            self.assertIn("%s: --engine onednn is refused for ResNet-50 models" % model, lines[0])
            self.assertIn("use --engine qnnpack", lines[0])
            self.assertFalse(os.path.exists(out))


if __name__ == "__main__":
    sys.exit(unittest.main())
