"""mmcv stand-in: just what mmseg 0.x heads/segmentors and the RVSA backbone touch."""
from .utils import Registry  # noqa: F401
