"""PyTorch state dicts of MobileNets (torchvision or timm naming) into builder models.

``import_state_dict(path)`` reads the tensors (``.safetensors`` with the ``safetensors`` package, no torch;
``.pth`` / ``.pt`` with ``torch.load(weights_only=True)`` when PyTorch is installed), works out which
architecture and naming they follow, infers the width, channel rounding and class count from the shapes,
renames every tensor onto the builder's parameter names, checks that the set is exactly the builder's
(no key missing, none left over, every shape equal) and builds the ONNX graph with those weights.

Namings understood (the builder's own names are torchvision's for V2 / V3 and timm's for V1):

* torchvision ``mobilenet_v2``, ``mobilenet_v3_large``, ``mobilenet_v3_small``: the builder's names.
* timm ``mobilenetv1_*``: the builder's names (conv_stem, bn1, blocks.S.I.conv_dw/bn1/conv_pw/bn2, classifier).
* timm ``mobilenetv2_*`` (EfficientNet class): conv_stem/bn1; stage 0 is a DepthwiseSeparable block
  (conv_dw, bn1, conv_pw, bn2), the rest InvertedResidual (conv_pw, bn1, conv_dw, bn2, conv_pwl, bn3);
  conv_head + bn2; classifier.
* timm ``mobilenetv3_large_*`` / ``mobilenetv3_small_*`` (MobileNetV3 class): as V2, plus
  se.conv_reduce / se.conv_expand, a ConvBnAct last stage (conv, bn1), and the "efficient head": a
  1x1 ``conv_head`` with bias and no BN after pooling, which is exactly the builder's ``classifier.0``
  Linear. timm builds these with BatchNorm eps 1e-5, torchvision (and the builder) with 1e-3: the BN
  scale is rescaled by sqrt(var + 1e-3) / sqrt(var + 1e-5) so the function is unchanged.
  timm scales V3 differently from torchvision away from width 1.0 (stem fixed at 16 below 0.75,
  expansion from the rounded input channels, head fixed at 1280/1024), so only shapes that match the
  builder exactly are accepted; anything else is refused with the keys that differ.

Nothing here imports torch unless a ``.pth`` file is read.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import builder
from ..errors import (
    BuildError,
    ModelLoadError,
    NotAModelError,
    TruncatedModelError,
    UnsupportedFormatError,
)
from ..families import FAMILIES, ROUNDINGS
from ..formats import state_dict_kind
from ..formatting import plural
from ..model import LoadedModel

__all__ = [
    "import_state_dict",
    "read_state_dict",
    "detect",
    "StateDictMismatchError",
    "UnknownArchitectureError",
]


class StateDictMismatchError(ModelLoadError):
    """The tensors look like a known MobileNet but do not fit the builder's architecture exactly."""


class UnknownArchitectureError(UnsupportedFormatError):
    """The tensors are not a MobileNet state dict this importer knows."""


TORCH_MISSING = "reading .pth needs PyTorch (pip install torch); or save the state dict as .safetensors"

# Keys that are state, not parameters: BN step counters, torchvision's EMA counter.
_IGNORED_SUFFIXES = ("num_batches_tracked", "n_averaged")
# Wrappers around a state dict in training checkpoints, tried in this order (EMA weights last).
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "module", "weights", "params",
                 "state_dict_ema", "model_ema", "ema", "ema_state_dict")
_PREFIXES = ("module.", "model.", "_orig_mod.")

_STAGES = {  # blocks per stage in timm's arch_def (V3: the last stage is the ConvBnAct 1x1)
    "mobilenet_v1": (1, 2, 2, 6, 2),
    "mobilenet_v2": (1, 2, 3, 4, 3, 3, 1),
    "mobilenet_v3_large": (1, 2, 3, 4, 2, 3, 1),
    "mobilenet_v3_small": (1, 2, 3, 2, 3, 1),
}
_TV_EPS, _TIMM_EPS = 1e-3, 1e-5  # BatchNorm eps of torchvision's / timm's MobileNetV3
_MAX_TRIES = 8  # full shape checks per import while inferring the width


# --------------------------------------------------------------------------------------------------
# Reading


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a .safetensors or .pth file as float32 numpy arrays (wrappers and prefixes removed,
    BN counters dropped)."""
    path = Path(path)
    raw = _read_raw(path)
    sd = _unwrap(raw, path)
    return _clean(sd)


def _read_raw(path: Path) -> Mapping:
    if path.is_dir():
        raise NotAModelError(f"{path} is a folder, not a state dict file.")
    if not path.exists():
        raise ModelLoadError(f"{path} does not exist.")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not head:
        raise NotAModelError(f"{path.name} is empty (0 bytes): it is not a state dict. Save or download it again.")
    kind = state_dict_kind(path, head)
    if kind == "safetensors":
        return _read_safetensors(path)
    if kind == "torch":
        return _read_torch(path)
    raise UnknownArchitectureError(
        f"{path.name} is neither a .safetensors nor a PyTorch .pth file; save the state dict with "
        "safetensors.torch.save_file(model.state_dict(), 'model.safetensors') or torch.save(model.state_dict(), ...)."
    )


def _corrupt(path: Path, what: str, exc: BaseException) -> TruncatedModelError:
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    return TruncatedModelError(
        f"{path.name} cannot be read as {what} ({detail}): the file is truncated or corrupt. Save or download it again."
    )


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    try:
        from safetensors import safe_open
    except ImportError as exc:
        raise UnsupportedFormatError(
            f"reading {path.name} needs the safetensors package (pip install safetensors)."
        ) from exc
    out: dict[str, np.ndarray] = {}
    bf16: list[str] = []
    try:
        with safe_open(str(path), framework="np") as f:
            for key in f.keys():
                try:
                    out[key] = f.get_tensor(key)
                except TypeError:  # numpy has no bfloat16: read those from the raw bytes below
                    bf16.append(key)
    except Exception as exc:  # SafetensorError (header/offset problems), OSError
        raise _corrupt(path, "safetensors", exc) from exc
    if bf16:
        out.update(_read_bf16(path, bf16))
    return out


def _read_bf16(path: Path, keys: list[str]) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for key in keys:
        info = header[key]
        if info["dtype"] != "BF16":
            raise UnsupportedFormatError(
                f"{path.name}: tensor '{key}' has dtype {info['dtype']}, which cannot be read.")
        begin, end = info["data_offsets"]
        bits = np.frombuffer(data[8 + n + begin:8 + n + end], dtype="<u2").astype(np.uint32) << 16
        out[key] = bits.view(np.float32).reshape(info["shape"])
    return out


def _read_torch(path: Path):
    try:
        import torch
    except ImportError as exc:
        raise UnsupportedFormatError(f"{path.name}: {TORCH_MISSING}.") from exc
    import pickle

    try:
        with warnings.catch_warnings():  # TorchScript / legacy-format notices; the errors below say what matters
            warnings.simplefilter("ignore")
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "global" in str(exc).lower():
            raise UnsupportedFormatError(
                f"{path.name} holds Python objects besides tensors (a whole pickled model?), which are not loaded "
                "for safety; save model.state_dict() instead."
            ) from exc
        raise _corrupt(path, "a PyTorch checkpoint", exc) from exc
    except Exception as exc:  # RuntimeError (bad zip), EOFError, ...
        if "TorchScript" in str(exc):
            raise UnsupportedFormatError(
                f"{path.name} is a TorchScript archive, not a state dict; save model.state_dict() instead "
                "(or export the model to ONNX with torch.onnx.export)."
            ) from exc
        raise _corrupt(path, "a PyTorch checkpoint", exc) from exc
    return _torch_to_numpy(obj, torch)


def _torch_to_numpy(obj, torch):
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu()
        if t.is_floating_point():
            t = t.to(torch.float32)
        return t.numpy()
    if isinstance(obj, Mapping):
        return {k: _torch_to_numpy(v, torch) for k, v in obj.items()}
    return obj


def _is_tensor(v) -> bool:
    return isinstance(v, np.ndarray)


def _is_state_dict(d) -> bool:
    return isinstance(d, Mapping) and bool(d) and all(isinstance(k, str) for k in d) and \
        sum(_is_tensor(v) for v in d.values()) >= max(1, len(d) // 2)


def _unwrap(obj, path: Path, depth: int = 0) -> dict[str, np.ndarray]:
    if _is_state_dict(obj):
        return {k: v for k, v in obj.items() if _is_tensor(v)}
    if isinstance(obj, Mapping) and depth < 3:
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                try:
                    return _unwrap(obj[key], path, depth + 1)
                except UnknownArchitectureError:
                    continue
        for value in obj.values():  # any other single nested state dict
            if _is_state_dict(value):
                return {k: v for k, v in value.items() if _is_tensor(v)}
    what = f"a dict with keys {', '.join(repr(k) for k in list(obj)[:5])}" if isinstance(obj, Mapping) \
        else f"a {type(obj).__name__}"
    raise UnknownArchitectureError(f"{path.name} holds {what}, not a state dict of tensors.")


def _clean(sd: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    sd = {k: v for k, v in sd.items() if not k.endswith(_IGNORED_SUFFIXES)}
    changed = True
    while changed and sd:
        changed = False
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix):]: v for k, v in sd.items()}
                changed = True
    out = {}
    for k, v in sd.items():
        a = np.asarray(v)
        out[k] = a.astype(np.float32) if a.dtype != np.float32 else a
    return out


# --------------------------------------------------------------------------------------------------
# Detection


@dataclass(frozen=True)
class Guess:
    naming: str  # "torchvision" or "timm"
    family: str

    def describe(self) -> str:
        names = {"mobilenet_v1": "mobilenetv1", "mobilenet_v2": "mobilenetv2",
                 "mobilenet_v3_large": "mobilenetv3_large", "mobilenet_v3_small": "mobilenetv3_small"}
        return f"timm {names[self.family]}" if self.naming == "timm" else f"torchvision {self.family}"


def _top(keys) -> set[str]:
    return {k.split(".")[0] for k in keys}


def _stage_count(keys) -> int:
    stages = {int(m.group(1)) for k in keys if (m := re.match(r"blocks\.(\d+)\.", k))}
    return max(stages) + 1 if stages else 0


def _feature_count(keys) -> int:
    idx = {int(m.group(1)) for k in keys if (m := re.match(r"features\.(\d+)\.", k))}
    return max(idx) + 1 if idx else 0


def detect(keys) -> Guess:
    """Naming and family from the key set alone; raises UnknownArchitectureError."""
    keys = set(keys)
    top = _top(keys)
    if "features" in top:
        if any(re.match(r"features\.\d+\.conv\.", k) for k in keys):
            return Guess("torchvision", "mobilenet_v2")
        if any(re.match(r"features\.\d+\.block\.", k) for k in keys):
            n = _feature_count(keys)
            return Guess("torchvision", "mobilenet_v3_small" if n <= 14 else "mobilenet_v3_large")
    if "conv_stem" in top and "blocks" in top:
        if "conv_head.weight" not in keys:
            if any(k.endswith(".conv_pwl.weight") for k in keys):
                raise UnknownArchitectureError(
                    "the tensors are a timm EfficientNet-style model without a head conv, not a MobileNet.")
            return Guess("timm", "mobilenet_v1")
        if "conv_head.bias" in keys and "bn2.weight" not in keys:
            return Guess("timm", "mobilenet_v3_small" if _stage_count(keys) <= 6 else "mobilenet_v3_large")
        if "bn2.weight" in keys:
            if not any(k.endswith(".conv_pwl.weight") for k in keys):
                raise UnknownArchitectureError(
                    "the tensors are a timm MobileNetV1 with a head conv (mobilenetv1_*h), which the builder has no "
                    "equivalent for; use mobilenetv1_100 / _125.")
            return Guess("timm", "mobilenet_v2")
        raise UnknownArchitectureError(
            "the tensors are a timm MobileNetV3-class model whose head conv has no bias (mobilenetv3_rw, "
            "MobileNetV4, ...), which the builder has no equivalent for.")
    shown = ", ".join(f"'{k}'" for k in sorted(keys)[:4])
    raise UnknownArchitectureError(
        f"the {plural(len(keys), 'tensor')} (named like {shown}) are not a MobileNet state dict this app knows "
        "(torchvision mobilenet_v2 / mobilenet_v3_large / mobilenet_v3_small, timm mobilenetv1 / v2 / v3)."
    )


# --------------------------------------------------------------------------------------------------
# Builder names -> source names


@dataclass
class _Entry:
    source: str  # key in the state dict
    transform: Callable[[np.ndarray], np.ndarray] | None = None  # source array -> builder array
    source_shape: Callable[[tuple], tuple] | None = None  # builder shape -> shape expected in the source


def _split_blocks(family: str) -> list[tuple[int, int]]:
    """(stage, index) of each torchvision features.N block, N = 1..."""
    return [(s, i) for s, n in enumerate(_STAGES[family]) for i in range(n)]


def _conv_bn(rest: str, conv: str, bn: str) -> str | None:
    """'0.weight' -> conv.weight, '1.running_mean' -> bn.running_mean (a Conv2dNormActivation)."""
    head, _, param = rest.partition(".")
    if head == "0" and param == "weight":
        return f"{conv}.weight"
    if head == "1":
        return f"{bn}.{param}"
    return None


def _timm_v2_name(name: str, blocks: list[tuple[int, int]]) -> str | None:
    last = len(blocks) + 1
    if name.startswith("classifier.1."):
        return "classifier." + name[len("classifier.1."):]
    m = re.fullmatch(r"features\.(\d+)\.(.+)", name)
    if not m:
        return None
    n, rest = int(m.group(1)), m.group(2)
    if n == 0:
        return _conv_bn(rest, "conv_stem", "bn1")
    if n == last:
        return _conv_bn(rest, "conv_head", "bn2")
    s, i = blocks[n - 1]
    p = f"blocks.{s}.{i}"
    m = re.fullmatch(r"conv\.(\d+)(?:\.(\d+))?\.(\w+)", rest)
    if not m:
        return None
    j, sub, param = int(m.group(1)), m.group(2), m.group(3)
    if s == 0:  # DepthwiseSeparableConv: conv.0 = dw CNA, conv.1 = pw conv, conv.2 = BN
        table = {(0, "0"): "conv_dw", (0, "1"): "bn1", (1, None): "conv_pw", (2, None): "bn2"}
    else:  # InvertedResidual: conv.0 = expand CNA, conv.1 = dw CNA, conv.2 = project conv, conv.3 = BN
        table = {(0, "0"): "conv_pw", (0, "1"): "bn1", (1, "0"): "conv_dw", (1, "1"): "bn2",
                 (2, None): "conv_pwl", (3, None): "bn3"}
    mod = table.get((j, sub))
    return f"{p}.{mod}.{param}" if mod else None


def _v3_layouts(expected: Mapping[str, tuple]) -> dict[int, list[tuple[int, str]]]:
    """For each features.N block: its sub-modules (j, 'cna' | 'se') in order."""
    subs: dict[int, dict[int, str]] = {}
    for name in expected:
        m = re.match(r"features\.(\d+)\.block\.(\d+)\.(fc1|\d)", name)
        if m:
            subs.setdefault(int(m.group(1)), {})[int(m.group(2))] = "se" if m.group(3) == "fc1" else "cna"
    return {n: sorted(d.items()) for n, d in subs.items()}


class _UnmappableError(Exception):
    pass


def _timm_v3_name(name: str, blocks: list[tuple[int, int]], layouts) -> str | None:
    n_blocks = len(blocks) - 1  # the last timm stage (ConvBnAct) is torchvision's features[-1]
    if name.startswith("classifier.0."):
        return "conv_head." + name[len("classifier.0."):]
    if name.startswith("classifier.3."):
        return "classifier." + name[len("classifier.3."):]
    m = re.fullmatch(r"features\.(\d+)\.(.+)", name)
    if not m:
        return None
    n, rest = int(m.group(1)), m.group(2)
    if n == 0:
        return _conv_bn(rest, "conv_stem", "bn1")
    if n == n_blocks + 1:
        s, i = blocks[-1]
        return _conv_bn(rest, f"blocks.{s}.{i}.conv", f"blocks.{s}.{i}.bn1")
    s, i = blocks[n - 1]
    p = f"blocks.{s}.{i}"
    m = re.fullmatch(r"block\.(\d+)\.(.+)", rest)
    if not m:
        return None
    j, tail = int(m.group(1)), m.group(2)
    layout = layouts[n]
    convs = [jj for jj, kind in layout if kind == "cna"]
    roles = (["dw", "project"] if s == 0 else ["expand", "dw", "project"])
    if len(convs) != len(roles):
        kind = "DepthwiseSeparable" if s == 0 else "InvertedResidual"
        raise _UnmappableError(
            f"builder block features.{n} has {plural(len(convs), 'convolution')} where timm's {kind} block {p} "
            f"has {len(roles)}")
    if dict(layout).get(j) == "se":
        mod = {"fc1": "se.conv_reduce", "fc2": "se.conv_expand"}[tail.split(".")[0]]
        return f"{p}.{mod}.{tail.split('.', 1)[1]}"
    role = roles[convs.index(j)]
    names = {"dw": ("conv_dw", "bn1" if s == 0 else "bn2"),
             "expand": ("conv_pw", "bn1"),
             "project": ("conv_pw", "bn2") if s == 0 else ("conv_pwl", "bn3")}[role]
    return _conv_bn(tail, f"{p}.{names[0]}", f"{p}.{names[1]}")


def _table(guess: Guess, expected: Mapping[str, tuple]) -> dict[str, _Entry]:
    """Builder parameter name -> where it comes from in the state dict."""
    if guess.naming == "torchvision" or guess.family == "mobilenet_v1":
        return {name: _Entry(name) for name in expected}
    blocks = _split_blocks(guess.family)
    table: dict[str, _Entry] = {}
    if guess.family == "mobilenet_v2":
        for name in expected:
            src = _timm_v2_name(name, blocks)
            if src is None:
                raise _UnmappableError(f"builder parameter {name} has no timm counterpart")
            table[name] = _Entry(src)
        return table
    layouts = _v3_layouts(expected)
    for name in expected:
        src = _timm_v3_name(name, blocks, layouts)
        if src is None:
            raise _UnmappableError(f"builder parameter {name} has no timm counterpart")
        if name == "classifier.0.weight":  # timm's efficient head: a 1x1 conv, (out, in, 1, 1)
            table[name] = _Entry(src, transform=_squeeze_1x1, source_shape=lambda s: tuple(s) + (1, 1))
        else:
            table[name] = _Entry(src)
    return table


def _squeeze_1x1(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[:2]) if a.ndim == 4 and a.shape[2:] == (1, 1) else a


def _rescale_bn_eps(weights: dict[str, np.ndarray], src_eps: float, dst_eps: float) -> None:
    """Same function under another BN epsilon: gamma * sqrt(var + dst) / sqrt(var + src)."""
    for name in list(weights):
        if name.endswith(".running_var"):
            bn = name[: -len(".running_var")]
            var = weights[name].astype(np.float64)
            gamma = weights.get(f"{bn}.weight")
            if gamma is not None and gamma.shape == var.shape:
                weights[f"{bn}.weight"] = (gamma * np.sqrt(var + dst_eps) / np.sqrt(var + src_eps)).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Width, rounding and classes


_PROBES = {  # family -> (torchvision key, timm key, base): dim 1 of that weight is c(base), the last block's output
    "mobilenet_v1": ("classifier.weight", "classifier.weight", 1024),
    "mobilenet_v2": ("features.18.0.weight", "conv_head.weight", 320),
    "mobilenet_v3_large": ("features.16.0.weight", "blocks.6.0.conv.weight", 160),
    "mobilenet_v3_small": ("features.12.0.weight", "blocks.5.0.conv.weight", 96),
}
_STEMS = {"mobilenet_v1": 32, "mobilenet_v2": 32, "mobilenet_v3_large": 16, "mobilenet_v3_small": 16}
_CLASSIFIERS = {
    ("torchvision", "mobilenet_v2"): "classifier.1.weight",
    ("torchvision", "mobilenet_v3_large"): "classifier.3.weight",
    ("torchvision", "mobilenet_v3_small"): "classifier.3.weight",
}


def _rounded(c: float, w: float, rounding: str) -> int:
    return builder.BuildSpec("mobilenet_v1", w, rounding=rounding).channels(c)


def _niceness(w: float) -> int:
    for level, step in enumerate((0.25, 0.05)):
        q = w / step
        if abs(q - round(q)) < 1e-6:
            return level
    return 2


def _width_candidates(guess: Guess, sd: Mapping[str, np.ndarray], width: float | None) -> list[tuple[float, str]]:
    if width is not None:
        return [(float(width), "torchvision"), (float(width), "paddle")]
    tv_key, timm_key, base = _PROBES[guess.family]
    probe = sd.get(tv_key if guess.naming == "torchvision" else timm_key)
    stem = sd.get("features.0.0.weight" if guess.naming == "torchvision" else "conv_stem.weight")
    lo, hi = builder.WIDTH_RANGE
    grid = [round(lo + 0.01 * k, 2) for k in range(int(round((hi - lo) / 0.01)) + 1)]
    if probe is None or probe.ndim < 2:
        return [(w, "torchvision") for w in (1.0, 0.75, 0.5, 1.4, 0.35, 0.25)]
    observed = probe.shape[1]
    est = observed / base
    both, probe_only = [], []
    for w in grid:
        for rounding in ROUNDINGS:
            if _rounded(base, w, rounding) != observed:
                continue
            key = (_niceness(w), abs(w - est), ROUNDINGS.index(rounding))
            stem_c = _rounded(_STEMS[guess.family], w, rounding)
            stem_ok = stem is not None and stem.ndim == 4 and stem.shape[0] == stem_c
            (both if stem_ok else probe_only).append((key, w, rounding))
    picked = sorted(both) or sorted(probe_only)
    if not picked:
        near = sorted(grid, key=lambda w: (abs(w - est), _niceness(w)))[:2]
        return [(w, r) for w in near for r in ROUNDINGS]
    return [(w, r) for _, w, r in picked]


def _classes(guess: Guess, sd: Mapping[str, np.ndarray], num_classes: int | None) -> int:
    key = _CLASSIFIERS.get((guess.naming, guess.family), "classifier.weight")
    w = sd.get(key)
    found = int(w.shape[0]) if w is not None and w.ndim == 2 else None
    if num_classes is not None:
        if found is not None and found != int(num_classes):
            raise StateDictMismatchError(
                f"the classifier '{key}' has {plural(found, 'class', 'classes')}, not the {num_classes} asked for "
                f"({guess.describe()}).")
        return int(num_classes)
    return found or 1000


# --------------------------------------------------------------------------------------------------
# Matching


@dataclass
class _Match:
    width: float
    rounding: str
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def problems(self) -> int:
        return len(self.missing) + len(self.extra) + len(self.wrong) + (1000 if self.note else 0)

    def describe(self) -> str:
        parts = []
        if self.note:
            parts.append(self.note)
        for label, items in (("missing", self.missing), ("wrong shape", self.wrong), ("unexpected", self.extra)):
            if items:
                more = f" and {len(items) - 3} more" if len(items) > 3 else ""
                parts.append(f"{len(items)} {label}: {', '.join(items[:3])}{more}")
        return "; ".join(parts)


@lru_cache(maxsize=32)
def _expected(family: str, width: float, num_classes: int, rounding: str) -> dict[str, tuple]:
    return builder.parameter_shapes(family, width, 224, num_classes, rounding)


def _shape(s) -> str:
    return str(tuple(int(d) for d in s))


def _match(guess: Guess, sd: Mapping[str, np.ndarray], width: float, rounding: str, classes: int) -> _Match:
    result = _Match(width, rounding)
    try:
        expected = _expected(guess.family, width, classes, rounding)
        table = _table(guess, expected)
    except _UnmappableError as exc:
        result.note = str(exc)
        return result
    except BuildError as exc:  # a width the builder refuses
        result.note = str(exc).rstrip(".")
        return result
    used = set()
    for name, shape in expected.items():
        entry = table[name]
        used.add(entry.source)
        if entry.source not in sd:
            result.missing.append(entry.source)
            continue
        value = sd[entry.source]
        want = entry.source_shape(shape) if entry.source_shape else shape
        if tuple(value.shape) != tuple(want):
            result.wrong.append(f"{entry.source} is {_shape(value.shape)}, needs {_shape(want)}")
            continue
        result.weights[name] = entry.transform(value) if entry.transform else value
    result.extra = sorted(k for k in sd if k not in used)
    return result


def _fit(guess: Guess, sd: Mapping[str, np.ndarray], width: float | None, num_classes: int | None) -> _Match:
    classes = _classes(guess, sd, num_classes)
    best: _Match | None = None
    for w, rounding in _width_candidates(guess, sd, width)[:_MAX_TRIES]:
        m = _match(guess, sd, w, rounding, classes)
        if m.problems == 0:
            return m
        if best is None or m.problems < best.problems:
            best = m
    assert best is not None
    hint = ""
    if guess.naming == "timm" and guess.family.startswith("mobilenet_v3") and abs(best.width - 1.0) > 1e-9:
        hint = (" (timm scales MobileNetV3 away from width 1.0 differently from torchvision: fixed 16-channel stem "
                "below 0.75, expansions from the rounded input, head fixed at 1280/1024; only widths whose shapes "
                "match torchvision's can be imported)")
    given = " as given" if width is not None else ""
    raise StateDictMismatchError(
        f"the tensors look like {guess.describe()} (closest: width {best.width:g}{given}, {best.rounding} rounding, "
        f"{plural(classes, 'class', 'classes')}) but do not fit it exactly: {best.describe()}{hint}."
    )


# --------------------------------------------------------------------------------------------------
# Entry point


def import_state_dict(path: str | Path, family: str | None = None, width: float | None = None,
                      resolution: int = 224, num_classes: int | None = None) -> LoadedModel:
    """Build a MobileNet from a PyTorch state dict file (.safetensors, or .pth/.pt with PyTorch installed).

    ``family`` / ``width`` / ``num_classes`` override what is inferred from the tensors; ``resolution`` is
    the input size of the graph (state dicts do not record it). Raises ModelLoadError subclasses (and
    BuildError for a resolution the builder refuses) with one-line messages.
    """
    path = Path(path)
    sd = read_state_dict(path)
    if not sd:
        raise UnknownArchitectureError(f"{path.name} holds no tensors.")
    try:
        guess = detect(sd)
    except UnknownArchitectureError as exc:
        raise UnknownArchitectureError(f"{path.name}: {exc}") from None
    if family is not None and family != guess.family:
        if family not in FAMILIES:
            raise UnsupportedFormatError(f"unknown family '{family}'; choose one of {', '.join(FAMILIES)}.")
        raise StateDictMismatchError(f"{path.name} looks like {guess.describe()}, not {family}.")
    try:
        match = _fit(guess, sd, width, num_classes)
    except StateDictMismatchError as exc:
        raise StateDictMismatchError(f"{path.name}: {exc}") from None
    weights = match.weights
    if guess.naming == "timm" and guess.family.startswith("mobilenet_v3"):
        _rescale_bn_eps(weights, _TIMM_EPS, _TV_EPS)
    classes = _classes(guess, sd, num_classes)
    loaded = builder.build(guess.family, match.width, resolution, classes, rounding=match.rounding, weights=weights)

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    loaded.name = path.stem
    loaded.source_format = guess.naming
    loaded.source_path = path.resolve()
    loaded.sha256 = digest.hexdigest()
    loaded.file_size = path.stat().st_size
    for prop in loaded.model.metadata_props:
        if prop.key == "weights":
            prop.value = f"{guess.describe()} state dict {path.name}"
    return loaded
