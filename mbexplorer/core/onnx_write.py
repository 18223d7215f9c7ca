"""Writing ONNX: one graph writer for the builder and the importers, and saving a model file safely.

:class:`GraphWriter` collects what a graph is made of (nodes, initializers, inputs and outputs, model-local
functions) and the names taken so far, and assembles the ModelProto with the app's opset, IR version and a
producer name. The builder and the importers subclass it and keep their own layer-level helpers on top.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .outputs import write_atomically

OPSET = 17  # of the default domain; model-local function domains are version 1
IR_VERSION = 8  # fixed rather than onnx's newest, so that older onnxruntime releases still open the files


def unique_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base_2``, ``base_3``, ... : the first not in ``taken``, which it is added to."""
    name, k = base, 1
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


class GraphWriter:
    def __init__(self, reserved: Iterable[str] = ()):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, onnx.TensorProto] = {}
        self.graph_inputs: list[onnx.ValueInfoProto] = []
        self.graph_outputs: list[onnx.ValueInfoProto] = []
        self.functions: dict[tuple[str, str], onnx.FunctionProto] = {}
        self.taken: set[str] = set(reserved)  # names unique() will not hand out

    def unique(self, base: str) -> str:
        return unique_name(base, self.taken)

    def add_node(self, op_type: str, inputs: Sequence[str], outputs: Sequence[str], name: str,
                 **attrs) -> onnx.NodeProto:
        node = helper.make_node(op_type, list(inputs), list(outputs), name=name, **attrs)
        self.nodes.append(node)
        return node

    def add_initializer(self, name: str, value) -> str:
        """``value`` (an array) as the initializer ``name``, which the caller has made unique."""
        self.inits[name] = numpy_helper.from_array(np.asarray(value), name)
        return name

    def add_input(self, name: str, dtype, shape: Sequence[int | str]) -> None:
        self.graph_inputs.append(_value_info(name, dtype, shape))

    def add_output(self, name: str, dtype, shape: Sequence[int | str]) -> None:
        self.graph_outputs.append(_value_info(name, dtype, shape))

    def add_function(self, fn: onnx.FunctionProto) -> None:
        self.functions.setdefault((fn.domain, fn.name), fn)

    def to_model(self, graph_name: str, producer: str, props: dict[str, str] | None = None) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, graph_name, self.graph_inputs, self.graph_outputs,
                                  initializer=list(self.inits.values()))
        domains = dict.fromkeys(d for d, _ in self.functions)  # in first-use order, each once
        opsets = [helper.make_opsetid("", OPSET)] + [helper.make_opsetid(d, 1) for d in domains]
        model = helper.make_model(graph, opset_imports=opsets, functions=list(self.functions.values()),
                                  producer_name=producer, ir_version=IR_VERSION)
        if props:
            helper.set_model_props(model, props)
        return model


def _value_info(name: str, dtype, shape: Sequence[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), list(shape))


def save_model(model: onnx.ModelProto, path: str | os.PathLike) -> None:
    """Write ``model`` to ``path`` whole or not at all (``outputs.write_atomically``: a new file beside it,
    renamed over ``path`` once written and synced), so a failed or interrupted save never leaves a partial (or
    emptied) model. Raises OSError on a write error."""
    data = model.SerializeToString()  # before touching the disk: a model that cannot serialize writes nothing
    write_atomically(path, data)
