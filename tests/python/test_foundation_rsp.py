"""RSP foundation models (ResNet-50, Swin-T, ViTAEv2-S; scene + UperNet), the safe checkpoint
loader and rsi_convert.py. Self-contained: the official code is NOT needed -- facts recorded from
it by models/python/fidelity/rsp_fidelity.py live in models/python/fidelity/reference/.

Run from the repository root:
  /usr/bin/python3 -m unittest discover -s tests/python -p 'test_foundation_rsp.py'
"""
import contextlib
import io
import json
import os
import pickle
import sys
import tempfile
import types
import unittest
import zipfile

import torch

import _paths  # noqa: F401
from rsi_models import exporting, metadata
from rsi_models.foundation import checkpoint as ckpt
from rsi_models.foundation import millionaid, registry, resnet, swin, vitae_v2
from rsi_models.foundation import rsp_digest as rd

import rsi_convert  # noqa: E402  (models/python is on sys.path through _paths)

torch.set_num_threads(2)
REF = os.path.join(_paths.MODELS_PY, "fidelity", "reference")
NAMES = ("resnet50", "swin_t", "vitaev2_s")
SCENE = {"resnet50": lambda d=None: resnet.ResNet50(51, d or resnet.R50_DEPTHS),
         "swin_t": lambda d=None: swin.SwinTransformer(51, d or swin.SWIN_T_DEPTHS),
         "vitaev2_s": lambda d=None: vitae_v2.ViTAEv2(51, d or vitae_v2.VITAE_S_DEPTHS)}
BACKBONE = {"resnet50": lambda d=None: resnet.ResNetBackbone(d or resnet.R50_DEPTHS),
            "swin_t": lambda d=None: swin.SwinBackbone(d or swin.SWIN_T_DEPTHS),
            "vitaev2_s": lambda d=None: vitae_v2.ViTAEv2Backbone(d or vitae_v2.VITAE_S_DEPTHS)}
ARCH = {"resnet50": "rsp-resnet50", "swin_t": "rsp-swin-t", "vitaev2_s": "rsp-vitaev2-s"}
SMALL = {"resnet50": [1, 1, 1, 1], "swin_t": [2, 2, 2, 2], "vitaev2_s": [1, 1, 1, 1]}


def _load_json(name):
    with open(os.path.join(REF, name)) as f:
        return json.load(f)


def _fake_cfg():
    """A yacs.config.CfgNode instance whose class disappears after pickling (like a real RSP
    checkpoint opened without yacs installed)."""
    mod = types.ModuleType("yacs.config")

    class CfgNode(dict):
        pass
    CfgNode.__module__, CfgNode.__qualname__ = "yacs.config", "CfgNode"
    mod.CfgNode = CfgNode
    sys.modules["yacs"] = types.ModuleType("yacs")
    sys.modules["yacs.config"] = mod
    return CfgNode(MODEL=CfgNode(NUM_CLASSES=51))


def _save(path, obj):
    torch.save(obj, path)
    sys.modules.pop("yacs.config", None)
    sys.modules.pop("yacs", None)


def _run_convert(argv):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = rsi_convert.main(list(argv) + ["--threads", "2"])
    return rc, out.getvalue(), err.getvalue()


class Evil:
    """Unpickling this would run a shell command creating a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch %s" % self.marker,))


class TestKeysAndDigests(unittest.TestCase):
    def test_full_size_keys_equal_official(self):
        ref = _load_json("rsp_keys.json")["keys"]
        for name in NAMES:
            for kind, build in (("scene", SCENE[name]), ("backbone", BACKBONE[name])):
                m = build().eval()
                self.assertEqual(rd.key_shapes(m), ref["%s/%s" % (name, kind)], "%s/%s" % (name, kind))
                with torch.no_grad():
                    y = m(torch.zeros(1, 3, 224, 224))
                if kind == "scene":
                    self.assertEqual(list(y.shape), [1, 51])
                else:
                    self.assertEqual([list(t.shape[2:]) for t in y], [[56, 56], [28, 28], [14, 14], [7, 7]])

    def test_depth_reduced_models_reproduce_official_digests(self):
        ref = _load_json("rsp_digests.json")
        tol = ref["tolerance"]
        for name in NAMES:
            e = ref["models"][name]
            m = SCENE[name](e["depths"]).eval()
            rd.fill_fan_in(m, 0)
            for size, dig in e["scene"].items():
                s = int(size)
                err = rd.digest_error(rd.output_digest(m, [1, 3, s, s]), dig)
                self.assertLessEqual(err, tol, "%s scene %s" % (name, size))
            b = BACKBONE[name](e["depths"]).eval()
            rd.fill_fan_in(b, 0)
            for size, dig in e["backbone"].items():
                s = int(size)
                err = rd.digest_error(rd.output_digest(b, [1, 3, s, s]), dig)
                self.assertLessEqual(err, tol, "%s backbone %s" % (name, size))


class TestSizesAndScripting(unittest.TestCase):
    def _check(self, m, sizes):
        m.eval()
        sm = torch.jit.script(m)
        g = torch.Generator().manual_seed(0)
        for h, w in sizes:
            x = torch.randn(1, 3, h, w, generator=g)
            with torch.no_grad():
                a, b = m(x), sm(x)
            self.assertEqual(a.shape, b.shape)
            self.assertLessEqual(float((a - b).abs().max()), 1e-4, (h, w))
        return sm

    def test_scene_other_sizes(self):
        for name in NAMES:
            m = SCENE[name](SMALL[name])
            rd.fill_fan_in(m, 3)
            self._check(m, [(256, 256), (200, 200), (97, 130)])

    def test_segmentation_other_sizes(self):
        from rsi_models.foundation.upernet import EncoderDecoder, FCNHead, UPerHead
        for name in NAMES:
            full = registry.get(ARCH[name] + "-upernet").build(4, SMALL[name])
            # same backbone / EncoderDecoder code paths, narrow heads to keep the test fast
            inc = [full.decode_head.in_channels[i] for i in range(4)]
            m = EncoderDecoder(full.backbone, UPerHead(inc, 32, 4), FCNHead(inc[2], 16, 4),
                               size_multiple=full.size_multiple)
            rd.fill_fan_in(m, 4)
            sm = self._check(m, [(256, 256), (200, 200)])
            with torch.no_grad():
                self.assertEqual(list(sm(torch.zeros(1, 3, 70, 90)).shape), [1, 4, 70, 90])

    def test_swin_mask_is_recomputed_per_size(self):
        # a scripted model exported at 224 must equal a freshly built eager model at 200
        m = swin.SwinTransformer(51, (2, 2, 2, 2)).eval()
        rd.fill_fan_in(m, 5)
        sm = torch.jit.script(m)
        with torch.no_grad():
            sm(torch.zeros(1, 3, 224, 224))
            x = metadata.ramp([1, 3, 200, 232])
            self.assertLessEqual(float((sm(x) - m(x)).abs().max()), 1e-5)
        mask = swin.shift_attention_mask(56, 56, 7, 3, torch.device("cpu"))
        self.assertTrue(torch.equal(mask, m.layers[0].blocks[1].attn_mask))


class TestSafeLoader(unittest.TestCase):
    def test_no_code_execution_and_placeholders(self):
        with tempfile.TemporaryDirectory() as tmp:
            marker = os.path.join(tmp, "pwned")
            path = os.path.join(tmp, "evil.pth")
            _save(path, {"model": {"w": torch.ones(2)}, "config": _fake_cfg(), "evil": Evil(marker),
                         "np": __import__("argparse").Namespace(a=1)})
            obj = ckpt.load_official(path)
            self.assertFalse(os.path.exists(marker), "pickled os.system call was executed")
            self.assertIsInstance(obj["evil"], ckpt.Placeholder)
            self.assertIn("system", obj["evil"].qualname)
            self.assertEqual(obj["config"].qualname, "yacs.config.CfgNode")
            self.assertEqual(obj["np"].qualname, "argparse.Namespace")
            self.assertTrue(torch.equal(obj["model"]["w"], torch.ones(2)))
            # sanity: the plain pickle module WOULD have run it
            with open(os.path.join(tmp, "p.pkl"), "wb") as f:
                pickle.dump(Evil(marker), f)
            with open(os.path.join(tmp, "p.pkl"), "rb") as f:
                ckpt.Unpickler(f).load()
            self.assertFalse(os.path.exists(marker))

    def test_prefixes_and_meta(self):
        sd, info = ckpt.state_dict_from({"state_dict": {"module.a": torch.zeros(1)}, "meta": {"CLASSES": ("x",)}})
        self.assertEqual(list(sd), ["a"])
        self.assertEqual(info["container"], "state_dict")
        self.assertEqual(ckpt.mmseg_classes(info["meta"])[0], ["x"])


class TestConvert(unittest.TestCase):
    def _scene_ckpt(self, tmp, name="vitaev2_s", mutate=None):
        m = SCENE[name](SMALL[name]).eval()
        rd.fill_fan_in(m, 7)
        sd = dict(m.state_dict())
        if mutate:
            mutate(sd)
        path = os.path.join(tmp, "%s_ckpt.pth" % name)
        _save(path, {"model": sd, "optimizer": {"state": {}, "param_groups": []}, "epoch": 99,
                     "max_accuracy": 98.9, "config": _fake_cfg()})
        return m, path

    def test_scene_round_trip(self):
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("vitaev2_s", "swin_t"):
                m, path = self._scene_ckpt(tmp, name, mutate=lambda sd: sd.__setitem__("extra.unused", torch.ones(3)))
                out = os.path.join(tmp, name + ".pt")
                rc, so, se = _run_convert(["--arch", ARCH[name], "--task", "scene", "--checkpoint", path,
                                           "-o", out, "--tile-size", "64", "--depths"] + [str(d) for d in SMALL[name]])
                self.assertEqual(rc, 0, se)
                self.assertIn("unused checkpoint key: extra.unused", so)
                sm, doc = exporting.load_file(out)  # validates rsi.json
                self.assertEqual(doc["hierarchy"]["levels"], ["level1", "level2", "level3"])
                self.assertEqual([c["name"] for c in doc["classes"]], millionaid.CLASSES)
                self.assertEqual(doc["classes"][0]["parents"], ["agriculture_land", "arable_land"])
                self.assertEqual(doc["provenance"]["unused_checkpoint_keys"], ["extra.unused"])
                self.assertEqual(doc["provenance"]["checkpoint"]["sha256"], ckpt.sha256_file(path))
                self.assertAlmostEqual(doc["input"]["std"][0], 0.229)
                for s in (224, 256, 200):
                    x = metadata.ramp([1, 3, s, s])
                    with torch.no_grad():
                        self.assertLessEqual(float((sm(x) - m(x)).abs().max()), 1e-4)

    def test_segmentation_round_trip_mmseg_meta(self):
        with tempfile.TemporaryDirectory() as tmp:
            m = registry.get("rsp-resnet50-upernet").build(5, [1, 1, 1, 1]).eval()
            rd.fill_fan_in(m, 8)
            path = os.path.join(tmp, "seg.pth")
            meta = {"CLASSES": ("impervious_surface", "building", "low_vegetation", "tree", "car", "clutter"),
                    "PALETTE": [[255, 255, 255], [0, 0, 255], [0, 255, 255], [0, 255, 0], [255, 255, 0], [255, 0, 0]]}
            _save(path, {"meta": meta, "state_dict": dict(m.state_dict())})
            out = os.path.join(tmp, "seg.pt")
            rc, so, se = _run_convert(["--arch", "rsp-resnet50-upernet", "--task", "segmentation",
                                       "--checkpoint", path, "-o", out, "--depths", "1", "1", "1", "1"])
            self.assertEqual(rc, 0, se)
            sm, doc = exporting.load_file(out)
            self.assertEqual([c["name"] for c in doc["classes"]], list(meta["CLASSES"][:5]))
            self.assertEqual(doc["classes"][1]["color"], [0, 0, 255])
            self.assertEqual(doc["gsd_m"], 0.05)
            self.assertAlmostEqual(doc["input"]["mean"][0] * 255, 123.675)
            x = metadata.ramp([1, 3, 100, 120])
            with torch.no_grad():
                y = sm(x)
                self.assertEqual(list(y.shape), [1, 5, 100, 120])
                self.assertLessEqual(float((y - m(x)).abs().max()), 1e-4)

    def test_existing_output_needs_overwrite(self):
        with tempfile.TemporaryDirectory() as tmp:
            _, path = self._scene_ckpt(tmp)
            out = os.path.join(tmp, "m.pt")
            with open(out, "w") as f:
                f.write("someone's file")
            argv = ["--arch", "rsp-vitaev2-s", "--checkpoint", path, "-o", out, "--depths", "1", "1", "1", "1"]
            rc, so, se = _run_convert(argv)
            self.assertEqual(rc, 2)
            self.assertIn("m.pt exists (use --overwrite)", se)
            with open(out) as f:
                self.assertEqual(f.read(), "someone's file")
            rc, so, se = _run_convert(argv + ["--overwrite"])
            self.assertEqual(rc, 0, se)
            exporting.load_file(out)  # a valid model now
            self.assertEqual([f for f in os.listdir(tmp) if f.endswith(".tmp")], [])
            # the checkpoint is never the output
            rc, so, se = _run_convert(["--arch", "rsp-vitaev2-s", "--checkpoint", path, "-o", path, "--overwrite",
                                       "--depths", "1", "1", "1", "1"])
            self.assertEqual(rc, 2)
            self.assertIn("is the checkpoint this run converts", se)

    def test_mismatched_checkpoints_are_refused(self):
        with tempfile.TemporaryDirectory() as tmp:
            key = "layers.1.NC.0.attn.qkv.weight"
            _, path = self._scene_ckpt(tmp, mutate=lambda sd: sd.pop(key))
            rc, so, se = _run_convert(["--arch", "rsp-vitaev2-s", "--checkpoint", path, "-o",
                                       os.path.join(tmp, "a.pt"), "--depths", "1", "1", "1", "1"])
            self.assertEqual(rc, 2)
            self.assertIn(key, se)
            self.assertFalse(os.path.exists(os.path.join(tmp, "a.pt")))
            # missing AND unexpected keys are both listed, with counts
            _, path = self._scene_ckpt(tmp, mutate=lambda sd: (sd.pop(key), sd.__setitem__("old_head.weight", torch.ones(1))))
            rc, so, se = _run_convert(["--arch", "rsp-vitaev2-s", "--checkpoint", path, "-o",
                                       os.path.join(tmp, "a.pt"), "--depths", "1", "1", "1", "1"])
            self.assertEqual(rc, 2)
            self.assertIn("1 model key(s) missing from the checkpoint: " + key, se)
            self.assertIn("1 checkpoint key(s) the model does not have: old_head.weight", se)
            key2 = "layers.0.RC.PCM.0.weight"
            _, path = self._scene_ckpt(tmp, mutate=lambda sd: sd.__setitem__(key2, torch.zeros(1, 2, 3, 3)))
            rc, so, se = _run_convert(["--arch", "rsp-vitaev2-s", "--checkpoint", path, "-o",
                                       os.path.join(tmp, "b.pt"), "--depths", "1", "1", "1", "1"])
            self.assertEqual(rc, 2)
            self.assertIn(key2, se)
            # a scene checkpoint given to a segmentation architecture
            rc, so, se = _run_convert(["--arch", "rsp-vitaev2-s-upernet", "--checkpoint", path, "-o",
                                       os.path.join(tmp, "c.pt"), "--depths", "1", "1", "1", "1"])
            self.assertEqual(rc, 2)


class TestConvertInputs(unittest.TestCase):
    """Wrapper prefixes, missing BatchNorm counters, unreadable files (auditor's defects)."""

    def _small_sd(self):
        m = SCENE["resnet50"](SMALL["resnet50"]).eval()
        rd.fill_fan_in(m, 5)
        return m, dict(m.state_dict())

    def test_prefixes_are_stripped_before_looking_for_the_classifier(self):
        m, sd = self._small_sd()
        arch = registry.get("rsp-resnet50")
        keys = set(sd)
        for prefix in ("model.", "backbone.", "module.model.", "model.module."):
            with self.subTest(prefix=prefix):
                p = {prefix + k: v for k, v in sd.items()}
                self.assertEqual(rsi_convert.num_classes_of(arch, p), 51)
                stripped, done = rsi_convert._strip_prefixes(p, keys)
                self.assertEqual(set(stripped), keys)
                self.assertEqual("".join(done), prefix)
        # a strip that would make two keys collide is not done
        dupe = dict(sd)
        dupe["module.fc.weight"] = torch.zeros_like(sd["fc.weight"])
        stripped, done = rsi_convert._strip_prefixes(dupe, keys)
        self.assertEqual(done, [])
        self.assertTrue(torch.equal(stripped["fc.weight"], sd["fc.weight"]))

    def test_prefixed_checkpoint_without_num_batches_tracked_converts(self):
        m, sd = self._small_sd()
        sd = {"model." + k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "ck.pth")
            _save(path, {"state_dict": sd})
            out = os.path.join(tmp, "m.pt")
            rc, so, se = _run_convert(["--arch", "rsp-resnet50", "--checkpoint", path, "-o", out,
                                       "--tile-size", "64", "--depths", "1", "1", "1", "1"])
            self.assertEqual(rc, 0, se)
            self.assertIn("note: 17 BatchNorm num_batches_tracked buffer(s) not in checkpoint, filled with 0", so)
            sm, doc = exporting.load_file(out)
            self.assertEqual(doc["provenance"]["checkpoint"]["stripped_prefixes"], ["model."])
            self.assertTrue(any("num_batches_tracked" in n for n in doc["provenance"]["notes"]))
            x = metadata.ramp([1, 3, 64, 64])
            with torch.no_grad():
                self.assertLessEqual(float((sm(x) - m(x)).abs().max()), 1e-4)

    def test_unreadable_checkpoints_are_one_line_exit_1(self):
        with tempfile.TemporaryDirectory() as tmp:
            good = os.path.join(tmp, "good.pth")
            torch.save({"model": {"fc.weight": torch.arange(4096.0).view(64, 64)}}, good)
            with open(good, "rb") as f:
                raw = f.read()
            cases = {}

            def case(name, data, expect):
                path = os.path.join(tmp, name)
                with open(path, "wb") as f:
                    f.write(data)
                cases[path] = expect
            case("garbage.pth", b"garbage\n" * 10, "not a PyTorch checkpoint")
            case("empty.pth", b"", "empty file")
            case("trunc.pth", raw[: len(raw) // 2], "truncated or corrupt")
            # one flipped byte inside a tensor record: bad CRC
            with zipfile.ZipFile(good) as z:
                info = [i for i in z.infolist() if "/data/" in i.filename][0]
            start = info.header_offset + 30 + int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little") \
                + int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
            flipped = bytearray(raw)
            flipped[start + 100] ^= 0xFF
            case("crc.pth", bytes(flipped), "truncated or corrupt checkpoint (Bad CRC-32")
            legacy = os.path.join(tmp, "legacy.pth")
            torch.save({"model": {"w": torch.ones(2)}}, legacy, _use_new_zipfile_serialization=False)
            cases[legacy] = "legacy (pre-1.6, non-zip) torch.save format"
            with open(legacy, "rb") as f:
                case("legacy_trunc.pth", f.read()[:40], "legacy (pre-1.6, non-zip)")
            script = os.path.join(tmp, "scripted.pt")
            torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), script)
            cases[script] = "a TorchScript model"
            for path, expect in cases.items():
                with self.subTest(file=os.path.basename(path)):
                    rc, so, se = _run_convert(["--arch", "rsp-resnet50", "--checkpoint", path,
                                               "-o", os.path.join(tmp, "out.pt")])
                    self.assertEqual(rc, 1, se)
                    self.assertEqual(len(se.strip().splitlines()), 1, se)
                    self.assertTrue(se.startswith("rsi model convert: %s: " % path), se)
                    self.assertIn(expect, se)
            self.assertFalse(os.path.exists(os.path.join(tmp, "out.pt")))


class TestConvertMessages(unittest.TestCase):
    """The rules of every rsi command (auditor's defects): messages start with "rsi model convert:"
    (what the user typed), name the file at fault in one line without "[Errno N]" or the temporary
    file's name; a missing or unwritable file is exit 1, a usage error one line and exit 2; stage
    lines on stderr unless --quiet."""

    def _ckpt(self, tmp):
        m = SCENE["resnet50"](SMALL["resnet50"]).eval()
        rd.fill_fan_in(m, 5)
        path = os.path.join(tmp, "ck.pth")
        _save(path, {"state_dict": dict(m.state_dict())})
        return path

    SMALL_ARGS = ["--arch", "rsp-resnet50", "--tile-size", "64", "--depths", "1", "1", "1", "1"]

    def test_missing_checkpoint_is_exit_1(self):
        with tempfile.TemporaryDirectory() as tmp:
            missing = os.path.join(tmp, "nosuch.pth")
            rc, so, se = _run_convert(self.SMALL_ARGS + ["--checkpoint", missing, "-o", os.path.join(tmp, "m.pt")])
            self.assertEqual(rc, 1, se)
            self.assertEqual(se, "rsi model convert: %s: no such checkpoint file\n" % missing)
            rc, so, se = _run_convert(self.SMALL_ARGS + ["--checkpoint", tmp, "-o", os.path.join(tmp, "m.pt")])
            self.assertEqual(rc, 1, se)
            self.assertEqual(se, "rsi model convert: %s: not a file (--checkpoint needs the .pth checkpoint)\n" % tmp)
            self.assertEqual(os.listdir(tmp), [])

    def test_missing_output_folder_is_exit_1(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "nosuch", "m.pt")
            rc, so, se = _run_convert(self.SMALL_ARGS + ["--checkpoint", self._ckpt(tmp), "-o", out])
            self.assertEqual(rc, 1, se)
            self.assertEqual(se, "rsi model convert: %s: the output folder %s does not exist\n"
                             % (out, os.path.join(tmp, "nosuch")))

    def test_unwritable_output_names_the_output(self):
        with tempfile.TemporaryDirectory() as tmp:
            ck = self._ckpt(tmp)
            # said before the work (the folder is probed) ...
            rc, so, se = _run_convert(self.SMALL_ARGS + ["--checkpoint", ck, "-o", "/proc/self/m.pt"])
            self.assertEqual(rc, 1, se)
            self.assertEqual(se, "rsi model convert: /proc/self/m.pt: cannot write: No such file or directory\n")
            # ... and the same line when writing fails only at the end (no probe): not the temporary name
            saved = rsi_convert.probe_output_folder
            rsi_convert.probe_output_folder = lambda out: None
            try:
                rc, so, se = _run_convert(self.SMALL_ARGS + ["--checkpoint", ck, "-o", "/proc/self/m.pt", "--quiet"])
            finally:
                rsi_convert.probe_output_folder = saved
            self.assertEqual(rc, 1, se)
            self.assertEqual(se, "rsi model convert: /proc/self/m.pt: cannot write: No such file or directory\n")

    def test_classes_file_problems_name_it(self):
        with tempfile.TemporaryDirectory() as tmp:
            ck = self._ckpt(tmp)
            out = os.path.join(tmp, "m.pt")
            missing = os.path.join(tmp, "nosuch.json")
            rc, so, se = _run_convert(self.SMALL_ARGS + ["--checkpoint", ck, "-o", out, "--classes", missing, "-q"])
            self.assertEqual(rc, 1, se)
            self.assertEqual(se, "rsi model convert: %s: cannot read --classes: No such file or directory\n" % missing)
            bad = os.path.join(tmp, "bad.json")
            with open(bad, "w") as f:
                f.write("[\"a\",")
            rc, so, se = _run_convert(self.SMALL_ARGS + ["--checkpoint", ck, "-o", out, "--classes", bad, "-q"])
            self.assertEqual(rc, 1, se)
            self.assertEqual(se, "rsi model convert: %s: not valid JSON (Expecting value: line 1 column 6 (char 5))\n" % bad)
            colours = os.path.join(tmp, "classes.txt")
            with open(colours, "w") as f:
                f.write("# name r g b\nroad 1 2 x\n")
            rc, so, se = _run_convert(self.SMALL_ARGS + ["--checkpoint", ck, "-o", out, "--classes", colours, "-q"])
            self.assertEqual(rc, 1, se)
            self.assertEqual(se, "rsi model convert: %s: line 2: the colour must be three integers (name r g b)\n"
                             % colours)
            self.assertFalse(os.path.exists(out))

    def test_usage_errors_are_one_line_exit_2(self):
        rc, so, se = _run_convert(["--arch", "rsp-resnet50", "--checkpoint", "ck.pth"])
        self.assertEqual(rc, 2, se)
        self.assertEqual(se, "rsi model convert: the following arguments are required: -o/--out (see --help)\n")
        rc, so, se = _run_convert(["--arch", "rsp-resnet50", "--checkpoint", "ck.pth", "-o", "m.pt", "--tile-size", "0"])
        self.assertEqual(rc, 2, se)
        self.assertEqual(se, "rsi model convert: --tile-size must be >= 1 (see --help)\n")
        rc, so, se = _run_convert(["--arch", "rsp-resnet50", "--checkpoint", "ck.pth", "-o", "m.pt", "--bogus"])
        self.assertEqual(rc, 2, se)
        self.assertEqual(se, "rsi model convert: unrecognized arguments: --bogus (see --help)\n")

    def test_refusals_keep_exit_2(self):
        with tempfile.TemporaryDirectory() as tmp:
            rc, so, se = _run_convert(self.SMALL_ARGS + ["--task", "segmentation", "--checkpoint", self._ckpt(tmp),
                                                         "-o", os.path.join(tmp, "m.pt")])
            self.assertEqual(rc, 2, se)
            self.assertEqual(se, "rsi model convert: --arch rsp-resnet50 is a scene model, not --task segmentation\n")
            # what the checkpoint holds is refused after its path (the message named no file), and
            # a classifier without outputs is refused (a model of no classes was written)
            m = SCENE["resnet50"](SMALL["resnet50"]).eval()
            sd = {k: v for k, v in m.state_dict().items() if not k.startswith("fc.")}
            headless = os.path.join(tmp, "headless.pth")
            _save(headless, {"state_dict": sd})
            rc, so, se = _run_convert(self.SMALL_ARGS + ["--checkpoint", headless, "-o", os.path.join(tmp, "h.pt")])
            self.assertEqual(rc, 2, se)
            self.assertTrue(se.startswith("rsi model convert: %s: cannot find the classifier in the checkpoint" % headless), se)
            sd["fc.weight"], sd["fc.bias"] = torch.zeros(0, 2048), torch.zeros(0)
            empty = os.path.join(tmp, "empty_head.pth")
            _save(empty, {"state_dict": sd})
            rc, so, se = _run_convert(self.SMALL_ARGS + ["--checkpoint", empty, "-o", os.path.join(tmp, "e.pt")])
            self.assertEqual(rc, 2, se)
            self.assertEqual(se, "rsi model convert: %s: its classifier fc.weight has no outputs (shape [0, 2048])\n" % empty)
            self.assertEqual(sorted(os.listdir(tmp)), ["ck.pth", "empty_head.pth", "headless.pth"])

    def test_stage_lines_unless_quiet(self):
        with tempfile.TemporaryDirectory() as tmp:
            ck = self._ckpt(tmp)
            out = os.path.join(tmp, "m.pt")
            rc, so, se = _run_convert(self.SMALL_ARGS + ["--checkpoint", ck, "-o", out])
            self.assertEqual(rc, 0, se)
            self.assertEqual(se.splitlines(), ["convert: building rsp-resnet50 (51 classes) and matching the weights",
                                               "convert: writing and verifying %s" % out])
            rc, so, se = _run_convert(self.SMALL_ARGS + ["--checkpoint", ck, "-o", out, "--overwrite", "--quiet"])
            self.assertEqual(rc, 0, se)
            self.assertEqual(se, "")
            self.assertIn("wrote %s" % out, so)
            self.assertEqual(sorted(os.listdir(tmp)), ["ck.pth", "m.pt"])


class TestMillionAID(unittest.TestCase):
    def test_hierarchy(self):
        e = millionaid.class_entries()
        self.assertEqual(len(e), 51)
        self.assertEqual(len({c["parents"][0] for c in e}), 8)
        self.assertEqual(len({c["parents"][1] for c in e}), 28)
        self.assertEqual(millionaid.CLASSES.index("commercial_area"), 7)
        doc_classes = [c["name"] for c in e]
        self.assertEqual(doc_classes, millionaid.CLASSES)


if __name__ == "__main__":
    unittest.main()
