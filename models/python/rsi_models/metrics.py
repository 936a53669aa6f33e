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
