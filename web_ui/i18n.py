"""Message catalogs: Vietnamese by default, English on request; .po compiled to .mo at start."""

from __future__ import annotations

import logging
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, session
from flask_babel import Babel

logger = logging.getLogger(__name__)

TRANSLATIONS = Path(__file__).resolve().parent / "translations"
LANGUAGES = ("vi", "en")


def compile_catalogs(folder: Path = TRANSLATIONS) -> list[Path]:
    """Compile every messages.po whose .mo is missing or older (a read-only root keeps the
    committed .mo files, which are up to date)."""
    written = []
    for po in sorted(folder.glob("*/LC_MESSAGES/messages.po")):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as f:
            catalog = read_po(f, locale=po.parent.parent.name)
        try:
            with mo.open("wb") as f:
                write_mo(f, catalog, use_fuzzy=False)
        except OSError as err:
            logger.warning("cannot write %s: %s", mo, err)
            continue
        written.append(mo)
    return written


def init_app(app: Flask, *, default: str = "vi") -> None:
    compile_catalogs()
    app.config["BABEL_DEFAULT_LOCALE"] = default
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    app.config["KIOSK_DEFAULT_LANG"] = default

    def select() -> str:
        lang = session.get("lang")
        return lang if lang in LANGUAGES else default

    Babel(app, locale_selector=select)


def pick(vi: str, en: str) -> str:
    """For texts that come from the services in both languages (message_vi / message_en)."""
    from flask_babel import get_locale

    return en if str(get_locale()) == "en" else vi
