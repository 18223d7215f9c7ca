"""Mutants of real model files for fuzzing the loaders: bit flips, byte runs, truncations and splices.

Shared by ``bench/bench_fuzz.py`` (a long run) and ``tests/core/test_fuzz.py`` (a short one with fixed
seeds). Free of mbexplorer imports: the callers choose the base files. A mutant is a pure function of its
base files and its seed, so any failure reproduces from the seed alone::

    name, data, how = mutant(bases, seed)
"""

from __future__ import annotations

import random

KINDS = ("bitflip", "byterun", "truncate", "splice")

# Most of a model file is weights, where a mutation changes numbers but not structure. Half the mutations
# land near either end instead, where ONNX keeps its nodes and graph inputs / outputs and TFLite its
# tables (the places a loader can trip), so a short run reaches them.
_EDGE = 64 * 1024


def _offset(rng: random.Random, size: int) -> int:
    if size <= 2 * _EDGE or rng.random() < 0.5:
        return rng.randrange(size)
    return rng.randrange(_EDGE) if rng.random() < 0.5 else size - 1 - rng.randrange(_EDGE)


def mutate(data: bytes, donor: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One mutation of ``data`` (``donor``: another real file, for splices); returns it and what was done."""
    kind = rng.choice(KINDS)
    buf = bytearray(data)
    if kind == "bitflip":
        flips = [(_offset(rng, len(buf)), rng.randrange(8)) for _ in range(rng.randint(1, 8))]
        for off, bit in flips:
            buf[off] ^= 1 << bit
        return bytes(buf), f"bitflip {flips}"
    if kind == "byterun":
        off, n = _offset(rng, len(buf)), rng.randint(1, 64)
        fill = rng.choice((0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        buf[off:off + n] = bytes([fill]) * len(buf[off:off + n])
        return bytes(buf), f"byterun {n} x {fill:#04x} at {off}"
    if kind == "truncate":
        cut = _offset(rng, len(buf))
        return bytes(buf[:cut]), f"truncate to {cut}"
    off, src, n = _offset(rng, len(buf)), rng.randrange(len(donor)), rng.randint(1, 4096)
    piece = donor[src:src + n][:len(buf) - off]
    buf[off:off + len(piece)] = piece  # in place: the file keeps its size and its offsets
    return bytes(buf), f"splice {len(piece)} bytes of donor at {src} into {off}"


def mutant(bases: list[tuple[str, bytes]], seed: int) -> tuple[str, bytes, str]:
    """Mutant ``seed`` of ``bases`` ((name, bytes) pairs, names with their file suffix): the base it came from,
    its bytes and a description of the mutation."""
    rng = random.Random(seed)
    name, data = bases[seed % len(bases)]
    donor = rng.choice(bases)[1]
    out, how = mutate(data, donor, rng)
    return name, out, f"seed {seed}: {name}: {how}"
