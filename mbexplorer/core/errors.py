"""Errors a user can act on.

Every error the core raises for bad input derives from :class:`MbxError` and carries a message written
for the person at the keyboard: what was wrong and what to do. The CLI prints ``str(err)`` on one line
and exits non-zero; the GUI shows it in a message box. Anything else escaping the core is a bug.
"""

from __future__ import annotations


class MbxError(Exception):
    """Base class for errors caused by input, not by a bug."""


class ModelLoadError(MbxError):
    """The file could not be opened as a model."""


class NotAModelError(ModelLoadError):
    pass


class TruncatedModelError(ModelLoadError):
    pass


class InvalidGraphError(ModelLoadError):
    """The graph refers to a tensor nothing provides (a deleted initializer or node)."""


class UnsupportedFormatError(ModelLoadError):
    pass


class UnsupportedOpsetError(ModelLoadError):
    pass


class UnknownOperatorError(ModelLoadError):
    pass


class UnsupportedOperatorError(ModelLoadError):
    """An importer met an operator (or tensor kind) it cannot convert; the message names it and the node."""


class InputShapeError(ModelLoadError):
    """An input has a size that is not fixed (other than the batch) and none was given."""


class ExternalDataError(ModelLoadError):
    pass


class BuildError(MbxError):
    """Bad builder arguments or supplied weights that do not fit."""


class Cancelled(MbxError):
    """A job was cancelled by the user."""
