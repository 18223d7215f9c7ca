"""Device plugins: the public, versioned API plugins are written against, and the host that finds and runs them.

A plugin imports only this package (``from mbexplorer.devices import Device, Measurement, run_tool, ...``); its
modules are private. See :mod:`mbexplorer.devices.api` for the contract and the manifest.
"""

from .api import *  # noqa: F403 (the API's own __all__ is the list)
from .api import __all__ as _api
from .hostinfo import ImageInput, cpu_name, image_input, physical_cores, random_input, usable_cpus
from .timings import NODE_TIMINGS_FORMAT, NODE_TIMINGS_NOTE, node_timings
from .tools import Remote, ToolResult, copy, find_tool, remote_from_options, run_tool, tool_path

__all__ = [*_api, "NODE_TIMINGS_FORMAT", "NODE_TIMINGS_NOTE", "ImageInput", "Remote", "ToolResult", "copy",
           "cpu_name", "find_tool", "image_input", "node_timings", "physical_cores", "random_input",
           "remote_from_options", "run_tool", "tool_path", "usable_cpus"]
