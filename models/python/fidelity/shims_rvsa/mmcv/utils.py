import copy


class Registry:
    """Name -> class registry with mmcv's register_module()/build(cfg) calling conventions."""

    def __init__(self, name, parent=None):
        self.name = name
        self._modules = {} if parent is None else parent._modules  # one shared namespace

    def get(self, key):
        return self._modules[key]

    def register_module(self, name=None, force=False, module=None):
        if module is not None:
            self._modules[name or module.__name__] = module
            return module

        def deco(cls):
            self._modules[name or cls.__name__] = cls
            return cls
        return deco

    def build(self, cfg, default_args=None):
        cfg = copy.deepcopy(dict(cfg))
        cls = self._modules[cfg.pop("type")]
        for k, v in (default_args or {}).items():
            cfg.setdefault(k, v)
        return cls(**cfg)
