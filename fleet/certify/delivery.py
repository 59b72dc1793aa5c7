"""E-mail delivery of approved copies (docs/ecopy.md, "Delivery"): a thread that takes the due
rows of cert_deliveries (written with each approval), sends each copy by SMTP with its signed
PDF attached, and retries with backoff. Logs carry the request code and an error class only,
never the address."""

from __future__ import annotations

import io
import logging
import smtplib
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

from fleet.certify.config import MailConfig
from fleet.store import FleetStore
from protocol.mqtt import tls_context

logger = logging.getLogger(__name__)

# Seconds to wait after the 1st, 2nd, 3rd… failed try (the last repeats); failed after MAX_TRIES.
BACKOFF_S = (60.0, 300.0, 1800.0)
MAX_TRIES = 10


def copy_qr(pdf: bytes) -> str:
    """The copy's QR text (its verification URL), the signed PDF's Keywords."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    return str(reader.trailer["/Info"].get_object()["/Keywords"])


def message(*, sender: str, to: str, code: str, book: dict[str, Any]) -> EmailMessage:
    """The e-mail: subject "Bản sao chứng thực <code>", the number, the book and the
    verification URL in Vietnamese (a line in English), the signed PDF as <code>.pdf."""
    pdf: bytes = book["pdf"]
    url = copy_qr(pdf)
    msg = EmailMessage()
    msg["Subject"] = f"Bản sao chứng thực {code}"
    msg["From"] = sender
    msg["To"] = to
    msg.set_content(
        "Kính gửi Quý công dân,\n\n"
        f"Bản sao điện tử được chứng thực từ bản chính của Quý công dân (mã {code}) "
        "được gửi kèm thư này (tệp PDF có chữ ký số).\n\n"
        f"Số chứng thực: {book['number']}\n"
        f"Quyển số: {book['book']}\n"
        f"Kiểm tra bản sao: {url}\n\n"
        "Thư này được gửi tự động, xin không trả lời.\n\n"
        "Your certified electronic copy is attached (signed PDF); "
        "verify it at the address above.\n"
    )
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"{code}.pdf")
    return msg


class MailSender:
    """Sends the due e-mail deliveries every `interval_s`, at start and when woken."""

    def __init__(
        self,
        store: FleetStore,
        config: MailConfig,
        *,
        clock: Callable[[], float] = time.time,
        interval_s: float = 15.0,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="certify-mail", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Send now rather than at the next round (called after an approval)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.config.timeout_s + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.send_due()
            except Exception as err:  # the database away: try again next round
                logger.error(
                    "certified copy delivery round failed", extra={"error": type(err).__name__}
                )
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def send_due(self) -> int:
        """One round: try every due pending delivery once; returns how many were sent."""
        sent = 0
        for row in self.store.cert_deliveries_due(self.clock()):
            if self._stop.is_set():
                break
            code = row["request_id"]
            tries = int(row["tries"]) + 1
            try:
                copy = self.store.cert_copy(code)
                if copy is None or "book" not in copy:
                    raise LookupError("no book entry")
                self._send(message(sender=self.config.sender, to=row["address"], code=code,
                                   book=copy["book"]))  # fmt: skip
            except Exception as err:
                now = self.clock()
                error = type(err).__name__
                if tries >= MAX_TRIES:
                    status, next_try = "failed", now
                    logger.error(
                        "certified copy not delivered by e-mail: given up",
                        extra={"request": code, "tries": tries, "error": error},
                    )
                else:
                    status = "pending"
                    next_try = now + BACKOFF_S[min(tries, len(BACKOFF_S)) - 1]
                    logger.warning(
                        "certified copy e-mail failed: will retry",
                        extra={"request": code, "tries": tries, "error": error},
                    )
                self.store.cert_delivery_done(
                    code, status=status, tries=tries, next_try_at=next_try, error=error
                )
                continue
            now = self.clock()
            self.store.cert_delivery_done(
                code, status="sent", tries=tries, next_try_at=now, sent_at=now
            )
            logger.info("certified copy sent by e-mail", extra={"request": code, "tries": tries})
            sent += 1
        return sent

    def _send(self, msg: EmailMessage) -> None:
        c = self.config
        with smtplib.SMTP(c.host, c.port, timeout=c.timeout_s) as smtp:
            if c.starttls:
                # The project's one TLS policy (system CAs, TLS 1.2 at least), as for MQTT.
                smtp.starttls(context=tls_context(None))
            if c.username:
                smtp.login(c.username, c.password())
            smtp.send_message(msg)
