"""Per-node timings a plugin measured (capability ``node_timings``): a JSON file whose path ends a measurement's
note, read here for the front ends (the block graph's latency overlay). Format ``mbexplorer-node-timings/1``::

    {"format", "tool", "tool_version", "provider", "device", "batch_size", "runs", "model", "unit": "us",
     "kernels": [{"kernel", "op", "mean_us", "node", "covers": [...]}, ...],
     "nodes": {"<model node name>": <mean microseconds per run of the kernels ending at it>, ...},
     "unattributed_us": <mean microseconds of kernels the runtime added>}
"""

from __future__ import annotations

import json
from pathlib import Path

from .api import Measurement

NODE_TIMINGS_FORMAT = "mbexplorer-node-timings/1"
NODE_TIMINGS_NOTE = "node timings: "  # a measurement's note ends with this and the file's path


def node_timings(m: Measurement) -> dict | None:
    """The node-timings file ``m``'s note points to, read; None when it names none, or the file is gone or not
    in the format (a stored run outlives its work folder)."""
    at = m.note.rfind(NODE_TIMINGS_NOTE)
    if at < 0:
        return None
    try:
        data = json.loads(Path(m.note[at + len(NODE_TIMINGS_NOTE):].strip()).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != NODE_TIMINGS_FORMAT or not isinstance(data.get("nodes"),
                                                                                                   dict):
        return None
    return data
