"""Safe loading of official (RSP / mmseg) checkpoints without yacs, mmcv or numpy objects and
without executing pickled code.

``load_official`` reads the torch.save zip archive itself and unpickles ``data.pkl`` with
``Unpickler``, whose ``find_class`` returns real objects only for an allow-list (own
version-independent tensor/parameter rebuild functions, storage types, dtypes, ``torch.Size``,
``collections.OrderedDict``). Every other global -- yacs ``CfgNode``,
``argparse.Namespace``, numpy scalars, or an object whose ``__reduce__`` names ``os.system`` --
becomes an inert ``Placeholder`` that records the qualified name and swallows its arguments and
state, so nothing outside the allow-list is ever imported or called.
"""
import collections
import io
import os
import pickle
import sys
from struct import error as struct_error
import zipfile
from typing import Any, Dict, List, Optional, Tuple

import torch

__all__ = ["Unpickler", "Placeholder", "load_official", "state_dict_from", "UnsafeCheckpoint",
           "UnreadableCheckpoint"]


class Placeholder:
    """Stands in for any non-allowed pickled global. Calling it (REDUCE / NEWOBJ) returns a new
    inert instance; BUILD state goes into ``state``; dict / list items into ``entries`` / ``list``."""

    qualname = "?"

    def __new__(cls, *args, **kwargs):
        # pickle's NEWOBJ calls __new__ without __init__: set everything up here
        self = object.__new__(cls)
        self.args = args
        self.kwargs = kwargs
        self.state = None
        self.entries = {}
        self.list = []
        return self

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, k, v):
        self.entries[k] = v

    def append(self, v):
        self.list.append(v)

    def extend(self, vs):
        self.list.extend(vs)

    def __repr__(self):
        return "<placeholder %s>" % self.qualname


def _placeholder_class(module: str, name: str):
    return type("Placeholder[%s.%s]" % (module, name), (Placeholder,), {"qualname": module + "." + name})


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128,
}


class _StorageType:
    """What a pickled ``torch.FloatStorage`` (etc.) global resolves to: just its dtype."""

    def __init__(self, dtype):
        self.dtype = dtype


class _Storage:
    def __init__(self, flat: torch.Tensor):
        self.flat = flat


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    # version-independent replacement for torch._utils._rebuild_tensor_v2 (no hooks, no metadata)
    if not isinstance(storage, _Storage):
        raise UnsafeCheckpoint("tensor without a storage record")
    return torch.as_strided(storage.flat, tuple(size), tuple(stride), int(storage_offset))


def _rebuild_parameter(data, requires_grad=False, *unused):
    return data  # plain tensors: state_dict values, no autograd state needed


def _allowed() -> Dict[Tuple[str, str], Any]:
    allow: Dict[Tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
    }
    for name in dir(torch):
        obj = getattr(torch, name, None)
        if isinstance(obj, torch.dtype):
            allow[("torch", name)] = obj
    for name, dt in _STORAGE_DTYPES.items():
        allow[("torch", name)] = _StorageType(dt)
    return allow


_ALLOWED: Optional[Dict[Tuple[str, str], Any]] = None


class Unpickler(pickle.Unpickler):
    """pickle.Unpickler whose find_class resolves only allow-listed globals (see module doc).

    ``records``: name -> bytes of the zip archive's storage records (``persistent_load``).
    """

    def __init__(self, f, records: Optional[Dict[str, bytes]] = None, **kw):
        super().__init__(f, **kw)
        self.records = records or {}
        self.storages: Dict[str, _Storage] = {}
        self.replaced = set()

    def find_class(self, module: str, name: str):
        global _ALLOWED
        if _ALLOWED is None:
            _ALLOWED = _allowed()
        obj = _ALLOWED.get((module, name))
        if obj is not None:
            return obj
        self.replaced.add(module + "." + name)
        return _placeholder_class(module, name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise UnsafeCheckpoint("unsupported persistent id %r" % (pid,))
        stype, key = pid[1], str(pid[2])
        dtype = stype if isinstance(stype, torch.dtype) else getattr(stype, "dtype", None)
        if not isinstance(dtype, torch.dtype):
            raise UnsafeCheckpoint("unknown storage type %r" % (stype,))
        if key not in self.storages:
            if key not in self.records:
                raise UnsafeCheckpoint("storage record %s missing from the archive" % key)
            raw = bytearray(self.records[key])
            flat = torch.frombuffer(raw, dtype=dtype) if len(raw) else torch.empty(0, dtype=dtype)
            self.storages[key] = _Storage(flat)
        return self.storages[key]


def loads(data: bytes, **kw):
    return Unpickler(io.BytesIO(data), **kw).load()


class UnsafeCheckpoint(ValueError):
    pass


class UnreadableCheckpoint(Exception):
    """The file cannot be read as a checkpoint (not a PyTorch file, truncated or corrupt, legacy
    format, a TorchScript model, content the restricted unpickler refuses). ``str()`` is one line
    WITHOUT the path; ``path`` holds it."""

    def __init__(self, path: str, what: str):
        super().__init__(what)
        self.path = path
        self.what = what


# torch.save's legacy (pre-1.6, non-zip) format starts with a protocol-2 pickle of this magic
# number (torch.serialization.MAGIC_NUMBER): PROTO 2, LONG1 of 10 bytes
LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
_ZIP_LOCAL_HEADER = b"PK\x03\x04"


def _sniff(path: str) -> Optional[str]:
    """Why ``path`` is not a readable zip checkpoint, or None when the zip structure is intact."""
    with open(path, "rb") as f:
        head = f.read(len(LEGACY_MAGIC))
    if not head:
        return "empty file, not a PyTorch checkpoint"
    if head.startswith(LEGACY_MAGIC):
        return ("legacy (pre-1.6, non-zip) torch.save format, which this converter does not read; "
                "re-save it with torch>=1.6 (torch.save(torch.load(f), f2))")
    if zipfile.is_zipfile(path):
        return None
    if head.startswith(_ZIP_LOCAL_HEADER):
        return "truncated or corrupt checkpoint (a zip archive without its central directory)"
    return "not a PyTorch checkpoint (neither a torch.save zip archive nor the legacy format)"


def load_official(path: str) -> Any:
    """Read a torch.save zip checkpoint on the CPU with the restricted unpickler.

    Parses the archive itself (data.pkl + data/<key> storage records, little-endian) instead of
    torch.load: torch 1.13 silently replaces a custom pickle_module by ``pickle`` unless
    weights_only=True, and weights_only refuses the yacs/numpy objects RSP checkpoints contain.
    Legacy (pre-1.6, non-zip) files are refused. Every unreadable file (not a checkpoint,
    truncated, bad CRC, legacy, TorchScript archive, refused pickle content) raises
    ``UnreadableCheckpoint`` with a one-line reason; OSError (missing file, permissions) passes.
    """
    why = _sniff(path)
    if why:
        raise UnreadableCheckpoint(path, why)
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
            if not pkl:
                raise UnreadableCheckpoint(path, "a zip archive without data.pkl, not a PyTorch checkpoint")
            prefix = pkl[0][: -len("data.pkl")]
            # reading checks every member's CRC: a corrupt file is reported as such first
            records = {n[len(prefix) + len("data/"):]: z.read(n) for n in names
                       if n.startswith(prefix + "data/") and not n.endswith("/")}
            data = z.read(pkl[0])
            if any(n.startswith(prefix + "code/") for n in names) or prefix + "constants.pkl" in names:
                raise UnreadableCheckpoint(path, "a TorchScript model (torch.jit.save), not a training "
                                                 "checkpoint: convert the official .pth checkpoint")
    except UnreadableCheckpoint:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError) as e:
        # bad CRC, truncated member, unsupported compression ...
        raise UnreadableCheckpoint(path, "truncated or corrupt checkpoint (%s)" % _one_line(e))
    up = Unpickler(io.BytesIO(data), records=records, encoding="utf-8")
    try:
        return up.load()
    except UnsafeCheckpoint as e:
        raise UnreadableCheckpoint(path, "cannot be read safely: %s" % _one_line(e))
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, RuntimeError, UnicodeDecodeError, struct_error) as e:
        raise UnreadableCheckpoint(path, "corrupt checkpoint (data.pkl does not unpickle: %s)" % _one_line(e))


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)


def _is_tensor_dict(d: Any) -> bool:
    return isinstance(d, dict) and len(d) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())


def state_dict_from(obj: Any) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """Find the weights in a loaded checkpoint: (state_dict, info).

    Accepts a bare state_dict, or a dict holding it under 'state_dict' (mmseg/mmcv), 'model'
    (RSP scene / Swin-style), 'state_dict_ema' or 'module'. A leading 'module.' (DataParallel)
    is stripped from every key when all keys have it. ``info`` holds 'container' (where the
    weights were), 'meta' (mmseg meta dict, if any) and the names of replaced pickled classes.
    """
    info: Dict[str, Any] = {"container": None, "meta": None}
    sd = None
    if _is_tensor_dict(obj):
        sd, info["container"] = obj, "<root>"
    elif isinstance(obj, dict):
        for k in ("state_dict", "model", "state_dict_ema", "module"):
            if k in obj and _is_tensor_dict(obj[k]):
                sd, info["container"] = obj[k], k
                break
        meta = obj.get("meta")
        if isinstance(meta, dict):
            info["meta"] = meta
        info["other_keys"] = sorted(str(k) for k in obj.keys() if k != info["container"])
    if sd is None:
        raise ValueError("no state_dict found (expected a tensor dict, or one under "
                         "'state_dict' / 'model' / 'state_dict_ema')")
    keys = list(sd.keys())
    if keys and all(k.startswith("module.") for k in keys):
        sd = collections.OrderedDict((k[len("module."):], v) for k, v in sd.items())
        info["stripped_prefix"] = "module."
    return dict(sd), info


def mmseg_classes(meta: Optional[Dict[str, Any]]) -> Tuple[Optional[List[str]], Optional[List[List[int]]]]:
    """CLASSES / PALETTE from an mmseg checkpoint's meta (tuples or lists), else (None, None)."""
    if not isinstance(meta, dict):
        return None, None
    classes = meta.get("CLASSES")
    palette = meta.get("PALETTE")
    cl = [str(c) for c in classes] if isinstance(classes, (list, tuple)) else None
    pal = None
    if isinstance(palette, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 3 for p in palette):
        pal = [[int(v) for v in p] for p in palette]
    return cl, pal


def sha256_file(path: str) -> str:
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_name(path: str) -> str:
    return os.path.basename(path)
