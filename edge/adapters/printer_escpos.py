"""Real receipt printers through python-escpos transports (USB, serial, network, device file)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from edge.errors import PrinterError
from edge.ports.printer import Paper, PrinterStatus, PrinterTransport

logger = logging.getLogger(__name__)

# DLE EOT n real-time status (ESC/POS): 1 printer, 2 offline cause, 4 roll paper sensor.
_STATUS_OFFLINE_CAUSE = b"\x10\x04\x02"
_COVER_OPEN_BIT = 0x04
_PAPER = {2: "ok", 1: "near-end", 0: "out"}


class EscposTransport(PrinterTransport):
    """Opens the printer for each job or status query, so a re-plugged cable just works."""

    def __init__(
        self, kind: str, make: Callable[[], Any], *, where: str, can_read: bool = True
    ) -> None:
        self.kind = kind
        self._make = make
        self._where = where
        self._can_read = can_read

    def describe(self) -> str:
        return f"{self.kind}:{self._where}"

    def _open(self) -> Any:
        printer = self._make()
        try:
            printer.open()
        except Exception as err:  # escpos raises DeviceNotFoundError, usb/serial errors, OSError
            raise PrinterError(f"printer not reachable at {self._where}: {_short(err)}") from err
        return printer

    def send(self, data: bytes, *, job_id: str) -> None:
        printer = self._open()
        try:
            printer._raw(data)
        except Exception as err:
            raise PrinterError(f"printer stopped taking data: {_short(err)}") from err
        finally:
            _close(printer)

    def status(self) -> PrinterStatus:
        try:
            printer = self._open()
        except PrinterError as err:
            return PrinterStatus(online=False, detail=str(err))
        try:
            if not self._can_read:
                return PrinterStatus(online=True, detail="this transport cannot read status")
            online = printer.is_online()
            paper: Paper = _PAPER.get(printer.paper_status(), "unknown")  # type: ignore[assignment]
            cause = printer.query_status(_STATUS_OFFLINE_CAUSE)
            cover = bool(cause and cause[0] & _COVER_OPEN_BIT) if cause else None
            return PrinterStatus(online=online, paper=paper, cover_open=cover)
        except Exception as err:
            return PrinterStatus(online=False, detail=f"status query failed: {_short(err)}")
        finally:
            _close(printer)


def _close(printer: Any) -> None:
    try:
        printer.close()
    except Exception:
        logger.debug("printer close failed", exc_info=True)


def _short(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def usb(vendor_id: int, product_id: int, profile: str) -> EscposTransport:
    from escpos.printer import Usb

    return EscposTransport(
        "usb",
        lambda: Usb(vendor_id, product_id, timeout=5000, profile=profile),
        where=f"{vendor_id:04x}:{product_id:04x}",
    )


def serial(device: str, baudrate: int, profile: str) -> EscposTransport:
    from escpos.printer import Serial

    return EscposTransport(
        "serial",
        lambda: Serial(devfile=device, baudrate=baudrate, timeout=2, profile=profile),
        where=device,
    )


def network(host: str, port: int, timeout_s: float, profile: str) -> EscposTransport:
    from escpos.printer import Network

    return EscposTransport(
        "network",
        lambda: Network(host, port=port, timeout=timeout_s, profile=profile),
        where=f"{host}:{port}",
    )


def device_file(path: os.PathLike[str], profile: str) -> EscposTransport:
    from escpos.printer import File

    return EscposTransport(
        "file",
        lambda: File(devfile=str(path), profile=profile),
        where=str(path),
        can_read=False,
    )
