"""Settings and the Open Recent list.

Settings live in an INI file (one format on every platform, easy to inspect). ``MBEXPLORER_SETTINGS``
points them at another file: tests and screenshot runs use it so they never touch a user's settings.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings

ORG = APP = "mbexplorer"
MAX_RECENT = 10
_KEY = "recent/files"


def settings() -> QSettings:
    override = os.environ.get("MBEXPLORER_SETTINGS")
    if override:
        return QSettings(override, QSettings.IniFormat)
    return QSettings(QSettings.IniFormat, QSettings.UserScope, ORG, APP)


class RecentFiles:
    """Most recent first, at most ``MAX_RECENT``, files that no longer exist pruned on every read."""

    def paths(self) -> list[str]:
        s = settings()
        raw = s.value(_KEY, [])
        if isinstance(raw, str):  # QSettings returns a lone string for a one-item list
            raw = [raw]
        paths = [str(p) for p in (raw or []) if p]
        kept = [p for p in paths if Path(p).is_file()]
        if kept != paths:
            self._store(s, kept)
        return kept

    def add(self, path: str | os.PathLike) -> list[str]:
        p = str(Path(path).resolve())
        paths = [p] + [q for q in self.paths() if q != p]
        paths = paths[:MAX_RECENT]
        self._store(settings(), paths)
        return paths

    def remove(self, path: str | os.PathLike) -> None:
        p = str(Path(path).resolve())
        self._store(settings(), [q for q in self.paths() if q != p])

    def clear(self) -> None:
        self._store(settings(), [])

    @staticmethod
    def _store(s: QSettings, paths: list[str]) -> None:
        s.setValue(_KEY, list(paths))
        s.sync()
