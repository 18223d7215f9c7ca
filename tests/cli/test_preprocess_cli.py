"""``mbexplorer preprocess``: the exact input tensors written as .npy, .npz or a folder of raw .bin files, all or
nothing."""

import numpy as np
import pytest
from PIL import Image

from mbexplorer.core.preprocess import for_model, preset


def write_images(folder, names=("b.png", "a.jpg", "c.bmp")):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    paths = []
    for i, name in enumerate(names):
        h, w = (90 + 10 * i, 130 - 7 * i)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / name)
        paths.append(folder / name)
    return paths


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_npy_is_the_tensors_stacked_in_order(tmp_path, mbx):
    folder = tmp_path / "pics"
    b, a, c = write_images(folder)
    extra = write_images(tmp_path / "more", ("z.png",))[0]
    out = tmp_path / "x.npy"
    r = mbx("preprocess", extra, folder, "--size", "96", "-o", out)
    assert r.returncode == 0, r.stderr
    pre = preset("torchvision", 96)
    order = [extra, a, b, c]  # as given, folders expanded sorted
    expected = np.concatenate([pre.tensor(p) for p in order])
    got = np.load(out)
    assert got.dtype == np.float32 and got.shape == (4, 3, 96, 96)
    np.testing.assert_array_equal(got, expected)
    lines = r.stdout.splitlines()
    assert lines[:4] == [f"{p} -> {out}[{i}]" for i, p in enumerate(order)]
    assert lines[4] == f"wrote {out}: one array, 4x3x96x96 float32 in all; {pre.describe()}"
    assert len(lines) == 5 and listing(tmp_path) == ["more", "pics", "x.npy"]  # no temporary left


def test_npz_keys_are_file_names_made_unique(tmp_path, mbx):
    first = write_images(tmp_path / "one", ("cat.png", "dog.jpg"))
    second = write_images(tmp_path / "two", ("cat.png",))
    out = tmp_path / "x.npz"
    r = mbx("preprocess", *first, *second, "--size", "64x48", "--preset", "keras", "--layout", "NHWC", "-o", out)
    assert r.returncode == 0, r.stderr
    pre = preset("keras", 64, 48, layout="NHWC")
    with np.load(out) as z:
        assert list(z.keys()) == ["cat.png", "dog.jpg", "cat_2.png"]
        for key, path in zip(["cat.png", "dog.jpg", "cat_2.png"], [*first, *second]):
            assert z[key].shape == (1, 64, 48, 3) and z[key].dtype == np.float32
            np.testing.assert_array_equal(z[key], pre.tensor(path))
    assert f"{second[0]} -> {out}[cat_2.png]" in r.stdout
    assert f"wrote {out}: 3 arrays, 1x64x48x3 float32 each; keras:" in r.stdout


@pytest.mark.parametrize("existing", [False, True])
def test_bin_folder_holds_the_raw_bytes(tmp_path, mbx, existing):
    paths = write_images(tmp_path / "pics", ("b.png", "a.jpg", "a.png"))
    out = tmp_path / "bins"
    if existing:  # an existing folder gets the files; what was there stays
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    r = mbx("preprocess", *paths, "--size", "80", "--dtype", "uint8", "--preset", "coral", "-o", out)
    assert r.returncode == 0, r.stderr
    pre = preset("coral", 80, dtype="uint8")
    names = ["b.bin", "a.bin", "a_2.bin"]
    assert listing(out) == sorted(names + ["keep.txt"] * existing)
    for name, path in zip(names, paths):
        assert (out / name).read_bytes() == pre.tensor(path).tobytes()
        assert f"{path} -> {out / name}" in r.stdout
    assert (out / "a.bin").stat().st_size == 3 * 80 * 80  # no header
    assert r.stdout.splitlines()[-1].startswith(f"wrote {out}: 3 raw .bin files (little-endian, no header), "
                                                "1x3x80x80 uint8 each; coral: ")
    assert listing(tmp_path) == ["bins", "pics"]


def test_model_gives_size_layout_dtype_and_preset(tmp_path, mbx, model_file):
    model = model_file("mobilenet_v1", 0.25, 96)
    img = write_images(tmp_path / "pics", ("a.png",))[0]
    out = tmp_path / "x.npy"
    r = mbx("preprocess", img, "--model", model, "-o", out)
    assert r.returncode == 0, r.stderr
    got = np.load(out)
    assert got.shape == (1, 3, 96, 96) and got.dtype == np.float32
    np.testing.assert_array_equal(got, preset("torchvision", 96).tensor(img))
    # a preset and a custom option on top of the model's input
    r = mbx("preprocess", img, "--model", model, "--preset", "paddle", "--interpolation", "pil", "-o", out, "--force")
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(out), preset("paddle", 96, interpolation="pil").tensor(img))
    assert "custom: shorter side to 110" in r.stdout
    r = mbx("preprocess", img, "--model", model, "--layout", "NHWC", "-o", out)
    assert r.returncode == 1 and "come from the model" in r.stderr
    r = mbx("preprocess", img, "-o", out)
    assert r.returncode == 2 and "one of the arguments --model --size is required" in r.stderr


def test_tflite_model_gives_uint8_nhwc_coral(shared_dir, tmp_path, mbx):
    from mbexplorer.core.loading import load

    src = shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    images = [shared_dir / "images" / "parrot.jpg", shared_dir / "images" / "cat.bmp"]
    out = tmp_path / "bins"
    r = mbx("preprocess", *images, "--model", src, "-o", out)
    assert r.returncode == 0, r.stderr
    pre = for_model(load(src))
    assert (pre.name, pre.layout, pre.dtype, pre.height) == ("coral", "NHWC", "uint8", 128)
    assert listing(out) == ["cat.bin", "parrot.bin"]
    for p in images:
        data = (out / f"{p.stem}.bin").read_bytes()
        assert len(data) == 128 * 128 * 3 and data == pre.tensor(p).tobytes()
    assert "1x128x128x3 uint8 each; coral: whole image to 128x128" in r.stdout


def test_errors_leave_nothing_behind(tmp_path, mbx):
    pics = tmp_path / "pics"
    good = write_images(pics, ("a.png", "b.png"))
    (pics / "c.png").write_text("not a picture")
    empty = tmp_path / "empty"
    empty.mkdir()
    before = listing(tmp_path)
    for out in ("x.npy", "x.npz", "bins"):
        r = mbx("preprocess", pics, "--size", "64", "-o", tmp_path / out)
        assert r.returncode == 1 and r.stdout == ""
        assert r.stderr.startswith("mbexplorer: error: c.png is not an image this app can read")
        assert listing(tmp_path) == before and listing(pics) == ["a.png", "b.png", "c.png"]
    r = mbx("preprocess", empty, "--size", "64", "-o", tmp_path / "x.npy")
    assert r.returncode == 1 and "no images found in" in r.stderr
    r = mbx("preprocess", *good, "--size", "64", "-o", tmp_path / "missing" / "x.npy")
    assert r.returncode == 1 and f"the folder {tmp_path / 'missing'} does not exist" in r.stderr
    r = mbx("preprocess", tmp_path / "nope.png", "--size", "64", "-o", tmp_path / "x.npy")
    assert r.returncode == 1 and f"{tmp_path / 'nope.png'} does not exist." in r.stderr
    # never over an input: the .npy named like an image, or a .bin file given as an image
    r = mbx("preprocess", *good, "--size", "64", "-o", good[0])
    assert r.returncode == 1 and "will not write over a.png: it is one of the input images" in r.stderr
    bins = tmp_path / "bins"
    bins.mkdir()
    raw = bins / "a.bin"
    raw.write_bytes(good[0].read_bytes())  # a PNG under another suffix: an image given by name
    r = mbx("preprocess", raw, "--size", "64", "-o", bins)
    assert r.returncode == 1 and "will not write over a.bin" in r.stderr
    assert listing(tmp_path) == sorted(before + ["bins"]) and listing(bins) == ["a.bin"]
    assert good[0].read_bytes() == raw.read_bytes()
