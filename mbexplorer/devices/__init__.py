"""Device plugins: the public, versioned API plugins are written against, and the host that finds and runs them.

A plugin imports only this package (``from mbexplorer.devices import Device, Measurement, run_tool, ...``); its
modules are private. See :mod:`mbexplorer.devices.api` for the contract and the manifest.
"""

from .api import (
                  API_VERSION,
                  CAPABILITIES,
                  DEVICE_COMPUTE,
                  END_TO_END,
                  KINDS,
                  MEANINGS,
                  PRECISIONS,
                  Artifact,
                  CompileRequest,
                  Device,
                  Event,
                  Latency,
                  Log,
                  LogRequest,
                  Manifest,
                  Measurement,
                  PluginError,
                  PluginJob,
                  ProfileRequest,
                  Progress,
                  ToolMissing,
                  checkpoint,
                  latency_of,
                  measurement_from_times,
                  percentile,
                  warn,
)
from .tools import Remote, ToolResult, find_tool, run_tool

__all__ = ["API_VERSION", "CAPABILITIES", "DEVICE_COMPUTE", "END_TO_END", "KINDS", "MEANINGS", "PRECISIONS",
           "Artifact", "CompileRequest", "Device", "Event", "Latency", "Log", "LogRequest", "Manifest", "Measurement",
           "PluginError", "PluginJob", "ProfileRequest", "Progress", "Remote", "ToolMissing", "ToolResult",
           "checkpoint", "find_tool", "latency_of", "measurement_from_times", "percentile", "run_tool", "warn"]
