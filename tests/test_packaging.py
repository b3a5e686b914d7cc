"""What a package index and a user who installs the wheel see: the licence, the metadata, one version."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from otel_monitor import __version__

from .conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The wheel as the README builds it (`pip wheel --no-deps`; setuptools from the index)."""
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [path] = out.glob("otel_monitor-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def metadata(wheel: zipfile.ZipFile):
    return Parser().parsestr(wheel.read(f"otel_monitor-{__version__}.dist-info/METADATA").decode())


def test_the_wheel_ships_the_apache_licence_text(wheel):
    shipped = wheel.read(f"otel_monitor-{__version__}.dist-info/licenses/LICENSE").decode()
    assert shipped == (ROOT / "LICENSE").read_text()
    assert "Apache License" in shipped and "Version 2.0, January 2004" in shipped
    assert "END OF TERMS AND CONDITIONS" in shipped  # the whole text, not a pointer to it
    meta = metadata(wheel)
    assert meta["License-Expression"] == "Apache-2.0" and meta.get_all("License-File") == ["LICENSE"]


def test_the_wheel_metadata_is_what_a_package_index_shows(wheel):
    meta = metadata(wheel)
    assert meta["Name"] == "otel_monitor" and meta["Version"] == __version__
    assert meta["Requires-Python"] == ">=3.10"
    classifiers = meta.get_all("Classifier")
    assert "Framework :: Flask" in classifiers and "Typing :: Typed" in classifiers
    assert [c for c in classifiers if c.startswith("Development Status ::")] == ["Development Status :: 4 - Beta"]
    versions = [
        c.rsplit(" ", 1)[1] for c in classifiers if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert versions and versions[0] == "3.10"  # the classifiers start where Requires-Python does
    assert not [c for c in classifiers if c.startswith("License ::")]  # PEP 639: the expression says it
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert {"Homepage", "Documentation", "Changelog", "Issues"} <= set(urls)
    assert all(u.startswith("https://") for u in urls.values())
    assert urls["Changelog"].endswith("/CHANGELOG.md")
    assert meta["Description-Content-Type"] == "text/markdown"


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    files = []
    for name in filter(None, names.split("\0")):
        path = ROOT / name
        if path.is_file() and path.suffix not in (".png", ".ico", ".woff2", ".db"):
            files.append(path)
    return files


def test_the_version_is_written_in_one_place():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    pattern = re.compile(rf"(?<![\d.]){re.escape(__version__)}(?![\d.])")
    holders = sorted(
        str(path.relative_to(ROOT))
        for path in tracked_text_files()
        if pattern.search(path.read_text(encoding="utf-8", errors="replace"))
    )
    # __about__.py sets it; the changelog's newest entry names it; a benchmark run records the
    # version it measured (benchmarks/results/*.md: latest.md, shown verbatim in docs/benchmarks.md)
    recorded = [h for h in holders if h.startswith("benchmarks/results/")]
    assert "benchmarks/results/latest.md" in recorded and all(h.endswith(".md") for h in recorded), holders
    assert [h for h in holders if h not in recorded] == [
        "CHANGELOG.md",
        "docs/benchmarks.md",
        "otel_monitor/__about__.py",
    ], holders


def test_the_changelog_keeps_a_changelog_with_this_version_on_top():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "[Keep a Changelog](https://keepachangelog.com/" in text
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (Unreleased|\d{4}-\d{2}-\d{2})$", text, re.M)
    assert releases[0][0] == __version__ and "0.1.0" in dict(releases)
    for version, _ in releases:  # every release heading links its changes
        assert re.search(rf"^\[{re.escape(version)}\]: https://", text, re.M), version


def test_the_wheel_ships_every_module_of_every_subpackage(wheel):
    package = ROOT / "otel_monitor"
    modules = {str(path.relative_to(ROOT)) for path in package.rglob("*.py") if "__pycache__" not in path.parts}
    shipped = set(wheel.namelist())
    assert sorted(modules - shipped) == []


def test_the_command_entry_point_names_a_function_that_exists(wheel):
    entry_points = wheel.read(f"otel_monitor-{__version__}.dist-info/entry_points.txt").decode()
    [target] = re.findall(r"^otel-monitor = (\S+)$", entry_points, re.M)
    module, _, function = target.partition(":")
    result = subprocess.run([sys.executable, "-c", f"import {module}; print(callable({module}.{function}))"])
    assert result.returncode == 0
    assert target == "otel_monitor.cli:main"
