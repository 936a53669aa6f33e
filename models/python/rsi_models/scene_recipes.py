"""EuroSAT scene-classifier recipes (fixed pooled features + linear layer) and their fitting.

Shared by models/python/select_scene_recipe.py (recipe selection by repeated stratified 5-fold
cross-validation on the 100 training patches) and models/python/train_scene.py (``--arch
FeatureSceneNet --recipe NAME``). A recipe = a feature configuration of ``nets.StatsSceneNet`` /
``nets.FeatureSceneNet``, an L2 strength of the linear layer (a number, or "nested": chosen from
``L2_GRID`` by cross-validation inside the training data it is given) and whether the classifier's
training features are augmented with the 8 dihedral transforms (flips / 90-degree rotations) of each
patch.
"""
import collections
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from . import nets

L2_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)
# Normalised-difference indices of the 13-band EuroSAT files (0-based FILE band indices; the files
# store B8A last: 0 B01, 1 B02, 2 B03, 3 B04, ..., 7 B08, 8 B09, 9 B10, 10 B11, 11 B12, 12 B8A).
INDICES_13 = collections.OrderedDict([
    ("NDVI", (7, 3)),   # (B08 - B04) / (B08 + B04)
    ("NDWI", (2, 7)),   # (B03 - B08) / (B03 + B08)  (McFeeters)
    ("NDBI", (10, 7)),  # (B11 - B08) / (B11 + B08)
])
_IDX = dict(index_a=[a for a, _ in INDICES_13.values()], index_b=[b for _, b in INDICES_13.values()])
_RF = dict(rf_filters=64, rf_size=3, rf_seed=0)

# The candidate set compared by select_scene_recipe.py, fixed before any of them was evaluated.
# "base" is the recipe of the eurosat13.pt / eurosat-rgbn.pt 1.0.0 files (StatsSceneNet, L2 0.01).
CANDIDATES = collections.OrderedDict([
    ("base", dict(arch="StatsSceneNet", kwargs=dict(scales=2), l2=0.01, aug=False,
                  desc="StatsSceneNet, 2 scales, L2 0.01 (current recipe)")),
    ("base-nl2", dict(arch="StatsSceneNet", kwargs=dict(scales=2), l2="nested", aug=False,
                      desc="StatsSceneNet, 2 scales, nested L2")),
    ("aniso3", dict(arch="FeatureSceneNet", kwargs=dict(scales=3, aniso=True), l2="nested",
                    aug=False, desc="+ h/v and diagonal anisotropy, 3 scales, nested L2")),
    ("tensor3", dict(arch="FeatureSceneNet", kwargs=dict(scales=3, tensor=True), l2="nested",
                     aug=False, desc="+ structure-tensor eigenvalues, 3 scales, nested L2")),
    ("index", dict(arch="FeatureSceneNet", kwargs=dict(scales=2, **_IDX), l2="nested", aug=False,
                   desc="+ NDVI/NDWI/NDBI statistics, nested L2")),
    ("rf-aug", dict(arch="FeatureSceneNet", kwargs=dict(scales=2, rf_symmetric=False, **_RF),
                    l2="nested", aug=True,
                    desc="+ 64 random 3x3 filters (MOSAIKS), dihedral-augmented fit, nested L2")),
    ("rf-sym", dict(arch="FeatureSceneNet", kwargs=dict(scales=2, rf_symmetric=True, **_RF),
                    l2="nested", aug=False,
                    desc="+ 64 random 3x3 filters, dihedral-symmetrised, nested L2")),
    ("combo", dict(arch="FeatureSceneNet",
                   kwargs=dict(scales=3, aniso=True, tensor=True, rf_symmetric=True, **_IDX, **_RF),
                   l2="nested", aug=False,
                   desc="aniso3 + tensor3 + index + rf-sym, nested L2")),
])


# Round 2 (session 9, 2026-11-29), fixed before any of them was evaluated: the classifier is starved
# of samples (10 patches per class, 91 features), so its training rows are augmented with the
# features of the 4 corner 48x48 crops of each patch (5 rows per patch; held-out patches are still
# classified whole). Compared with "base" under the same protocol and 2-point rule as round 1.
CANDIDATES_ROUND2 = collections.OrderedDict([
    ("base", CANDIDATES["base"]),
    ("crops", dict(arch="StatsSceneNet", kwargs=dict(scales=2), l2=0.01, aug="crops48",
                   desc="StatsSceneNet, 2 scales, L2 0.01, + corner 48x48 crop rows")),
    ("crops-nl2", dict(arch="StatsSceneNet", kwargs=dict(scales=2), l2="nested", aug="crops48",
                       desc="StatsSceneNet, 2 scales, nested L2, + corner 48x48 crop rows")),
])
CROP = 48


# Round 3 (session 10, 2026-11-29), fixed before any of them was evaluated: the same features as
# "base", a different classifier. With 10 patches per class and 91 features, a shrinkage linear
# discriminant (class means and a pooled within-class covariance shrunk towards a multiple of the
# identity) is the classic small-sample alternative to L2 logistic regression; its discriminant is
# linear, so it lands in the same linear layer (``fit_lda``). Same protocol and 2-point rule.
LDA_SHRINK_GRID = (0.1, 0.3, 0.5, 0.7, 0.9)
CANDIDATES_ROUND3 = collections.OrderedDict([
    ("base", CANDIDATES["base"]),
    ("lda-lw", dict(arch="StatsSceneNet", kwargs=dict(scales=2), l2=None, fit="lda",
                    shrink="ledoit-wolf", aug=False,
                    desc="StatsSceneNet features, shrinkage LDA (Ledoit-Wolf shrinkage)")),
    ("lda-nested", dict(arch="StatsSceneNet", kwargs=dict(scales=2), l2=None, fit="lda",
                        shrink="nested", aug=False,
                        desc="StatsSceneNet features, shrinkage LDA (shrinkage by nested 4-fold CV)")),
    ("ncm", dict(arch="StatsSceneNet", kwargs=dict(scales=2), l2=None, fit="lda", shrink=1.0,
                 aug=False, desc="StatsSceneNet features, nearest class mean (LDA, shrinkage 1)")),
])


# Round 4 (session 16, 2026-11-30), fixed before any of them was evaluated (docs/MODELS.md item 10):
# the features of "base", classified by averaging the softmax probabilities of many small L2 logistic
# layers (random subspaces of bands or features, or bootstrap samples of the patches), plus "base"
# without its quantile features. Same protocol and 2-point rule.
ENSEMBLE_MEMBERS = 31
ENSEMBLE_SEED = 4
_BASE13 = dict(arch="StatsSceneNet", kwargs=dict(scales=2), l2=0.01, aug=False)
CANDIDATES_ROUND4 = collections.OrderedDict([
    ("base", CANDIDATES["base"]),
    ("bands7", dict(_BASE13, fit="ensemble", members="bands", bands=7,
                    desc="31 L2-0.01 layers, each on the features of 7 random bands of 13, mean probability")),
    ("half", dict(_BASE13, fit="ensemble", members="features", features=46,
                  desc="31 L2-0.01 layers, each on 46 random features of 91, mean probability")),
    ("bag", dict(_BASE13, fit="ensemble", members="bootstrap",
                 desc="31 L2-0.01 layers on class-stratified bootstrap samples, mean probability")),
    ("noq", dict(_BASE13, fit="ensemble", members="no-quantiles",
                 desc="StatsSceneNet, 2 scales, L2 0.01, without the 10/50/90 % quantiles (52 features)")),
])


# Round 5 (session 18, 2026-11-30), fixed before any of them was evaluated (docs/MODELS.md item 11):
# round 4's best ("noq", +1.4 points, under the margin) suggests the linear layer gains from fewer,
# better-behaved features. The standard deviations and texture energies are positive and right-skewed
# (round 3 found the shared-Gaussian class model fits them badly); a log transform before
# standardisation makes them closer to symmetric, which suits a linear boundary. Candidates: "noq"
# re-measured, the log transform with and without the quantiles, and "noq" with a third texture scale.
# Same protocol and 2-point rule.
_NOQ = dict(_BASE13, fit="ensemble", members="no-quantiles")
CANDIDATES_ROUND5 = collections.OrderedDict([
    ("base", CANDIDATES["base"]),
    ("noq", CANDIDATES_ROUND4["noq"]),
    ("log", dict(_BASE13, log_energies=True,
                 desc="StatsSceneNet, 2 scales, L2 0.01, log of the std and texture-energy features")),
    ("noq-log", dict(_NOQ, log_energies=True,
                     desc="noq with the log of the std and texture-energy features (52 features)")),
    ("noq-3s", dict(_NOQ, kwargs=dict(scales=3),
                    desc="noq with a third texture scale (65 features)")),
])


# Round 6 (session 19, 2026-11-30), fixed before any of them was evaluated (docs/MODELS.md item 12):
# rounds 1-5 all fitted linear boundaries (logistic, LDA, averaged logistic layers) and put them at
# 0.79-0.81. Tree ensembles are the untried family: they need no standardisation, are indifferent to
# the skew of the std / texture-energy features (monotone transforms do not change a split) and find
# interactions such as "bright AND thin" that a linear layer cannot. Random forests are the usual
# choice for a few hundred handcrafted features per sample. Candidates (scikit-learn, 500 trees,
# sqrt(features) per split, fully grown, random_state ENSEMBLE_SEED): a random forest on base's 91
# features, on noq-3s's 65, extremely randomised trees on base's features, and the mean of the random
# forest's and base's logistic probabilities. Same protocol and 2-point rule.
FOREST_TREES = 500
CANDIDATES_ROUND6 = collections.OrderedDict([
    ("base", CANDIDATES["base"]),
    ("rf", dict(_BASE13, fit="forest", forest="random", columns="all",
                desc="random forest, 500 trees, sqrt features per split, on base's 91 features")),
    ("rf-noq3s", dict(_BASE13, kwargs=dict(scales=3), fit="forest", forest="random", columns="no-quantiles",
                      desc="random forest on noq-3s's 65 features (3 texture scales, no quantiles)")),
    ("et", dict(_BASE13, fit="forest", forest="extra", columns="all",
                desc="extremely randomised trees, 500 trees, sqrt features per split, base's features")),
    ("rf+lr", dict(_BASE13, fit="forest", forest="random", columns="all", with_linear=True,
                   desc="mean of the probabilities of rf and of base's L2-0.01 logistic layer")),
])


ALL_RECIPES = collections.OrderedDict(list(CANDIDATES.items()) + [
    (k, v) for k, v in list(CANDIDATES_ROUND2.items()) + list(CANDIDATES_ROUND3.items())
    + list(CANDIDATES_ROUND4.items()) + list(CANDIDATES_ROUND5.items())
    + list(CANDIDATES_ROUND6.items()) if k not in CANDIDATES])


def build(recipe: dict, in_channels: int, num_classes: int, in_mean: Sequence[float],
          in_std: Sequence[float]) -> torch.nn.Module:
    """The (untrained) network of a recipe; ``in_mean``/``in_std`` = input normalisation (reflectance
    units), needed by the spectral-index features."""
    if recipe["kwargs"].get("index_a") and in_channels != 13:
        raise ValueError("spectral-index recipes need the 13-band EuroSAT band set")
    return nets.build(recipe["arch"], arch_kwargs(recipe, in_channels, num_classes, in_mean, in_std))


def arch_kwargs(recipe: dict, in_channels: int, num_classes: int, in_mean, in_std) -> dict:
    """The ``nets.build`` keyword arguments of a recipe's network (stored in checkpoints)."""
    kw = dict(recipe["kwargs"])
    kw.update(in_channels=in_channels, num_classes=num_classes)
    if recipe["arch"] == "FeatureSceneNet" and kw.get("index_a"):
        kw.update(in_mean=[float(v) for v in in_mean], in_std=[float(v) for v in in_std])
    return kw


def dihedral(x: torch.Tensor) -> List[torch.Tensor]:
    """The 8 dihedral transforms of N x C x H x W patches (identity first)."""
    out = []
    for k in range(4):
        r = torch.rot90(x, k, [2, 3])
        out.append(r)
        out.append(torch.flip(r, [3]))
    return out


def corner_crops(x: torch.Tensor, size: int = CROP) -> List[torch.Tensor]:
    """The patches whole, then their 4 corner size x size crops."""
    h, w = x.shape[2], x.shape[3]
    return [x] + [x[:, :, y:y + size, x0:x0 + size] for y in (0, h - size) for x0 in (0, w - size)]


@torch.no_grad()
def features(model: torch.nn.Module, xn: torch.Tensor, aug) -> torch.Tensor:
    """Pooled features of normalised patches: N x F, or (aug True: the 8 dihedral transforms;
    "crops48": whole + 4 corner crops) T x N x F, the untransformed patches first."""
    if not aug:
        return model.features(xn)
    views = corner_crops(xn) if aug == "crops48" else dihedral(xn)
    return torch.stack([model.features(t.contiguous()) for t in views])


LOG_EPS = 1e-6


def log_energy_columns(in_channels: int, scales: int) -> List[int]:
    """Columns of ``StatsSceneNet.features`` holding positive, skewed values: the standard deviation
    block and the texture-energy blocks (mean first, quantiles after; see ``stats_columns``)."""
    return list(range(in_channels, (2 + scales) * in_channels))


@torch.no_grad()
def recipe_features(recipe: dict, model: torch.nn.Module, xn: torch.Tensor) -> torch.Tensor:
    """``features`` of a recipe, with the log transform of its std / texture-energy columns when the
    recipe asks for it (``log_energies``)."""
    feats = features(model, xn, recipe["aug"])
    if recipe.get("log_energies"):
        if recipe["arch"] != "StatsSceneNet":
            raise ValueError("log_energies needs StatsSceneNet features")
        cols = torch.tensor(log_energy_columns(int(xn.shape[1]), int(recipe["kwargs"].get("scales", 2))))
        feats = feats.clone()
        feats[..., cols] = torch.log(feats[..., cols] + LOG_EPS)
    return feats


def _flat(feats: torch.Tensor, idx: np.ndarray, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Training rows for the patches ``idx`` (all 8 transforms when feats is 8 x N x F)."""
    t = torch.from_numpy(idx)
    if feats.dim() == 3:
        return feats[:, t].reshape(-1, feats.shape[2]), y[t].repeat(feats.shape[0])
    return feats[t], y[t]


def _plain(feats: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
    """Evaluation rows: the untransformed patches only."""
    t = torch.from_numpy(idx)
    return feats[0, t] if feats.dim() == 3 else feats[t]


def fit_linear(model: torch.nn.Module, feats: torch.Tensor, y: torch.Tensor, l2: float):
    """Standardise features (buffers) and fit the linear layer by full-batch L-BFGS (deterministic)."""
    torch.manual_seed(0)
    with torch.no_grad():
        model.feat_mean.copy_(feats.mean(0))
        model.feat_std.copy_(feats.std(0).clamp_min(1e-6))
        model.fc.reset_parameters()
    a = (feats - model.feat_mean) / model.feat_std
    opt = torch.optim.LBFGS(model.fc.parameters(), max_iter=500, line_search_fn=None)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model.fc(a), y) + l2 * (model.fc.weight ** 2).sum()
        loss.backward()
        return loss
    opt.step(closure)
    return model


@torch.no_grad()
def logits(model: torch.nn.Module, feats: torch.Tensor) -> torch.Tensor:
    if isinstance(model, (Ensemble, Forest)):
        return model.log_probabilities(feats)
    return model.fc((feats - model.feat_mean) / model.feat_std)


def stats_columns(bands: Sequence[int], in_channels: int = 13, scales: int = 2,
                  quantiles: bool = True) -> List[int]:
    """Columns of ``StatsSceneNet.features`` that belong to ``bands``: its layout is mean, std and one
    texture energy per scale, each a block of ``in_channels`` columns, then 3 quantiles per band."""
    per_band_blocks = 2 + scales
    cols = []
    for b in bands:
        cols += [k * in_channels + b for k in range(per_band_blocks)]
        if quantiles:
            cols += [per_band_blocks * in_channels + 3 * b + q for q in range(3)]
    return sorted(cols)


class LinearMember(torch.nn.Module):
    """One member of an ensemble: standardisation buffers and a linear layer over some columns."""

    def __init__(self, columns: Sequence[int], num_classes: int):
        super().__init__()
        self.register_buffer("columns", torch.tensor(list(columns), dtype=torch.long))
        self.register_buffer("feat_mean", torch.zeros(len(columns)))
        self.register_buffer("feat_std", torch.ones(len(columns)))
        self.fc = torch.nn.Linear(len(columns), num_classes)


class Ensemble:
    """Members whose softmax probabilities are averaged; ``log_probabilities`` = log of that mean."""

    def __init__(self, members: List[LinearMember]):
        self.members = members
        self.n_features = len(torch.unique(torch.cat([m.columns for m in members])))

    @torch.no_grad()
    def log_probabilities(self, feats: torch.Tensor) -> torch.Tensor:
        p = torch.stack([F.softmax(logits(m, feats[:, m.columns]), 1) for m in self.members]).mean(0)
        return p.clamp_min(1e-30).log()


def ensemble_plan(recipe: dict, n_features: int, in_channels: int = 13, scales: int = 2):
    """Each member's columns (fixed by ENSEMBLE_SEED, the same in every fold) and whether members fit
    on bootstrap samples."""
    rng = np.random.RandomState(ENSEMBLE_SEED)
    kind = recipe["members"]
    if kind == "bands":
        cols = [stats_columns(sorted(rng.choice(in_channels, recipe["bands"], replace=False)), in_channels, scales)
                for _ in range(ENSEMBLE_MEMBERS)]
    elif kind == "features":
        cols = [sorted(rng.choice(n_features, recipe["features"], replace=False)) for _ in range(ENSEMBLE_MEMBERS)]
    elif kind == "bootstrap":
        cols = [list(range(n_features))] * ENSEMBLE_MEMBERS
    elif kind == "no-quantiles":
        cols = [stats_columns(range(in_channels), in_channels, scales, quantiles=False)]
    else:
        raise ValueError("unknown ensemble members: %s" % kind)
    return cols, kind == "bootstrap"


def stratified_bootstrap(rng: np.random.RandomState, idx: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """A resample of ``idx`` with replacement, drawn within each class (class counts kept)."""
    return np.concatenate([rng.choice(idx[labels == c], int((labels == c).sum()), replace=True)
                           for c in np.unique(labels)])


def fit_ensemble(recipe: dict, feats: torch.Tensor, y: torch.Tensor, idx: np.ndarray,
                 num_classes: int) -> Ensemble:
    """Fit every member of an ensemble recipe on the samples ``idx`` (bootstrap members: a
    class-stratified resample of idx drawn from RandomState(ENSEMBLE_SEED))."""
    columns, bootstrap = ensemble_plan(recipe, int(feats.shape[1]),
                                       scales=int(recipe["kwargs"].get("scales", 2)))
    rng = np.random.RandomState(ENSEMBLE_SEED)
    labels = y[torch.from_numpy(idx)].numpy()
    members = []
    for cols in columns:
        rows = stratified_bootstrap(rng, idx, labels) if bootstrap else idx
        t = torch.from_numpy(rows)
        members.append(fit_linear(LinearMember(cols, num_classes), feats[t][:, cols], y[t], float(recipe["l2"])))
    return Ensemble(members)


class Forest:
    """A tree ensemble (scikit-learn) over some feature columns; ``log_probabilities`` = log of its mean
    leaf class fractions, or of their mean with a logistic layer's softmax when ``linear`` is set."""

    def __init__(self, trees, columns: Sequence[int], linear=None):
        self.trees = trees
        self.columns = torch.tensor(list(columns), dtype=torch.long)
        self.linear = linear
        self.n_features = len(columns)

    @torch.no_grad()
    def log_probabilities(self, feats: torch.Tensor) -> torch.Tensor:
        p = torch.from_numpy(self.trees.predict_proba(feats[:, self.columns].double().numpy())).float()
        if self.linear is not None:
            p = (p + F.softmax(logits(self.linear, feats), 1)) / 2
        return p.clamp_min(1e-30).log()


def fit_forest(recipe: dict, feats: torch.Tensor, y: torch.Tensor, idx: np.ndarray, make_model) -> Forest:
    """Fit a tree-ensemble recipe on the samples ``idx`` (deterministic: random_state ENSEMBLE_SEED)."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier  # only the selection needs it
    scales = int(recipe["kwargs"].get("scales", 2))
    in_channels = 13
    if recipe["columns"] == "all":
        cols = list(range(int(feats.shape[1])))
    elif recipe["columns"] == "no-quantiles":
        cols = stats_columns(range(in_channels), in_channels, scales, quantiles=False)
    else:
        raise ValueError("unknown forest columns: %s" % recipe["columns"])
    kind = {"random": RandomForestClassifier, "extra": ExtraTreesClassifier}[recipe["forest"]]
    trees = kind(n_estimators=FOREST_TREES, max_features="sqrt", random_state=ENSEMBLE_SEED, n_jobs=1)
    t = torch.from_numpy(idx)
    trees.fit(feats[t][:, cols].double().numpy(), y[t].numpy())
    linear = fit_linear(make_model(), feats[t], y[t], float(recipe["l2"])) if recipe.get("with_linear") else None
    return Forest(trees, cols, linear)


def stratified_folds(y: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold id per sample: each class's samples randomly permuted (RandomState(seed)) and dealt out
    in equal consecutive groups, so every fold holds the same number of each class."""
    rng = np.random.RandomState(seed)
    fold = np.zeros(len(y), dtype=np.int64)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        perm = rng.permutation(idx)
        for j, i in enumerate(perm):
            fold[i] = (j * n_folds) // len(perm)
    return fold


def cv_scores(make_model, feats: torch.Tensor, y: torch.Tensor, idx: np.ndarray,
              fold: np.ndarray, l2s: Sequence[float]) -> Dict[float, Tuple[float, float]]:
    """Cross-validated (accuracy, mean log-loss) of each L2 strength over the samples ``idx`` with
    the given fold ids (one per element of idx)."""
    out = {}
    for l2 in l2s:
        correct, nll, n = 0, 0.0, 0
        for k in np.unique(fold):
            tr, te = idx[fold != k], idx[fold == k]
            m = fit_linear(make_model(), *_flat(feats, tr, y), l2)
            lg = logits(m, _plain(feats, te))
            yt = y[torch.from_numpy(te)]
            correct += int((lg.argmax(1) == yt).sum())
            nll += float(F.cross_entropy(lg, yt, reduction="sum"))
            n += len(te)
        out[l2] = (correct / n, nll / n)
    return out


def choose_l2(scores: Dict[float, Tuple[float, float]]) -> float:
    """Highest CV accuracy; ties broken by the lower log-loss."""
    return min(scores, key=lambda l2: (-scores[l2][0], scores[l2][1]))


def nested_l2(make_model, feats, y, idx: np.ndarray, seed: int) -> float:
    """L2 chosen from L2_GRID by stratified 4-fold CV inside the training samples ``idx``."""
    fold = stratified_folds(y[torch.from_numpy(idx)].numpy(), 4, seed)
    return choose_l2(cv_scores(make_model, feats, y, idx, fold, L2_GRID))


def ledoit_wolf_shrinkage(centred: torch.Tensor) -> float:
    """Ledoit-Wolf (2004) shrinkage intensity towards mu * I for the covariance of the rows of
    ``centred`` (n x p, already centred): the estimate of E||S - Sigma||^2 over ||S - mu I||^2,
    clamped to [0, 1]."""
    x = centred.double()
    n, p = x.shape
    s = x.t() @ x / n
    mu = float(torch.trace(s)) / p
    d2 = float(((s - mu * torch.eye(p, dtype=s.dtype)) ** 2).sum())
    b2 = sum(float(((torch.outer(r, r) - s) ** 2).sum()) for r in x) / n ** 2
    return float(min(max(b2 / max(d2, 1e-12), 0.0), 1.0))


def fit_lda(model: torch.nn.Module, feats: torch.Tensor, y: torch.Tensor, shrink: float):
    """Standardise features (buffers) and set the linear layer to the shrinkage linear discriminant:
    pooled within-class covariance S, S_shrink = (1 - shrink) S + shrink (tr S / p) I, weights
    S_shrink^-1 mu_k, bias -mu_k' S_shrink^-1 mu_k / 2 (equal class priors)."""
    with torch.no_grad():
        model.feat_mean.copy_(feats.mean(0))
        model.feat_std.copy_(feats.std(0).clamp_min(1e-6))
        a = ((feats - model.feat_mean) / model.feat_std).double()
        classes = int(model.fc.weight.shape[0])
        means = torch.stack([a[y == c].mean(0) for c in range(classes)])
        centred = a - means[y]
        p = a.shape[1]
        s = centred.t() @ centred / max(1, a.shape[0] - classes)
        target = float(torch.trace(s)) / p * torch.eye(p, dtype=s.dtype)
        s = (1.0 - shrink) * s + shrink * target
        w = torch.linalg.solve(s, means.t()).t()  # classes x p
        model.fc.weight.copy_(w.float())
        model.fc.bias.copy_((-0.5 * (w * means).sum(1)).float())
    return model


def lda_shrinkage(recipe: dict, make_model, feats, y, idx: np.ndarray, seed: int) -> float:
    """A recipe's LDA shrinkage on the samples ``idx``: fixed, Ledoit-Wolf, or nested 4-fold CV over
    LDA_SHRINK_GRID (highest accuracy; ties: the lower log-loss, then the smaller shrinkage)."""
    shrink = recipe["shrink"]
    t = torch.from_numpy(idx)
    if shrink == "ledoit-wolf":
        m = make_model()
        a = (feats[t] - feats[t].mean(0)) / feats[t].std(0).clamp_min(1e-6)
        yy = y[t]
        means = torch.stack([a[yy == c].mean(0) for c in range(int(m.fc.weight.shape[0]))])
        return ledoit_wolf_shrinkage(a - means[yy])
    if shrink == "nested":
        fold = stratified_folds(y[t].numpy(), 4, seed)
        scores = {}
        for lam in LDA_SHRINK_GRID:
            correct, nll, n = 0, 0.0, 0
            for k in np.unique(fold):
                tr, te = idx[fold != k], idx[fold == k]
                m = fit_lda(make_model(), feats[torch.from_numpy(tr)], y[torch.from_numpy(tr)], lam)
                lg = logits(m, feats[torch.from_numpy(te)])
                yt = y[torch.from_numpy(te)]
                correct += int((lg.argmax(1) == yt).sum())
                nll += float(F.cross_entropy(lg, yt, reduction="sum"))
                n += len(te)
            scores[lam] = (correct / n, nll / n)
        return min(scores, key=lambda lam: (-scores[lam][0], scores[lam][1], lam))
    return float(shrink)


def fit_recipe(recipe: dict, make_model, feats, y, idx: np.ndarray, seed: int = 0):
    """Fit a recipe on the samples ``idx`` (L2 or LDA shrinkage nested-chosen when the recipe says so).
    Returns (fitted model, l2 or shrinkage used)."""
    if recipe.get("fit") == "ensemble":
        if feats.dim() == 3:
            raise ValueError("ensemble recipes take no feature augmentation")
        return fit_ensemble(recipe, feats, y, idx, int(make_model().fc.weight.shape[0])), float(recipe["l2"])
    if recipe.get("fit") == "forest":
        if feats.dim() == 3:
            raise ValueError("forest recipes take no feature augmentation")
        return fit_forest(recipe, feats, y, idx, make_model), float(recipe["l2"])
    if recipe.get("fit") == "lda":
        if feats.dim() == 3:
            raise ValueError("LDA recipes take no feature augmentation")
        shrink = lda_shrinkage(recipe, make_model, feats, y, idx, seed)
        t = torch.from_numpy(idx)
        return fit_lda(make_model(), feats[t], y[t], shrink), shrink
    l2 = recipe["l2"]
    if l2 == "nested":
        l2 = nested_l2(make_model, feats, y, idx, seed)
    return fit_linear(make_model(), *_flat(feats, idx, y), float(l2)), float(l2)
