"""Keep PySide6 6.12.0 from crashing the app on Python < 3.12.

PySide6/shiboken6 6.12.0 returns ``None`` from void methods (``setPos``, ``setPath``, ``setObjectName``, ...)
without taking a reference, as if ``None`` were immortal, which it is only from Python 3.12 (PEP 683). On
3.10 and 3.11 every such call drops None's reference count by one; after a few thousand calls it reaches
zero and the interpreter aborts ("Fatal Python error: none_dealloc"). Opening one 10,000-node model makes
that many calls.

The guard gives ``None`` a huge reference count once, which is what 3.12 does by design: ``None`` is never
freed anyway, so the only effect is that the leak can no longer reach zero. Newer Python needs nothing.
"""

from __future__ import annotations

import ctypes
import sys

_HEADROOM = 1 << 40  # a billion leaked references per second would take 12 days to use this up


def guard_none() -> bool:
    """Apply the guard where it is needed; returns whether it changed anything."""
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    refcnt = ctypes.c_ssize_t.from_address(id(None))  # ob_refcnt is the first field of every PyObject
    if refcnt.value >= _HEADROOM:
        return False
    refcnt.value += _HEADROOM
    return True
