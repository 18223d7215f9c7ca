"""Grouping a graph's nodes into MobileNet blocks by structure, never by names.

How: order the activation nodes topologically and cut the graph wherever a single tensor is live (every
path from input to output goes through it). A residual block or a squeeze-excite branch keeps its skip
tensor live, so it stays within one segment; a plain chain falls apart into one segment per op. Each
non-SE depthwise convolution anchors a block; the first pointwise convolution after it is the block's
projection; convolutions between one block's end and the next depthwise belong to the next block
(expansion). What comes before the first block is the stem, what follows the last is the head. A graph
with no depthwise convolution is grouped into plain op groups, one per convolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .graph import GraphIndex

STEM, DS, IR, V3, HEAD, OPS = "stem", "depthwise_separable", "inverted_residual", "mobilenetv3_block", "head", "ops"

# Ops that transform a tensor element by element (or pass it through): they stay with the op before them.
ELEMENTWISE = {
    "BatchNormalization", "Relu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid", "LeakyRelu", "PRelu", "Elu",
    "Selu", "Tanh", "Add", "Sum", "Sub", "Mul", "Div", "QuantizeLinear", "DequantizeLinear", "Identity",
    "Dropout", "Cast", "Mish", "Gelu",
}
ACTIVATIONS = {"Relu": "ReLU", "Clip": "ReLU6", "HardSwish": "h-swish", "LeakyRelu": "LeakyReLU", "PRelu": "PReLU",
               "Sigmoid": "sigmoid", "Elu": "ELU", "Tanh": "tanh", "Mish": "mish", "Gelu": "GELU"}
_POOLS = {"GlobalAveragePool", "ReduceMean", "AveragePool"}
_QDQ = {"QuantizeLinear", "DequantizeLinear"}


@dataclass
class Block:
    index: int
    name: str
    kind: str
    nodes: list[str]
    residual: bool = False
    info: dict = field(default_factory=dict)  # kernel, stride, expand, se, activation, channels_in/out


@dataclass
class BlockGraph:
    blocks: list[Block]
    node_block: dict[str, int]  # node name -> block index
    edges: list[tuple[int, int]]  # block -> block data flow, in order


@dataclass
class _Conv:
    node: int
    cin: int
    cout: int
    k: int
    stride: int
    groups: int

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.cin

    @property
    def pointwise(self) -> bool:
        return self.k == 1 and self.groups == 1


def _conv_info(gi: GraphIndex, i: int) -> _Conv | None:
    node = gi.nodes[i]
    if node.op_type not in ("Conv", "ConvInteger", "QLinearConv"):
        return None
    w_idx = 3 if node.op_type == "QLinearConv" else 1
    x_shape = gi.shape(node.input[0])
    w_shape = gi.shape(node.input[w_idx]) if len(node.input) > w_idx else None
    if not x_shape or not w_shape or len(w_shape) != 4 or len(x_shape) != 4:
        return None
    groups = int(gi.attr(i, "group", 1))
    strides = gi.attr(i, "strides", [1, 1])
    return _Conv(i, x_shape[1], w_shape[0], w_shape[2], int(strides[0]), groups)


def _activation_products(gi: GraphIndex):
    """(node, [a, b]) for every Mul of two activations: where squeeze-excite and written-out h-swish end."""
    for i, node in enumerate(gi.nodes):
        if node.op_type == "Mul" and i not in gi.const_nodes:
            ins = gi.activation_inputs(i)
            if len(ins) == 2:
                yield i, ins


def _se_nodes(gi: GraphIndex) -> set[int]:
    """Squeeze-excite branches: x * f(pool(x)) where f only works on the pooled (1x1) tensor."""
    found: set[int] = set()
    for i, ins in _activation_products(gi):
        for x, s in (ins, ins[::-1]):
            branch = _branch_to_pool(gi, s, x)
            if branch:
                found.update(branch)
                found.add(i)
                break
    return found


_HSWISH_PARTS = {"HardSigmoid", "Clip", "Relu", "Add", "Div", "Mul"}


def _hswish_nodes(gi: GraphIndex) -> set[int]:
    """h-swish written out by exporters as x * HardSigmoid(x), or x * relu6(x + 3) / 6."""
    found: set[int] = set()
    for i, ins in _activation_products(gi):
        node = gi.nodes[i]
        for x, s in (ins, ins[::-1]):
            chain, t = [], s
            while len(chain) < 4:
                j = gi.producer.get(t)
                if j is None or gi.nodes[j].op_type not in _HSWISH_PARTS:
                    break
                chain.append(j)
                acts = gi.activation_inputs(j)
                if acts == [x] and any(gi.nodes[k].op_type in ("HardSigmoid", "Clip", "Relu") for k in chain):
                    found.update(chain)
                    found.add(i)
                    # a trailing "/ 6" belongs to it too
                    users = gi.consumers.get(node.output[0], [])
                    if len(users) == 1 and gi.nodes[users[0]].op_type in ("Div", "Mul") and \
                            len(gi.activation_inputs(users[0])) == 1:
                        found.add(users[0])
                    break
                if len(acts) != 1:
                    break
                t = acts[0]
            if i in found:
                break
    return found


def _branch_to_pool(gi: GraphIndex, s: str, x: str, limit: int = 10) -> set[int] | None:
    """Nodes from a pooling of ``x`` to ``s``, if ``s`` is computed from ``x`` only through such a pool."""
    branch: set[int] = set()
    todo = [s]
    while todo:
        t = todo.pop()
        i = gi.producer.get(t)
        if i is None or i in gi.const_nodes:
            return None
        if i in branch:
            continue
        branch.add(i)
        # Q/DQ pairs of a quantized graph sit between the SE ops: only real ops count toward the limit
        if sum(gi.nodes[j].op_type not in _QDQ for j in branch) > limit:
            return None
        node = gi.nodes[i]
        ins = gi.activation_inputs(i)
        if node.op_type in _POOLS and ins == [x]:
            out = gi.shape(node.output[0])
            if out and len(out) == 4 and out[2:] != (1, 1):
                return None
            continue
        if x in ins or not ins:
            return None
        todo.extend(ins)
    return branch


def group_blocks(gi: GraphIndex) -> BlockGraph:
    act_nodes = gi.activation_nodes
    se = _se_nodes(gi)
    hswish = _hswish_nodes(gi) - se
    segments = _segments(gi, act_nodes)
    convs = {i: c for i in act_nodes if (c := _conv_info(gi, i)) is not None and i not in se}
    kinds = [_segment_kind(gi, s, convs, se) for s in segments]
    groups: list[tuple[str, list[int]]] = []  # (kind, segment indices)
    if "dw" in kinds:
        _depthwise_groups(gi, segments, kinds, convs, groups)
    else:
        _plain_groups(kinds, groups)

    blocks: list[Block] = []
    node_block: dict[str, int] = {}
    for gno, (kind, seg_ids) in enumerate(groups):
        nodes = [i for k in seg_ids for i in segments[k]]
        blocks.append(_describe(gi, gno, kind, nodes, convs, se, hswish))
        for i in nodes:
            node_block[gi.names[i]] = gno
    _number_blocks(blocks)
    _attach_constants(gi, blocks, node_block)
    edges = _edges(gi, node_block)
    return BlockGraph(blocks, node_block, edges)


def _segment_kind(gi: GraphIndex, seg: list[int], convs: dict, se: set[int]) -> str:
    if any(convs.get(i) and convs[i].depthwise for i in seg):
        return "dw"
    if any(i in convs for i in seg):
        return "conv"
    if all(gi.nodes[i].op_type in ELEMENTWISE or i in se for i in seg):
        return "eltwise"
    return "other"


def _depthwise_groups(gi: GraphIndex, segments: list[list[int]], kinds: list[str], convs: dict,
                      groups: list[tuple[str, list[int]]]) -> None:
    """Group the segments of a network of depthwise blocks: a stem, one block per depthwise conv (with its
    projection and trailing element-wise ops), and a head."""
    dws = [k for k, kind in enumerate(kinds) if kind == "dw"]

    def extend_eltwise(k: int) -> int:
        while k + 1 < len(segments) and kinds[k + 1] == "eltwise":
            k += 1
        return k

    # stem: everything up to the first conv (and its trailing element-wise ops), plus any further
    # non-pointwise convs before the first block.
    first_conv = next((k for k, kind in enumerate(kinds) if kind in ("conv", "dw")), dws[0])
    stem_end = -1
    if first_conv < dws[0]:
        stem_end = extend_eltwise(first_conv)
        k = stem_end + 1
        while k < dws[0]:  # a later full conv before the first block is still stem
            if kinds[k] == "conv" and not _all_pointwise(segments[k], convs):
                stem_end = extend_eltwise(k)
                k = stem_end + 1
            else:
                k += 1
    if stem_end >= 0:
        groups.append((STEM, list(range(0, stem_end + 1))))
    start = stem_end + 1
    for n, d in enumerate(dws):
        nxt = dws[n + 1] if n + 1 < len(dws) else len(segments)
        end = d
        if not _projection_inside(gi, segments[d], convs):
            p = next((k for k in range(d + 1, nxt) if kinds[k] == "conv"), None)
            if p is not None:
                end = p
        end = extend_eltwise(end)
        groups.append(("block", list(range(start, end + 1))))
        start = end + 1
    if start < len(segments):
        groups.append((HEAD, list(range(start, len(segments)))))


def _attach_constants(gi: GraphIndex, blocks: list[Block], node_block: dict[str, int]) -> None:
    """Constant nodes (weight DequantizeLinear, Shape arithmetic) go with their first consumer's block."""
    for i in sorted(gi.const_nodes, reverse=True):
        users = [j for t in gi.nodes[i].output for j in gi.consumers.get(t, ())]
        target = next((node_block[gi.names[j]] for j in users if gi.names[j] in node_block), 0 if blocks else None)
        if target is not None:
            node_block[gi.names[i]] = target
            blocks[target].nodes.append(gi.names[i])
    for b in blocks:
        b.nodes.sort(key=gi.index.__getitem__)


def _segments(gi: GraphIndex, act_nodes: list[int]) -> list[list[int]]:
    """Split the activation nodes where exactly one tensor is live between consecutive nodes."""
    pos = {i: p for p, i in enumerate(act_nodes)}
    last_use: dict[str, int] = {}
    end = len(act_nodes)
    for p, i in enumerate(act_nodes):
        for t in gi.activation_inputs(i):
            last_use[t] = p
    for t in gi.graph_outputs:
        last_use[t] = end
    # count of tensors live across boundary p|p+1 = produced at <= p and last used > p
    delta = [0] * (end + 1)
    for t, last in last_use.items():
        born = pos.get(gi.producer[t], -1) if t in gi.producer else -1
        if gi.producer.get(t) in gi.const_nodes:
            continue
        if last > born:
            delta[born + 1] += 1
            delta[min(last, end)] -= 1
    segments, current, live = [], [], 0
    for p, i in enumerate(act_nodes):
        live += delta[p]
        current.append(i)
        live_after = live + delta[p + 1]
        if live_after <= 1:
            segments.append(current)
            current = []
    if current:
        segments.append(current)
    return segments


def _all_pointwise(seg: list[int], convs: dict) -> bool:
    cs = [convs[i] for i in seg if i in convs]
    return bool(cs) and all(c.pointwise for c in cs)


def _projection_inside(gi: GraphIndex, seg: list[int], convs: dict) -> bool:
    seen_dw = False
    for i in seg:
        c = convs.get(i)
        if c and c.depthwise:
            seen_dw = True
        elif c and seen_dw:
            return True
    return False


def _plain_groups(kinds: list[str], groups: list) -> None:
    current: list[int] = []
    for k, kind in enumerate(kinds):
        if kind in ("conv", "other") and current and any(kinds[j] in ("conv", "other") for j in current):
            groups.append((OPS, current))
            current = []
        current.append(k)
    if current:
        groups.append((OPS, current))


def _describe(gi: GraphIndex, gno: int, kind: str, nodes: list[int], convs: dict, se: set[int],
              hswish: set[int]) -> Block:
    cs = [convs[i] for i in nodes if i in convs]
    acts = []
    for i in nodes:
        a = "h-swish" if i in hswish else ACTIVATIONS.get(gi.nodes[i].op_type)
        if a and a not in acts and not (i in se and a != "h-swish"):
            acts.append(a)
    has_se = any(i in se for i in nodes)
    residual = _has_residual(gi, nodes)
    info: dict = {"activations": acts, "se": has_se}
    if cs:
        info.update(channels_in=cs[0].cin, channels_out=cs[-1].cout)
    if kind == "block":
        dw = next(c for c in cs if c.depthwise)
        before = [c for c in cs if c.node < dw.node]
        after = [c for c in cs if c.node > dw.node]
        expand = dw.cin / before[-1].cin if before else 1.0
        proj_act = _followed_by_activation(gi, after[0].node) if after else False
        info.update(kernel=dw.k, stride=dw.stride, expand=expand, expanded=dw.cin, residual=residual)
        if has_se or "h-swish" in acts:
            kind = V3
        elif not before and proj_act:
            kind = DS
        else:
            kind = IR
    elif kind == STEM and cs:
        info.update(kernel=cs[0].k, stride=cs[0].stride)
    elif kind == HEAD:
        info["summary"] = _head_summary(gi, nodes)
    elif kind == OPS:  # what the group holds, for its name (simulated-quantization nodes say nothing)
        types = [gi.nodes[i].op_type for i in nodes if gi.nodes[i].op_type not in _QDQ]
        info["op_types"] = list(dict.fromkeys(types or [gi.nodes[i].op_type for i in nodes]))
    return Block(gno, "", kind, [gi.names[i] for i in nodes], residual, info)


def _head_summary(gi: GraphIndex, nodes: list[int]) -> str:
    parts = []
    for i in nodes:
        op = gi.nodes[i].op_type
        out = gi.shape(gi.nodes[i].output[0]) or ()
        if op in ("Conv", "ConvInteger", "QLinearConv"):
            c = _conv_info(gi, i)
            parts.append(f"conv {c.k}x{c.k} → {c.cout}" if c else "conv")
        elif op in ("GlobalAveragePool", "ReduceMean", "AveragePool", "GlobalMaxPool", "MaxPool"):
            parts.append("pool")
        elif op in ("Gemm", "MatMul", "QGemm", "MatMulInteger") and out:
            parts.append(f"FC → {out[-1]}")
        elif op == "Softmax":
            parts.append("softmax")
    return ", ".join(parts)


def _followed_by_activation(gi: GraphIndex, conv: int) -> bool:
    """Whether a conv's output reaches an activation through BN / quantization ops only."""
    t = gi.nodes[conv].output[0]
    for _ in range(4):
        users = gi.consumers.get(t, [])
        if len(users) != 1:
            return False
        op = gi.nodes[users[0]].op_type
        if op in ACTIVATIONS:
            return True
        if op not in ("BatchNormalization", "QuantizeLinear", "DequantizeLinear", "Identity"):
            return False
        t = gi.nodes[users[0]].output[0]
    return False


def _has_residual(gi: GraphIndex, nodes: list[int]) -> bool:
    """An Add whose two inputs both carry activations, one of them from outside the group (the skip)."""
    inside = set(nodes)
    for i in nodes:
        if gi.nodes[i].op_type not in ("Add", "Sum", "QLinearAdd"):
            continue
        ins = gi.activation_inputs(i)
        if len(ins) >= 2 and any(gi.producer.get(t) not in inside for t in ins):
            return True
    return False


def _fmt_ratio(r: float) -> str:
    return f"{r:.0f}" if abs(r - round(r)) < 1e-6 else f"{r:.2f}".rstrip("0").rstrip(".")


def _number_blocks(blocks: list[Block]) -> None:
    n = 0
    for b in blocks:
        i = b.info
        if b.kind == STEM:
            k = i.get("kernel")
            b.name = f"stem: conv {k}x{k} s{i.get('stride')} → {i.get('channels_out')}" if k else "stem"
        elif b.kind == HEAD:
            b.name = f"head: {i['summary']}" if i.get("summary") else "head"
        elif b.kind == OPS:
            n += 1
            types = i.get("op_types") or []
            b.name = f"ops {n}: " + ", ".join(types[:4]) + (", …" if len(types) > 4 else "") if types else f"ops {n}"
        else:
            n += 1
            k = i["kernel"]
            parts = []
            if b.kind == DS:
                parts.append(f"dw {k}x{k} s{i['stride']}, pw {i['channels_in']}→{i['channels_out']}")
            else:
                if i["expand"] != 1.0:
                    parts.append(f"expand x{_fmt_ratio(i['expand'])}")
                parts.append(f"dw {k}x{k} s{i['stride']}")
                if i["se"]:
                    parts.append("SE")
                if "h-swish" in i["activations"]:
                    parts.append("h-swish")
            if b.residual:
                parts.append("residual")
            b.name = f"block {n}: " + ", ".join(parts)


def _edges(gi: GraphIndex, node_block: dict[str, int]) -> list[tuple[int, int]]:
    edges: list[tuple[int, int]] = []
    for i in range(len(gi.nodes)):
        if i in gi.const_nodes:
            continue
        dst = node_block.get(gi.names[i])
        for t in gi.activation_inputs(i):
            p = gi.producer.get(t)
            if p is None:
                continue
            src = node_block.get(gi.names[p])
            if src is not None and dst is not None and src != dst and (src, dst) not in edges:
                edges.append((src, dst))
    return edges
