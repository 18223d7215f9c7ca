"""Reading a plugin's manifest (``plugin.toml``) without importing the plugin: keys and types checked, every
problem said with the file's name and what to write instead."""

from __future__ import annotations

import sys
from pathlib import Path

from .api import CAPABILITIES, Manifest, PluginError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10: the same parser, before it joined the standard library
    import tomli as tomllib

MANIFEST = "plugin.toml"

_REQUIRED = ("name", "api", "version", "entry")
_STRINGS = ("name", "api", "version", "entry", "summary", "homepage")
_LISTS = ("formats", "capabilities", "requires", "tools")
_FORMATS = ("onnx", "tflite")


def read_manifest(path: Path) -> Manifest:
    """The manifest at ``path`` (a ``plugin.toml``, or the plugin folder holding one). Raises PluginError."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PluginError(f"{path} does not exist: a plugin folder needs a {MANIFEST}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PluginError(f"cannot read {path}: {exc}") from exc
    return parse_manifest(text, str(path))


def parse_manifest(text: str, where: str) -> Manifest:
    """A manifest from its TOML text; ``where`` names the source in messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PluginError(f"{where} is not valid TOML: {exc}") from exc
    return manifest_from_dict(data, where)


def manifest_from_dict(data: dict, where: str) -> Manifest:
    """A Manifest from parsed TOML; ``where`` names the source in messages."""
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise PluginError(f"{where} lacks {', '.join(missing)}: a manifest needs name, api, version and entry.")
    for key in _STRINGS:
        if key in data and not isinstance(data[key], str):
            raise PluginError(f"{where}: '{key}' must be a string, not {type(data[key]).__name__}.")
    for key in _LISTS:
        if key in data and not (isinstance(data[key], list) and all(isinstance(v, str) for v in data[key])):
            raise PluginError(f"{where}: '{key}' must be a list of strings.")
    name = data["name"].strip()
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise PluginError(f"{where}: name {data['name']!r} must be non-empty letters, digits, '-', '_' or '.'.")
    if api_major(data["api"]) is None:
        raise PluginError(f"{where}: api {data['api']!r} must be a version such as \"1.0\".")
    module, _, attr = data["entry"].partition(":")
    if not module or not attr:
        raise PluginError(f"{where}: entry {data['entry']!r} must be \"module:attribute\".")
    unknown = [c for c in data.get("capabilities", ()) if c not in CAPABILITIES]
    if unknown:
        raise PluginError(f"{where}: unknown capabilities {unknown}; known: {', '.join(CAPABILITIES)}.")
    bad = [f for f in data.get("formats", ()) if f not in _FORMATS]
    if bad:
        raise PluginError(f"{where}: unknown formats {bad}; known: {', '.join(_FORMATS)}.")
    known = set(_STRINGS) | set(_LISTS)
    fields = {k: (tuple(v) if k in _LISTS else v) for k, v in data.items() if k in known}
    fields["name"] = name
    return Manifest(**fields, extra={k: v for k, v in data.items() if k not in known})


def api_major(api: str) -> int | None:
    """The major of an API version string ("1.0" -> 1), or None when it is not one."""
    head = api.strip().split(".")[0]
    return int(head) if head.isdigit() else None
