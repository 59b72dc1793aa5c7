"""One root error for kiosk and central; subclasses also inherit the matching builtin."""

from __future__ import annotations

# CLI exit codes shared by every subcommand.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_HARDWARE = 3


class KioskError(Exception):
    """Root of every error the daemon raises on purpose."""

    code = "error"
    exit_code = EXIT_FAILED


class BadInput(KioskError, ValueError):
    """Something a person typed or passed in is wrong; the message says what."""

    code = "bad_input"
    exit_code = EXIT_BAD_INPUT


class ConfigError(BadInput):
    """The configuration file is missing, unreadable or invalid."""

    code = "config_invalid"

    def __init__(self, message: str, *, problems: list[ConfigProblem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class StoreError(KioskError, OSError):
    """The local database or the key file cannot be used."""

    code = "store_error"


class ConfigProblem:
    """One bad key: where it is and why it is bad."""

    __slots__ = ("key", "line", "message")

    def __init__(self, key: str, message: str, line: int | None = None) -> None:
        self.key = key
        self.message = message
        self.line = line

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.key}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"key": self.key, "line": self.line, "message": self.message}
