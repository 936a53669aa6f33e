#!/usr/bin/python3
"""Check this repository's RSP models against the OFFICIAL RSP code, and record derived facts.

Needs a checkout of github.com/ViTAE-Transformer/RSP OUTSIDE the repository (--official-dir, the
folder holding "Scene Recognition" and "Semantic Segmentation"); timm / mmcv / mmseg are not
needed (official_shims.py stands in for the few helpers the model files import).

For each backbone (ResNet-50, Swin-T, ViTAEv2-S):
 1. keys: the full-size official scene classifier and mmseg backbone state_dict keys + shapes must
    equal ours; written to reference/rsp_keys.json.
 2. conversion: the official classifier, random-initialised with a fixed seed (official init,
    then rsp_digest.fill_fan_in so activations are far from trivial), is saved in the official
    checkpoint format ({'model', 'optimizer', 'lr_scheduler', 'epoch', 'config': pickled fake
    yacs CfgNode}), converted with rsi_convert.py, and the TorchScript file is compared with the
    official model at 224 and two other sizes (max abs difference <= 1e-4). Sizes the official
    classifier cannot run (it hard-codes its input size) are compared against the official mmseg
    backbone carrying the same weights + the classifier's norm / pooling / head.
    Segmentation: an mmseg-format checkpoint (backbone.* = official mmseg backbone, heads from
    upernet.py, meta CLASSES/PALETTE) is converted and the file's logits are compared with
    official backbone features -> the same heads; the official backbone outputs are also compared
    feature-map by feature-map at three sizes.
 3. digests for CI: depth-reduced official models with fill_fan_in(seed=0) weights, output
    digests on the ramp input -> reference/rsp_digests.json (tests/python/test_foundation_rsp.py
    rebuilds OUR models with the same weights and must reproduce them).

Usage: /usr/bin/python3 models/python/fidelity/rsp_fidelity.py --official-dir /work/official
"""
import argparse
import json
import os
import sys
import tempfile
import time
import types

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
import official_shims as shims  # noqa: E402
import rsi_convert  # noqa: E402
from rsi_models import exporting, metadata  # noqa: E402
from rsi_models.foundation import resnet, swin, vitae_v2  # noqa: E402
from rsi_models.foundation import rsp_digest as rd  # noqa: E402
from rsi_models.foundation.upernet import FCNHead, UPerHead  # noqa: E402

TOL = 1e-4
REF_DIR = os.path.join(HERE, "reference")
# depth-reduced configurations whose digests CI re-checks (every code path still exercised:
# ResNet downsample + identity blocks, Swin shifted blocks, ViTAE windowed + global cells)
CI_DEPTHS = {"resnet50": [2, 1, 1, 2], "swin_t": [2, 2, 2, 2], "vitaev2_s": [1, 1, 1, 1]}
SEG_IN = {"resnet50": [256, 512, 1024, 2048], "swin_t": [96, 192, 384, 768], "vitaev2_s": [64, 128, 256, 512]}
ARCH = {"resnet50": "rsp-resnet50", "swin_t": "rsp-swin-t", "vitaev2_s": "rsp-vitaev2-s"}


def fake_yacs_config():
    """An instance of a class named yacs.config.CfgNode whose module vanishes after pickling."""
    mod = types.ModuleType("yacs.config")

    class CfgNode(dict):
        pass
    CfgNode.__module__ = "yacs.config"
    CfgNode.__qualname__ = "CfgNode"
    mod.CfgNode = CfgNode
    sys.modules.setdefault("yacs", types.ModuleType("yacs"))
    sys.modules["yacs.config"] = mod
    cfg = CfgNode(MODEL=CfgNode(TYPE="x", NUM_CLASSES=51), DATA=CfgNode(IMG_SIZE=224))
    return cfg


def save_official(path, sd, meta=None, scene=True):
    if scene:
        cfg = fake_yacs_config()
        obj = {"model": sd, "optimizer": {"state": {}, "param_groups": [{"lr": 5e-4, "params": [0, 1]}]},
               "lr_scheduler": {"last_epoch": 3}, "max_accuracy": 91.5, "epoch": 3, "config": cfg}
    else:
        obj = {"meta": meta, "state_dict": sd, "optimizer": {"state": {}, "param_groups": []}}
    torch.save(obj, path)
    sys.modules.pop("yacs.config", None)
    sys.modules.pop("yacs", None)


def official_scene(name, depths=None, img_size=224):
    r50, Swin, vit = SCENE
    if name == "resnet50":
        mod = sys.modules["rsp_scene_models.resnet"]
        return mod.ResNet(mod.Bottleneck, list(depths or [3, 4, 6, 3]), num_classes=51)
    if name == "swin_t":
        return Swin(img_size=img_size, num_classes=51, depths=list(depths or [2, 2, 6, 2]))
    if depths is None:
        return vit(img_size=img_size, num_classes=51, window_size=7)
    base = sys.modules["rsp_scene_models.ViTAE_Window_NoShift.base_model"].ViTAE_Window_NoShift_basic
    return base(img_size=img_size, num_classes=51, window_size=7, RC_tokens_type=["swin", "swin", "transformer", "transformer"],
                NC_tokens_type=["swin", "swin", "transformer", "transformer"], stages=4,
                embed_dims=[64, 64, 128, 256], token_dims=[64, 128, 256, 512], downsample_ratios=[4, 2, 2, 2],
                NC_depth=list(depths), NC_heads=[1, 2, 4, 8], RC_heads=[1, 1, 2, 4], mlp_ratio=4.,
                NC_group=[1, 32, 64, 128], RC_group=[1, 16, 32, 64])


def _ev(m):
    m.eval()  # the official mmseg swin.train() returns None, so no chaining
    return m


def official_backbone(name, depths=None):
    OR, OS, OV = SEG
    if name == "resnet50":
        a = dict(shims.SEG_BACKBONE_ARGS["resnet"])
        if depths:
            a["layers"] = list(depths)
        return OR(**a)
    if name == "swin_t":
        a = dict(shims.SEG_BACKBONE_ARGS["swin"])
        if depths:
            a["depths"] = list(depths)
        return OS(**a)
    a = dict(shims.SEG_BACKBONE_ARGS["vitae"])
    if depths:
        a["NC_depth"] = list(depths)
    return OV(**a)


def ours_scene(name, depths=None):
    return {"resnet50": lambda: resnet.ResNet50(51, depths or resnet.R50_DEPTHS),
            "swin_t": lambda: swin.SwinTransformer(51, depths or swin.SWIN_T_DEPTHS),
            "vitaev2_s": lambda: vitae_v2.ViTAEv2(51, depths or vitae_v2.VITAE_S_DEPTHS)}[name]()


def ours_backbone(name, depths=None):
    return {"resnet50": lambda: resnet.ResNetBackbone(depths or resnet.R50_DEPTHS),
            "swin_t": lambda: swin.SwinBackbone(depths or swin.SWIN_T_DEPTHS),
            "vitaev2_s": lambda: vitae_v2.ViTAEv2Backbone(depths or vitae_v2.VITAE_S_DEPTHS)}[name]()


def composite_logits(name, scene_sd, x):
    """Official mmseg backbone with the classifier's weights + the classifier's own tail
    (Swin: final norm -> token mean -> head; ViTAE: token mean -> head)."""
    bb = _ev(official_backbone(name))
    sd = {k: v for k, v in scene_sd.items() if not k.endswith("attn_mask") and not k.startswith("head.")}
    if name == "swin_t":
        sd["norm3.weight"] = sd.pop("norm.weight")
        sd["norm3.bias"] = sd.pop("norm.bias")
    missing, unexpected = bb.load_state_dict(sd, strict=False)
    assert not unexpected, unexpected
    assert all(k.startswith("norm") for k in missing), missing
    with torch.no_grad():
        f = bb(x)[3]
        return torch.nn.functional.linear(f.mean(dim=(2, 3)), scene_sd["head.weight"], scene_sd["head.bias"])


def maxdiff(a, b):
    if isinstance(a, (list, tuple)):
        return max(maxdiff(x, y) for x, y in zip(a, b))
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max())


def check_keys(results):
    keys = {}
    for name in ("resnet50", "swin_t", "vitaev2_s"):
        for kind, o, m in (("scene", official_scene(name), ours_scene(name)),
                           ("backbone", official_backbone(name), ours_backbone(name))):
            ko, km = rd.key_shapes(o), rd.key_shapes(m)
            same = ko == km
            results.append({"check": "keys", "arch": name, "model": kind, "official_keys": len(ko),
                            "equal": same, "missing": sorted(set(ko) - set(km))[:10],
                            "extra": sorted(set(km) - set(ko))[:10]})
            keys["%s/%s" % (name, kind)] = ko
    with open(os.path.join(REF_DIR, "rsp_keys.json"), "w") as f:
        json.dump({"source": "github.com/ViTAE-Transformer/RSP (official model code, full size)",
                   "keys": keys}, f, indent=0, sort_keys=True)


def scene_sizes(name):
    # (size, how the official output is obtained)
    if name == "resnet50":
        return [(224, "classifier"), (256, "classifier"), (200, "classifier")]
    if name == "swin_t":
        return [(224, "classifier"), (448, "classifier@448"), (258, "mmseg-backbone+tail")]
    return [(224, "classifier"), (448, "classifier@448"), (256, "mmseg-backbone+tail")]


def check_scene_conversion(name, tmp, results, seed=1):
    torch.manual_seed(seed)
    off = official_scene(name).eval()
    rd.fill_fan_in(off, seed)
    sd = off.state_dict()
    ck = os.path.join(tmp, "%s_official.pth" % name)
    save_official(ck, sd)
    out = os.path.join(tmp, "%s.pt" % name)
    rc = rsi_convert.main(["--arch", ARCH[name], "--task", "scene", "--checkpoint", ck, "-o", out,
                           "--threads", "1"])
    assert rc == 0, rc
    m, doc = exporting.load_file(out)
    for s, how in scene_sizes(name):
        x = metadata.ramp([1, 3, s, s]) + 0.25 * torch.randn(1, 3, s, s, generator=torch.Generator().manual_seed(s))
        with torch.no_grad():
            y = m(x)
            if how == "classifier":
                ref = off(x)
            elif how == "classifier@448":
                o2 = official_scene(name, img_size=448).eval()
                missing, unexpected = o2.load_state_dict(
                    {k: v for k, v in sd.items() if not k.endswith("attn_mask")}, strict=False)
                assert all(k.endswith("attn_mask") for k in missing), missing
                ref = o2(x)
            else:
                ref = composite_logits(name, sd, x)
        d = maxdiff(y, ref)
        results.append({"check": "scene conversion", "arch": name, "size": s, "official": how,
                        "max_abs_diff": d, "ok": d <= TOL, "logit_abs_max": float(ref.abs().max())})


def check_seg_conversion(name, tmp, results, seed=2):
    torch.manual_seed(seed)
    bb = _ev(official_backbone(name))
    rd.fill_fan_in(bb, seed)
    ncls = 6
    head = UPerHead(SEG_IN[name], 512, ncls).eval()
    aux = FCNHead(SEG_IN[name][2], 256, ncls).eval()
    rd.fill_fan_in(head, seed + 1)
    rd.fill_fan_in(aux, seed + 2)
    sd = {}
    for p, mod in (("backbone.", bb), ("decode_head.", head), ("auxiliary_head.", aux)):
        sd.update({p + k: v for k, v in mod.state_dict().items()})
    meta = {"CLASSES": ("impervious_surface", "building", "low_vegetation", "tree", "car", "clutter", "extra"),
            "PALETTE": [[255, 255, 255], [0, 0, 255], [0, 255, 255], [0, 255, 0], [255, 255, 0],
                        [255, 0, 0], [1, 2, 3]], "mmseg_version": "0.20.2"}
    ck = os.path.join(tmp, "%s_seg.pth" % name)
    save_official(ck, sd, meta, scene=False)
    out = os.path.join(tmp, "%s_seg.pt" % name)
    rc = rsi_convert.main(["--arch", ARCH[name] + "-upernet", "--task", "segmentation",
                           "--checkpoint", ck, "-o", out, "--threads", "1"])
    assert rc == 0, rc
    m, doc = exporting.load_file(out)
    mult = 32 if name == "vitaev2_s" else 1
    ours_bb = ours_backbone(name).eval()
    ours_bb.load_state_dict(bb.state_dict())
    for s in (512, 320, 224):
        x = metadata.ramp([1, 3, s, s]) + 0.25 * torch.randn(1, 3, s, s, generator=torch.Generator().manual_seed(s))
        with torch.no_grad():
            fo = bb(x)
            d_feat = maxdiff(list(fo), ours_bb(x))
            ref = torch.nn.functional.interpolate(head(list(fo)), size=[s, s], mode="bilinear", align_corners=False)
            d = maxdiff(m(x), ref)
        results.append({"check": "segmentation backbone features", "arch": name, "size": s,
                        "max_abs_diff": d_feat, "ok": d_feat <= TOL})
        results.append({"check": "segmentation conversion (official backbone -> same heads)", "arch": name,
                        "size": s, "size_multiple": mult, "max_abs_diff": d, "ok": d <= TOL})


def record_digests(results):
    out = {"input": "ramp (rsi_models.metadata.ramp)", "weights": "rsp_digest.fill_fan_in(seed=0)",
           "source": "official RSP model code, depth-reduced", "tolerance": TOL, "models": {}}
    for name, depths in CI_DEPTHS.items():
        off = official_scene(name, depths).eval()
        rd.fill_fan_in(off, 0)
        bb = _ev(official_backbone(name, depths))
        rd.fill_fan_in(bb, 0)
        entry = {"depths": depths, "scene": {"224": rd.output_digest(off, [1, 3, 224, 224])},
                 "backbone": {"256": rd.output_digest(bb, [1, 3, 256, 256])}}
        if name == "resnet50":
            entry["scene"]["200"] = rd.output_digest(off, [1, 3, 200, 200])
        # self-check: ours reproduces it right now
        mine = ours_scene(name, depths).eval()
        rd.fill_fan_in(mine, 0)
        mbb = ours_backbone(name, depths).eval()
        rd.fill_fan_in(mbb, 0)
        err = max(rd.digest_error(rd.output_digest(mine, [1, 3, 224, 224]), entry["scene"]["224"]),
                  rd.digest_error(rd.output_digest(mbb, [1, 3, 256, 256]), entry["backbone"]["256"]))
        results.append({"check": "depth-reduced digests", "arch": name, "depths": depths,
                        "digest_error": err, "ok": err <= TOL})
        out["models"][name] = entry
    with open(os.path.join(REF_DIR, "rsp_digests.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)


def main(argv=None):
    global SCENE, SEG
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official-dir", required=True)
    p.add_argument("--skip-conversion", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("RSI_THREADS", "2")))
    SCENE = shims.load_scene(args.official_dir)
    SEG = shims.load_seg_backbones(args.official_dir)
    os.makedirs(REF_DIR, exist_ok=True)
    results = []
    t0 = time.time()
    check_keys(results)
    record_digests(results)
    if not args.skip_conversion:
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("resnet50", "swin_t", "vitaev2_s"):
                check_scene_conversion(name, tmp, results)
                check_seg_conversion(name, tmp, results)
    for r in results:
        print(json.dumps(r))
    ok = all(r.get("ok", r.get("equal", True)) for r in results)
    with open(os.path.join(REF_DIR, "rsp_fidelity_results.json"), "w") as f:
        json.dump({"all_ok": ok, "seconds": round(time.time() - t0, 1), "results": results}, f, indent=1)
    print("ALL OK" if ok else "FAILURES")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
