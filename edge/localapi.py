"""The per-boot token local clients (the kiosk CLI) send with calls that change state on the
daemon's web API; the web UI's own page proves itself by its origin instead (web_ui/guard.py)."""

from __future__ import annotations

import secrets
from pathlib import Path

from protocol.files import write_atomic

TOKEN_HEADER = "X-Kiosk-Token"
TOKEN_FILE = "web-token"  # in the state dir, mode 0600: the daemon's user (and root) only


def new_token() -> str:
    return secrets.token_urlsafe(32)


def write_token(state_dir: Path, token: str) -> Path:
    path = state_dir / TOKEN_FILE
    write_atomic(path, token.encode("ascii"), mode=0o600)
    return path


def read_token(state_dir: Path) -> str | None:
    """The running daemon's token, or None when there is none or this user may not read it."""
    try:
        return (state_dir / TOKEN_FILE).read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def token_headers(state_dir: Path) -> dict[str, str]:
    """The header a local client sends (empty when it cannot read the token)."""
    token = read_token(state_dir)
    return {TOKEN_HEADER: token} if token else {}
