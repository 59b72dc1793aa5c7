"""Central's half of bank-transfer payments (docs/payments.md): the kiosks' payment requests, the
bank's signed notification (payOS's webhook), the payment-confirmation/1 sent back to the kiosk,
and the fee receipts the kiosks send.

The webhook reads the raw body, checks payOS's signature with the channel's checksum key, and
keeps the notification once per bank reference (a duplicate answers 2xx and does nothing); the
match against the request (reference in the transfer text, amount, account, in time) is the
store's (fleet/store/payments.py), in one transaction with the notification."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.store import FleetStore, Notification, Outcome
from fleet.store.payments import ZONE

logger = logging.getLogger(__name__)

REQUEST_KIND = "payment-request"
RECEIPT_KIND = "fee-receipt"


# --- payOS's signature (payos.vn/docs/tich-hop-webhook/kiem-tra-du-lieu-voi-signature) ---------


def _value(value: Any) -> str:
    """A value as payOS's sample code writes it: null, "null" and "undefined" as an empty
    string; a list as JSON of its objects with their keys sorted; true/false as JavaScript
    writes them (the webhook's data has none: unchecked against payOS)."""
    if value is None or value in ("null", "undefined"):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        items = [dict(sorted(v.items())) if isinstance(v, dict) else v for v in value]
        return json.dumps(items, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def signed_text(data: dict[str, Any]) -> str:
    """`key=value&key=value...` over the data's members sorted by key."""
    return "&".join(f"{k}={_value(data[k])}" for k in sorted(data))


def signature(data: dict[str, Any], checksum_key: str) -> str:
    """HMAC-SHA256 (lower-case hex) with the channel's checksum key."""
    return hmac.new(
        checksum_key.encode(), signed_text(data).encode("utf-8"), hashlib.sha256
    ).hexdigest()


def signature_ok(data: dict[str, Any], given: Any, checksum_key: str) -> bool:
    if not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(signature(data, checksum_key), given.lower())


def bank_time(value: Any) -> float | None:
    """payOS's transactionDateTime ("2023-02-04 18:25:00", Vietnam's time), or None."""
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZONE)
    return when.timestamp()


@dataclass(frozen=True)
class Answer:
    """The webhook's HTTP answer."""

    status: int
    body: dict[str, Any]


def read_key(path: Path | None) -> str | None:
    """The checksum key from its file (never logged), or None without a usable one."""
    if path is None:
        return None
    try:
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        logger.error(
            "payments: cannot read the checksum key file", extra={"error": type(err).__name__}
        )
        return None
    return key or None


class PaymentService:
    """Attached to the console: the record hooks for payment requests and fee receipts, and the
    webhook's handler (fleet/web/bank.py calls `notification`)."""

    def __init__(self) -> None:
        self.console: Any = None
        self.store: FleetStore | None = None
        self._key: str | None = None
        self._key_read = False
        self._no_key_logged = False
        self._lock = threading.Lock()

    def attach(self, console: Any) -> None:
        self.console = console
        self.store = console.store
        console.payments = self
        console.ingest.record_hooks[REQUEST_KIND] = self.on_request
        console.ingest.record_hooks[RECEIPT_KIND] = self.on_receipt

    # --- the key ------------------------------------------------------------------------------

    def checksum_key(self) -> str | None:
        with self._lock:
            if not self._key_read:
                self._key = read_key(self.console.config.payments.checksum_key_file)
                self._key_read = True
            if self._key is None and not self._no_key_logged:
                logger.error(
                    "payments: no checksum key ([payments] checksum_key_file): bank "
                    "notifications are refused with 503"
                )
                self._no_key_logged = True
            return self._key

    # --- kiosk records ------------------------------------------------------------------------

    def _data(self, kind: str, kiosk_id: str, record: dict[str, Any]) -> dict[str, Any] | None:
        from protocol.schemas import validator

        data = record.get("data")
        errors = list(validator(f"{kind}-record").iter_errors(data)) if data is not None else [1]
        if errors:
            # A record that breaks the contract is kept (ingest stored it) but not acted on;
            # raising would only hand the batch again and again.
            logger.warning(
                f"{kind} record refused", extra={"kiosk": kiosk_id, "id": record.get("id")}
            )
            return None
        assert isinstance(data, dict)
        return data

    def on_request(self, kiosk_id: str, record: dict[str, Any]) -> None:
        data = self._data(REQUEST_KIND, kiosk_id, record)
        if data is None or self.store is None:
            return
        outcome = self.store.add_payment_request(
            kiosk_id, str(record.get("id")), data, now=time.time()
        )
        if outcome.status == "conflict":
            logger.warning(
                "payment reference already used by another request",
                extra={"kiosk": kiosk_id, "reference": data["reference"]},
            )
        self._send(outcome)

    def on_receipt(self, kiosk_id: str, record: dict[str, Any]) -> None:
        data = self._data(RECEIPT_KIND, kiosk_id, record)
        if data is None or self.store is None:
            return
        if self.store.add_fee_receipt(kiosk_id, str(record.get("id")), data, now=time.time()):
            logger.info(
                "fee receipt stored",
                extra={"kiosk": kiosk_id, "number": data["number"], "method": data["method"]},
            )

    # --- the bank's notification ----------------------------------------------------------------

    def notification(self, body: bytes) -> Answer:
        """payOS's webhook: 503 without a key, 400 for what is not a payOS notification, 401 for
        a bad or missing signature (nothing stored), else 200 (stored, or a duplicate)."""
        key = self.checksum_key()
        if key is None:
            return Answer(503, {"success": False, "error": "not configured"})
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):  # deep nesting: not a notification
            logger.warning("bank notification: not JSON", extra={"bytes": len(body)})
            return Answer(400, {"success": False, "error": "not JSON"})
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, dict):
            logger.warning("bank notification: no data object", extra={"bytes": len(body)})
            return Answer(400, {"success": False, "error": "no data"})
        if not signature_ok(data, doc.get("signature"), key):
            logger.warning("bank notification: bad or missing signature, dropped")
            return Answer(401, {"success": False, "error": "signature"})
        bank_reference = data.get("reference")
        amount = data.get("amount")
        if (
            not isinstance(bank_reference, str)
            or not 0 < len(bank_reference) <= 64
            or not isinstance(amount, int)
            or isinstance(amount, bool)
        ):
            logger.warning("bank notification: signed but without reference or amount")
            return Answer(400, {"success": False, "error": "reference or amount"})
        paid = doc.get("code") == "00" and data.get("code", "00") == "00"
        if data.get("currency", "VND") not in ("VND", None, ""):
            paid = False
        notification = Notification(
            bank_reference=bank_reference,
            amount_vnd=amount,
            account=str(data.get("accountNumber") or ""),
            content=str(data.get("description") or ""),
            paid_at=bank_time(data.get("transactionDateTime")),
            paid=paid,
            data=data,
        )
        assert self.store is not None
        outcome = self.store.add_bank_notification(notification, now=time.time())
        logger.info(
            "bank notification",
            extra={
                "bank_reference": bank_reference,
                "status": outcome.status,
                "kiosk": outcome.kiosk_id,
            },
        )
        self._send(outcome)
        return Answer(200, {"success": True})

    def _send(self, outcome: Outcome) -> None:
        """Publish a confirmation (QoS 1, not retained) once it passes the schema."""
        if outcome.send is None or outcome.kiosk_id is None:
            return
        from protocol.schemas import validator

        errors = list(validator("payment-confirmation").iter_errors(outcome.send))
        if errors:
            logger.error(
                "payment confirmation breaks its schema, not sent",
                extra={"kiosk": outcome.kiosk_id, "error": errors[0].message[:200]},
            )
            return
        prefix = self.console.config.mqtt.topic_prefix
        self.console.ingest.publish(f"{prefix}/{outcome.kiosk_id}/res/payment", outcome.send, qos=1)
        logger.info(
            "payment confirmed to the kiosk",
            extra={"kiosk": outcome.kiosk_id, "reference": outcome.send["reference"]},
        )
