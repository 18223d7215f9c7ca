"""Raises on import: discovery must still list it (it never imports a plugin), and first use reports why."""

raise ImportError("mbx_broken_import cannot be imported (on purpose)")
