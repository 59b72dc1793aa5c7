"""Simulated payment: the QR is a real VietQR payload; the bank's confirmation is a button."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from edge.fees import Fee

logger = logging.getLogger(__name__)


class SimulatedPayment:
    """The payment port for development and tests: confirm() stands for central's confirmation.

    qr builds the payload the citizen scans (CopyService.payment_qr: the site's VietQR account).
    payments: the kiosk's ledger (edge.payments.Payments), if any: a simulated confirmation is
    then recorded there like central's, with its fee receipt (bank reference "SIMULATION").
    """

    def __init__(self, *, qr: Callable[[Fee, str], str | None], payments: Any = None) -> None:
        self._qr = qr
        self.payments = payments
        self._paid: set[str] = set()
        self._lock = threading.Lock()

    def is_usable(self) -> bool:
        return True

    def request(self, fee: Fee, reference: str) -> str | None:
        return self._qr(fee, reference) if fee.payable_vnd else None

    def confirm(self, reference: str) -> None:
        with self._lock:
            self._paid.add(reference)
        asked = self.payments.asked(reference) if self.payments is not None else None
        if asked is not None and asked.amount_vnd:
            self.payments.confirm(
                reference,
                method="bank_transfer",
                amount_vnd=asked.amount_vnd,
                bank_reference="SIMULATION",
            )
        logger.info("payment confirmed (simulation)")

    def paid(self, reference: str) -> bool:
        with self._lock:
            if reference in self._paid:
                return True
        return self.payments is not None and self.payments.confirmation(reference) is not None

    def cancel(self, reference: str) -> None:
        with self._lock:
            self._paid.discard(reference)
