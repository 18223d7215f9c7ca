"""Untrusted model files: every outcome of opening one is a model or a typed refusal (``MbxError``), never
another exception and never a numpy warning.

The three mutants in ../shared/fuzz once escaped as TypeError, OverflowError and IndexError; TFLite
quantization parameters that no runtime can use (synthetic models from ``tflite_writer``) are refused where
they are read; and a few hundred fresh mutants (``bench/fuzz_mutants.py``, fixed seeds) of a built ONNX
model and the small shared TFLite models each open or are refused. ``bench/bench_fuzz.py`` runs 10,000.
"""

from __future__ import annotations

import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest
from tflite_writer import BO, BOpt, Graph

from mbexplorer.core.analysis import open_model
from mbexplorer.core.errors import InvalidGraphError, MbxError, TruncatedModelError
from mbexplorer.core.loading import load

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
from fuzz_mutants import mutant  # noqa: E402

sys.path.remove(str(BENCH))

pytestmark = [pytest.mark.shared, pytest.mark.filterwarnings("error::RuntimeWarning")]


@pytest.mark.parametrize("name,error,words", [
    # a Conv's "group" attribute lost its type: its value read as None
    ("m4616.onnx", InvalidGraphError, ["attribute 'group'", "blocks.1.1.conv_pw", "has no type", "export it again"]),
    # a zero point far outside uint8 made XNNPACK's ADD constants too large for int64
    ("m5046.tflite", TruncatedModelError,
     ["squeeze_excite/Conv_1/BiasAdd", "zero point 140737488355457", "outside uint8's range 0 to 255"]),
    # a length prefix hit: a node swallowed the next one's bytes as a name that is no UTF-8 text, and has no output
    ("m8156.onnx", TruncatedModelError, ["name that is not text", "blocks.2.1.conv_pw.weight", "corrupt"]),
])
def test_shared_fuzz_finds_are_typed_refusals(shared_dir, name, error, words):
    with pytest.raises(MbxError) as info:
        open_model(shared_dir / "fuzz" / name)
    assert type(info.value) is error
    for w in words:
        assert w in str(info.value)


# --------------------------------------------------------------------------------------------------
# Quantization parameters


def quant_model(**q) -> bytes:
    """int8 input -> per-channel int8 CONV_2D -> HARD_SWISH -> ADD of the input: every kind of quantized tensor
    the importer computes with. ``q``: tensor name -> (scale, zero point, axis), replacing its default."""
    i8 = np.int8
    params = {"input": (0.02, -3, 0), "w": ([0.01, 0.02], [0, 0], 0), "b": ([0.0002, 0.0004], [0, 0], 0),
              "conv": (0.05, 5, 0), "hswish": (0.04, -20, 0), "sum": (0.06, 1, 0)} | q
    g = Graph()
    x = g.t("input", [1, 4, 4, 2], i8, q=params["input"])
    w = g.t("w", [2, 1, 1, 2], i8, data=[[[[10, -20]]], [[[30, 40]]]], q=params["w"])
    b = g.t("b", [2], np.int32, data=[100, -200], q=params["b"])
    y = g.t("conv", [1, 4, 4, 2], i8, q=params["conv"])
    h = g.t("hswish", [1, 4, 4, 2], i8, q=params["hswish"])
    s = g.t("sum", [1, 4, 4, 2], i8, q=params["sum"])
    g.inputs, g.outputs = [x], [s]
    g.op(BO.CONV_2D, [x, w, b], [y], BOpt.Conv2DOptions, "Conv2DOptions", Padding=1, StrideW=1, StrideH=1)
    g.op(BO.HARD_SWISH, [y], [h])
    g.op(BO.ADD, [h, x], [s], BOpt.AddOptions, "AddOptions")
    return g.build()


@pytest.mark.parametrize("q", [
    {},
    # scales valid alone but far apart: the integer kernels' ratios overflow float32, so those ops fall back
    # to plain QDQ, quietly
    {"input": (1e30, 0, 0), "conv": (1e-30, 0, 0), "hswish": (1e30, 0, 0), "sum": (1e-30, 0, 0)},
    {"conv": (1e30, 0, 0), "hswish": (1e-30, 0, 0)},
], ids=["plain", "ratios-overflow", "hswish-ratio-overflows"])
def test_usable_quantization_opens(tmp_path, q):
    path = tmp_path / "q.tflite"
    path.write_bytes(quant_model(**q))
    model = load(path)
    assert model.float_twin is not None


@pytest.mark.parametrize("tensor,q,words", [
    ("input", (float("nan"), 0, 0), "quantization scale nan"),
    ("conv", (float("inf"), 0, 0), "quantization scale inf"),
    ("hswish", (0.0, 0, 0), "quantization scale 0.0"),
    ("sum", (-0.5, 0, 0), "quantization scale -0.5"),
    ("w", ([0.01, float("nan")], [0, 0], 0), "quantization scale nan"),
    ("b", ([0.0002, 0.0], [0, 0], 0), "quantization scale 0.0"),
    ("input", (1e37, 0, 0), "at most 1.33e+36 for int8"),  # a real value of the int8 range overflows float32
    ("b", ([1e29, 1e-4], [0, 0], 0), "at most 7.92e+28 for int32"),
    ("input", (0.02, 128, 0), "zero point 128, outside int8's range -128 to 127"),
    ("sum", (0.02, -129, 0), "zero point -129, outside int8's range"),
    ("b", ([0.0002, 0.0004], [0, 2**40], 0), f"zero point {2**40}, outside int32's range"),
    ("w", ([0.01, 0.02, 0.03], [0, 0, 0], 0), "has 3 scales along axis 0"),
    ("w", ([0.01, 0.02], [0, 0], 5), "has 2 scales along axis 5"),
])
def test_unusable_quantization_is_refused_naming_the_tensor(tmp_path, tensor, q, words):
    path = tmp_path / "q.tflite"
    path.write_bytes(quant_model(**{tensor: q}))
    with pytest.raises(TruncatedModelError) as info:
        load(path)
    message = str(info.value)
    assert f"tensor '{tensor}'" in message and words in message, message


def test_shared_model_with_a_patched_scale_is_refused(shared_dir, tmp_path):
    """The same check on a real file: the first tensor's scale in the shared V1 model set to nan in its bytes."""
    import tflite

    data = bytearray((shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite").read_bytes())
    tensor = tflite.Model.GetRootAs(data, 0).Subgraphs(0).Tensors(0)
    quant = tensor.Quantization()._tab
    at = quant.Vector(quant.Offset(8))  # QuantizationParameters.scale: field 2, vtable slot 4 + 2 * 2
    assert data[at:at + 4] == np.float32(tensor.Quantization().Scale(0)).tobytes()
    data[at:at + 4] = np.float32(np.nan).tobytes()
    path = tmp_path / "patched.tflite"
    path.write_bytes(bytes(data))
    with pytest.raises(TruncatedModelError, match="quantization scale nan") as info:
        load(path)
    assert tensor.Name().decode() in str(info.value)


# --------------------------------------------------------------------------------------------------
# Mutants

MUTANTS = 300  # about 13 s on one core; bench/bench_fuzz.py runs 10,000 in worker processes
TFLITE_BASES = ("mobilenet_v1_0.25_128_quant.tflite", "v3-small_224_1.0_uint8.tflite")


@pytest.fixture(scope="module")
def bases(shared_dir, built):
    onnx_bytes = built("mobilenet_v1", 0.25, 96).model.SerializeToString()
    return [("mobilenet_v1_0.25_96.onnx", onnx_bytes)] + \
        [(name, (shared_dir / "models" / name).read_bytes()) for name in TFLITE_BASES]


def test_mutants_open_or_are_refused(bases, tmp_path):
    """Each mutant opens (load, graph, blocks, costs) or raises an MbxError; anything else, or a numpy warning,
    fails the test with the mutant's seed and mutation (reproduce with ``fuzz_mutants.mutant(bases, seed)``)."""
    failures, outcomes = [], {"open": 0, "refused": 0}
    start = time.perf_counter()
    for seed in range(MUTANTS):
        name, data, how = mutant(bases, seed)
        path = tmp_path / f"m{seed}{Path(name).suffix}"
        path.write_bytes(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)
                open_model(path)
            outcomes["open"] += 1
        except MbxError:
            outcomes["refused"] += 1
        except Exception as exc:  # what this test is for: report every one, with how to reproduce it
            where = traceback.extract_tb(exc.__traceback__)[-1]
            failures.append(f"{how}: {type(exc).__name__}: {exc} ({Path(where.filename).name}:{where.lineno})")
        path.unlink()
    elapsed = time.perf_counter() - start
    assert not failures, f"{len(failures)} of {MUTANTS} mutants escaped:\n" + "\n".join(failures)
    # both outcomes occur, or the mutations have stopped reaching the loaders' checks
    assert outcomes["open"] and outcomes["refused"], (outcomes, elapsed)
