"""Pixel and classification metrics."""
import numpy as np


def binary_counts(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """[tp, fp, fn, tn] of a binary prediction against a binary ground truth."""
    p = np.asarray(pred).astype(bool)
    g = np.asarray(gt).astype(bool)
    tp = int(np.count_nonzero(p & g))
    fp = int(np.count_nonzero(p & ~g))
    fn = int(np.count_nonzero(~p & g))
    tn = int(p.size - tp - fp - fn)
    return np.array([tp, fp, fn, tn], dtype=np.int64)


def iou_f1(counts) -> tuple:
    """(IoU, F1) of the positive class from pooled [tp, fp, fn, tn] counts."""
    tp, fp, fn = float(counts[0]), float(counts[1]), float(counts[2])
    iou = tp / (tp + fp + fn) if tp + fp + fn > 0 else 1.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 1.0
    return iou, f1


def confusion_matrix(y_true, y_pred, k: int) -> np.ndarray:
    cm = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        cm[int(t), int(p)] += 1
    return cm


def best_logit_offset(margin: np.ndarray, truth: np.ndarray, low: float = -3.0, high: float = 3.0,
                      step: float = 0.1) -> dict:
    """The offset added to a building-minus-background logit margin that maximises pooled IoU.

    Candidates low, low + step, ..., high (rounded to 2 decimals); a pixel is predicted positive when
    margin + offset > 0. Ties go to the smallest |offset|, so a flat optimum keeps the model as it is.
    Returns {"offset", "iou", "iou_at_zero"}.
    """
    d = np.asarray(margin).ravel()
    g = np.asarray(truth).astype(bool).ravel()

    def iou_at(off):
        p = d + off > 0
        union = np.count_nonzero(p | g)
        return np.count_nonzero(p & g) / float(union) if union else 1.0

    best_iou, best_off = -1.0, 0.0
    for off in np.round(np.arange(low, high + step / 2, step), 2):
        iou = iou_at(off)
        if iou > best_iou + 1e-12 or (abs(iou - best_iou) <= 1e-12 and abs(off) < abs(best_off)):
            best_iou, best_off = iou, float(off)
    return {"offset": best_off, "iou": best_iou, "iou_at_zero": iou_at(0.0)}
