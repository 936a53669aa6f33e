def build_pixel_sampler(cfg, **kwargs):
    raise NotImplementedError


def add_prefix(inputs, prefix):
    return {f"{prefix}.{k}": v for k, v in inputs.items()}
