"""Training tools of the building model: losses (train_buildings.py) and weight averaging (soup_buildings.py)."""
import unittest

import torch

import _paths  # noqa: F401
import soup_buildings
import train_buildings
from rsi_models import nets


def jaccard_loss(pred: torch.Tensor, target: torch.Tensor) -> float:
    inter = (pred & target).sum().item()
    union = (pred | target).sum().item()
    return 1.0 - inter / union if union else 0.0


class LovaszHinge(unittest.TestCase):
    def setUp(self):
        self.target = torch.zeros(2, 6, 6, dtype=torch.long)
        self.target[0, 1:4, 1:4] = 1        # 9 building pixels
        self.target[1, 0:2, :] = 1          # 12 building pixels

    def logits_for(self, pred: torch.Tensor) -> torch.Tensor:
        """Margins of +-1: a correctly signed pixel has hinge error 0, a wrong one error 2."""
        logits = torch.zeros(pred.shape[0], 2, *pred.shape[1:])
        logits[:, 1] = pred.float() * 2 - 1
        return logits

    def test_zero_for_confident_correct_prediction(self):
        logits = self.logits_for(self.target.bool()) * 5
        self.assertEqual(train_buildings.lovasz_hinge_loss(logits, self.target).item(), 0.0)

    def test_equals_twice_the_jaccard_loss_on_binary_errors(self):
        # The Lovasz extension is positively homogeneous and equals the Jaccard loss of the set of
        # wrong pixels on indicator vectors: hinge errors of 2 on that set give 2 x (1 - IoU).
        pred = self.target.bool().clone()
        pred[0, 1, 1] = False               # one missed building pixel
        pred[0, 5, 5] = True                # one false positive
        pred[1, 0, 0:3] = False             # three misses
        expected = [2 * jaccard_loss(pred[i], self.target[i].bool()) for i in range(2)]
        self.assertAlmostEqual(expected[0], 2 * (1 - 8 / 10))
        self.assertAlmostEqual(expected[1], 2 * (1 - 9 / 12))
        loss = train_buildings.lovasz_hinge_loss(self.logits_for(pred), self.target).item()
        self.assertAlmostEqual(loss, sum(expected) / 2, places=5)

    def test_image_without_buildings_penalises_the_worst_false_positive(self):
        target = torch.zeros(1, 4, 4, dtype=torch.long)
        logits = torch.zeros(1, 2, 4, 4)
        logits[0, 1] = -3.0
        logits[0, 1, 2, 2] = 0.5            # the only positive margin: hinge error 1.5
        self.assertAlmostEqual(train_buildings.lovasz_hinge_loss(logits, target).item(), 1.5, places=6)

    def test_gradient_flows(self):
        logits = torch.zeros(2, 2, 6, 6, requires_grad=True)
        train_buildings.lovasz_hinge_loss(logits, self.target).backward()
        self.assertGreater(logits.grad.abs().sum().item(), 0.0)


class WeightSoup(unittest.TestCase):
    def test_average_is_the_elementwise_mean_and_keeps_counters(self):
        kwargs = dict(widths=[4, 8], dec_widths=[4], depth=1)
        a, b = nets.BuildingNet(**kwargs).state_dict(), nets.BuildingNet(**kwargs).state_dict()
        for k in a:
            if k.endswith("num_batches_tracked"):
                a[k].fill_(7)
                b[k].fill_(9)
        soup = soup_buildings.average([a, b])
        floats = [k for k in a if a[k].is_floating_point()]
        self.assertTrue(any("running_mean" in k for k in floats))  # BatchNorm statistics are averaged too
        for k in floats:
            torch.testing.assert_close(soup[k], (a[k] + b[k]) / 2)
        for k in a:
            if k.endswith("num_batches_tracked"):
                self.assertEqual(soup[k].item(), 7)
        nets.BuildingNet(**kwargs).load_state_dict(soup)  # loads into the architecture

    def test_different_architectures_are_refused(self):
        a = nets.BuildingNet(widths=[4, 8], dec_widths=[4]).state_dict()
        b = nets.BuildingNet(widths=[4, 16], dec_widths=[4]).state_dict()
        with self.assertRaises(SystemExit):
            soup_buildings.average([a, b])


if __name__ == "__main__":
    unittest.main()


class LogitOffset(unittest.TestCase):
    """The decision threshold chosen on held-out crops (export.py --tune-bias, cv_offset_buildings.py)."""

    def test_worked_example(self):
        from rsi_models.metrics import best_logit_offset
        import numpy as np
        margin = np.array([-0.5, 0.2, -1.2, 1.0], dtype=np.float32)
        truth = np.array([1, 1, 0, 0])
        # offset 0: predicted [0, 1, 0, 1] -> tp 1, fp 1, fn 1: IoU 1/3. Any offset in (0.5, 1.2]
        # adds the first pixel: tp 2, fp 1: IoU 2/3, the best; the smallest such grid step is 0.6.
        best = best_logit_offset(margin, truth)
        self.assertAlmostEqual(best["offset"], 0.6)
        self.assertAlmostEqual(best["iou"], 2 / 3)
        self.assertAlmostEqual(best["iou_at_zero"], 1 / 3)

    def test_a_flat_optimum_keeps_offset_zero(self):
        from rsi_models.metrics import best_logit_offset
        import numpy as np
        best = best_logit_offset(np.array([2.5, -2.5]), np.array([1, 0]))  # right for |offset| < 2.5
        self.assertEqual(best["offset"], 0.0)
        self.assertEqual(best["iou"], 1.0)


class InriaFolds(unittest.TestCase):
    class Crop:
        def __init__(self, name):
            self.name = name

    def test_every_crop_is_held_out_exactly_once(self):
        crops = [self.Crop("inria/%s/c%02d.tif" % ("train" if i < 25 else "val", i)) for i in range(34)]
        held = []
        for k in range(3):
            kept, out = train_buildings.fold_split(list(reversed(crops)), k, 3)  # order of input irrelevant
            self.assertEqual(len(kept) + len(out), 34)
            self.assertFalse({c.name for c in kept} & {c.name for c in out})
            held.append([c.name for c in out])
        self.assertEqual([len(h) for h in held], [12, 11, 11])
        self.assertEqual(sorted(sum(held, [])), sorted(c.name for c in crops))
        self.assertEqual(held[1][:2], ["inria/train/c01.tif", "inria/train/c04.tif"])

    def test_fold_syntax(self):
        self.assertEqual(train_buildings.inria_fold("2/3"), (2, 3))
        for bad in ("3/3", "-1/3", "0/1", "a/b", "1"):
            with self.assertRaises(SystemExit):
                train_buildings.inria_fold(bad)


class OffsetApplied(unittest.TestCase):
    def test_offset_lands_in_the_building_bias_only(self):
        import os
        import tempfile
        import cv_offset_buildings
        from rsi_models import exporting
        from test_export import seg_doc, tiny_seg
        model = tiny_seg()
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = os.path.join(tmp, "a.pt"), os.path.join(tmp, "b.pt")
            exporting.export(model, seg_doc(), src)
            cv_offset_buildings.apply_offset(src, 0.7, dst, "0.0.2", {"offset": 0.7})
            a, _ = exporting.load_file(src)
            b, doc = exporting.load_file(dst)
        self.assertEqual(doc["version"], "0.0.2")
        self.assertEqual(doc["provenance"]["metrics"]["building_logit_offset"]["offset"], 0.7)
        x = torch.randn(1, 3, 32, 40)
        with torch.no_grad():
            ya, yb = a(x), b(x)
        self.assertLessEqual(float((yb[:, 0] - ya[:, 0]).abs().max()), 1e-5)
        self.assertLessEqual(float((yb[:, 1] - ya[:, 1] - 0.7).abs().max()), 1e-5)
