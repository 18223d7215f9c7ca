"""Discovery reads manifests and imports nothing: folders, MBEXPLORER_PLUGIN_PATH, the entry-point group, and
every way a plugin can be unavailable (bad manifest, another API major, a missing requirement, a duplicate)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from devices_helpers import SAMPLES

from mbexplorer.devices import PluginError
from mbexplorer.devices.host import ENTRY_POINT, ENV, USER, discover, find, plugin_paths
from mbexplorer.devices.manifest import read_manifest


def write_plugin(folder: Path, name: str, *, api: str = "1.0", requires: tuple = (), body: str = "",
                 manifest: str | None = None) -> Path:
    d = folder / name
    d.mkdir(parents=True)
    reqs = ", ".join(f'"{r}"' for r in requires)
    (d / "plugin.toml").write_text(manifest if manifest is not None else textwrap.dedent(f"""\
        name = "{name}"
        api = "{api}"
        version = "1.2.3"
        entry = "mbx_{name}:Plugin"
        capabilities = ["profile"]
        requires = [{reqs}]
    """))
    (d / f"mbx_{name}.py").write_text(body or "raise RuntimeError('imported during discovery')\n")
    return d


def test_folder_of_plugins_is_listed_without_importing_them():
    found = {p.name: p for p in discover([SAMPLES], entry_points=False)}
    assert {"sleeper", "raiser", "hanger", "crasher", "printer", "spawner", "nonconformant",
            "broken_import"} <= set(found)
    # its module raises on import: listed, and available until first use says otherwise
    assert found["broken_import"].available
    assert "mbx_broken_import" not in sys.modules
    info = found["sleeper"]
    assert info.manifest.version == "0.1.0" and info.manifest.capabilities == ("compile", "profile", "from_log")
    assert info.location == str(SAMPLES / "sleeper")


def test_a_single_plugin_folder_and_the_environment_path(tmp_path, monkeypatch):
    write_plugin(tmp_path / "a", "alpha")
    write_plugin(tmp_path / "b", "beta")
    monkeypatch.setenv("MBEXPLORER_PLUGIN_PATH", f"{tmp_path / 'a' / 'alpha'}{__import__('os').pathsep}"
                                                 f"{tmp_path / 'b'}")
    assert tmp_path / "b" in plugin_paths()
    found = {p.name: p for p in discover()}
    assert found["alpha"].origin == ENV and found["beta"].origin == ENV
    assert found["alpha"].available and found["beta"].available


def test_the_user_folder(tmp_path):
    write_plugin(tmp_path / "home" / "plugins", "mine")
    found = {p.name: p for p in discover()}
    assert found["mine"].origin == USER


def test_bad_manifests_are_unavailable_with_the_reason(tmp_path):
    write_plugin(tmp_path, "notoml", manifest="name = \n")
    write_plugin(tmp_path, "noentry", manifest='name = "noentry"\napi = "1.0"\nversion = "1"\n')
    write_plugin(tmp_path, "badcap", manifest='name = "badcap"\napi = "1.0"\nversion = "1"\n'
                                              'entry = "m:P"\ncapabilities = ["teleport"]\n')
    write_plugin(tmp_path, "badtype", manifest='name = "badtype"\napi = 1\nversion = "1"\nentry = "m:P"\n')
    found = {p.location.rsplit("/", 1)[-1]: p for p in discover([tmp_path])}
    assert not any(p.available for p in found.values())
    assert "not valid TOML" in found["notoml"].reason
    assert "lacks entry" in found["noentry"].reason
    assert "unknown capabilities ['teleport']" in found["badcap"].reason
    assert "'api' must be a string" in found["badtype"].reason
    with pytest.raises(PluginError, match="plugin.toml does not exist"):
        read_manifest(tmp_path)


def test_another_api_major_or_a_newer_minor_is_unavailable(tmp_path):
    write_plugin(tmp_path, "old", api="0.9")
    write_plugin(tmp_path, "future", api="2.0")
    write_plugin(tmp_path, "newer", api="1.99")
    found = {p.name: p for p in discover([tmp_path])}
    assert "written for plugin API 0.9" in found["old"].reason
    assert "written for plugin API 2.0" in found["future"].reason
    assert "Update mbexplorer" in found["newer"].reason
    assert not any(p.available for p in found.values())


def test_a_missing_requirement_or_entry_module_is_unavailable(tmp_path):
    write_plugin(tmp_path, "needy", requires=("json", "no_such_module_mbx"))
    d = write_plugin(tmp_path, "lost")
    (d / "mbx_lost.py").unlink()
    found = {p.name: p for p in discover([tmp_path])}
    assert "needs the Python module no_such_module_mbx" in found["needy"].reason
    assert "pip install no_such_module_mbx" in found["needy"].reason
    assert "entry module mbx_lost is not in" in found["lost"].reason


def test_duplicate_names_use_the_first_and_say_so(tmp_path):
    first = write_plugin(tmp_path / "one", "twin")
    write_plugin(tmp_path / "two", "twin")
    infos = [p for p in discover([tmp_path / "one", tmp_path / "two"]) if p.name == "twin"]
    assert [p.available for p in infos] == [True, False]
    assert "another plugin named twin is used instead" in infos[1].reason
    assert find("twin", infos).location == str(first)
    # the same folder listed twice is one plugin, not a duplicate
    assert len(discover([tmp_path / "one", tmp_path / "one"])) == 1


def test_find_names_the_known_plugins_or_says_why_not(tmp_path):
    write_plugin(tmp_path, "old", api="0.1")
    write_plugin(tmp_path, "fine")
    plugins = discover([tmp_path])
    with pytest.raises(PluginError, match=r"no plugin named 'nope' \(known: fine, old\)"):
        find("nope", plugins)
    with pytest.raises(PluginError, match="the plugin old is unavailable: written for plugin API 0.1"):
        find("old", plugins)
    assert find("fine", plugins).name == "fine"


def test_entry_point_plugin_is_found_through_its_distribution(tmp_path, monkeypatch):
    site = tmp_path / "site"
    pkg = site / "mbx_installed"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('imported during discovery')\n")
    (pkg / "plugin.toml").write_text('name = "installed"\napi = "1.0"\nversion = "2.0"\n'
                                     'entry = "ignored:Plugin"\ncapabilities = ["profile"]\n')
    dist = site / "mbx_installed-2.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mbx-installed\nVersion: 2.0\n")
    (dist / "entry_points.txt").write_text("[mbexplorer.plugins]\ninstalled = mbx_installed:Plugin\n"
                                           "orphan = mbx_orphan:Plugin\n")
    (dist / "RECORD").write_text("mbx_installed/__init__.py,,\nmbx_installed/plugin.toml,,\n"
                                 "mbx_installed-2.0.dist-info/METADATA,,\n")
    monkeypatch.syspath_prepend(str(site))
    found = {p.name: p for p in discover()}
    info = found["installed"]
    assert info.origin == ENTRY_POINT and info.available, info.reason
    assert info.manifest.entry == "mbx_installed:Plugin"  # the entry point wins over the manifest's entry
    assert info.location == str(pkg)
    assert "mbx_installed" not in sys.modules
    assert not found["orphan"].available and "ships no plugin.toml" in found["orphan"].reason
