"""Regenerate the settings table from otel_monitor.settings.FIELDS, wherever the docs hold it.

The table lives in docs/settings.md (the README links it); any file listed in DOCS with the
markers is updated, so the table can move without changing this script's name or its callers.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from otel_monitor.settings import markdown_table  # noqa: E402 - after the sys.path set-up above

START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"
#: the files that may hold the generated table
DOCS = ("docs/settings.md", "README.md")


def render(text: str) -> str:
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    return pattern.sub(lambda m: f"{START}\n{markdown_table()}\n{END}", text)


if __name__ == "__main__":
    for name in DOCS:
        path = ROOT / name
        text = path.read_text()
        if START in text:
            path.write_text(render(text))
            print(f"{name}: settings table updated")
