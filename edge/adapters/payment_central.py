"""Payment confirmed by central (docs/payments.md, "At the kiosk").

request() queues one payment-request record (protocol/schemas/payment-request-record.json) per
reference through the outbox and returns the VietQR payload the citizen scans; central matches
the bank's notification against that record and answers payment-confirmation/1 on
<prefix>/<kiosk_id>/res/payment. on_message() keeps a confirmation only when its reference and
amount match a request this kiosk made (edge/payments.py); anything else is one log line.
paid() reads the store, so a confirmation that came while the citizen was on another screen, or
before a restart, is not lost.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from edge.fees import Fee
from edge.payments import Payments, now_iso
from protocol.schemas import validator

logger = logging.getLogger(__name__)

PAYMENT_SUFFIX = "res/payment"


class CentralPayment:
    """The Payment port with central's bank confirmation (Payments: the kiosk's ledger).

    qr builds the payload the citizen scans (CopyService.payment_qr); bank_bin, account and
    purpose_prefix are the site's VietQR settings ([copies.vietqr]), the same the payload has.
    """

    def __init__(
        self,
        payments: Payments,
        *,
        qr: Callable[[Fee, str], str | None],
        bank_bin: str | None,
        account: str | None,
        purpose_prefix: str,
    ) -> None:
        self.payments = payments
        self._qr = qr
        self.bank_bin = bank_bin or ""
        self.account = account or ""
        self.purpose_prefix = purpose_prefix
        self._confirmation = validator("payment-confirmation")

    def is_usable(self) -> bool:
        return True

    def request(self, fee: Fee, reference: str) -> str | None:
        """The VietQR payload, after queueing the payment-request record (once per reference).
        None when nothing is payable or no account is configured (cash at the counter only)."""
        if not fee.payable_vnd:
            return None
        payload = self._qr(fee, reference)
        if payload is None:
            return None
        asked = self.payments.asked(reference)
        if asked is None:
            self.payments.open(reference, fee, "")  # no payer known: no receipt (see Payments)
            asked = self.payments.asked(reference)
        if asked is None or asked.amount_vnd != fee.payable_vnd:
            logger.error(
                "payment reference reused for another amount", extra={"reference": reference}
            )
            return None
        if not asked.requested:
            data: dict[str, Any] = {
                "reference": reference,
                "amount_vnd": fee.payable_vnd,
                "fee_name": fee.name_vi,
                "rule_id": fee.rule_id,
                "legal_basis": fee.basis_vi,
                "bank_bin": self.bank_bin,
                "account": self.account,
                "transfer_text": f"{self.purpose_prefix} {reference}",
                "procedure": asked.fee["procedure"],
                "pages": min(max(1, fee.pages), 200),
                "created_at": now_iso(asked.created_at),
                "expires_at": now_iso(asked.expires_at),
            }
            self.payments.queue_request(reference, data)
        return payload

    def on_message(self, suffix: str, payload: bytes, properties: Any) -> None:
        """FleetClient.listen handler for res/payment (on paho's thread: one short write)."""
        try:
            message = json.loads(payload)
        except ValueError:
            logger.warning("payment confirmation is not JSON; ignored")
            return
        try:
            self.record(message)
        except Exception:  # never let a bad message take down the fleet thread
            logger.exception("payment confirmation not recorded")

    def record(self, message: Any) -> bool:
        """Keep a payment-confirmation/1 that matches a request of this kiosk: whether it was
        kept now (False: refused, unknown, another amount, or already confirmed)."""
        errors = list(self._confirmation.iter_errors(message))
        if errors:
            logger.warning("payment confirmation refused", extra={"why": errors[0].message[:120]})
            return False
        asked = self.payments.asked(message["reference"])
        if asked is None or not asked.requested:
            logger.warning(
                "payment confirmation for no request of this kiosk; ignored",
                extra={"reference": message["reference"]},
            )
            return False
        return self.payments.confirm(
            message["reference"],
            method="bank_transfer",
            amount_vnd=message["amount_vnd"],
            bank_reference=message["bank_reference"],
            paid_at=message["paid_at"],
            confirmed_at=message["confirmed_at"],
        )

    def paid(self, reference: str) -> bool:
        return self.payments.confirmation(reference) is not None

    def cancel(self, reference: str) -> None:
        """The citizen left: nothing to undo. The request stays until it expires, so that a
        transfer already made is still confirmed and receipted (edge/payments.py)."""
