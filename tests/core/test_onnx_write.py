"""The shared ONNX writer: unique names, model assembly (opsets, producer, IR version, properties), and saving
a model whole or not at all."""

import errno
import os

import numpy as np
import onnx
import pytest
from onnx import helper

from mbexplorer.core import onnx_write
from mbexplorer.core.onnx_write import GraphWriter, save_model, unique_name


def test_unique_names_skip_reserved_and_taken_ones():
    w = GraphWriter(reserved=["x", "x_2"])
    assert [w.unique("x"), w.unique("x"), w.unique("y"), w.unique("y")] == ["x_3", "x_4", "y", "y_2"]
    taken = set()
    assert [unique_name("a", taken) for _ in range(3)] == ["a", "a_2", "a_3"] and taken == {"a", "a_2", "a_3"}


def test_to_model_assembles_a_checked_model():
    w = GraphWriter()
    w.add_input("x", np.float32, ["batch", 3])
    w.add_node("Mul", ["x", w.add_initializer("two", np.full(3, 2, np.float32))], ["y"], "double")
    for domain, name in (("b.dom", "F"), ("a.dom", "G"), ("b.dom", "H"), ("b.dom", "F")):
        w.add_function(helper.make_function(domain, name, ["i"], ["o"], [helper.make_node("Identity", ["i"], ["o"])],
                                            [helper.make_opsetid("", onnx_write.OPSET)]))
    w.add_output("y", np.float32, ["batch", 3])
    m = w.to_model("g", "mbexplorer-test", {"k": "v"})
    onnx.checker.check_model(m)
    assert [(o.domain, o.version) for o in m.opset_import] == [("", 17), ("b.dom", 1), ("a.dom", 1)]
    assert [f.name for f in m.functions] == ["F", "G", "H"]  # one per (domain, name), the first given
    assert (m.producer_name, m.ir_version, m.graph.name) == ("mbexplorer-test", 8, "g")
    assert [(p.key, p.value) for p in m.metadata_props] == [("k", "v")]
    assert [i.name for i in m.graph.initializer] == ["two"]


def _model(value: float) -> onnx.ModelProto:
    w = GraphWriter()
    w.add_input("x", np.float32, [1])
    w.add_node("Add", ["x", w.add_initializer("c", np.array([value], np.float32))], ["y"], "add")
    w.add_output("y", np.float32, [1])
    return w.to_model("g", "mbexplorer-test")


def test_save_writes_and_replaces_with_the_usual_permissions(tmp_path):
    path = tmp_path / "m.onnx"
    save_model(_model(1.0), path)
    save_model(_model(2.0), path)
    assert onnx.load(str(path)) == _model(2.0)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() makes a file, not a private temp file
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_a_failed_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    save_model(_model(1.0), path)
    before = path.read_bytes()

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(onnx_write.os, "fsync", full_disk)
    with pytest.raises(OSError) as info:
        save_model(_model(2.0), path)
    assert info.value.errno == errno.ENOSPC
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_save_into_a_missing_folder_or_onto_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        save_model(_model(1.0), tmp_path / "nope" / "m.onnx")
    (tmp_path / "d.onnx").mkdir()
    with pytest.raises(IsADirectoryError):
        save_model(_model(1.0), tmp_path / "d.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["d.onnx"] and not any((tmp_path / "d.onnx").iterdir())
