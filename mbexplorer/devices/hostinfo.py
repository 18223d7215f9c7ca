"""What a plugin says about this machine and the model it is given: the CPU's name and cores, the model's image
input. Shared by the plugins so that each names devices and reads models the same way."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import NamedTuple

from .api import PluginError


def cpu_name() -> str:
    """The CPU's model name as the OS reports it (/proc/cpuinfo's "model name"; else what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def usable_cpus() -> int:
    """Hardware threads this process may run on (its affinity mask, where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def physical_cores() -> int:
    """Physical cores this process may run on (onnxruntime's and LiteRT's default thread count): distinct
    (physical id, core id) pairs in /proc/cpuinfo, at most the usable threads."""
    usable = usable_cpus()
    cores = set()
    try:
        for block in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split("\n\n"):
            fields = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in block.splitlines())}
            if "core id" in fields:
                cores.add((fields.get("physical id"), fields["core id"]))
    except OSError:
        pass
    return min(len(cores), usable) if cores else usable


class ImageInput(NamedTuple):
    name: str
    batch: int | None  # the model's fixed batch; None when the batch dimension is symbolic
    chw: tuple[int, int, int]


def image_input(path: str) -> ImageInput:
    """The ONNX model's one image input (N x C x H x W, with C, H and W fixed), as vendor compilers are told it
    (``--input_shape``, ``--shapes``, a YAML config). PluginError for any other model."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    weights = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    if len(inputs) != 1:
        raise PluginError(f"{Path(path).name} has {len(inputs)} inputs; this plugin times image classifiers with "
                          f"one NCHW input.")
    dims = inputs[0].type.tensor_type.shape.dim
    chw = tuple(d.dim_value for d in dims[1:])
    if len(dims) != 4 or not all(chw):
        raise PluginError(f"the input {inputs[0].name} of {Path(path).name} is not N x C x H x W with fixed C, H, W.")
    return ImageInput(inputs[0].name, dims[0].dim_value or None, chw)


def random_input(rng, dtype, shape):
    """Timing data for one input: uniform in -1..1 for floats, over the whole range for integers, 0/1 for bool
    (what the values are does not change a MobileNet's time; only their type and shape do)."""
    import numpy as np  # here: discovery imports this package, and must not need numpy

    dtype, shape = np.dtype(dtype), list(shape)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(np.bool_)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, shape, dtype=dtype)
    return rng.uniform(-1.0, 1.0, shape).astype(dtype)
