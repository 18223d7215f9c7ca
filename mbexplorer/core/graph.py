"""A read-only index over an ONNX graph: topological order, unique node names, producers, consumers,
and which tensors are constants (weights and everything computed from weights and static shapes).

Block grouping and cost analysis both walk graphs through this one index.
"""

from __future__ import annotations

import math
from collections import defaultdict
from functools import cache, cached_property

import numpy as np
import onnx

from .model import LoadedModel, toposort

# Ops whose output depends only on the *shape* of their input, which is static here.
_SHAPE_OPS = {"Shape", "Size"}


class GraphIndex:
    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded
        g = loaded.model.graph
        self.initializers: dict[str, onnx.TensorProto] = {t.name: t for t in g.initializer}
        self.graph_inputs = [vi.name for vi in g.input if vi.name not in self.initializers]
        self.graph_outputs = [vi.name for vi in g.output]
        self.nodes: list[onnx.NodeProto] = toposort(list(g.node))
        self.names: list[str] = [n.name for n in self.nodes]  # unique: ``from_proto`` names every node
        self.index: dict[str, int] = {n: i for i, n in enumerate(self.names)}
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = defaultdict(list)
        for i, node in enumerate(self.nodes):
            for t in node.output:
                if t:
                    self.producer[t] = i
            for t in node.input:
                if t:
                    self.consumers[t].append(i)
        self.constants: set[str] = set(self.initializers)
        self.const_nodes: set[int] = set()
        for i, node in enumerate(self.nodes):
            ins = [t for t in node.input if t]
            if node.op_type == "Constant" or node.op_type in _SHAPE_OPS or all(t in self.constants for t in ins):
                self.const_nodes.add(i)
                self.constants.update(t for t in node.output if t)

    # tensors -------------------------------------------------------------------------------------
    def shape(self, tensor: str) -> tuple[int, ...] | None:
        return self.loaded.shapes.get(tensor)

    def dtype(self, tensor: str) -> str | None:
        return self.loaded.dtypes.get(tensor)

    def nbytes(self, tensor: str) -> int:
        """Bytes of a tensor of known shape and dtype; 0 when either is unknown."""
        shape, dtype = self.shape(tensor), self.dtype(tensor)
        if shape is None or dtype is None:
            return 0
        return math.prod(shape) * itemsize(dtype)

    def activation_inputs(self, i: int) -> list[str]:
        return [t for t in self.nodes[i].input if t and t not in self.constants]

    def weight_source(self, tensor: str) -> onnx.TensorProto | None:
        """The initializer a constant tensor comes from, through DequantizeLinear, Identity, Cast, Reshape,
        Transpose and friends (so a QDQ model's int8 weight is found behind its DequantizeLinear)."""
        seen = 0
        while tensor and seen < 8:
            if tensor in self.initializers:
                return self.initializers[tensor]
            i = self.producer.get(tensor)
            if i is None:
                return None
            node = self.nodes[i]
            if node.op_type == "Constant":
                for a in node.attribute:
                    if a.name == "value":
                        return a.t
                return None
            tensor = node.input[0] if node.input else ""
            seen += 1
        return None

    @cached_property
    def activation_nodes(self) -> list[int]:
        return [i for i in range(len(self.nodes)) if i not in self.const_nodes]

    def attr(self, i: int, name: str, default=None):
        for a in self.nodes[i].attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default



@cache  # a handful of dtypes, asked once per tensor
def itemsize(dtype: str) -> int:
    """Bytes per element of a numpy dtype name; 0 for a name numpy does not know."""
    try:
        return np.dtype(dtype).itemsize
    except TypeError:
        return 0
