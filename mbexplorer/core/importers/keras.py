"""Keras and TF.js importer: Keras models to ONNX without TensorFlow (JSON, h5py and numpy only).

Reads
  * TF.js *layers* models: a folder with ``model.json`` (Keras topology in ``modelTopology``) and the binary
    weight shards its ``weightsManifest`` lists (float32, int32, and uint8 / uint16 / float16 quantized weights);
  * Keras 2 full-model ``.h5`` files (``model_config`` attribute + ``model_weights/<layer>/...`` datasets);
  * Keras 3 ``.keras`` archives (``config.json`` + ``model.weights.h5`` with ``layers/<name>/vars/<i>``);
  * weight-only ``.h5`` files (keras-applications style: ``layer_names``, no config) of Keras's MobileNet and
    MobileNetV2: the architecture is generated here (:func:`mobilenet_config`), channel counts from the weights.

The layer graph is converted by :mod:`.keras_layers`. The model's input stays NHWC float32 with a dynamic batch;
preprocessing and labels are left to the app (Keras and TF.js MobileNets take x / 127.5 - 1).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import (
    ExternalDataError,
    ModelLoadError,
    NotAModelError,
    TruncatedModelError,
    UnsupportedFormatError,
)
from ..formats import is_tfjs_folder, sniff
from ..model import LoadedModel, from_proto
from .keras_layers import convert

ARCHS = ("mobilenet", "mobilenet_v2")


def import_keras(path: str | os.PathLike, weights_only_arch: str | None = None, *, fold_bn: bool = False,
                 input_size: int = 224) -> LoadedModel:
    """Import a TF.js layers model (folder or model.json), a Keras .h5 / .keras file, or a weight-only .h5 of
    Keras's MobileNet / MobileNetV2 (``weights_only_arch`` "mobilenet" / "mobilenet_v2", else guessed from the
    layer names; ``input_size`` is its input resolution). ``fold_bn`` folds BatchNormalization into the conv
    before it."""
    path = Path(path)
    if weights_only_arch is not None and weights_only_arch not in ARCHS:
        raise ModelLoadError(f"unknown architecture '{weights_only_arch}'; choose {' or '.join(ARCHS)}.")
    if path.is_dir():
        if not is_tfjs_folder(path):
            raise NotAModelError(f"{path.name} is a folder without a model.json: it is not a TF.js model.")
        return _import_tfjs(path / "model.json", path.name, fold_bn)
    if not path.is_file():
        raise ModelLoadError(f"{path} does not exist.")
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    kind = sniff(head)
    if kind == "hdf5":
        return _import_h5(path, weights_only_arch, fold_bn, input_size)
    if kind == "zip":
        return _import_keras_zip(path, fold_bn)
    if head.lstrip()[:1] == b"{":  # a JSON object (sniff's "json" also takes a list, which no model.json is)
        return _import_tfjs(path, path.parent.name if path.name == "model.json" else path.stem, fold_bn)
    if kind == "empty":
        raise NotAModelError(f"{path.name} is empty (0 bytes): it is not a model.")
    raise NotAModelError(f"{path.name} is not a Keras (.h5, .keras) or TF.js (model.json) model.")


def _finish(proto, name: str, fmt: str, path: Path, sha: str, size: int) -> LoadedModel:
    return from_proto(proto, name=name, source_format=fmt, source_path=path.resolve(), sha256=sha, file_size=size)


def _decode(v) -> str:
    return v.decode("utf-8") if isinstance(v, (bytes, np.bytes_)) else str(v)


def _split_weight_name(full: str, fallback: str | None = None) -> tuple[str | None, str]:
    """'conv1/kernel:0' -> ('conv1', 'kernel'); 'model/conv1_bn/gamma' -> ('conv1_bn', 'gamma')."""
    parts = full.split("/")
    short = parts[-1].split(":")[0]
    return (parts[-2] if len(parts) > 1 else fallback), short


# --------------------------------------------------------------------------------------------------
# TF.js layers models

_TFJS_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_, "float16": np.float16,
                "uint8": np.uint8, "uint16": np.uint16, "int8": np.int8, "int16": np.int16}


def read_tfjs(json_path: Path) -> tuple[dict, dict, str, bytes, int]:
    """A TF.js layers model's Keras config, weights by layer, Keras version, model.json bytes and shard bytes."""
    json_path = Path(json_path)
    data = json_path.read_bytes()
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise TruncatedModelError(
            f"{json_path.name} is not valid JSON ({exc}); the file is truncated or corrupt.") from None
    if not isinstance(doc, dict) or "modelTopology" not in doc or "weightsManifest" not in doc:
        raise NotAModelError(
            f"{json_path.name} is JSON but not a TF.js model: it has no 'modelTopology' and 'weightsManifest'.")
    topo = doc["modelTopology"]
    if doc.get("format") == "graph-model" or (isinstance(topo, dict) and "node" in topo):
        raise UnsupportedFormatError(
            f"{json_path.name} is a TF.js graph model (converted from a SavedModel); this importer reads TF.js "
            "layers models (Keras topology) only. Convert the original model to ONNX instead.")
    config = topo.get("model_config", topo) if isinstance(topo, dict) else None
    if not isinstance(config, dict) or "class_name" not in config:
        raise NotAModelError(f"{json_path.name}: 'modelTopology' holds no Keras model config.")
    weights, shard_bytes = _tfjs_weights(doc["weightsManifest"], json_path)
    version = str(topo.get("keras_version", ""))
    if version.startswith("tfjs"):
        version = "2"  # tfjs-layers follows Keras 2 semantics
    return config, weights, version, data, shard_bytes


def _import_tfjs(json_path: Path, name: str, fold_bn: bool) -> LoadedModel:
    config, weights, version, data, shard_bytes = read_tfjs(json_path)
    proto = convert(config, weights, name, fold_bn=fold_bn, keras_version=version, source_format="tfjs")
    return _finish(proto, name, "tfjs", json_path, hashlib.sha256(data).hexdigest(), len(data) + shard_bytes)


def _tfjs_weights(manifest, json_path: Path) -> tuple[dict, int]:
    base = json_path.resolve().parent
    weights: dict[str, list] = {}
    total = 0
    if not isinstance(manifest, list):
        raise NotAModelError(f"{json_path.name}: 'weightsManifest' is not a list of weight groups.")
    for group in manifest:
        blobs = []
        for rel in group.get("paths", []):
            target = (base / rel).resolve()
            if base not in target.parents:
                raise ExternalDataError(
                    f"{json_path.name} refers to weights outside its folder ({rel}); only shards beside it are read.")
            if not target.is_file():
                raise ExternalDataError(
                    f"{json_path.name} lists the weight file '{rel}', which is missing. Put every shard beside "
                    "model.json.")
            blobs.append(target.read_bytes())
        blob = b"".join(blobs)
        total += len(blob)
        offset = 0
        for w in group.get("weights", []):
            wname, shape = w["name"], [int(d) for d in w.get("shape", [])]
            count = int(np.prod(shape)) if shape else 1
            q = w.get("quantization")
            stored = (q or {}).get("dtype") or w.get("dtype", "float32")
            if stored not in _TFJS_DTYPES:
                raise UnsupportedFormatError(f"{json_path.name}: weight '{wname}' has dtype '{stored}', "
                                             "which the importer cannot read.")
            dt = np.dtype(_TFJS_DTYPES[stored]).newbyteorder("<")
            nbytes = count * dt.itemsize
            if offset + nbytes > len(blob):
                raise TruncatedModelError(
                    f"{json_path.name}: the shards of weight '{wname}' hold {len(blob):,} bytes, fewer than the "
                    f"manifest needs; a shard is truncated. Download the model again.")
            arr = np.frombuffer(blob, dt, count, offset).reshape(shape)
            offset += nbytes
            if q and stored in ("uint8", "uint16"):
                arr = arr.astype(np.float32) * np.float32(q["scale"]) + np.float32(q["min"])
            elif stored == "float16" or (q and stored != w.get("dtype")):
                arr = arr.astype(np.float32)
            layer, short = _split_weight_name(wname)
            if layer is None:
                raise NotAModelError(f"{json_path.name}: weight name '{wname}' does not name its layer.")
            weights.setdefault(layer, []).append((short, arr))
    return weights, total


# --------------------------------------------------------------------------------------------------
# Keras HDF5 and .keras


def _open_h5(source, label: str):
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is a dependency; a broken install lands here
        raise UnsupportedFormatError(f"{label} is a Keras HDF5 file; reading it needs the h5py package.") from exc
    try:
        return h5py.File(source, "r")
    except (OSError, ValueError) as exc:
        raise TruncatedModelError(
            f"{label} starts like an HDF5 file but cannot be opened ({str(exc).splitlines()[0]}): the file is "
            "truncated or corrupt. Save or download it again.") from None


def _attr_json(attrs, key: str):
    v = attrs.get(key)
    return None if v is None else json.loads(_decode(v))


def _h5_layer_weights(root) -> dict:
    """Keras 2 layout: ``layer_names`` on the root, ``weight_names`` on each layer group."""
    weights: dict[str, list] = {}
    for lname in (_decode(n) for n in root.attrs["layer_names"]):
        g = root[lname]
        for wn in (_decode(n) for n in g.attrs.get("weight_names", [])):
            layer, short = _split_weight_name(wn, lname)
            weights.setdefault(layer, []).append((short, np.asarray(g[wn])))
    return weights


def _h5_vars_weights(f) -> dict:
    """Keras 3 layout (.keras and .weights.h5): ``.../<layer name>/vars/<i>`` datasets."""
    weights: dict[str, list] = {}
    groups = []
    f.visititems(lambda p, obj: groups.append(p) if p.split("/")[-1] == "vars" and hasattr(obj, "keys") else None)
    for p in groups:
        parts = p.split("/")
        if len(parts) < 2 or parts[0] == "optimizer":
            continue
        g = f[p]
        keys = sorted(g.keys(), key=lambda k: int(k) if k.isdigit() else k)
        if keys:
            weights[parts[-2]] = [(f"var{k}", np.asarray(g[k])) for k in keys]
    return weights


def _read_h5_weights(f, label: str) -> dict:
    try:
        if "layer_names" in f.attrs:
            return _h5_layer_weights(f)
        if "model_weights" in f and "layer_names" in f["model_weights"].attrs:
            return _h5_layer_weights(f["model_weights"])
        return _h5_vars_weights(f)
    except (OSError, KeyError, ValueError) as exc:
        raise TruncatedModelError(
            f"{label}: the weights cannot be read ({str(exc).splitlines()[0]}); the file is truncated or "
            "corrupt.") from None


def _import_h5(path: Path, arch: str | None, fold_bn: bool, input_size: int) -> LoadedModel:
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    with _open_h5(io.BytesIO(data), path.name) as f:
        version = _decode(f.attrs.get("keras_version", ""))
        try:
            config = _attr_json(f.attrs, "model_config")
        except ValueError:
            raise TruncatedModelError(f"{path.name}: its model_config is not valid JSON; the file is corrupt.") \
                from None
        weights = _read_h5_weights(f, path.name)
    props = {}
    if config is None:
        if not weights:
            raise NotAModelError(f"{path.name} is an HDF5 file but not a Keras model (no model_config, no weights).")
        config, props = mobilenet_config(weights, arch, input_size, path.name)
    proto = convert(config, weights, path.stem, fold_bn=fold_bn, keras_version=version, props=props)
    return _finish(proto, path.stem, "keras", path, sha, len(data))


def _import_keras_zip(path: Path, fold_bn: bool) -> LoadedModel:
    data = path.read_bytes()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = z.namelist()
            if "config.json" not in names:
                raise NotAModelError(f"{path.name} is a zip archive but not a Keras .keras file (no config.json).")
            config = json.loads(z.read("config.json"))
            meta = json.loads(z.read("metadata.json")) if "metadata.json" in names else {}
            wname = next((n for n in names if n.endswith(".weights.h5")), None)
            if wname is None:
                raise NotAModelError(f"{path.name} is a .keras archive without model.weights.h5.")
            wbytes = z.read(wname)
    except (zipfile.BadZipFile, EOFError, ValueError, KeyError, OSError) as exc:
        raise TruncatedModelError(
            f"{path.name} starts like a zip (.keras) archive but cannot be read ({exc}); the file is truncated "
            "or corrupt.") from None
    with _open_h5(io.BytesIO(wbytes), f"{path.name}/{wname}") as f:
        weights = _read_h5_weights(f, path.name)
    version = str(meta.get("keras_version", "3"))
    proto = convert(config, weights, path.stem, fold_bn=fold_bn, keras_version=version)
    return _finish(proto, path.stem, "keras", path, hashlib.sha256(data).hexdigest(), len(data))


# --------------------------------------------------------------------------------------------------
# Architectures for weight-only files: keras.applications.MobileNet / MobileNetV2 (Keras 2.6+ and 3 naming)


class _Config:
    def __init__(self, name: str):
        self.name = name
        self.layers: list[dict] = []

    def add(self, cls: str, name: str, inbound: list[str], **config) -> str:
        self.layers.append({"class_name": cls, "name": name, "config": {"name": name, **config},
                            "inbound_nodes": [[[i, 0, 0, {}] for i in inbound]] if inbound else []})
        return name

    def model(self, inp: str, out: str) -> dict:
        return {"class_name": "Functional", "config": {"name": self.name, "layers": self.layers,
                                                      "input_layers": [[inp, 0, 0]], "output_layers": [[out, 0, 0]]}}

    def conv_bn_relu(self, x: str, conv: str, bn: str, act: str | None, filters: int, k: int, stride: int = 1,
                     padding: str = "same", depthwise: bool = False) -> str:
        common = dict(kernel_size=[k, k], strides=[stride, stride], padding=padding, use_bias=False,
                      activation="linear")
        if depthwise:
            x = self.add("DepthwiseConv2D", conv, [x], depth_multiplier=1, **common)
        else:
            x = self.add("Conv2D", conv, [x], filters=filters, **common)
        x = self.add("BatchNormalization", bn, [x], axis=-1, epsilon=1e-3)
        return self.add("ReLU", act, [x], max_value=6.0) if act else x


def _filters(weights: dict, layer: str) -> int:
    try:
        return int(np.asarray(weights[layer][0][1]).shape[-1])
    except (KeyError, IndexError) as exc:
        raise ModelLoadError(f"the weight file has no kernel for layer '{layer}'.") from exc


def mobilenet_config(weights: dict, arch: str | None, size: int = 224, label: str = "the file") -> tuple[dict, dict]:
    """The Keras config of MobileNet / MobileNetV2 fitting a weight-only file, and metadata saying so."""
    names = set(weights)
    guessed = "mobilenet" if "conv_dw_1" in names else (
        "mobilenet_v2" if {"Conv1", "expanded_conv_depthwise"} & names else None)
    arch = arch or guessed
    if arch is None:
        raise NotAModelError(
            f"{label} holds weights only (no model config) and its layer names match neither Keras's MobileNet "
            "(conv_dw_1, ...) nor MobileNetV2 (Conv1, expanded_conv_depthwise, ...); the architecture is unknown.")
    if arch != guessed:
        raise ModelLoadError(f"{label} does not hold {arch} weights (its layer names are those of "
                             f"{guessed or 'neither MobileNet nor MobileNetV2'}).")
    cfg, alpha = (_v1 if arch == "mobilenet" else _v2)(weights, size)
    props = {"architecture": f"keras.applications.{'MobileNet' if arch == 'mobilenet' else 'MobileNetV2'}",
             "alpha": f"{alpha:g}", "input_size": str(size), "weights_only": "true"}
    return cfg, props


def _input(c: _Config, size: int) -> str:
    return c.add("InputLayer", "input_1", [], batch_input_shape=[None, size, size, 3], dtype="float32")


def _head(c: _Config, weights: dict, x: str, conv: bool) -> str:
    if conv:  # MobileNet: pool (keepdims), dropout, 1x1 conv, reshape, softmax
        classes = _filters(weights, "conv_preds")
        x = c.add("GlobalAveragePooling2D", "global_average_pooling2d", [x], keepdims=True)
        x = c.add("Dropout", "dropout", [x], rate=1e-3)
        x = c.add("Conv2D", "conv_preds", [x], filters=classes, kernel_size=[1, 1], strides=[1, 1], padding="same",
                  use_bias=True, activation="linear")
        x = c.add("Reshape", "reshape_2", [x], target_shape=[classes])
        return c.add("Activation", "predictions", [x], activation="softmax")
    classes = _filters(weights, "predictions")
    x = c.add("GlobalAveragePooling2D", "global_average_pooling2d", [x], keepdims=False)
    return c.add("Dense", "predictions", [x], units=classes, activation="softmax", use_bias=True)


def _v1(weights: dict, size: int) -> tuple[dict, float]:
    first = _filters(weights, "conv1")
    alpha = _filters(weights, "conv_pw_13") / 1024
    c = _Config(f"mobilenet_{alpha:.2f}_{size}")
    inp = x = _input(c, size)
    x = c.conv_bn_relu(x, "conv1", "conv1_bn", "conv1_relu", first, 3, 2)
    for i in range(1, 14):
        stride = 2 if i in (2, 4, 6, 12) else 1
        if stride == 2:  # as Keras does, whatever the size (the same as TF SAME on even sizes)
            x = c.add("ZeroPadding2D", f"conv_pad_{i}", [x], padding=[[0, 1], [0, 1]])
        x = c.conv_bn_relu(x, f"conv_dw_{i}", f"conv_dw_{i}_bn", f"conv_dw_{i}_relu", 0, 3, stride,
                           "same" if stride == 1 else "valid", depthwise=True)
        x = c.conv_bn_relu(x, f"conv_pw_{i}", f"conv_pw_{i}_bn", f"conv_pw_{i}_relu",
                           _filters(weights, f"conv_pw_{i}"), 1)
    if "conv_preds" in weights:
        x = _head(c, weights, x, conv=True)
    return c.model(inp, x), alpha


_V2_BLOCKS = [(1, 1), (2, 6), (1, 6), (2, 6), (1, 6), (1, 6), (2, 6), (1, 6), (1, 6), (1, 6), (1, 6), (1, 6),
              (1, 6), (2, 6), (1, 6), (1, 6), (1, 6)]  # (stride, expansion) of blocks 0..16


def _v2(weights: dict, size: int) -> tuple[dict, float]:
    alpha = _filters(weights, "block_16_project") / 320
    c = _Config(f"mobilenetv2_{alpha:.2f}_{size}")
    inp = x = _input(c, size)
    cin = _filters(weights, "Conv1")
    x = c.conv_bn_relu(x, "Conv1", "bn_Conv1", "Conv1_relu", cin, 3, 2)
    hw = -(-size // 2)
    for b, (stride, _) in enumerate(_V2_BLOCKS):
        prefix = f"block_{b}_" if b else "expanded_conv_"
        y = x
        if b:
            y = c.conv_bn_relu(y, prefix + "expand", prefix + "expand_BN", prefix + "expand_relu",
                               _filters(weights, prefix + "expand"), 1)
        if stride == 2:  # imagenet_utils.correct_pad
            adjust = 1 - hw % 2
            y = c.add("ZeroPadding2D", prefix + "pad", [y], padding=[[1 - adjust, 1], [1 - adjust, 1]])
            hw = -(-hw // 2)
        y = c.conv_bn_relu(y, prefix + "depthwise", prefix + "depthwise_BN", prefix + "depthwise_relu", 0, 3, stride,
                           "same" if stride == 1 else "valid", depthwise=True)
        cout = _filters(weights, prefix + "project")
        y = c.conv_bn_relu(y, prefix + "project", prefix + "project_BN", None, cout, 1)
        if stride == 1 and cin == cout:
            y = c.add("Add", prefix + "add", [x, y])
        x, cin = y, cout
    x = c.conv_bn_relu(x, "Conv_1", "Conv_1_bn", "out_relu", _filters(weights, "Conv_1"), 1)
    if "predictions" in weights:
        x = _head(c, weights, x, conv=False)
    return c.model(inp, x), alpha
