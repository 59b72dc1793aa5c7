"""Message catalogs: Vietnamese by default, English on request. The .mo files are build
artefacts (setup.py's build; `pybabel compile` in a checkout): the app only reads them."""

from __future__ import annotations

import logging
from pathlib import Path

from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from flask import Flask, session
from flask_babel import Babel

from edge.texts import Text, day_text, time_text

logger = logging.getLogger(__name__)

TRANSLATIONS = Path(__file__).resolve().parent / "translations"
LANGUAGES = ("vi", "en")
# What bootstrap.sh runs in a checkout (repository root), e.g. after a .po changed.
COMPILE_COMMAND = ".venv/bin/pybabel compile -d web_ui/translations"


def _catalogs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*/LC_MESSAGES/messages.po"))


def compile_catalogs(folder: Path = TRANSLATIONS) -> list[Path]:
    """Compile every messages.po into its messages.mo (fuzzy entries left out), as setup.py and
    `pybabel compile` do; for tools and tests, never by the running app (it must not write into
    its package)."""
    written = []
    for po in _catalogs(folder):
        with po.open("rb") as f:
            catalog = read_po(f, locale=po.parent.parent.name)
        mo = po.with_suffix(".mo")
        with mo.open("wb") as f:
            write_mo(f, catalog, use_fuzzy=False)
        written.append(mo)
    return written


def catalog_problems(folder: Path = TRANSLATIONS) -> list[str]:
    """What is wrong with the compiled catalogs: a .mo that is missing, or that does not hold
    what its .po says (stale). Compared by content, because file times are not kept by every
    install (a wheel's files all get the time they were unpacked)."""
    problems = []
    for po in _catalogs(folder):
        mo = po.with_suffix(".mo")
        if not mo.exists():
            problems.append(f"{mo} is missing")
            continue
        with po.open("rb") as f:
            source = read_po(f, locale=po.parent.parent.name)
        try:
            with mo.open("rb") as f:
                compiled = read_mo(f)
        except (OSError, ValueError) as err:
            problems.append(f"{mo} is unreadable ({err})")
            continue
        wanted = {m.id: m.string for m in source if m.id and m.string and not m.fuzzy}
        found = {m.id: m.string for m in compiled if m.id and m.string}
        if found != wanted:
            problems.append(f"{mo} does not match {po.name} (stale)")
    return problems


def init_app(app: Flask, *, default: str = "vi", folder: Path | None = None) -> None:
    folder = folder or TRANSLATIONS
    app.config["BABEL_DEFAULT_LOCALE"] = default
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(folder)
    app.config["KIOSK_DEFAULT_LANG"] = default

    def select() -> str:
        lang = session.get("lang")
        return lang if lang in LANGUAGES else default

    Babel(app, locale_selector=select)
    app.jinja_env.globals["translate"] = translate
    # Dates as citizens read them, one helper for the screens and the slips (edge.texts).
    app.jinja_env.filters["day"] = day_text
    app.jinja_env.filters["when"] = time_text
    problems = catalog_problems(folder)
    if problems:
        # A half-translated screen is worse than a whole one in the source language.
        logger.error(
            "message catalogs not usable: %s; compile them (in the repository root: `%s`, "
            "which bootstrap.sh runs); until then every screen shows the English source strings",
            "; ".join(problems),
            COMPILE_COMMAND,
        )
        app.extensions["babel"].translation_directories = []


def translate(text: Text) -> str:
    """A domain text (edge.texts.Text) in the citizen's language, from the catalogs."""
    from flask_babel import gettext

    # A parameter that is a Text itself ("updated %(age)s") is said in the same language.
    params = {k: translate(v) if isinstance(v, Text) else v for k, v in text.params.items()}
    return gettext(text.msgid, **params)


def refusal(err: BaseException) -> str:
    """What the citizen is told about a refused request: the error's Text in the screen's
    language, never its log line; an error without a Text shows as it always has."""
    text = getattr(err, "text", None)
    return translate(text) if isinstance(text, Text) else str(err)


def pick(vi: str, en: str) -> str:
    """For texts that come from the services in both languages (message_vi / message_en)."""
    from flask_babel import get_locale

    return en if str(get_locale()) == "en" else vi


def current_lang() -> str:
    """The citizen's language on the screen: "vi" or "en" (what the slips are printed in)."""
    from flask_babel import get_locale

    return "en" if str(get_locale()) == "en" else "vi"
