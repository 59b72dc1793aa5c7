"""Simulated payment: the QR is a real VietQR payload; the bank's confirmation is a button."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from edge.fees import Fee

logger = logging.getLogger(__name__)


class SimulatedPayment:
    """The payment port for development and tests: confirm() stands for central's confirmation.

    qr builds the payload the citizen scans (CopyService.payment_qr: the site's VietQR account).
    """

    def __init__(self, *, qr: Callable[[Fee, str], str | None]) -> None:
        self._qr = qr
        self._paid: set[str] = set()
        self._lock = threading.Lock()

    def is_usable(self) -> bool:
        return True

    def request(self, fee: Fee, reference: str) -> str | None:
        return self._qr(fee, reference) if fee.payable_vnd else None

    def confirm(self, reference: str) -> None:
        with self._lock:
            self._paid.add(reference)
        logger.info("payment confirmed (simulation)")

    def paid(self, reference: str) -> bool:
        with self._lock:
            return reference in self._paid

    def cancel(self, reference: str) -> None:
        with self._lock:
            self._paid.discard(reference)
