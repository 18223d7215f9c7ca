"""FLOPs and params conventions: how each published counter turns a network into one number.

A convention multiplies the convention-free terms measured per node (see ``costs.py``) by factors, and
names the terms its counter does not see at all (``skips``): a node with such a term is reported as
"not counted" under that convention rather than silently contributing zero.

Terms (elements are counted at batch 1):
  conv_macs, fc_macs      multiply-accumulates of convolutions (group-aware) and fully-connected layers
  conv_bias, fc_bias      output elements that receive a bias add
  bn                      BatchNormalization input elements
  relu, relu6, hswish, hsigmoid, sigmoid, other_act, softmax   activation output elements
  gap_in, gap_out         global average pooling: input elements read, output elements written
  avgpool_window/_out, maxpool_window/_out   windowed pooling: window reads (out x kernel), outputs
  add, mul                element-wise adds (residuals) and multiplies (squeeze-excite scaling)
  quant                   Quantize/DequantizeLinear elements (simulated quantization; free everywhere)
Param terms: weight (conv/FC weights), bias (conv/FC biases), bn_affine (gamma, beta), bn_stats (running
mean, variance), other (e.g. PReLU slopes).

The rules of each counter are taken from its source; see the per-convention descriptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FLOP_TERMS = (
    "conv_macs", "fc_macs", "conv_bias", "fc_bias", "bn", "relu", "relu6", "hswish", "hsigmoid", "sigmoid",
    "other_act", "softmax", "gap_in", "gap_out", "avgpool_window", "avgpool_out", "maxpool_window",
    "maxpool_out", "add", "mul", "quant",
)
FLOP_GROUPS = ("conv+fc", "bias", "bn", "activation", "pooling", "eltwise", "quant")
PARAM_GROUPS = ("weight", "bias", "bn_affine", "bn_stats", "other")


@dataclass(frozen=True)
class Convention:
    name: str
    title: str
    description: str
    flops_label: str
    flop_factors: dict[str, float]
    skips: frozenset[str] = field(default_factory=frozenset)
    param_terms: frozenset[str] = frozenset({"weight", "bias"})


def _c(name, title, description, flops_label, factors, skips=(), params=("weight", "bias")):
    return Convention(name, title, description, flops_label, dict(factors), frozenset(skips), frozenset(params))


_MACS = {"conv_macs": 1, "fc_macs": 1}

CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        _c("paper", "MobileNet papers",
           "FLOPs = 2 x mult-adds of conv and FC layers; params = conv and FC weights and biases, BN excluded "
           "(the MobileNet papers' tables; BN folds into the convolutions at inference).",
           "FLOPs (2 x MACs)", {"conv_macs": 2, "fc_macs": 2}),
        _c("torchvision", "torchvision model metadata",
           "params = every trainable parameter incl. BN gamma/beta (torchvision's num_params); "
           "flops = conv + linear MACs, which torchvision's weights metadata lists as GFLOPS.",
           "GFLOPS as torchvision lists them (= MACs)", _MACS,
           params=("weight", "bias", "bn_affine", "other")),
        _c("paddle", "paddle.flops (PaddleClas tables)",
           "paddle.flops: conv MACs + conv bias per output, Linear in x out, BN 2 per element, ReLU/ReLU6 0, "
           "adaptive average pool (kernel + 1) per output; layers without a rule (Hardswish, Hardsigmoid) and "
           "functional ops (add, multiply) are not seen. params include BN running mean and variance.",
           "FLOPs as paddle.flops prints them (1 per multiply-add)",
           {**_MACS, "conv_bias": 1, "bn": 2, "relu": 0, "relu6": 0, "gap_in": 1, "gap_out": 1,
            "avgpool_out": 1, "maxpool_out": 1},
           skips=("hswish", "hsigmoid", "sigmoid", "other_act", "softmax", "add", "mul"),
           params=("weight", "bias", "bn_affine", "bn_stats", "other")),
        _c("fvcore", "fvcore FlopCountAnalysis (timm)",
           "fvcore: conv and linear MACs (bias not counted), BN in eval 2 per element when affine, "
           "adaptive average pool 1 per input element; activations and element-wise ops are skipped.",
           "FLOPs as fvcore counts them (1 per multiply-add)",
           {**_MACS, "bn": 2, "gap_in": 1},
           skips=("relu", "relu6", "hswish", "hsigmoid", "sigmoid", "other_act", "softmax", "add", "mul",
                  "avgpool_window", "avgpool_out", "maxpool_window", "maxpool_out"),
           params=("weight", "bias", "bn_affine", "other")),
        _c("thop", "thop (pytorch-OpCounter)",
           "thop profile(): conv MACs, Linear in x out, BN 2 per element, ReLU/ReLU6 zero, adaptive average "
           "pool (kernel + 1) per output; modules without a rule (Hardswish, Hardsigmoid) are treated as zero "
           "and functional ops (add, mul) are not seen.",
           "MACs as thop.profile returns them",
           {**_MACS, "bn": 2, "relu": 0, "relu6": 0, "gap_in": 1, "gap_out": 1, "avgpool_window": 1,
            "avgpool_out": 1, "maxpool_window": 0},
           skips=("hswish", "hsigmoid", "sigmoid", "other_act", "softmax", "add", "mul"),
           params=("weight", "bias", "bn_affine", "other")),
        _c("ptflops", "ptflops (pytorch backend)",
           "ptflops get_model_complexity_info, pytorch backend: conv MACs + bias per output, Linear in x out + "
           "bias, BN 1 per element (x2 when affine), ReLU/ReLU6 1 per element, pooling 1 per input element.",
           "MACs as ptflops reports them",
           {**_MACS, "conv_bias": 1, "fc_bias": 1, "bn": 2, "relu": 1, "relu6": 1, "gap_in": 1,
            "avgpool_window": 1, "maxpool_window": 1},
           skips=("hswish", "hsigmoid", "sigmoid", "other_act", "softmax", "add", "mul"),
           params=("weight", "bias", "bn_affine", "other")),
    )
}
DEFAULT_CONVENTION = "paper"
