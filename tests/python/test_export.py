"""Export round trip and metadata validation (self-contained: tiny random models, no shared data).

Run from the repository root:  /usr/bin/python3 -m unittest discover -s tests/python
"""
import copy
import json
import os
import tempfile
import unittest
import zipfile

import torch

import _paths  # noqa: F401
from rsi_models import exporting, metadata, nets

torch.set_num_threads(2)


def seg_doc():
    return {
        "format": "rsi-model", "format_version": 1, "name": "test-seg", "version": "0.0.1",
        "task": "segmentation",
        "input": {"bands": 3, "band_names": ["red", "green", "blue"], "source_bands": [1, 2, 3],
                  "data_range": [0, 255], "scale": 1 / 255.0,
                  "mean": metadata.IMAGENET_MEAN, "std": metadata.IMAGENET_STD},
        "band_mapping": {"single_band": "replicate", "rescale": "percentile", "low": 2, "high": 98},
        "tile": {"size": 64, "overlap": 16, "output_stride": 1, "halo": 8, "multiple_of": 8},
        "gsd_m": 0.3, "output": "logits", "output_activation": "softmax",
        "classes": [{"id": 0, "name": "background", "color": [0, 0, 0]},
                    {"id": 1, "name": "building", "color": [255, 64, 64]}],
        "license": "test", "provenance": {"data": ["none"], "script": "tests/python/test_export.py",
                                          "command": "unittest"},
    }


def scene_doc():
    d = seg_doc()
    d.update({"name": "test-scene", "task": "scene", "gsd_m": 10,
              "tile": {"size": 32, "overlap": 0, "output_stride": 1, "halo": 0}})
    d["input"] = {"bands": 4, "band_names": ["red", "green", "blue", "nir"],
                  "source_bands": [4, 3, 2, 8], "data_range": [0, 10000], "scale": 1e-4,
                  "mean": [0.1] * 4, "std": [0.05] * 4}
    d["classes"] = [{"id": i, "name": "c%d" % i, "color": [i, i, i]} for i in range(3)]
    return d


def tiny_seg():
    torch.manual_seed(0)
    m = nets.BuildingNet(widths=[4, 8, 8, 8], dec_widths=[4, 4, 8], depth=1)
    # give BatchNorm non-trivial running statistics so eval mode is really exercised
    m.train()
    with torch.no_grad():
        m(torch.randn(2, 3, 32, 32))
    return m.eval()


def tiny_scene():
    torch.manual_seed(1)
    m = nets.SceneNet(in_channels=4, num_classes=3, widths=[4, 8])
    m.train()
    with torch.no_grad():
        m(torch.randn(2, 4, 32, 32))
    return m.eval()


class ExportRoundTrip(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def _roundtrip(self, model, doc):
        path = os.path.join(self.tmp.name, "m.pt")
        final = exporting.export(model, doc, path)
        scripted, loaded = exporting.load_file(path)
        self.assertEqual(loaded, json.loads(json.dumps(final)))
        self.assertEqual(loaded["weights_sha256"], metadata.weights_sha256(model))
        self.assertEqual(loaded["weights_sha256"], metadata.weights_sha256(scripted))
        # the document is stored as the TorchScript extra file rsi.json inside the zip archive
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith("/extra/rsi.json")]
            self.assertEqual(len(names), 1)
            self.assertEqual(json.loads(z.read(names[0]).decode("utf-8")), loaded)
        return scripted, loaded

    def test_segmentation_roundtrip(self):
        model = tiny_seg()
        scripted, doc = self._roundtrip(model, seg_doc())
        self.assertEqual(doc["golden"]["shape"], [1, 3, 64, 64])
        with torch.no_grad():
            for h, w in ((8, 8), (24, 40), (64, 16), (72, 128)):
                x = torch.randn(2, 3, h, w)
                y_e, y_s = model(x), scripted(x)
                self.assertEqual(list(y_s.shape), [2, 2, h, w])
                self.assertLessEqual(float((y_e - y_s).abs().max()), 1e-5)
            g = scripted(metadata.ramp(doc["golden"]["shape"])).double()
        self.assertAlmostEqual(float(g.sum()), doc["golden"]["output_sum"], places=3)
        self.assertAlmostEqual(float(g.abs().sum()), doc["golden"]["output_abs_sum"], places=3)
        self.assertEqual(len(doc["golden"]["output_sample"]), 8)

    def test_set_cpu_graph_changes_only_the_metadata(self):
        import set_cpu_graph
        path = os.path.join(self.tmp.name, "m.pt")
        out = os.path.join(self.tmp.name, "m-cl.pt")
        exporting.export(tiny_seg(), seg_doc(), path)
        before = exporting.load_file(path)[1]
        self.assertNotIn("cpu_graph", before)
        doc = set_cpu_graph.set_cpu_graph(path, "channels_last", out, version="0.0.2", command="set_cpu_graph.py m.pt")
        scripted, after = exporting.load_file(out)
        self.assertEqual(after, json.loads(json.dumps(doc)))
        self.assertEqual(after["cpu_graph"], "channels_last")
        self.assertEqual(after["version"], "0.0.2")
        self.assertEqual(after["weights_sha256"], before["weights_sha256"])
        self.assertEqual(after["golden"], before["golden"])
        self.assertTrue(after["provenance"]["command"].endswith(" && set_cpu_graph.py m.pt"))
        # back to the default: the field is dropped, not written
        again = os.path.join(self.tmp.name, "m-opt.pt")
        set_cpu_graph.set_cpu_graph(out, "optimize_for_inference", again)
        self.assertNotIn("cpu_graph", exporting.load_file(again)[1])

    def test_set_source_band_count_changes_only_the_metadata(self):
        import set_source_band_count
        torch.manual_seed(3)
        path = os.path.join(self.tmp.name, "s.pt")
        out = os.path.join(self.tmp.name, "s-13.pt")
        exporting.export(nets.StatsSceneNet(in_channels=4, num_classes=3).eval(), scene_doc(), path)
        before = exporting.load_file(path)[1]
        doc = set_source_band_count.set_source_band_count(path, 13, out, version="0.0.3", command="set_source_band_count.py s.pt")
        after = exporting.load_file(out)[1]
        self.assertEqual(after, json.loads(json.dumps(doc)))
        self.assertEqual(after["input"]["source_band_count"], 13)
        self.assertEqual(after["version"], "0.0.3")
        self.assertEqual(after["weights_sha256"], before["weights_sha256"])
        self.assertEqual(after["golden"], before["golden"])
        # source band 8 cannot be numbered in a 6-band stack: refused, nothing written
        bad = os.path.join(self.tmp.name, "s-6.pt")
        with self.assertRaisesRegex(metadata.MetadataError, "band 8 is past input.source_band_count 6"):
            set_source_band_count.set_source_band_count(path, 6, bad)
        self.assertFalse(os.path.exists(bad))

    def test_rescript_keeps_weights_and_lets_scene_models_run_in_bf16(self):
        import rescript
        torch.manual_seed(3)
        path = os.path.join(self.tmp.name, "s.pt")
        out = os.path.join(self.tmp.name, "s-1.pt")
        exporting.export(nets.StatsSceneNet(in_channels=4, num_classes=3).eval(), scene_doc(), path)
        before = exporting.load_file(path)[1]
        doc = rescript.rescript(path, out, version="0.0.2", command="rescript.py s.pt")
        scripted, after = exporting.load_file(out)
        self.assertEqual(after["version"], "0.0.2")
        self.assertEqual(after["weights_sha256"], before["weights_sha256"])
        self.assertAlmostEqual(after["golden"]["output_sum"], before["golden"]["output_sum"], places=4)
        self.assertTrue(doc["provenance"]["command"].endswith(" && rescript.py s.pt"))
        # the C++ runtime's bf16: floating-point weights and buffers and the input in bfloat16
        x = torch.randn(2, 4, 64, 64)
        with torch.no_grad():
            reference = torch.softmax(scripted(x), 1)
            reduced = scripted.to(torch.bfloat16)
            got = torch.softmax(reduced(x.to(torch.bfloat16)).float(), 1)
        self.assertLess(float((got - reference).abs().max()), 0.05)

    def test_flip_tta_roundtrip(self):
        model = nets.FlipTTA(tiny_seg()).eval()
        scripted, doc = self._roundtrip(model, seg_doc())
        with torch.no_grad():
            x = torch.randn(1, 3, 16, 40)
            self.assertLessEqual(float((model(x) - scripted(x)).abs().max()), 1e-5)

    def test_stats_scene_roundtrip(self):
        torch.manual_seed(2)
        model = nets.StatsSceneNet(in_channels=4, num_classes=3).eval()
        scripted, doc = self._roundtrip(model, scene_doc())
        with torch.no_grad():
            x = torch.randn(2, 4, 32, 32)
            self.assertLessEqual(float((model(x) - scripted(x)).abs().max()), 1e-5)

    def test_feature_scene_roundtrip(self):
        # every feature family of FeatureSceneNet (select_scene_recipe.py candidates) scripts,
        # reproduces eager output, accepts other H, W and is invariant to flips / 90-degree rotations
        torch.manual_seed(3)
        model = nets.FeatureSceneNet(in_channels=4, num_classes=3, scales=3, aniso=True, tensor=True,
                                     index_a=[3], index_b=[0], in_mean=[0.1] * 4, in_std=[0.05] * 4,
                                     rf_filters=4, rf_symmetric=True).eval()
        scripted, doc = self._roundtrip(model, scene_doc())
        with torch.no_grad():
            for h, w in ((32, 32), (16, 16), (20, 37)):
                x = torch.randn(2, 4, h, w)
                self.assertEqual(list(scripted(x).shape), [2, 3])
                self.assertLessEqual(float((model(x) - scripted(x)).abs().max()), 1e-5)
            x = torch.randn(1, 4, 32, 32)
            f = model.features(x)
            for t in (torch.rot90(x, 1, [2, 3]), torch.flip(x, [3])):
                self.assertLessEqual(float((model.features(t.contiguous()) - f).abs().max()), 1e-4)

    def test_scene_roundtrip(self):
        model = tiny_scene()
        scripted, doc = self._roundtrip(model, scene_doc())
        self.assertEqual(doc["golden"]["shape"], [1, 4, 32, 32])
        with torch.no_grad():
            x = torch.randn(5, 4, 32, 32)
            self.assertEqual(list(scripted(x).shape), [5, 3])
            self.assertLessEqual(float((model(x) - scripted(x)).abs().max()), 1e-5)

    def test_export_rejects_wrong_class_count(self):
        doc = seg_doc()
        doc["classes"].append({"id": 2, "name": "road", "color": [1, 2, 3]})
        with self.assertRaises(metadata.MetadataError):
            exporting.export(tiny_seg(), doc, os.path.join(self.tmp.name, "bad.pt"))
        self.assertFalse(os.path.exists(os.path.join(self.tmp.name, "bad.pt")))

    def test_hash_depends_on_weights(self):
        m = tiny_seg()
        h1 = metadata.weights_sha256(m)
        with torch.no_grad():
            next(m.parameters())[0].view(-1)[0] += 1e-3
        self.assertNotEqual(h1, metadata.weights_sha256(m))

    def test_ramp(self):
        r = metadata.ramp([1, 2, 3, 4]).reshape(-1)
        for i in (0, 1, 7, 23):
            self.assertAlmostEqual(float(r[i]), ((i * 37) % 255) / 255.0 - 0.5, places=6)


class AntialiasedDownsampling(unittest.TestCase):
    """nets.Blur and BuildingNet(antialias=True): the fixed low-pass, its place, export and rebuild."""

    def test_blur_removes_the_nyquist_frequency_and_keeps_constants(self):
        blur = nets.Blur(2)
        y = torch.arange(8).view(8, 1)
        x = torch.arange(8).view(1, 8)
        checker = ((y + x) % 2).float() * 2 - 1  # +-1 checkerboard: aliases onto a constant at stride 2
        inp = torch.stack([checker, torch.full((8, 8), 3.0)]).unsqueeze(0)
        with torch.no_grad():
            out = blur(inp)[0]
        inner = (slice(1, 7), slice(1, 7))  # zero padding changes the one-pixel border
        self.assertLessEqual(float(out[0][inner].abs().max()), 1e-6)
        self.assertLessEqual(float((out[1][inner] - 3.0).abs().max()), 1e-6)
        self.assertAlmostEqual(float(out[1][0, 0]), 3.0 * 9 / 16, places=6)  # corner: 9/16 of the kernel inside

    def test_blur_is_frozen_and_only_in_front_of_stride_two_stages(self):
        m = nets.BuildingNet(widths=[4, 8, 8], dec_widths=[4, 8], antialias=True)
        blurs = [k for k in m.state_dict() if ".blur." in k]
        self.assertEqual(blurs, ["stages.0.0.blur.weight", "stages.1.0.blur.weight"])
        frozen = [n for n, p in m.named_parameters() if not p.requires_grad]
        self.assertEqual(frozen, blurs)
        # without antialias the state dict is the one of earlier checkpoints (no new keys)
        plain = nets.BuildingNet(widths=[4, 8, 8], dec_widths=[4, 8])
        self.assertFalse(any(".blur." in k for k in plain.state_dict()))

    def test_antialiased_roundtrip_and_eager_rebuild(self):
        from rsi_models import quantization
        torch.manual_seed(0)
        model = nets.BuildingNet(widths=[4, 8, 8, 8], dec_widths=[4, 4, 8], antialias=True)
        model.train()
        with torch.no_grad():
            model(torch.randn(2, 3, 32, 32))
        model.eval()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "aa.pt")
            exporting.export(model, seg_doc(), path)
            scripted, doc = exporting.load_file(path)
        x = torch.randn(1, 3, 24, 40)
        with torch.no_grad():
            self.assertLessEqual(float((model(x) - scripted(x)).abs().max()), 1e-5)
            rebuilt = quantization.rebuild_eager(scripted, doc)
            self.assertIsNotNone(rebuilt)
            self.assertIsInstance(rebuilt.stages[0][0].blur, nets.Blur)
            self.assertLessEqual(float((rebuilt(x) - scripted(x)).abs().max()), 1e-5)


class Validation(unittest.TestCase):
    def good(self):
        d = seg_doc()
        d["weights_sha256"] = "0" * 64
        return d

    def assertRejected(self, doc, field):
        with self.assertRaises(metadata.MetadataError) as cm:
            metadata.validate(doc)
        self.assertIn(field, str(cm.exception))

    def test_good_documents_pass(self):
        metadata.validate(self.good())
        d = scene_doc()
        d["weights_sha256"] = "a" * 64
        metadata.validate(d)

    def test_bad_documents(self):
        cases = []

        def case(field, edit):
            d = self.good()
            edit(d)
            cases.append((field, d))

        case("format", lambda d: d.update(format="onnx"))
        case("format_version", lambda d: d.update(format_version=2))
        case("task", lambda d: d.update(task="detection"))
        case("name", lambda d: d.pop("name"))
        case("input.bands", lambda d: d["input"].update(bands=0))
        case("input.band_names", lambda d: d["input"].update(band_names=["red", "green"]))
        case("input.source_bands", lambda d: d["input"].update(source_bands=[0, 1, 2]))
        case("input.data_range", lambda d: d["input"].update(data_range=[255, 0]))
        case("input.scale", lambda d: d["input"].pop("scale"))
        case("input.mean", lambda d: d["input"].update(mean=[0.5, 0.5]))
        case("input.std", lambda d: d["input"].update(std=[0.2, 0.0, 0.2]))
        case("band_mapping.single_band", lambda d: d["band_mapping"].update(single_band="copy"))
        case("band_mapping.rescale", lambda d: d["band_mapping"].update(rescale="stretch"))
        case("band_mapping.rescale_when", lambda d: d["band_mapping"].update(rescale_when=["uint16"]))
        case("tile.size", lambda d: d["tile"].pop("size"))
        case("tile.overlap", lambda d: d["tile"].update(overlap=-1))
        case("tile.halo", lambda d: d["tile"].update(halo=1.5))
        case("tile.size", lambda d: d["tile"].update(multiple_of=48))
        case("gsd_m", lambda d: d.update(gsd_m=0))
        case("output", lambda d: d.update(output="scores"))
        case("output_activation", lambda d: d.update(output_activation="relu"))
        case("classes", lambda d: d.update(classes=[]))
        case("classes[1].id", lambda d: d["classes"][1].update(id=5))
        case("classes[0].color", lambda d: d["classes"][0].update(color=[0, 0, 256]))
        case("classes[1].name", lambda d: d["classes"][1].update(name="background"))
        case("license", lambda d: d.pop("license"))
        case("provenance.command", lambda d: d["provenance"].pop("command"))
        case("provenance.data", lambda d: d["provenance"].update(data="inria"))
        case("weights_sha256", lambda d: d.update(weights_sha256="xyz"))
        case("weights_sha256", lambda d: d.pop("weights_sha256"))
        case("golden.input", lambda d: d.update(golden={"input": "zeros", "shape": [1, 3, 8, 8],
                                                        "output_sum": 0, "output_abs_sum": 0,
                                                        "output_sample": [0]}))
        case("golden.shape", lambda d: d.update(golden={"input": "ramp", "shape": [1, 4, 8, 8],
                                                        "output_sum": 0, "output_abs_sum": 0,
                                                        "output_sample": [0]}))
        case("hierarchy.levels", lambda d: d.update(hierarchy={"levels": "l1"}))
        case("cpu_graph", lambda d: d.update(cpu_graph="nhwc"))
        for field, doc in cases:
            with self.subTest(field=field):
                self.assertRejected(doc, field)

    def test_sigmoid_needs_two_classes(self):
        d = self.good()
        d["output_activation"] = "sigmoid"
        metadata.validate(d)
        d["classes"].append({"id": 2, "name": "x", "color": [1, 1, 1]})
        self.assertRejected(d, "output_activation")

    def test_check_against_module(self):
        m = tiny_seg()
        d = self.good()
        with self.assertRaises(metadata.MetadataError) as cm:
            metadata.check_against_module(d, m)
        self.assertIn("weights_sha256", str(cm.exception))
        d["weights_sha256"] = metadata.weights_sha256(m)
        metadata.check_against_module(d, m)

    def test_file_without_metadata_is_refused(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "plain.pt")
            torch.jit.save(torch.jit.script(tiny_scene()), path)
            with self.assertRaises(metadata.MetadataError):
                exporting.load_file(path)
            d = scene_doc()  # no weights_sha256: malformed
            torch.jit.save(torch.jit.script(tiny_scene()), path,
                           _extra_files={"rsi.json": json.dumps(d)})
            with self.assertRaises(metadata.MetadataError) as cm:
                exporting.load_file(path)
            self.assertIn("plain.pt", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
