"""RVSA ViT-B + UperNet (rsi_models.foundation.rvsa / .upernet) against facts recorded from the
official code by models/python/fidelity/rvsa_fidelity.py (reference/*.json). Needs no
official code, no checkpoint and no network.

Run from the repository root:  /usr/bin/python3 -m unittest tests.python.test_foundation_rvsa
(or discover -s tests/python).
"""
import contextlib
import io
import json
import os
import tempfile
import unittest
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F

import _paths
from rsi_models.foundation import registry
from rsi_models.foundation.deterministic import digest_diff, fill_deterministic
from rsi_models.foundation.rsp_digest import fill_fan_in
from rsi_models.foundation.rvsa import RVSAttention, RVSAttentionKVDiff, RVSAViT, UpConv2x, build_rvsa_upernet
from rsi_models.foundation.upernet import EncoderDecoder, FCNHead, UPerHead
from rsi_models.metadata import ramp

torch.set_num_threads(2)
REF = os.path.join(_paths.MODELS_PY, "fidelity", "reference")
TOL = 1e-4


def load_ref(name):
    with open(os.path.join(REF, name)) as f:
        return json.load(f)


def keys_shapes(m: nn.Module):
    return {k: list(v.shape) for k, v in m.state_dict().items()}


class TestRVSAOfficialKeys(unittest.TestCase):
    def test_full_size_keys_and_shapes(self):
        ref = load_ref("rvsa_vitb_upernet_loveda_keys.json")
        m = build_rvsa_upernet(num_classes=7).eval()
        self.assertEqual(keys_shapes(m), ref["plain"])
        # one forward at a tile size other than the training size (pos-embed resize,
        # rel-pos clamping, RVSA window padding: 14 tokens)
        with torch.no_grad():
            y = m(ramp([1, 3, 224, 224]))
        self.assertEqual(list(y.shape), [1, 7, 224, 224])
        self.assertTrue(bool(torch.isfinite(y).all()))
        del m
        for tag, kw in (("kvdiff", {"kvdiff": True}), ("vitae", {"vitae": True}),
                        ("vitae_kvdiff", {"vitae": True, "kvdiff": True})):
            with self.subTest(variant=tag):
                self.assertEqual(keys_shapes(build_rvsa_upernet(num_classes=7, **kw)), ref[tag])

    def test_head_keys_match_mmseg(self):
        ref = load_ref("mmseg_head_keys.json")
        up = [v for k, v in ref.items() if k.startswith("UPerHead")][0]
        fcn = [v for k, v in ref.items() if k.startswith("FCNHead")][0]
        self.assertEqual(keys_shapes(UPerHead([768] * 4, channels=512, num_classes=7)), up)
        self.assertEqual(keys_shapes(FCNHead(768, channels=256, num_classes=7, in_index=2)), fcn)


class TestRVSADigests(unittest.TestCase):
    """Depth-reduced model under deterministic weights == the official model's outputs."""

    @classmethod
    def setUpClass(cls):
        cls.ref = load_ref("rvsa_digests.json")
        cls.models = {}
        for tag in ("plain", "kvdiff", "vitae", "vitae_kvdiff"):
            m = build_rvsa_upernet(cls.ref["num_classes"], depth=cls.ref["depth"],
                                   img_size=cls.ref["img_size"], kvdiff=tag.endswith("kvdiff"),
                                   vitae=tag.startswith("vitae"),
                                   out_indices=cls.ref["out_indices"]).eval()
            fill_deterministic(m, cls.ref["seed"])
            cls.models[tag] = m

    def test_official_digests(self):
        self.assertEqual(len(self.ref["cases"]), 6)
        with torch.no_grad():
            for name, dig in self.ref["cases"].items():
                tag, size = name.rsplit("_", 1)
                h, w = (int(s) for s in size.split("x"))
                y = self.models[tag](ramp([1, 3, h, w]))
                with self.subTest(case=name):
                    self.assertLessEqual(digest_diff(y, dig), TOL)

    def test_rvsa_attention_non_square(self):
        """Attention alone on a non-square token grid (the official x/y offset normalisation
        and asymmetric window padding only show there); outputs are ~0.02, so 1e-6."""
        ref = self.ref["attention"]
        h, w = ref["grid"]
        for tag, cls in (("plain", RVSAttention), ("kvdiff", RVSAttentionKVDiff)):
            m = cls(ref["dim"], ref["heads"], ref["window"], True).eval()
            fill_deterministic(m, self.ref["seed"])
            with torch.no_grad():
                y = m(ramp([ref["batch"], h * w, ref["dim"]]) * 4.0, h, w)
            with self.subTest(variant=tag):
                self.assertLessEqual(digest_diff(y, ref["cases"][tag]), 1e-6)

    def test_script_matches_eager(self):
        # Same backbone code paths; a narrow decode head keeps this quick on 2 cores.
        for vitae in (False, True):
            m = EncoderDecoder(RVSAViT(img_size=256, depth=4, vitae=vitae),
                               UPerHead([768] * 4, channels=32, num_classes=7),
                               FCNHead(768, channels=16, num_classes=7), size_multiple=16).eval()
            fill_deterministic(m, 3)
            s = torch.jit.script(m)
            sizes = ((128, 128), (96, 160), (100, 164)) if not vitae else ((100, 164),)
            with torch.no_grad():
                for h, w in sizes:  # (100, 164): not a multiple of 16
                    x = ramp([1, 3, h, w])
                    ye, ys = m(x), s(x)
                    with self.subTest(vitae=vitae, size=(h, w)):
                        self.assertEqual(list(ys.shape), [1, 7, h, w])
                        self.assertLessEqual(float((ye - ys).abs().max()), TOL)


class TestRVSABFloat16(unittest.TestCase):
    """rsi --precision bf16 converts every floating tensor of the scripted module and the input
    to bfloat16 (models/torch_backend.cpp move_module). LibTorch 1.13 has no bf16 grid_sample on
    the CPU and returns wrongly sized bf16 ConvTranspose2d maps there: both run in float32."""

    def test_conv_transpose_bf16_shape(self):
        c = UpConv2x(16).eval()
        x = torch.randn(1, 16, 7, 5)
        with torch.no_grad():
            y = c(x)
            self.assertTrue(torch.equal(y, nn.ConvTranspose2d.forward(c, x)))  # fp32 unchanged
            yb = c.to(torch.bfloat16)(x.bfloat16())
        self.assertEqual(yb.dtype, torch.bfloat16)
        self.assertEqual(list(yb.shape), [1, 16, 14, 10])
        self.assertLessEqual(float((yb.float() - y).abs().max()), 0.05 * float(y.abs().max()))

    def test_scripted_model_runs_in_bfloat16(self):
        for vitae, kvdiff in ((False, False), (True, True)):
            m = EncoderDecoder(RVSAViT(img_size=128, depth=4, vitae=vitae, kvdiff=kvdiff),
                               UPerHead([768] * 4, channels=32, num_classes=7),
                               FCNHead(768, channels=16, num_classes=7), size_multiple=16).eval()
            fill_fan_in(m, 3)  # O(1) activations: bf16 rounding stays visible but small
            s = torch.jit.script(m)
            x = ramp([1, 3, 100, 164])  # grid 7 x 11: pos-embed resize, window padding
            with torch.no_grad():
                y = s(x)
                yb = s.to(torch.bfloat16)(x.bfloat16())
            with self.subTest(vitae=vitae, kvdiff=kvdiff):
                self.assertEqual(yb.dtype, torch.bfloat16)
                self.assertEqual(list(yb.shape), [1, 7, 100, 164])
                err = float((yb.float() - y).abs().max())
                self.assertLessEqual(err, 0.1 * float(y.abs().max()))
                agree = float((yb.float().argmax(1) == y.argmax(1)).float().mean())
                self.assertGreaterEqual(agree, 0.95)


def _official_keys(tag: str, grid: int = 32):
    """The official checkpoint keys of an RVSA variant (reference JSON), pos_embed as a tensor."""
    keys = load_ref("rvsa_vitb_upernet_loveda_keys.json")[tag]
    sd = {k: None for k in keys}
    sd["backbone.pos_embed"] = torch.zeros(1, grid * grid, 1)
    return sd


def _run_convert(argv):
    import rsi_convert
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = rsi_convert.main(list(argv) + ["--threads", "2"])
    return rc, out.getvalue(), err.getvalue()


LOVEDA = ("background", "building", "road", "water", "barren", "forest", "agricultural")


class TestRVSAConvert(unittest.TestCase):
    def test_variant_inferred_from_official_keys(self):
        for tag, want in (("plain", (False, False)), ("kvdiff", (True, False)),
                          ("vitae", (False, True)), ("vitae_kvdiff", (True, True))):
            with self.subTest(variant=tag):
                kw = registry.rvsa_kwargs(_official_keys(tag))
                self.assertEqual((kw["kvdiff"], kw["vitae"], kw["img_size"]), want + (512,))
        # iSAID: 896 px training crop -> 56 x 56 pos_embed -> tile 896 by default
        import rsi_convert
        kw = registry.rvsa_kwargs(_official_keys("plain", grid=56))
        self.assertEqual(kw["img_size"], 896)
        arch = registry.get("rvsa-vitb-upernet")
        desc, tile = rsi_convert.variant_defaults(arch, kw)
        self.assertEqual(tile, 896)
        self.assertIn("ViT-B", desc)
        self.assertIn("ViTAE-B", rsi_convert.variant_defaults(arch, {"vitae": True})[0])
        # dataset GSD hints: LoveDA imagery is 0.3 m
        self.assertEqual(rsi_convert._dataset_of(list(LOVEDA)), "loveda")
        self.assertEqual(registry.DATASET_HINTS["loveda"][0], 0.3)

    def test_vitae_checkpoint_converts(self):
        """A ViTAE-B RVSA checkpoint (PCM branch, q/v biases) used to be refused as a ViT-B. The
        whole rsi_convert path but the TorchScript export (tested for every architecture
        elsewhere, and slow for this model)."""
        import rsi_convert
        torch.manual_seed(0)
        m = build_rvsa_upernet(7, depth=4, vitae=True, img_size=128).eval()
        fill_deterministic(m, 4)
        sd = dict(m.state_dict())
        got = {}

        def fake_export(model, doc, out, overwrite=False):
            got["model"], got["doc"] = model, doc
            return {"golden": None}
        real_export = rsi_convert.exporting.export
        rsi_convert.exporting.export = fake_export
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "vitae.pth")
                torch.save({"state_dict": sd, "meta": {"CLASSES": LOVEDA}}, path)
                rc, so, se = _run_convert(["--arch", "rvsa-vitb-upernet", "--checkpoint", path, "-o",
                                           os.path.join(tmp, "vitae.pt"), "--depths", "4"])
        finally:
            rsi_convert.exporting.export = real_export
        self.assertEqual(rc, 0, se)
        doc = got["doc"]
        self.assertIn("ViTAE-B", doc["description"])
        self.assertEqual(doc["gsd_m"], 0.3)
        self.assertEqual(doc["tile"]["size"], 128)  # the training crop of this checkpoint
        self.assertEqual([c["name"] for c in doc["classes"]], list(LOVEDA))
        x = ramp([1, 3, 96, 80])
        with torch.no_grad():
            self.assertTrue(torch.equal(got["model"](x), m(x)))
        # a ViTAE-B checkpoint without its PCM branches given to the ViTAE-B model: the refusal
        # lists both sides, with counts
        import rsi_convert
        bad = {k: v for k, v in sd.items() if ".PCM." not in k and not k.endswith(("q_bias", "v_bias"))}
        bad["backbone.blocks.0.extra"] = torch.zeros(1)
        with self.assertRaises(rsi_convert.Refused) as cm:
            rsi_convert.match_state_dict(m, bad)
        text = str(cm.exception)
        n_missing = len([k for k in sd if k not in bad and not k.endswith("num_batches_tracked")])
        self.assertIn("%d model key(s) missing from the checkpoint: backbone.blocks.0.attn.q_bias" % n_missing, text)
        self.assertIn("1 checkpoint key(s) the model does not have: backbone.blocks.0.extra", text)


class _ToyBackbone(nn.Module):
    """Four maps at strides 4, 8, 16, 32 (stands in for a real backbone)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.downs = nn.ModuleList([nn.Conv2d(8, 8, 2, stride=2) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self.stem(x)
        outs = [x]
        for d in self.downs:
            x = d(x)
            outs.append(x)
        return outs


class TestEncoderDecoder(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)
        self.m = EncoderDecoder(_ToyBackbone(), UPerHead([8] * 4, channels=16, num_classes=3),
                                FCNHead(8, channels=8, num_classes=3), size_multiple=32).eval()
        fill_deterministic(self.m, 1)

    def test_pad_and_crop(self):
        s = torch.jit.script(self.m)
        with torch.no_grad():
            for h, w in ((200, 328), (64, 64), (33, 47)):
                x = ramp([2, 3, h, w])
                y = self.m(x)
                self.assertEqual(list(y.shape), [2, 3, h, w])
                # the same as padding by hand (zeros, bottom/right) and cropping
                ph, pw = (32 - h % 32) % 32, (32 - w % 32) % 32
                xp = F.pad(x, [0, pw, 0, ph])
                ref = F.interpolate(self.m.decode_head(self.m.backbone(xp)), size=[h + ph, w + pw],
                                    mode="bilinear", align_corners=False)[:, :, :h, :w]
                self.assertLessEqual(float((y - ref).abs().max()), 1e-6)
                # scripted: pads computed at run time, so every size is right
                self.assertLessEqual(float((s(x) - y).abs().max()), 1e-6)

    def test_auxiliary_head_keys_present(self):
        keys = self.m.state_dict().keys()
        self.assertTrue(any(k.startswith("auxiliary_head.convs.0.conv.") for k in keys))
        self.assertTrue(any(k.startswith("decode_head.fpn_bottleneck.bn.") for k in keys))


if __name__ == "__main__":
    unittest.main()
