"""The bundled default models reach their accuracy floors on the shared data (computed here).

Floors: building IoU >= 0.55 on inria/test; EuroSAT accuracy >= 0.8 on the fixed validation split
(<Class>_11..14). Needs ../shared/data (or RSI_DATA_ROOT): fails, does not skip, without it.

Run from the repository root:  /usr/bin/python3 -m unittest discover -s tests/python
"""
import os
import unittest

import torch

import _paths
from rsi_models import evaluation, exporting, metadata

torch.set_num_threads(2)

BUILDING_IOU_FLOOR = 0.55
SCENE_ACCURACY_FLOOR = 0.8


def require_data(test):
    if not os.path.isdir(_paths.DATA_ROOT):
        test.fail("shared data folder not found at %s (expected ../shared/data next to the "
                  "repository, or set RSI_DATA_ROOT)" % _paths.DATA_ROOT)


def model_path(test, name):
    p = os.path.join(_paths.MODELS_DIR, name)
    if not os.path.isfile(p):
        test.fail("bundled model %s is missing" % p)
    return p


class DefaultModels(unittest.TestCase):
    def test_buildings_iou_floor(self):
        require_data(self)
        path = model_path(self, "buildings.pt")
        r = evaluation.evaluate_buildings(path, _paths.DATA_ROOT, "test")
        self.assertEqual(r["images"], 7)
        print("\nbuildings.pt on inria/test: IoU %.4f F1 %.4f" % (r["iou"], r["f1"]))
        self.assertGreaterEqual(r["iou"], BUILDING_IOU_FLOOR)

    def _scene(self, name, bands):
        require_data(self)
        path = model_path(self, name)
        r = evaluation.evaluate_scene(path, _paths.DATA_ROOT, "val")
        self.assertEqual(r["patches"], 40)
        print("\n%s on EuroSAT val: accuracy %.4f" % (name, r["accuracy"]))
        self.assertGreaterEqual(r["accuracy"], SCENE_ACCURACY_FLOOR)
        _, doc = exporting.load_file(path)
        self.assertEqual(doc["input"]["source_bands"], bands)

    def test_eurosat13_accuracy_floor(self):
        self._scene("eurosat13.pt", list(range(1, 14)))

    def test_eurosat_rgbn_accuracy_floor(self):
        self._scene("eurosat-rgbn.pt", [4, 3, 2, 8])

    def test_bundled_files_are_consistent(self):
        for name, task in (("buildings.pt", "segmentation"), ("eurosat13.pt", "scene"),
                           ("eurosat-rgbn.pt", "scene")):
            with self.subTest(model=name):
                path = model_path(self, name)
                self.assertLess(os.path.getsize(path), 25 * 1000 * 1000)
                doc = exporting.verify_file(path)  # hash, class count and golden values reproduce
                self.assertEqual(doc["task"], task)
                if task == "segmentation":
                    t = doc["tile"]
                    self.assertGreaterEqual(t["overlap"], 2 * t["halo"])
                    m, _ = exporting.load_file(path)
                    mo = t["multiple_of"]
                    with torch.no_grad():
                        y = m(torch.zeros(1, 3, 2 * mo, 3 * mo))
                    self.assertEqual(list(y.shape), [1, 2, 2 * mo, 3 * mo])


if __name__ == "__main__":
    unittest.main()
