"""The README documents what the code does: every setting in the table, the two commands, CI's command."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from otel_monitor.settings import FIELDS

ROOT = Path(__file__).resolve().parent.parent


def load_update_script():
    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "scripts" / "update_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_settings_table_matches_the_settings():
    readme = (ROOT / "README.md").read_text()
    assert load_update_script().render(readme) == readme, "run: python scripts/update_readme.py"
    for f in FIELDS:
        for variable in f.metadata["env"]:
            assert f"`{variable}`" in readme, variable


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "./scripts/test.sh" in readme and "./scripts/demo.sh" in readme
    assert "./scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
