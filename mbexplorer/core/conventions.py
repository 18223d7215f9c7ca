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
  avgpool_in/_out, maxpool_in/_out   windowed pooling: input elements read, output elements written
  add, mul                element-wise adds (residuals) and multiplies (squeeze-excite scaling)
  quant                   Quantize/DequantizeLinear elements (simulated quantization; free everywhere)
Param terms: weight (conv/FC weights, and every constant input of an op without a cost rule), conv_bias,
fc_bias (Gemm bias, or the constant of an Add after MatMul), bn_affine (gamma, beta), bn_stats (running mean,
variance), other (e.g. PReLU slopes). Conv and FC biases are separate because a folded BN becomes a conv bias:
the papers exclude BN, so ``paper`` must not count those biases, while counters of trainable parameters
(torchvision, fvcore, thop) see them as ordinary conv biases.

The rules of each counter are taken from its source; see the per-convention descriptions.
"""

from __future__ import annotations

from dataclasses import dataclass

FLOP_TERMS = (
    "conv_macs", "fc_macs", "conv_bias", "fc_bias", "bn", "relu", "relu6", "hswish", "hsigmoid", "sigmoid",
    "other_act", "softmax", "gap_in", "gap_out", "avgpool_in", "avgpool_out", "maxpool_in",
    "maxpool_out", "add", "mul", "quant",
)
FLOP_GROUPS = ("conv+fc", "bias", "bn", "activation", "pooling", "eltwise", "quant")
PARAM_TERMS = ("weight", "conv_bias", "fc_bias", "bn_affine", "bn_stats", "other")
PARAM_GROUPS = ("weight", "bias", "bn_affine", "bn_stats", "other")  # breakdown columns: both biases in "bias"
PARAM_GROUP_OF = {t: t for t in PARAM_TERMS} | {"conv_bias": "bias", "fc_bias": "bias"}


@dataclass(frozen=True)
class Convention:
    name: str
    title: str
    description: str
    flops_label: str
    flop_factors: dict[str, float]  # terms this counter counts (0 = counted as zero by its rules)
    param_terms: frozenset[str] = frozenset({"weight", "conv_bias", "fc_bias"})

    @property
    def skips(self) -> frozenset[str]:
        """Terms the counter does not see at all: their ops are reported as not counted."""
        return frozenset(FLOP_TERMS) - set(self.flop_factors)


def _c(name, title, description, flops_label, factors, params=("weight", "conv_bias", "fc_bias")):
    # simulated quantization (Q/DQ) is free under every convention
    return Convention(name, title, description, flops_label, {"quant": 0, **factors}, frozenset(params))


_MACS = {"conv_macs": 1, "fc_macs": 1}

CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        _c("paper", "MobileNet papers",
           "FLOPs = 2 x mult-adds of conv and FC layers; params = conv and FC weights + FC bias, BN excluded "
           "(the MobileNet papers' tables). Conv biases are left out because a folded BN is one, so the figure "
           "is the same whether BN is folded or not.",
           "FLOPs (2 x MACs)", {t: 0 for t in FLOP_TERMS} | {"conv_macs": 2, "fc_macs": 2},
           params=("weight", "fc_bias")),
        _c("torchvision", "torchvision model metadata",
           "params = every trainable parameter incl. BN gamma/beta (torchvision's num_params); "
           "flops = conv + linear MACs, which torchvision's weights metadata lists as GFLOPS.",
           "GFLOPS as torchvision lists them (= MACs)", {t: 0 for t in FLOP_TERMS} | _MACS,
           params=("weight", "conv_bias", "fc_bias", "bn_affine", "other")),
        _c("paddle", "paddle.flops (PaddleClas tables)",
           "paddle.flops: conv MACs + conv bias per output, Linear in x out, BN 2 per element, ReLU/ReLU6 0, "
           "adaptive average pool (kernel + 1) per output; layers without a rule (Hardswish, Hardsigmoid) and "
           "functional ops (add, multiply) are not seen. params include BN running mean and variance.",
           "FLOPs as paddle.flops prints them (1 per multiply-add)",
           {**_MACS, "conv_bias": 1, "fc_bias": 0, "bn": 2, "relu": 0, "relu6": 0, "gap_in": 1, "gap_out": 1,
            "avgpool_in": 0, "avgpool_out": 1},
           params=("weight", "conv_bias", "fc_bias", "bn_affine", "bn_stats", "other")),
        _c("fvcore", "fvcore FlopCountAnalysis (timm)",
           "fvcore (model in eval mode): conv and linear MACs without bias, BN 2 per element (affine), "
           "adaptive average pool 1 per input element, ReLU ignored; ReLU6 (hardtanh), Hardswish, Hardsigmoid, "
           "average pool, softmax, add and mul are reported by fvcore as unsupported and count nothing.",
           "FLOPs as fvcore counts them (1 per multiply-add)",
           {**_MACS, "conv_bias": 0, "fc_bias": 0, "bn": 2, "gap_in": 1, "gap_out": 0, "relu": 0},
           params=("weight", "conv_bias", "fc_bias", "bn_affine", "other")),
        _c("thop", "thop 0.1.1 (pytorch-OpCounter)",
           "thop.profile: conv and linear MACs without bias, BN 4 per element (affine), ReLU/ReLU6/max pool 0, "
           "average pool 1 per output, adaptive average pool (kernel + 1) per output (as an nn.Module; a "
           "functional pool, as in torchvision's MobileNetV2 head, is not seen); Hardswish, Hardsigmoid and "
           "functional add/mul have no rule.",
           "MACs as thop.profile returns them",
           {**_MACS, "conv_bias": 0, "fc_bias": 0, "bn": 4, "relu": 0, "relu6": 0, "gap_in": 1, "gap_out": 1,
            "avgpool_in": 0, "avgpool_out": 1, "maxpool_in": 0, "maxpool_out": 0},
           params=("weight", "conv_bias", "fc_bias", "bn_affine", "other")),
        _c("ptflops", "ptflops 0.7.5 (default pytorch backend)",
           "ptflops get_model_complexity_info with its defaults: conv and linear MACs plus bias per output, "
           "BN 2 per element (affine), ReLU6 1 per element, softmax 1 per element; nn.ReLU and average pools "
           "(nn modules) count twice, 2 per input element, because the module hook and the functional patch both "
           "fire; Hardswish, Hardsigmoid and Python add/mul count nothing.",
           "MACs as ptflops reports them",
           {**_MACS, "conv_bias": 1, "fc_bias": 1, "bn": 2, "relu": 2, "relu6": 1, "softmax": 1, "gap_in": 2,
            "gap_out": 0, "avgpool_in": 2, "avgpool_out": 0, "maxpool_in": 2, "maxpool_out": 0},
           params=("weight", "conv_bias", "fc_bias", "bn_affine", "other")),
    )
}
DEFAULT_CONVENTION = "paper"
