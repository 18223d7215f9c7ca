"""Importers: other model formats converted to ONNX, the app's lingua franca.

Each importer reads its format without that framework's runtime and returns a
:class:`~mbexplorer.core.model.LoadedModel` through ``from_proto``, so an imported model is validated and
analysed exactly like an ONNX file. ``model.load`` dispatches to them by the format it sniffs.
"""
