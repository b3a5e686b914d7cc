"""The docs document what the code does: the generated settings table, the two commands, CI's command,
the README's structure and links. (tests/test_readme_quickstart.py runs the README against the demo.)"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from otel_monitor.settings import FIELDS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SETTINGS_DOC = ROOT / "docs" / "settings.md"

#: other contributions land under these headings: renaming one breaks their merge
README_HEADINGS = (
    "Try it: two commands",
    "Install",
    "Using it",
    "Your own spans, other instrumentations and logs",
    "Sending to a collector",
    "Settings",
    "Servers: gunicorn, uWSGI, uvicorn, hypercorn, waitress",
    "Failure behaviour",
    "The full stack",
    "Design",
    "Benchmarks",
)


def load_update_script():
    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "scripts" / "update_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_settings_table_in_docs_matches_the_settings():
    text = SETTINGS_DOC.read_text()
    update = load_update_script()
    assert update.START in text, "docs/settings.md lost its generated table"
    assert update.render(text) == text, "run: python scripts/update_readme.py"
    for f in FIELDS:
        assert f"| `{f.name}` / " in text, f.name
        for variable in f.metadata["env"]:
            assert f"`{variable}`" in text, variable


def test_every_file_with_a_settings_table_is_in_sync():
    update = load_update_script()
    for name in update.DOCS:
        text = (ROOT / name).read_text()
        assert update.render(text) == text, f"{name}: run python scripts/update_readme.py"


def test_the_readme_links_the_reference_and_every_relative_link_resolves():
    readme = README.read_text()
    for doc in ("docs/settings.md", "docs/metrics.md", "docs/analytics-api.md", "docs/cli.md", "docs/gunicorn.md"):
        assert f"]({doc}" in readme, doc
    for path in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # an absolute URL
            assert (path.parent / target).exists(), f"{path.relative_to(ROOT)} links a missing {target}"


def test_the_readme_first_screen_says_what_it_is_and_shows_it():
    head = README.read_text().splitlines()[:12]
    text = "\n".join(head)
    assert head[0] == "# otel_monitor"
    assert "OpenTelemetry" in text and "Flask" in text and "WSGI" in text
    assert "![" in text and "docs/images/overview.png" in text


def test_the_readme_is_ordered_for_evaluators_then_adopters_then_operators():
    headings = re.findall(r"^#{2,3} (.+)$", README.read_text(), re.M)
    positions = []
    for heading in README_HEADINGS:
        assert heading in headings, heading
        positions.append(headings.index(heading))
    assert positions == sorted(positions), headings


def test_the_readme_has_no_long_reference_tables():
    # The Design section's module table is the exception: it lists every module (a newcomer's map).
    table_rows, section = 0, ""
    for line in README.read_text().splitlines():
        if line.startswith("## "):
            section = line
        table_rows = table_rows + 1 if line.startswith("|") else 0
        assert table_rows <= 16 or section == "## Design", "a long table belongs in docs/: " + line[:60]


def test_ci_runs_exactly_the_readme_test_command():
    readme = README.read_text()
    assert "./scripts/test.sh" in readme and "./scripts/demo.sh" in readme
    assert "./scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_design_table_lists_every_module_of_the_package():
    section = README.read_text().split("## Design", 1)[1].split("\n## ", 1)[0]
    named: set[str] = set()
    for row in section.splitlines():
        if row.startswith("| `"):
            for name in re.findall(r"`([^`]+)`", row.split("|")[1]):
                named.add(name.rstrip("/"))
    package = ROOT / "otel_monitor"

    def entries(folder: Path) -> set[str]:
        return {p.name for p in folder.iterdir() if p.suffix == ".py" or (p.is_dir() and p.name != "__pycache__")}

    # a subpackage is one row (`alerts/`) or a row per module (`request/_request_path.py`)
    modules = set()
    for name in entries(package):
        if (package / name).is_dir() and name not in named:
            modules |= {f"{name}/{entry}" for entry in entries(package / name)}
        else:
            modules.add(name)
    assert sorted(modules - named) == [], "modules missing from the README's Design table"
    assert sorted(named - modules) == [], "the README's Design table names modules that do not exist"
