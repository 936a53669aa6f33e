import torch.nn as nn


class BaseModule(nn.Module):
    def __init__(self, init_cfg=None):
        super().__init__()
        self.init_cfg = init_cfg


def _identity_decorator(*args, **kwargs):
    def deco(fn):
        return fn
    return deco


auto_fp16 = _identity_decorator
force_fp32 = _identity_decorator
