"""Refresh the message catalogs: `python -m web_ui.catalog` extracts the strings (the web UI's,
and the domain code's `N_(...)` marks in edge/, see edge/texts.py), merges them into vi and en
(translations kept), then compiles the .mo files the app loads."""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.frontend import CommandLineInterface

HERE = Path(__file__).resolve().parent
EDGE = HERE.parent / "edge"
POT = HERE / "translations" / "messages.pot"


def main() -> int:
    cli = CommandLineInterface()
    base = ["pybabel", "-q"]
    cli.run([*base, "extract", "-F", str(HERE / "babel.cfg"), "-k", "_l", "--no-location",
             "--sort-output", "--omit-header", "-o", str(POT), str(HERE), str(EDGE)])  # fmt: skip
    for lang in ("vi", "en"):
        po = HERE / "translations" / lang / "LC_MESSAGES" / "messages.po"
        action = "update" if po.exists() else "init"
        extra = ["--no-fuzzy-matching", "--ignore-obsolete"] if action == "update" else []
        cli.run([*base, action, "-i", str(POT), "-d", str(HERE / "translations"), "-l", lang,
                 *extra])  # fmt: skip
    cli.run([*base, "compile", "-d", str(HERE / "translations"), "--statistics"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
