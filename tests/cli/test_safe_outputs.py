"""Outputs that never destroy data: every command that writes checks its output before any work (folder, suffix,
never an input, an existing file only with --force) and writes whole or not at all."""

import errno
import os

import pytest

from mbexplorer.core import outputs


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def one_error(r, text):
    """The command failed with one line on stderr, holding ``text``, and printed nothing else."""
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr.startswith("mbexplorer: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert text in r.stderr, r.stderr
    assert r.stdout == ""


BUILD = ("build", "mobilenet_v1", "--width", "0.25", "--resolution", "96")


def test_convert_never_writes_over_its_input(tmp_path, model_file, mbx):
    model = model_file("mobilenet_v1", 0.25, 96, name="m.onnx")
    before = model.read_bytes()
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.onnx").symlink_to(model)
    for out in (model, tmp_path / "sub" / ".." / "m.onnx", tmp_path / "link.onnx"):
        for force in ((), ("--force",)):
            one_error(mbx("convert", model, "-o", out, *force), "will not write over")
    one_error(mbx("convert", model, "-o", model, "--force"), "will not write over m.onnx: it is the input model.")
    assert model.read_bytes() == before and listing(tmp_path) == ["link.onnx", "m.onnx", "sub"]


def test_the_model_and_its_float_twin_need_two_files(shared_dir, tmp_path, mbx):
    src = shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    out = tmp_path / "q.onnx"
    one_error(mbx("convert", src, "-o", out, "--float-twin", tmp_path / "." / "q.onnx"),
              f"-o and --float-twin both name {out}: the model and its float twin need two files.")
    assert listing(tmp_path) == []


@pytest.mark.parametrize("name", ["m.tflite", "m.h5", "m.npy", "m.keras", "m"])
def test_onnx_goes_only_under_onnx_names(tmp_path, model_file, mbx, name):
    one_error(mbx(*BUILD, "-o", tmp_path / name), f"will not write ONNX to {name}: its name has ")
    one_error(mbx("convert", model_file("mobilenet_v1", 0.25, 96), "-o", tmp_path / name), "it must end in .onnx")
    r = mbx("convert", model_file("mobilenet_v1", 0.25, 96), "-o", tmp_path / "ok.onnx", "--float-twin",
            tmp_path / name)
    one_error(r, f"will not write ONNX to {name}")
    assert not (tmp_path / name).exists() and not (tmp_path / "ok.onnx").exists()


def test_an_existing_output_needs_force(tmp_path, model_file, mbx):
    model = model_file("mobilenet_v1", 0.25, 96)
    out, csv = tmp_path / "out.onnx", tmp_path / "layers.csv"
    out.write_bytes(b"keep me")
    csv.write_bytes(b"keep me too")
    one_error(mbx(*BUILD, "-o", out), f"{out} already exists; give --force to replace it.")
    one_error(mbx("convert", model, "-o", out), "already exists; give --force")
    one_error(mbx("summary", model, "--csv", csv), f"{csv} already exists; give --force to replace it.")
    assert out.read_bytes() == b"keep me" and csv.read_bytes() == b"keep me too"
    r = mbx(*BUILD, "-o", out, "--force")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:2] != b"ke" and out.stat().st_size > 1_000_000
    r = mbx("summary", model, "--csv", csv, "--force")
    assert r.returncode == 0, r.stderr
    assert csv.read_text().startswith("name,op_type,block,")
    one_error(mbx("summary", model, "--csv", model, "--force"), "will not write over")  # never over the model


def test_a_full_disk_leaves_the_old_file_and_no_temporary(tmp_path, model_file, mbx, monkeypatch):
    model = model_file("mobilenet_v1", 0.25, 96)
    out, csv = tmp_path / "out.onnx", tmp_path / "layers.csv"
    out.write_bytes(b"old model")
    csv.write_bytes(b"old csv")
    before = listing(tmp_path)
    monkeypatch.setattr(outputs.os, "fsync", full_disk)  # the disk fills up as the file is finished
    one_error(mbx(*BUILD, "-o", out, "--force"), f"cannot write {out}: No space left on device")
    one_error(mbx("convert", model, "-o", out, "--force"), f"cannot write {out}: No space left on device")
    one_error(mbx("summary", model, "--csv", csv, "--force"), f"cannot write {csv}: No space left on device")
    assert out.read_bytes() == b"old model" and csv.read_bytes() == b"old csv"
    assert listing(tmp_path) == before


def test_convert_writes_both_files_or_neither(shared_dir, tmp_path, mbx, monkeypatch):
    src = shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    q, f = tmp_path / "q.onnx", tmp_path / "f.onnx"
    q.write_bytes(b"old q")
    f.write_bytes(b"old f")
    real = outputs.os.fsync
    calls = []

    def second_fails(fd):  # the first file is written, the disk fills on the second
        calls.append(fd)
        if len(calls) == 2:
            full_disk()
        real(fd)

    monkeypatch.setattr(outputs.os, "fsync", second_fails)
    one_error(mbx("convert", src, "-o", q, "--float-twin", f, "--force"), "No space left on device")
    assert (q.read_bytes(), f.read_bytes()) == (b"old q", b"old f") and listing(tmp_path) == ["f.onnx", "q.onnx"]


def test_outputs_are_checked_before_any_work(tmp_path, mbx, monkeypatch):
    from mbexplorer.core import builder, loading

    def no_work(*a, **k):
        raise AssertionError("the output should have been refused before this")

    monkeypatch.setattr(builder, "build", no_work)
    monkeypatch.setattr(loading, "load", no_work)
    one_error(mbx(*BUILD, "-o", tmp_path / "nope" / "x.onnx"), f"the folder {tmp_path / 'nope'} does not exist.")
    one_error(mbx("convert", tmp_path / "in.onnx", "-o", tmp_path / "x.tflite"), "must end in .onnx")
    one_error(mbx("summary", tmp_path / "in.onnx", "--csv", tmp_path / "nope" / "x.csv"), "does not exist")
    (tmp_path / "x.npy").write_bytes(b"old")
    one_error(mbx("preprocess", tmp_path, "--model", tmp_path / "in.onnx", "-o", tmp_path / "x.npy"),
              "no images found")
    img = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (20, 20)).save(img)
    one_error(mbx("preprocess", img, "--model", tmp_path / "in.onnx", "-o", tmp_path / "x.npy"),
              "x.npy already exists; give --force")


def test_preprocess_needs_force_for_existing_files(tmp_path, mbx):
    from PIL import Image

    img = tmp_path / "a.png"
    Image.new("RGB", (50, 40), (3, 4, 5)).save(img)
    npy, bins = tmp_path / "x.npy", tmp_path / "bins"
    npy.write_bytes(b"old")
    bins.mkdir()
    (bins / "a.bin").write_bytes(b"old bin")
    one_error(mbx("preprocess", img, "--size", "32", "-o", npy), "x.npy already exists; give --force")
    one_error(mbx("preprocess", img, "--size", "32", "-o", bins), "a.bin already exists; give --force")
    assert npy.read_bytes() == b"old" and (bins / "a.bin").read_bytes() == b"old bin"
    assert mbx("preprocess", img, "--size", "32", "-o", npy, "--force").returncode == 0
    assert mbx("preprocess", img, "--size", "32", "-o", bins, "--force").returncode == 0
    assert npy.stat().st_size > 3 * 32 * 32 * 4 and (bins / "a.bin").stat().st_size == 3 * 32 * 32 * 4
    assert listing(tmp_path) == ["a.png", "bins", "x.npy"] and listing(bins) == ["a.bin"]


def test_screenshot_names_are_checked_before_the_window_opens(tmp_path, model_file, mbx, monkeypatch):
    import mbexplorer.gui.app as app

    monkeypatch.setattr(app, "run_gui", lambda **kw: pytest.fail("the window should not open"))
    model = model_file("mobilenet_v1", 0.25, 96)
    one_error(mbx("gui", model, "--screenshot", tmp_path / "shot.xyz"),
              "will not write the screenshot to shot.xyz: its name has '.xyz'; it must end in ")
    one_error(mbx("gui", model, "--screenshot", tmp_path / "shot"), "its name has no suffix")
    one_error(mbx("gui", "--build", "mobilenet_v1", "--screenshot", tmp_path / "no" / "shot.png"), "does not exist")
    (tmp_path / "shot.png").write_bytes(b"old")
    one_error(mbx("gui", model, "--screenshot", tmp_path / "shot.png"), "shot.png already exists; give --force")
    assert (tmp_path / "shot.png").read_bytes() == b"old"
    png_model = tmp_path / "model.png"
    png_model.write_bytes(model.read_bytes())
    one_error(mbx("gui", png_model, "--screenshot", png_model, "--force"), "will not write over model.png")


def test_screenshot_in_the_format_its_suffix_names(tmp_path, mbx):
    out = tmp_path / "shot.jpg"
    out.write_bytes(b"old")
    r = mbx("gui", "--build", "mobilenet_v1", "--width", "0.25", "--resolution", "96", "--screenshot", out, "--force")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG, not a PNG under a .jpg name
    assert listing(tmp_path) == ["shot.jpg"]
