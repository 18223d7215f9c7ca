"""Opening model files: ``load(path)`` is the one entry point, for the CLI, the window and scripts.

It asks ``formats`` what a file is from its bytes (never its extension), parses ONNX itself (with external
weights beside the file) and hands every other format to its importer (``importers/``): TFLite, Keras
(.h5, .keras), TF.js layers models (a folder with model.json, or the model.json itself) and PyTorch state
dicts (.safetensors, .pth). Whatever the source, the result is a validated :class:`LoadedModel` made by
``model.from_proto``. This dispatcher sits above the importers; nothing below imports it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from . import formats
from .errors import (
    ExternalDataError,
    InputShapeError,
    ModelLoadError,
    NotAModelError,
    TruncatedModelError,
)
from .importers.keras import import_keras
from .importers.tflite import import_tflite
from .importers.torch_state import import_state_dict
from .model import LoadedModel, from_proto


def load(path: str | os.PathLike, input_shapes: Mapping[str, Sequence[int]] | None = None) -> LoadedModel:
    """Open a model file. ``input_shapes`` fixes inputs whose size is symbolic (beyond the batch)."""
    path = Path(path)
    if path.is_dir():
        if formats.is_tfjs_folder(path):
            return import_keras(path)
        raise NotAModelError(f"{path} is a folder, not a model file. Choose the model file inside it.")
    if not path.exists():
        raise ModelLoadError(f"{path} does not exist.")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    kind = formats.model_kind(path, data[:64])
    if kind == "onnx":
        return _load_onnx(path, data, input_shapes)
    if kind == "tflite":
        model = import_tflite(path, data)
    elif kind == "torch":
        model = import_state_dict(path)
    elif kind == "keras":
        model = import_keras(path)
    else:
        raise formats.refusal(path, kind)
    _check_fixed_shapes(model, input_shapes or {})
    return model


def _check_fixed_shapes(model: LoadedModel, given: Mapping[str, Sequence[int]]) -> None:
    """An imported model's input sizes are fixed by its file: a shape given for it would be silently dropped,
    so one that differs is refused (the CLI's --input-shape and the window's Set input shape alike)."""
    for name, dims in given.items():
        spec = next((s for s in model.inputs if s.name == name), None)
        fits = spec is not None and len(spec.shape) == len(dims) and all(
            not isinstance(have, int) or have == int(want) for have, want in zip(spec.shape, dims))  # "batch" fits any
        if not fits:
            fixed = "; ".join(s.describe() for s in model.inputs)
            raise InputShapeError(f"the input shape {name}={','.join(map(str, dims))} cannot be applied: {model.name} "
                                  f"is a {model.source_format} model whose input sizes its file fixes ({fixed}); "
                                  "input shapes apply to ONNX files only.")


def _load_onnx(path: Path, data: bytes, input_shapes: Mapping[str, Sequence[int]] | None) -> LoadedModel:
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except DecodeError as exc:
        raise TruncatedModelError(
            f"{path.name} starts like an ONNX model but cannot be parsed ({len(data):,} bytes): "
            "the file is truncated or corrupt. Export or download it again."
        ) from exc
    if not proto.HasField("graph") or not proto.graph.node:
        raise TruncatedModelError(
            f"{path.name} parses as ONNX but has no graph: the file is truncated or corrupt. Export it again."
        )
    _check_text(proto, path)
    _load_external_data(proto, path)
    return from_proto(
        proto,
        name=path.stem,
        source_format="onnx",
        source_path=path.resolve(),
        sha256=hashlib.sha256(data).hexdigest(),
        file_size=len(data),
        input_shapes=input_shapes,
    )


def _check_text(proto: onnx.ModelProto, path: Path) -> None:
    """Names must be UTF-8 text. protobuf hands a string field that is not as ``bytes``, where every later
    step expects ``str``; in a file it means the bytes are damaged (a length prefix hit, say)."""
    g = proto.graph
    texts = [proto.producer_name, proto.producer_version, proto.domain, g.name]
    texts += [o.domain for o in proto.opset_import]
    texts += [x for p in proto.metadata_props for x in (p.key, p.value)]
    texts += [t.name for t in g.initializer]
    for vi in (*g.input, *g.output, *g.value_info):
        texts.append(vi.name)
        texts += [d.dim_param for d in vi.type.tensor_type.shape.dim]
    for node in g.node:
        texts += [node.name, node.op_type, node.domain, *node.input, *node.output]
        texts += [a.name for a in node.attribute]
    bad = next((t for t in texts if not isinstance(t, str)), None)
    if bad is not None:
        raise TruncatedModelError(
            f"{path.name} is an ONNX model with a name that is not text ({bad[:40]!r}): the file is corrupt. "
            "Export or download it again."
        )


def _load_external_data(proto: onnx.ModelProto, path: Path) -> None:
    base = path.resolve().parent
    for tensor in external_data_helper._get_all_tensors(proto):
        if not external_data_helper.uses_external_data(tensor):
            continue
        info = external_data_helper.ExternalDataInfo(tensor)
        target = (base / info.location).resolve()
        if base != target and base not in target.parents:
            raise ExternalDataError(
                f"{path.name} refers to weights outside its folder ({info.location}); "
                "only external data next to the model is loaded. Move the data file beside the model."
            )
        if not target.is_file():
            raise ExternalDataError(
                f"{path.name} keeps weights in {info.location}, which is missing. Put it beside the model."
            )
    try:
        external_data_helper.load_external_data_for_model(proto, str(base))
    except (OSError, ValueError) as exc:
        raise ExternalDataError(f"cannot read the external weights of {path.name}: {exc}") from exc
