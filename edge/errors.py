"""One root error for the daemon; subclasses also inherit the matching builtin."""

from __future__ import annotations

# The root and the errors central shares live in protocol.errors; re-exported for the daemon.
from protocol.errors import (  # noqa: F401
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_HARDWARE,
    EXIT_OK,
    BadInput,
    ConfigError,
    ConfigProblem,
    KioskError,
    StoreError,
)


class HardwareUnavailable(KioskError, OSError):
    """A part is not connected, not supported here, or stopped answering."""

    code = "hardware_unavailable"
    exit_code = EXIT_HARDWARE


class PrinterError(HardwareUnavailable):
    """The printer did not take a job."""

    code = "printer_error"
