"""Build hook: the web UI's message catalogs (.po) are compiled to .mo when the package is built,
so every install has them and the running app never writes into its package. They are written
next to their .po (the source tree, which a release runs from) before the package data is
copied (so the wheel carries them too). Settings are in pyproject.toml."""

from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithCatalogs(build_py):
    """build_py that first runs the equivalent of `pybabel compile -d web_ui/translations`."""

    def run(self) -> None:
        translations = Path(self.get_package_dir("web_ui")) / "translations"
        for po in sorted(translations.glob("*/LC_MESSAGES/messages.po")):
            with po.open("rb") as f:
                catalog = read_po(f, locale=po.parent.parent.name)
            with po.with_suffix(".mo").open("wb") as f:
                write_mo(f, catalog, use_fuzzy=False)
        super().run()


setup(cmdclass={"build_py": BuildPyWithCatalogs})
