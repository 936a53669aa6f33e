"""Classifier fits of the EuroSAT scene recipes (rsi_models.scene_recipes): the shrinkage linear
discriminant and the Ledoit-Wolf shrinkage, on synthetic features with known answers."""
import unittest

import numpy as np
import torch

import _paths  # noqa: F401
from rsi_models import nets, scene_recipes as sr


def stats_net(classes: int = 3) -> torch.nn.Module:
    return nets.StatsSceneNet(in_channels=1, num_classes=classes, scales=1)


class ShrinkageLda(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)
        self.features = stats_net().features(torch.zeros(1, 1, 8, 8)).shape[1]

    def test_full_shrinkage_is_the_nearest_class_mean(self):
        # shrink 1: S becomes (tr S / p) I, so every class score is (mu_k . a - |mu_k|^2 / 2) / c and the
        # argmax is the nearest standardised class mean
        p = self.features
        y = torch.arange(3).repeat_interleave(20)
        centres = torch.randn(3, p) * 3
        feats = centres[y] + torch.randn(60, p)
        m = sr.fit_lda(stats_net(), feats, y, 1.0)
        a = (feats - m.feat_mean) / m.feat_std
        means = torch.stack([a[y == c].mean(0) for c in range(3)])
        nearest = torch.cdist(a, means).argmin(1)
        self.assertTrue(torch.equal(sr.logits(m, feats).argmax(1), nearest))
        # and the scores differ from -|a - mu_k|^2 / 2 by a per-row constant times one positive scale
        score = sr.logits(m, feats).double()
        ref = -0.5 * torch.cdist(a.double(), means.double()) ** 2
        diff = (score - score[:, :1]) / (ref - ref[:, :1] + 1e-30)
        self.assertAlmostEqual(float(diff[:, 1:].std()), 0.0, places=4)

    def test_separable_classes_are_classified_exactly(self):
        y = torch.arange(3).repeat_interleave(10)
        feats = torch.randn(30, self.features) * 0.1
        feats[:, 0] += y.float() * 5  # only the first feature separates the classes
        m = sr.fit_lda(stats_net(), feats, y, 0.3)
        self.assertTrue(torch.equal(sr.logits(m, feats).argmax(1), y))

    def test_ledoit_wolf_shrinks_isotropic_noise_more_than_a_low_rank_signal(self):
        torch.manual_seed(1)
        iso = torch.randn(40, 30)
        low_rank = torch.randn(40, 2) @ torch.randn(2, 30) * 5 + 0.1 * torch.randn(40, 30)
        lw_iso = sr.ledoit_wolf_shrinkage(iso - iso.mean(0))
        lw_low = sr.ledoit_wolf_shrinkage(low_rank - low_rank.mean(0))
        self.assertGreater(lw_iso, 0.5)   # 40 samples of 30 isotropic dimensions: mostly noise
        self.assertLess(lw_low, 0.2)      # a strong two-dimensional structure: little shrinkage
        self.assertGreaterEqual(lw_low, 0.0)

    def test_recipes_fit_through_fit_recipe(self):
        y = torch.arange(10).repeat_interleave(4)
        feats = torch.randn(40, self.features) + torch.randn(10, self.features)[y] * 2
        idx = np.arange(40)
        for name in ("lda-lw", "lda-nested", "ncm"):
            rec = dict(sr.CANDIDATES_ROUND3[name])
            m, shrink = sr.fit_recipe(rec, lambda: stats_net(10), feats, y, idx, seed=0)
            self.assertTrue(0.0 <= shrink <= 1.0, name)
            if name == "ncm":
                self.assertEqual(shrink, 1.0)
            if name == "lda-nested":
                self.assertIn(shrink, sr.LDA_SHRINK_GRID)
            self.assertGreaterEqual(float((sr.logits(m, feats).argmax(1) == y).float().mean()), 0.9, name)


class Ensembles(unittest.TestCase):
    def test_stats_columns_are_the_columns_a_band_moves(self):
        net = nets.StatsSceneNet(in_channels=13, num_classes=10, scales=2)
        torch.manual_seed(2)
        x = torch.randn(1, 13, 16, 16)
        for band in (0, 7, 12):
            moved = x.clone()
            moved[:, band] = moved[:, band] * 3 + 1
            changed = (net.features(moved) - net.features(x)).abs()[0] > 1e-6
            self.assertEqual(torch.nonzero(changed).flatten().tolist(), sr.stats_columns([band]), band)
        self.assertEqual(len(sr.stats_columns(range(13))), 91)
        self.assertEqual(len(sr.stats_columns(range(13), quantiles=False)), 52)

    def data(self):
        torch.manual_seed(3)
        y = torch.arange(10).repeat_interleave(6)
        feats = torch.randn(60, 91) + torch.randn(10, 91)[y] * 1.5
        return feats, y, np.arange(60)

    def test_a_one_member_ensemble_is_its_linear_layer(self):
        feats, y, idx = self.data()
        m, _ = sr.fit_recipe(sr.CANDIDATES_ROUND4["noq"], lambda: stats_net(10), feats, y, idx)
        self.assertEqual(m.n_features, 52)
        cols = sr.stats_columns(range(13), quantiles=False)
        single = sr.fit_linear(sr.LinearMember(cols, 10), feats[:, cols], y, 0.01)
        expected = torch.log_softmax(sr.logits(single, feats[:, cols]), 1)
        self.assertTrue(torch.allclose(sr.logits(m, feats), expected, atol=1e-5))

    def test_ensembles_average_probabilities_of_their_members(self):
        feats, y, idx = self.data()
        for name in ("bands7", "half", "bag"):
            m, l2 = sr.fit_recipe(sr.CANDIDATES_ROUND4[name], lambda: stats_net(10), feats, y, idx)
            self.assertEqual(l2, 0.01)
            self.assertEqual(len(m.members), sr.ENSEMBLE_MEMBERS, name)
            lp = sr.logits(m, feats)
            self.assertTrue(torch.allclose(lp.exp().sum(1), torch.ones(60), atol=1e-5), name)
            mean = torch.stack([torch.softmax(sr.logits(k, feats[:, k.columns]), 1) for k in m.members]).mean(0)
            self.assertTrue(torch.allclose(lp.exp(), mean, atol=1e-6), name)
            self.assertGreaterEqual(float((lp.argmax(1) == y).float().mean()), 0.9, name)
        bands = sr.ensemble_plan(sr.CANDIDATES_ROUND4["bands7"], 91)[0]
        self.assertTrue(all(len(c) == 49 for c in bands))
        self.assertGreater(len({tuple(c) for c in bands}), 20)  # distinct subsets, fixed by the seed
        self.assertEqual(bands, sr.ensemble_plan(sr.CANDIDATES_ROUND4["bands7"], 91)[0])

    def test_bootstrap_members_keep_the_class_counts(self):
        labels = np.array([0] * 5 + [1] * 3 + [2] * 8)
        idx = np.arange(100, 116)
        rng = np.random.RandomState(0)
        draws = [sr.stratified_bootstrap(rng, idx, labels) for _ in range(20)]
        for rows in draws:
            self.assertEqual(np.bincount(labels[rows - 100]).tolist(), [5, 3, 8])
        self.assertTrue(any(len(set(r.tolist())) < 16 for r in draws))  # with replacement
        self.assertGreater(len({tuple(r.tolist()) for r in draws}), 10)
        feats, y, all_idx = self.data()
        m = sr.fit_ensemble(sr.CANDIDATES_ROUND4["bag"], feats, y, all_idx, 10)
        w = torch.stack([k.fc.weight for k in m.members])
        self.assertGreater(float((w[0] - w[1]).abs().max()), 1e-3)  # members fit different resamples
    def test_log_energies_transform_only_the_std_and_texture_columns(self):
        # StatsSceneNet(13 bands, 2 scales): mean 0..12, std 13..25, texture 26..51, quantiles 52..90
        self.assertEqual(sr.log_energy_columns(13, 2), list(range(13, 52)))
        self.assertEqual(sr.log_energy_columns(13, 3), list(range(13, 65)))
        torch.manual_seed(5)
        xn = torch.randn(4, 13, 16, 16)
        net = nets.StatsSceneNet(13, 10, scales=2)
        plain = sr.features(net, xn, False)
        logged = sr.recipe_features(sr.CANDIDATES_ROUND5["log"], net, xn)
        cols = torch.tensor(sr.log_energy_columns(13, 2))
        keep = torch.tensor([c for c in range(91) if c not in set(cols.tolist())])
        self.assertTrue(torch.equal(logged[:, keep], plain[:, keep]))
        self.assertTrue(torch.allclose(logged[:, cols], torch.log(plain[:, cols] + sr.LOG_EPS)))
        self.assertTrue(torch.equal(sr.recipe_features(sr.CANDIDATES_ROUND5["noq"], net, xn), plain))

    def test_a_third_scale_without_quantiles_uses_65_columns(self):
        torch.manual_seed(6)
        y = torch.arange(10).repeat_interleave(6)
        feats = torch.randn(60, 104) + torch.randn(10, 104)[y] * 1.5  # 13 x (2 + 3 + 3)
        m, _ = sr.fit_recipe(sr.CANDIDATES_ROUND5["noq-3s"], lambda: nets.StatsSceneNet(13, 10, 3),
                             feats, y, np.arange(60))
        self.assertEqual(m.n_features, 65)
        self.assertEqual(m.members[0].columns.tolist(), list(range(65)))


class Forests(unittest.TestCase):
    """Round 6's tree ensembles (scikit-learn): columns, determinism and the probability average."""

    def data(self, features=104):
        torch.manual_seed(7)
        y = torch.arange(10).repeat_interleave(6)
        return torch.randn(60, features) + torch.randn(10, features)[y] * 1.5, y, np.arange(60)

    def test_a_forest_on_the_third_scale_without_quantiles_uses_65_columns(self):
        feats, y, idx = self.data()
        m, _ = sr.fit_recipe(sr.CANDIDATES_ROUND6["rf-noq3s"], lambda: nets.StatsSceneNet(13, 10, 3),
                             feats, y, idx)
        self.assertEqual(m.n_features, 65)
        self.assertEqual(m.columns.tolist(), sr.stats_columns(range(13), 13, 3, quantiles=False))
        # a fully grown forest separates its own training rows; probabilities are a distribution
        p = sr.logits(m, feats).exp()
        self.assertTrue(torch.allclose(p.sum(1), torch.ones(60), atol=1e-5))
        self.assertTrue(torch.equal(p.argmax(1), y))

    def test_forests_are_deterministic(self):
        feats, y, idx = self.data(91)
        a, _ = sr.fit_recipe(sr.CANDIDATES_ROUND6["et"], lambda: nets.StatsSceneNet(13, 10, 2), feats, y, idx[:40])
        b, _ = sr.fit_recipe(sr.CANDIDATES_ROUND6["et"], lambda: nets.StatsSceneNet(13, 10, 2), feats, y, idx[:40])
        self.assertTrue(torch.equal(sr.logits(a, feats), sr.logits(b, feats)))

    def test_the_mixed_recipe_averages_forest_and_logistic_probabilities(self):
        feats, y, idx = self.data(91)
        mixed, _ = sr.fit_recipe(sr.CANDIDATES_ROUND6["rf+lr"], lambda: nets.StatsSceneNet(13, 10, 2), feats, y, idx)
        forest, _ = sr.fit_recipe(sr.CANDIDATES_ROUND6["rf"], lambda: nets.StatsSceneNet(13, 10, 2), feats, y, idx)
        linear, _ = sr.fit_recipe(sr.CANDIDATES_ROUND6["base"], lambda: nets.StatsSceneNet(13, 10, 2), feats, y, idx)
        expected = (sr.logits(forest, feats).exp() + torch.softmax(sr.logits(linear, feats), 1)) / 2
        self.assertTrue(torch.allclose(sr.logits(mixed, feats).exp(), expected, atol=1e-5))


if __name__ == "__main__":
    unittest.main()
