"""Citizen-facing texts of the domain code: an English msgid (python-format) and parameters.

The Vietnamese lives in the web UI's gettext catalog (`web_ui/translations`, refreshed by
`python -m web_ui.catalog`, which extracts the `N_(...)` marks in `edge/`). The screens
translate a Text with flask-babel in the citizen's language; logs, the CLI and the JSON
answers use `.en` and `.vi`. No Flask here: vision and identity import this module."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po
from babel.support import Translations

logger = logging.getLogger(__name__)

# The one catalog; a file of the same distribution, read, never imported.
TRANSLATIONS = Path(__file__).resolve().parent.parent / "web_ui" / "translations"


def N_(msgid: str) -> str:
    """Marks msgid for the catalog; translated later, where the language is known."""
    return msgid


@dataclass(frozen=True, slots=True)
class Text:
    """A citizen-facing text in no language yet: the msgid and what fills its %(name)s."""

    msgid: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def en(self) -> str:
        return _fill(
            self.msgid, {k: v.en if isinstance(v, Text) else v for k, v in self.params.items()}
        )

    @property
    def vi(self) -> str:
        # A parameter that is a Text itself is said in the same language.
        params = {k: v.vi if isinstance(v, Text) else v for k, v in self.params.items()}
        return _fill(vietnamese(self.msgid), params)


def _fill(text: str, params: Mapping[str, Any]) -> str:
    # As flask-babel's gettext: a text without parameters is used as it is (a % stays a %).
    return text % params if params else text


def vietnamese(msgid: str) -> str:
    """msgid in Vietnamese from the catalog (msgid itself if it has no translation)."""
    return _vi()(msgid)


@functools.cache
def _vi() -> Callable[[str], str]:
    compiled = Translations.load(str(TRANSLATIONS), ["vi"])
    if isinstance(compiled, Translations):
        return compiled.gettext
    # A checkout without the compiled .mo (a build artefact): the .po says the same.
    po = TRANSLATIONS / "vi" / "LC_MESSAGES" / "messages.po"
    try:
        with po.open("rb") as f:
            catalog = read_po(f, locale="vi")
    except OSError as err:
        logger.error("no Vietnamese catalog (%s): texts stay in English", err)
        return str
    table = {
        m.id: m.string
        for m in catalog
        if isinstance(m.id, str) and isinstance(m.string, str) and m.string and not m.fuzzy
    }
    return lambda msgid: table.get(msgid, msgid)


# --- dates as citizens read them: dd/mm/yyyy, never ISO (issue 18) ----------------------------

_ISO_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


def day_text(value: dt.date | str | None) -> str:
    """A date as dd/mm/yyyy (the screens' `day` filter and the slips): a date, a datetime
    (its own day, as given), or an ISO "yyyy-mm-dd" text such as a date read from a paper.
    Any other text is returned as it is (a year alone, a field that is not a date)."""
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.strftime("%d/%m/%Y")
    match = _ISO_DAY.fullmatch(value.strip())
    if match:
        year, month, day = match.groups()
        return f"{day}/{month}/{year}"
    return value


def time_text(value: dt.datetime | None, tz: dt.tzinfo | None = None) -> str:
    """A moment as hh:mm dd/mm/yyyy (the screens' `when` filter and the slips), in tz if given
    (an aware value), else as it is."""
    if value is None:
        return ""
    if tz is not None and value.tzinfo is not None:
        value = value.astimezone(tz)
    return value.strftime("%H:%M %d/%m/%Y")
