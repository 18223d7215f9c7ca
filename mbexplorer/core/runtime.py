"""The one place that builds onnxruntime sessions: providers, threads, optimisation level, and intermediate
tensors exposed as extra graph outputs (for per-layer comparisons, as onnxruntime's ``qdq_loss_debug`` does).

Extra outputs and optimisation: onnxruntime skips a fusion that would swallow a graph output (Conv+BatchNormalization
when the Conv's output is exposed, say), so an exposed tensor holds the value the unoptimised graph computes at every
level, and the level asked for is kept. ``tests/core/test_runtime.py`` checks this against models cut at the tensor.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from .errors import MbxError
from .graph import GraphIndex
from .model import LoadedModel

OPTIMIZATION = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}

# onnxruntime warns about every initializer its optimizer leaves unused (a Q/DQ pair it folded, say):
# noise on a user's terminal, not a problem with the model
QUIET = 3


class Session:
    """An onnxruntime session over a model (a :class:`LoadedModel` or a bare ``onnx.ModelProto``).

    ``providers``: execution provider names (or ``(name, options)`` pairs) in order of preference; CPU by
    default. ``threads``: intra-op threads (onnxruntime's default when None). ``optimization``: one of
    ``OPTIMIZATION``. ``extra_outputs``: tensor names to expose as graph outputs too, in a copy of the model.
    ``spin``: the intra-op threads busy-wait for work between runs (onnxruntime's default, the fastest for one
    session run back to back); False where sessions and numpy work take turns on the cores, which idle spinning
    threads would keep from each other.
    """

    def __init__(self, model: LoadedModel | onnx.ModelProto, *, providers: Sequence | None = None,
                 threads: int | None = None, optimization: str = "all", extra_outputs: Iterable[str] = (),
                 spin: bool = True):
        proto = model.model if isinstance(model, LoadedModel) else model
        providers = list(providers or ["CPUExecutionProvider"])
        available = ort.get_available_providers()
        missing = [p for p in (p if isinstance(p, str) else p[0] for p in providers) if p not in available]
        if missing:
            raise MbxError(f"execution provider {', '.join(missing)} is not available in this onnxruntime "
                           f"{ort.__version__}; available: {', '.join(available)}.")
        if optimization not in OPTIMIZATION:
            raise MbxError(f"optimization '{optimization}' is unknown; use one of {', '.join(OPTIMIZATION)}.")
        extra = [t for t in dict.fromkeys(extra_outputs) if t not in {o.name for o in proto.graph.output}]
        if extra:
            proto = with_outputs(model, extra)
        opts = ort.SessionOptions()
        opts.log_severity_level = QUIET
        opts.graph_optimization_level = OPTIMIZATION[optimization]
        if threads:
            opts.intra_op_num_threads = threads
        if not spin:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(proto.SerializeToString(), opts, providers=providers)
        self.inputs = self.session.get_inputs()  # NodeArgs: .name, .shape, .type
        self.outputs = self.session.get_outputs()
        self.input_names = [i.name for i in self.inputs]
        self.output_names = [o.name for o in self.outputs]

    @property
    def providers(self) -> list[str]:
        """The providers the session actually uses (onnxruntime adds CPU as the fallback)."""
        return self.session.get_providers()

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """The outputs named (all of them when None), by name."""
        names = list(outputs) if outputs is not None else self.output_names
        return dict(zip(names, self.session.run(names, feeds)))


def with_outputs(model: LoadedModel | onnx.ModelProto, tensors: Sequence[str]) -> onnx.ModelProto:
    """A copy of the model whose graph also outputs ``tensors`` (node outputs), each declared with its
    element type; the shape is left open, as a batch-1 shape would be wrong at another batch."""
    proto = model.model if isinstance(model, LoadedModel) else model
    produced = {t for n in proto.graph.node for t in n.output if t}
    unknown = [t for t in tensors if t not in produced]
    if unknown:
        shown = ", ".join(f"'{t}'" for t in unknown[:5]) + (" …" if len(unknown) > 5 else "")
        raise MbxError(f"no node of the model outputs tensor {shown}; extra outputs must be node outputs.")
    types = _elem_types(model, tensors)
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    copy.graph.output.extend(onnx.helper.make_tensor_value_info(t, types.get(t, 0), None) for t in tensors)
    return copy


def _elem_types(model: LoadedModel | onnx.ModelProto, tensors: Sequence[str]) -> dict[str, int]:
    """ONNX element types of the tensors: from the record's dtypes, or by shape inference on a bare proto.
    A type nothing can infer stays 0 (undefined), which onnxruntime fills in from the producing node."""
    if isinstance(model, LoadedModel):
        return {t: _elem_type(model.dtypes[t]) for t in tensors if t in model.dtypes}
    g = onnx.shape_inference.infer_shapes(model).graph
    return {vi.name: vi.type.tensor_type.elem_type for vi in list(g.value_info) + list(g.output)}


def _elem_type(dtype: str) -> int:
    try:
        return onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    except (TypeError, KeyError, ValueError):  # names numpy lacks ("bfloat16") are ONNX's own, lower-cased
        name = dtype.upper()
        return onnx.TensorProto.DataType.Value(name) if name in onnx.TensorProto.DataType.keys() else 0


def intermediate_tensors(model: LoadedModel) -> list[str]:
    """Tensors ``extra_outputs`` can expose that vary with the input: outputs of non-constant nodes that are
    not already graph outputs, in execution order."""
    gi = GraphIndex(model)
    outs = set(gi.graph_outputs)
    return [t for i in gi.activation_nodes for t in gi.nodes[i].output if t and t not in outs]
