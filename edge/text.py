"""Names and addresses from citizens: NFC, single spaces, and no invisible characters."""

from __future__ import annotations

import unicodedata

# Unicode "format" characters draw nothing but change what is shown or compared: bidi controls
# (U+200E/U+200F, U+202A-U+202E, U+2066-U+2069), zero-width ones (U+200B-U+200D, U+2060,
# U+FEFF), the soft hyphen, tag characters. No Vietnamese name or address needs one.
FORMAT = "Cf"


def invisible(text: str) -> bool:
    """True if text holds a format (Cf) character."""
    return any(unicodedata.category(ch) == FORMAT for ch in text)


def clean_typed(text: str, *, controls: str = "space") -> str:
    """What a citizen typed on the screen: format characters dropped (an on-screen keyboard
    or a paste can leave a zero-width space nobody sees), then NFC (after the drop, so a mark
    split from its letter by a ZWSP still composes) and runs of whitespace as one space.
    Other controls (NUL, ESC, ...) become spaces (controls="space") or stay for the caller
    to refuse (controls="keep": the web forms say so to the citizen)."""
    kept = []
    for ch in text:
        category = unicodedata.category(ch)
        if category == FORMAT:
            continue
        kept.append(" " if category == "Cc" and controls == "space" else ch)
    return " ".join(unicodedata.normalize("NFC", "".join(kept)).split())
