"""Issuing a copy, the one entry point the web UI and the CLI call (CopyService.issue).

Issuing is atomic: the copy number is reserved first (floor file, fsync), the PDF is rendered and
signed in memory, then one SQLite transaction writes the copy (sealed) and its records/copy
outbox message. A kill at any point leaves a complete copy with its record, or nothing but a
burnt number. `progress(step)` is told "reserved", "qr", "rendered", "signed", "stored".
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from edge import config as cfg
from edge.copies import pdf as pdfmod
from edge.copies import qrpayload
from edge.copies.code import BLOCK, CopyRefused, CopySequence, make_code, parse_code
from edge.copies.sign import (
    CopyPaths,
    KioskSigner,
    SigningUnavailable,
    ensure_development_identity,
)
from edge.copies.store import CopyRow, CopyStore
from edge.copies.verify import (
    TrustStore,
    Verdict,
    install_revocation_list,
    verify_pdf,
    verify_qr,
)
from edge.errors import BadInput
from edge.fees import MAX_PAGES, Fee, check_pages, quote
from edge.store import DataKey, Store
from edge.store.outbox import Outbox
from edge.texts import N_, Text

logger = logging.getLogger(__name__)

RECORD_TOPIC = "records/copy"
RECORD_SCHEMA = "record/1"
COPY_SCHEMA = "copy/1"

PageInput = Any  # ScannedPage | numpy image (BGR) | PIL image | pdf.PageImage | Path


@dataclass(frozen=True, slots=True)
class IssuedCopy:
    code: str
    seq: int
    qr: str
    pages: int
    fee: Fee
    issued_at: dt.datetime
    pdf: bytes
    development: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "qr": self.qr,
            "pages": self.pages,
            "fee_vnd": self.fee.fee_vnd,
            "payable_vnd": self.fee.payable_vnd,
            "fee_label_vi": self.fee.label_vi,
            "issued_at": self.issued_at.isoformat(),
            "development": self.development,
        }


def citizen_record(citizen: Any) -> dict[str, Any]:
    """What central gets about the citizen (sealed at rest, never logged)."""
    if hasattr(citizen, "as_dict"):
        return citizen.as_dict()
    if isinstance(citizen, dict) and citizen.get("id_number"):
        return dict(citizen)
    raise CopyRefused(
        Text(N_("The citizen's details are missing")), "a copy needs the identified citizen"
    )


class CopyService:
    """Everything about copies for one kiosk: quote, issue, verify, list, receipts, purge."""

    def __init__(
        self,
        config: cfg.Config,
        *,
        store: Store,
        key: DataKey,
        outbox: Outbox,
        printer: Any = None,
        on_issued: Callable[[IssuedCopy], None] | None = None,
        sequence_block: int = BLOCK,
    ) -> None:
        """sequence_block: copy numbers reserved at a time; a one-shot CLI issuing one copy
        passes 1, or it would burn the rest of a block on exit (see CopySequence)."""
        self.config = config
        self.paths = CopyPaths.from_config(config)
        self.store = store
        self.copies = CopyStore(store, key)
        self.outbox = outbox
        self.printer = printer
        self.on_issued = on_issued
        self.sequence = CopySequence(store, self.paths.sequence_floor, block=sequence_block)
        self.signer = KioskSigner(
            self.paths.signing_key,
            self.paths.signing_cert,
            chain_path=self.paths.chain,
            tsa_url=config.copies.tsa_url,
        )
        self.unavailable: str | None = "not opened"
        self.last_purge: float | None = None  # wall clock of the last purge pass
        self._lock = threading.Lock()

    def open(self) -> None:
        """Load the signing identity (made first in simulation); SigningUnavailable if none."""
        if self.config.copies.development_ca:
            ensure_development_identity(self.paths, self.config.kiosk.id)
        try:
            self.signer.load()
        except SigningUnavailable as err:
            self.unavailable = str(err)
            raise
        self.unavailable = None

    @property
    def trust(self) -> TrustStore:
        own = self.signer.certificate if self.unavailable is None else None
        return TrustStore(self.paths.trust_dir, self.paths.revocation_file, own_cert=own)

    # --- before issuing -------------------------------------------------------------

    def quote(self, pages: int, *, on: dt.date | None = None) -> Fee:
        """The fee by the rules in force today (the kiosk's day) for its area and channel."""
        kiosk = self.config.kiosk
        on = on or dt.datetime.now(ZoneInfo(kiosk.timezone)).date()
        return quote(pages, self.config.copies, kiosk.id, on=on)

    def payment_qr(self, fee: Fee, reference: str) -> str | None:
        """A VietQR payload for a payable fee, or None (exempt, or no account configured)."""
        from edge.vietqr import payment_payload

        v = self.config.copies.vietqr
        if fee.payable_vnd == 0 or not (v.bank_bin and v.account):
            return None
        return payment_payload(
            bank_bin=v.bank_bin,
            account=v.account,
            amount_vnd=fee.payable_vnd,
            purpose=f"{v.purpose_prefix} {reference}",
            to_card=v.to_card,
        )

    # --- issuing ----------------------------------------------------------------------

    def issue(
        self,
        pages: Sequence[PageInput],
        citizen: Any,
        *,
        delivery: dict[str, str] | None = None,
        progress: Callable[[str], None] | None = None,
        now: dt.datetime | None = None,
    ) -> IssuedCopy:
        report = progress or (lambda step: None)
        if self.unavailable is not None:
            text = Text(N_("Copies cannot be issued right now, please ask the staff"))
            raise SigningUnavailable(f"{text.vi} (signing: {self.unavailable})", text=text)
        if not pages:
            raise CopyRefused(Text(N_("A copy must have at least one page")), "a copy needs a page")
        check_pages(len(pages))  # the limit quote() applies too (edge/fees.py)
        prepared = [self._prepare(p) for p in pages]  # bad input fails before a number is used
        person = citizen_record(citizen)
        fee = self.quote(len(prepared))
        kiosk = self.config.kiosk
        with self._lock:
            seq = self.sequence.reserve()
            report("reserved")
            issued_at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
            code = make_code(kiosk.id, issued_at.astimezone(ZoneInfo(kiosk.timezone)).date(), seq)
            digest = qrpayload.content_hash([p.jpeg for p in prepared])
            qr = qrpayload.build(code, issued_at, digest, self.signer.sign_bytes)
            report("qr")
            development = self.signer.development
            unsigned = pdfmod.render(
                prepared,
                code=code.text,
                issued_at=issued_at,
                kiosk_id=kiosk.id,
                site=kiosk.site,
                qr_text=qr,
                timezone=kiosk.timezone,
                development=development,
            )
            report("rendered")
            signed = self.signer.sign_pdf(unsigned, code=code.text, location=kiosk.site or kiosk.id)
            report("signed")
            outbox_id = f"copy-{code.text}"
            row = CopyRow(
                code=code.text,
                seq=seq,
                issued_at=issued_at.timestamp(),
                pages=len(prepared),
                fee_vnd=fee.fee_vnd,
                payable_vnd=fee.payable_vnd,
                content_hash=digest.hex(),
                qr=qr,
                outbox_id=outbox_id,
                acked_at=None,
                receipt_job=None,
            )
            record = {
                "schema": RECORD_SCHEMA,
                "kiosk_id": kiosk.id,
                "kind": "copy",
                "time": issued_at.isoformat(),
                "data": {
                    "schema": COPY_SCHEMA,
                    "code": code.text,
                    "copy_seq": seq,
                    "issued_at": issued_at.isoformat(),
                    "pages": len(prepared),
                    "fee_vnd": fee.fee_vnd,
                    "payable_vnd": fee.payable_vnd,
                    "exempt": fee.exempt,
                    "content_sha256": digest.hex(),
                    "qr": qr,
                    "signature_level": self.signer.level,
                    "signer_serial": f"{self.signer.certificate.serial_number:x}",
                    "development": development,
                    "citizen": person,
                    "delivery": delivery or None,
                    "pdf_sha256": hashlib.sha256(signed).hexdigest(),
                    "pdf_base64": base64.b64encode(signed).decode("ascii"),
                },
            }
            with self.store.transaction() as conn:
                self.copies.insert_in(conn, row, pdf=signed, citizen=person)
                self.outbox.add_in(conn, "record", RECORD_TOPIC, record, message_id=outbox_id)
            report("stored")
        issued = IssuedCopy(code.text, seq, qr, len(prepared), fee, issued_at, signed, development)
        logger.info(
            "copy issued",
            extra={"code": code.text, "pages": len(prepared), "bytes": len(signed)},
        )
        if self.on_issued is not None:
            try:
                self.on_issued(issued)
            except Exception:
                logger.exception("after-issue hook failed (the copy is issued and stored)")
        return issued

    def _prepare(self, page: PageInput) -> pdfmod.PageImage:
        if isinstance(page, pdfmod.PageImage):
            return page
        if isinstance(page, (str, Path)):
            return pdfmod.load_page_file(Path(page))
        if hasattr(page, "image") and hasattr(page, "dpi"):  # edge.vision.page.ScannedPage
            return pdfmod.prepare_page(page.image, page.dpi)
        if isinstance(page, np.ndarray):
            return pdfmod.prepare_page(page)
        from PIL import Image

        if isinstance(page, Image.Image):
            return pdfmod.prepare_page(page)
        raise CopyRefused(Text(N_("The page is not a picture")), "a page must be an image")

    # --- after issuing ----------------------------------------------------------------

    def list(self, *, limit: int = 100) -> list[CopyRow]:
        return self.copies.list(limit=limit)

    def pdf(self, code: str) -> bytes:
        return self.copies.pdf(parse_code(code).text)

    def verify_pdf(self, data: bytes) -> Verdict:
        return _logged("pdf", verify_pdf(data, self.trust))

    def verify_qr(self, text: str) -> Verdict:
        return _logged("qr", verify_qr(text, self.trust))

    def verify_code(self, code: str) -> Verdict:
        """A typed code of a copy issued here: its stored PDF, checked in full."""
        return self.verify_pdf(self.pdf(code))

    def _stored_fee(self, row: CopyRow) -> Fee:
        """The stored amounts, with the rules in force on the day it was issued (for the basis
        the receipt names); a support is named only if the stored amount shows it applied."""
        stored = Fee(row.pages, row.fee_vnd, row.payable_vnd, row.payable_vnd == 0)
        zone = ZoneInfo(self.config.kiosk.timezone)
        day = dt.datetime.fromtimestamp(row.issued_at, zone).date()
        try:
            rules = self.quote(min(max(row.pages, 1), MAX_PAGES), on=day)
        except BadInput:  # no rule for that day in today's file: the amounts alone
            return stored
        supported = rules.exempt and row.payable_vnd < row.fee_vnd
        return dataclasses.replace(
            rules
            if supported
            else dataclasses.replace(rules, support_id="", support_basis_vi="", payer_vi=""),
            pages=row.pages,
            fee_vnd=row.fee_vnd,
            payable_vnd=row.payable_vnd,
            exempt=supported,
        )

    def receipt(self, code: str, *, paper_width_mm: int | None = None) -> bytes:
        from edge.copies.receipt import copy_receipt

        row = self.copies.get(parse_code(code).text)
        printer = self.config.printer
        return copy_receipt(
            code=row.code,
            pages=row.pages,
            fee=self._stored_fee(row),
            issued_at=dt.datetime.fromtimestamp(row.issued_at, dt.UTC),
            kiosk_id=self.config.kiosk.id,
            site=self.config.kiosk.site,
            qr=row.qr,
            paper_width_mm=paper_width_mm or printer.paper_width_mm,
            profile=printer.profile,
            timezone=self.config.kiosk.timezone,
            development=self.signer.development if self.unavailable is None else False,
        )

    def print_receipt(self, code: str) -> Any:
        """Through the print queue: a failed print is kept for reprint (PrintOutcome)."""
        if self.printer is None:
            raise CopyRefused(Text(N_("There is no printer")), "no printer")
        data = self.receipt(code)
        outcome = self.printer.submit("receipt", f"Biên nhận bản sao {code}", data)
        self.copies.set_receipt_job(code, outcome.job_id)
        return outcome

    def acknowledge(self, record_ids: Sequence[str], *, now: float | None = None) -> int:
        """Central's record-ack/1 ids: the copies among them start their retention window."""
        changed = self.copies.acknowledge(record_ids, now=now)
        if changed:
            logger.info("central stored issued copies", extra={"count": changed})
        return changed

    def purge(self, *, now: float | None = None) -> int:
        """Delete copies central acknowledged more than retention_days ago."""
        purged = self.copies.purge(self.config.copies.retention_days, now=now)
        self.last_purge = time.time() if now is None else now
        return purged

    def install_revocation_list(self, document: dict[str, Any]) -> dict[str, Any]:
        """Central's retained copy-revocations/1, merged into this kiosk's revocation file."""
        return install_revocation_list(self.paths.revocation_file, document)

    def status(self) -> dict[str, Any]:
        rows = self.store.query("SELECT COUNT(*), SUM(acked_at IS NULL) FROM copies")[0]
        return {
            "available": self.unavailable is None,
            "detail": self.unavailable,
            "stored": rows[0] or 0,
            "awaiting_central": rows[1] or 0,
            "last_purge": self.last_purge,
            "sequence_high": self.sequence.high(),
            "development": self.signer.development if self.unavailable is None else None,
            "level": self.signer.level,
        }


def _logged(what: str, verdict: Verdict) -> Verdict:
    """The operator's line for each check (codes are not personal data)."""
    level = logging.INFO if verdict.ok else logging.WARNING
    logger.log(
        level,
        "copy %s checked: %s",
        what,
        verdict.status,
        extra={"code": verdict.code, "kiosk": verdict.kiosk_id, "reason": verdict.reason},
    )
    return verdict
