"""The certifier: takes the kiosks' certification requests, queues them per agency, records the
officers' decisions (approval takes the book's next number) and answers the kiosks."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import re
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from cryptography import x509

from fleet.certify.config import CertifyConfig
from fleet.certify.copy import CopyError, CopyPage, MadeCopy, TokenKey, make_copy
from fleet.certify.statement import Certification, book_ref
from fleet.store import DecisionError, FleetStore, Signed
from protocol import certify as contract
from protocol.errors import BadInput
from protocol.messages import iso_time

logger = logging.getLogger(__name__)

_CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,63}$")
Sla = Literal["ok", "soon", "late"]


class CertifyRefused(BadInput):
    """A decision the certifier will not take (wrong officer, request decided, bad reason)."""

    code = "certify_refused"


@dataclass(frozen=True)
class QueueItem:
    id: str
    kiosk_id: str
    received_at: float
    deadline: float  # Decree 23/2015 Art. 7
    doc_type: str
    pages: int
    flags: list[str]
    status: str
    sla: Sla


@dataclass(frozen=True)
class RequestView(QueueItem):
    page_jpegs: list[bytes] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    ocr_text: str = ""
    citizen_name: str = ""
    verified_by: str = ""  # face_chip | face_card | staff ("" from kiosks before issue 17)
    qr_on_original: Any = None
    capture: dict[str, Any] = field(default_factory=dict)  # the kiosk's capture metadata


@dataclass(frozen=True)
class BookEntry:
    agency: str
    year: int
    number: int
    book: str
    request_id: str
    copy_code: str
    certified_at: float
    officer: str
    officer_name: str
    officer_title: str
    doc_type: str
    pages: int
    fee_vnd: int = 0
    requester: str = ""  # only in exports of the register


@dataclass(frozen=True)
class Verification:
    code: str
    status: Literal["valid", "refused", "revoked", "queued", "see_staff"]
    doc_type: str
    pages: int
    agency: str
    officer_name: str = ""
    certified_at: float | None = None
    number: int | None = None
    book: str = ""
    thumbnail: bytes | None = None


class Certifier:
    def __init__(
        self,
        store: FleetStore,
        *,
        config: CertifyConfig,
        publish: Callable[[str, dict[str, Any]], None],
        make_copy: Callable[..., MadeCopy] = make_copy,
        clock: Callable[[], float] = time.time,
        prefix: str = "kiosk/v1",
        issuers: list[x509.Certificate] | None = None,
    ) -> None:
        """publish(topic, message) sends a cert-result/1 message (QoS 1); issuers: the fleet
        CA certificates a capture package's signer must be issued by (default: none, so every
        package is refused)."""
        from protocol.schemas import validator

        self.store = store
        self.config = config
        self.publish = publish
        self.make_copy = make_copy
        self.clock = clock
        self.prefix = prefix
        self.issuers = list(issuers or [])
        self.tz = zoneinfo.ZoneInfo(config.timezone)
        self.approved_hook: Callable[[], None] | None = None  # e.g. wakes the mail sender
        self._result_schema = validator("cert-result")
        self._request_schema = validator("cert-request")

    # --- intake ---------------------------------------------------------------------------

    def receive(self, kiosk_id: str, record: dict[str, Any]) -> bool:
        """A cert-request record from a kiosk's outbox: its package checked (signed by that
        kiosk's fleet certificate), stored once, "queued" published. False for a duplicate
        or a package refused (logged; the record is acknowledged all the same)."""
        package = record.get("data")
        if not isinstance(package, dict):
            logger.warning("cert-request without a package", extra={"kiosk": kiosk_id})
            return False
        try:
            contract.verify_package(package, self.issuers, kiosk_id)
            code, row = self._request_row(kiosk_id, package)
        except (contract.PackageInvalid, ValueError, TypeError, KeyError) as err:
            logger.warning(
                "cert-request refused",
                extra={"kiosk": kiosk_id, "record": str(record.get("id"))[:64], "error": str(err)},
            )
            return False
        blob = json.dumps(package, ensure_ascii=False, separators=(",", ":")).encode()
        fresh = self.store.cert_add_request(row, package=blob)
        if fresh:
            logger.info(
                "certification request queued",
                extra={"kiosk": kiosk_id, "request": code, "pages": row["pages"]},
            )
        self._publish_status(kiosk_id, code)
        return fresh

    def _request_row(self, kiosk_id: str, package: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The queue's row of a package that follows protocol/schemas/cert-request.json."""
        problem = next(iter(self._request_schema.iter_errors(package)), None)
        if problem is not None:
            where = "/".join(map(str, problem.absolute_path)) or "(top)"
            raise ValueError(f"not a cert-request/1: {where}: {problem.message[:160]}")
        code = package["code"]
        if not _CODE.match(code):
            raise ValueError("no valid request code")
        if not code.startswith(f"{kiosk_id}-") or package["kiosk_id"] != kiosk_id:
            raise ValueError("request code of another kiosk")  # <kiosk>-<yyMMdd>-<seq>-<check>
        pages = package["pages"]
        # The kiosk's checks that fired (edge/vision/checks Flag.as_dict()), for the officer.
        flags = [_flag(f) for f in package["checks"]]
        now = self.clock()
        due = contract.deadline(
            dt.datetime.fromtimestamp(now, self.tz),
            holidays=self.config.holidays,
            closes=self.config.office_closes,
        )
        row = dict(
            id=code,
            kiosk_id=kiosk_id,
            agency=self.config.agency_id,
            received_at=now,
            deadline=due.timestamp(),
            # The Vietnamese name the kiosk read ("Giấy khai sinh"), else its code.
            doc_type=str((package.get("doc_label") or {}).get("vi") or package["doc_type"])[:64],
            pages=len(pages),
            flags=flags,
            package_sha256=contract.package_digest(package),
        )
        return code, row

    # --- the officer's queue --------------------------------------------------------------

    def queue(self, agency: str) -> list[QueueItem]:
        now = self.clock()
        return [self._item(r, now) for r in self.store.cert_waiting(agency)]

    def request(self, request_id: str) -> RequestView | None:
        row = self.store.cert_request(request_id)
        if row is None:
            return None
        package = json.loads(row["package"])
        item = self._item(row, self.clock())
        return RequestView(
            **{f.name: getattr(item, f.name) for f in fields(QueueItem)},
            page_jpegs=_jpegs(package),
            fields=package.get("fields") if isinstance(package.get("fields"), dict) else {},
            ocr_text=str(package.get("ocr_text") or ""),
            citizen_name=str((package.get("citizen") or {}).get("name") or ""),
            verified_by=str((package.get("citizen") or {}).get("verified_by") or ""),
            qr_on_original=[c for c in package.get("checks") or [] if c.get("check") == "qr"]
            or None,
            capture=package.get("capture") if isinstance(package.get("capture"), dict) else {},
        )

    def _item(self, row: dict[str, Any], now: float) -> QueueItem:
        return QueueItem(
            id=row["id"],
            kiosk_id=row["kiosk_id"],
            received_at=row["received_at"],
            deadline=row["deadline"],
            doc_type=row["doc_type"],
            pages=row["pages"],
            flags=list(row["flags"] or []),
            status=row["status"],
            sla=self.sla(row["received_at"], row["deadline"], now)
            if row["status"] == "queued"
            else "ok",
        )

    def sla(self, received_at: float, deadline: float, now: float) -> Sla:
        """late once past the SLA (counted from the office's opening when received outside
        its hours) or Art. 7's deadline; soon within sla_soon_s of either."""
        start = self._office_start(received_at)
        due = min(start + self.config.sla_s, deadline)
        if now >= due:
            return "late"
        if now >= due - self.config.sla_soon_s:
            return "soon"
        return "ok"

    def _office_start(self, at: float) -> float:
        """`at` if the office is open then, else its next opening."""
        c = self.config
        local = dt.datetime.fromtimestamp(at, self.tz)
        day = local.date()
        if contract.working_day(day, c.holidays) and c.office_opens <= local.time() < (
            c.office_closes
        ):
            return at
        if not (contract.working_day(day, c.holidays) and local.time() < c.office_opens):
            day += dt.timedelta(days=1)
            while not contract.working_day(day, c.holidays):
                day += dt.timedelta(days=1)
        return dt.datetime.combine(day, c.office_opens, tzinfo=self.tz).timestamp()

    def expected_wait_s(self, position: int, now: float) -> float:
        per = self.config.minutes_per_request * 60
        return max(self._office_start(now) - now, 0.0) + position * per

    # --- decisions ------------------------------------------------------------------------

    def approve(self, request_id: str, officer: str, *, pin: str, remote_addr: str) -> BookEntry:
        """The officer's approval: the copy made and signed (officer, then the agency seal)
        under the book's next number, all in one transaction; "approved" goes to the kiosk."""
        who = self._officer(officer)
        row = self.store.cert_request(request_id)
        if row is None:
            raise CertifyRefused("không có yêu cầu này / no such request")
        if row["agency"] != who["agency"]:
            raise CertifyRefused("yêu cầu của cơ quan khác / another agency's request")
        if row["status"] != "queued":
            raise CertifyRefused(f"yêu cầu đã xử lý / request is {row['status']} already")
        package = json.loads(row["package"])
        pages = [self._page(p) for p in package["pages"]]
        now = self.clock()
        local = dt.datetime.fromtimestamp(now, self.tz)
        c = self.config
        officer_key = TokenKey(
            module=c.seal.module,
            token_label=who["token_label"],
            key_label=who["key_label"],
            pin=pin,
        )
        seal = TokenKey(
            module=c.seal.module,
            token_label=c.seal.token_label,
            key_label=c.seal.key_label,
            pin=c.seal.pin(),
        )
        made: list[Any] = []
        crls, roots = c.revocation_data()

        def sign(number: int, book: str) -> Signed:
            certification = Certification(
                agency=c.agency_name,
                place=c.place,
                on=local.date(),
                officer_name=who["full_name"],
                officer_title=who["title"],
                number=number,
                year=local.year,
                pages=row["pages"],
                volume=c.book_number,
            )
            copy = self.make_copy(
                pages,
                code=request_id,
                certification=certification,
                officer=officer_key,
                agency=seal,
                verify_base=c.verify_base,
                tsa_url=c.tsa_url,
                doc_type=row["doc_type"],
                crls=crls,
                trust_roots=roots,
            )
            made.append(copy)
            return Signed(pdf=copy.pdf, sha256=copy.sha256, thumbnail=copy.thumbnail)

        started = time.monotonic()
        try:
            entry = self.store.cert_approve(
                request_id,
                year=local.year,
                book=lambda _n: book_ref(c.book_number, local.year),
                officer=who,
                fee_vnd=c.fee(row["pages"]),
                requester=str((package.get("citizen") or {}).get("name") or ""),
                now=now,
                remote_addr=remote_addr,
                sign=sign,
                delivery=package.get("delivery"),
            )
        except (DecisionError, CopyError) as err:  # CopyError: e.g. the token refused the PIN
            raise CertifyRefused(f"không duyệt được / not approved: {err}") from err
        logger.info(
            "certified copy approved",
            extra={
                "request": request_id,
                "officer": officer,
                "number": entry["number"],
                "year": entry["year"],
                "seconds": round(time.monotonic() - started, 3),
            },
        )
        channel = (package.get("delivery") or {}).get("channel")
        if channel in ("ewallet", "post"):  # cert_deliveries says "unsupported": staff send it
            logger.warning(
                "certified copy not sent: channel not supported, staff must deliver it",
                extra={"request": request_id, "channel": channel},
            )
        copy = made[-1]
        self._send(
            row["kiosk_id"],
            request_id,
            "approved",
            number=entry["number"],
            book=entry["book"],
            copy_code=request_id,
            certified_at=iso_time(now),
            officer_name=who["full_name"],
            officer_title=who["title"],
            agency_name=c.agency_name,
            pdf=base64.b64encode(copy.pdf).decode("ascii"),
            sha256=copy.sha256,
            qr=copy.qr,
            fee_vnd=entry["fee_vnd"],
        )
        if self.approved_hook is not None:
            self.approved_hook()
        return BookEntry(**_entry(entry))

    def refuse(
        self,
        request_id: str,
        officer: str,
        *,
        reason_code: str,
        reason_text: str = "",
        remote_addr: str,
    ) -> None:
        if reason_code not in contract.REFUSAL_REASONS:
            raise CertifyRefused(f"lý do không hợp lệ / unknown reason: {reason_code}")
        if reason_code == "other" and not reason_text.strip():
            raise CertifyRefused("cần ghi lý do / 'other' needs the reason written")
        row = self._decide(
            request_id,
            officer,
            status="refused",
            remote_addr=remote_addr,
            reason_code=reason_code,
            reason_text=reason_text.strip(),
        )
        vi, en = contract.REFUSAL_REASONS[reason_code]
        extra: dict[str, Any] = {"reason_code": reason_code, "reason_vi": vi, "reason_en": en}
        if reason_text.strip():
            extra["reason_text"] = reason_text.strip()[:500]
        self._send(row["kiosk_id"], request_id, "refused", **extra)

    def see_staff(self, request_id: str, officer: str, *, note: str = "", remote_addr: str) -> None:
        row = self._decide(
            request_id,
            officer,
            status="see_staff",
            remote_addr=remote_addr,
            reason_text=note.strip(),
        )
        extra = {"reason_text": note.strip()[:500]} if note.strip() else {}
        self._send(row["kiosk_id"], request_id, "see_staff", **extra)

    def _decide(
        self, request_id: str, officer: str, *, status: str, remote_addr: str, **reason: Any
    ) -> dict[str, Any]:
        who = self._officer(officer)
        row = self.store.cert_request(request_id)
        if row is None or row["agency"] != who["agency"]:
            raise CertifyRefused("không có yêu cầu này / no such request for this agency")
        try:
            decided = self.store.cert_decide(
                request_id,
                status=status,
                officer=officer,
                now=self.clock(),
                remote_addr=remote_addr,
                **reason,
            )
        except DecisionError as err:
            raise CertifyRefused(f"yêu cầu đã xử lý / {err}") from err
        logger.info(
            "certification request decided",
            extra={"request": request_id, "officer": officer, "decision": status},
        )
        return decided

    def _officer(self, username: str) -> dict[str, Any]:
        who = self.store.cert_officer(username)
        # Only a certifying officer decides: a centre admin manages accounts, not copies.
        if who is None or not who["active"] or who["role"] != "officer":
            raise CertifyRefused("cán bộ không có quyền / not an active certifying officer")
        return who

    def _page(self, page: dict[str, Any]) -> CopyPage:
        return CopyPage(jpeg=base64.b64decode(page["jpeg_base64"]), dpi=float(page["dpi"]))

    # --- answers to the kiosk -------------------------------------------------------------

    def _publish_status(self, kiosk_id: str, request_id: str) -> None:
        """Where the request is: "queued" with its place, or the decision again (a kiosk that
        sends a request again, e.g. after losing the answer, hears it again)."""
        position = self.store.cert_position(request_id)
        if position == 0:
            self._resend_decision(kiosk_id, request_id)
            return
        row = self.store.cert_request(request_id)
        assert row is not None
        now = self.clock()
        self._send(
            kiosk_id,
            request_id,
            "queued",
            position=position,
            expected_wait_s=round(self.expected_wait_s(position, now), 1),
            deadline=iso_time(row["deadline"]),
        )

    def _resend_decision(self, kiosk_id: str, request_id: str) -> None:
        found = self.store.cert_copy(request_id)
        req = (found or {}).get("request")
        if found is None or req is None or req["kiosk_id"] != kiosk_id:
            return  # only ever to the kiosk that asked
        extra: dict[str, Any] = {}
        if req["status"] == "approved" and found.get("book") is not None:
            b = found["book"]
            extra = dict(
                number=b["number"],
                book=b["book"],
                copy_code=b["copy_code"],
                certified_at=iso_time(b["certified_at"]),
                officer_name=b["officer_name"],
                officer_title=b["officer_title"],
                agency_name=self.config.agency_name,
                pdf=base64.b64encode(b["pdf"]).decode("ascii"),
                sha256=b["pdf_sha256"],
                fee_vnd=b["fee_vnd"],
            )
        elif req["status"] == "refused":
            code = req["reason_code"] or "other"
            vi, en = contract.REFUSAL_REASONS.get(code, contract.REFUSAL_REASONS["other"])
            extra = {"reason_code": code, "reason_vi": vi, "reason_en": en}
            if req["reason_text"]:
                extra["reason_text"] = req["reason_text"]
        elif req["status"] == "see_staff":
            extra = {"reason_text": req["reason_text"]} if req["reason_text"] else {}
        else:
            return
        self._send(kiosk_id, request_id, req["status"], **extra)

    def _send(self, kiosk_id: str, request_id: str, status: str, **extra: Any) -> None:
        message = {
            "schema": contract.CERT_RESULT,
            "kiosk_id": kiosk_id,
            "request_id": request_id,
            "status": status,
            "time": iso_time(self.clock()),
            **extra,
        }
        errors = list(self._result_schema.iter_errors(message))
        if errors:
            raise ValueError(f"cert-result does not fit its schema: {errors[0].message[:200]}")
        self.publish(contract.result_topic(self.prefix, kiosk_id), message)

    # --- the public verification page and the register ------------------------------------

    def verification(self, code: str) -> Verification | None:
        found = self.store.cert_copy(code)
        if found is None:
            return None
        req = found["request"] or {}
        book = found.get("book")
        if book is not None:
            return Verification(
                code=code,
                status="revoked" if found["revoked_at"] else "valid",
                doc_type=book["doc_type"],
                pages=book["pages"],
                agency=self.config.agency_name or book["agency"],
                officer_name=book["officer_name"],
                certified_at=book["certified_at"],
                number=book["number"],
                book=book["book"],
                thumbnail=book["thumbnail"],
            )
        return Verification(
            code=code,
            status=req["status"],
            doc_type=req["doc_type"],
            pages=req["pages"],
            agency=self.config.agency_name or req["agency"],
        )

    def book(
        self,
        agency: str,
        *,
        year: int,
        month: int | None = None,
        day: int | None = None,
        requesters: bool = False,
    ) -> list[BookEntry]:
        since, until = self._period(year, month, day)
        rows = self.store.cert_book(agency, year, since=since, until=until, requesters=requesters)
        return [BookEntry(**r) for r in (_entry(r) for r in rows)]

    def _period(self, year: int, month: int | None, day: int | None) -> tuple[float, float]:
        if day is not None and month is None:
            raise BadInput("--day needs --month")
        if month is None:
            start, end = dt.date(year, 1, 1), dt.date(year + 1, 1, 1)
        elif day is None:
            start = dt.date(year, month, 1)
            end = dt.date(year + (month == 12), month % 12 + 1, 1)
        else:
            start = dt.date(year, month, day)
            end = start + dt.timedelta(days=1)

        def at(d: dt.date) -> float:
            return dt.datetime.combine(d, dt.time(0), tzinfo=self.tz).timestamp()

        return at(start), at(end)

    def export(
        self,
        agency: str,
        *,
        year: int,
        month: int | None,
        day: int | None,
        fmt: Literal["csv", "pdf"],
    ) -> bytes:
        from fleet.certify import book_export

        entries = self.book(agency, year=year, month=month, day=day, requesters=True)
        title = book_export.Title(
            agency=self.config.agency_name or agency,
            book=self.config.book_label(year),
            period=_period_label(year, month, day),
        )
        if fmt == "csv":
            return book_export.to_csv(entries, tz=self.tz)
        if fmt == "pdf":
            return book_export.to_pdf(entries, title=title, tz=self.tz, font=self.config.font_file)
        raise BadInput(f"định dạng không hỗ trợ / unknown format: {fmt}")


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(BookEntry)}
    return {k: v for k, v in row.items() if k in names}


def _period_label(year: int, month: int | None, day: int | None) -> str:
    if month is None:
        return f"Năm {year}"
    if day is None:
        return f"Tháng {month:02d}/{year}"
    return f"Ngày {day:02d}/{month:02d}/{year}"


def _flag(check: dict[str, Any]) -> dict[str, Any]:
    """What the queue keeps of one of the kiosk's flags: no free text beyond 200 characters."""
    keep: dict[str, Any] = {
        k: check[k] for k in ("check", "page", "score", "text", "status") if k in check
    }
    for part in ("detail", "params"):  # params: what the message names, e.g. the mark read
        if isinstance(check.get(part), dict):
            keep[part] = check[part]
    return {k: v[:200] if isinstance(v, str) else v for k, v in keep.items()}


def _jpegs(package: dict[str, Any]) -> list[bytes]:
    out = []
    for page in package.get("pages") or []:
        try:
            out.append(base64.b64decode(page["jpeg_base64"]))
        except (KeyError, TypeError, binascii.Error):
            continue
    return out


def load_issuers(pem_file: Any) -> list[x509.Certificate]:
    """The fleet CA certificate(s) in a PEM file."""
    with open(pem_file, "rb") as f:
        return x509.load_pem_x509_certificates(f.read())
