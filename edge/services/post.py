"""Results by post: a delivery address for a dossier or a copy, validated, sealed, sent to central."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

from edge.fleet.messages import queue_record
from edge.printing import PrintOutcome, PrintQueue
from edge.services.catalog import fold
from edge.services.dossier import InvalidDossierCode, normalize_code
from edge.services.errors import ServiceError
from edge.store import DataKey, Store
from edge.store.outbox import Outbox
from edge.text import clean_typed
from edge.texts import N_, Text
from protocol.post import s10_valid
from protocol.schemas import validator

logger = logging.getLogger(__name__)

# The 34 provinces and centrally-run cities from 1 July 2025 (Resolution 202/2025/QH15).
# Addresses are written with today's names; ID numbers keep the old codes (identity/provinces.py).
PROVINCES: tuple[str, ...] = (
    "Hà Nội",
    "Thành phố Hồ Chí Minh",
    "Hải Phòng",
    "Đà Nẵng",
    "Huế",
    "Cần Thơ",
    "Cao Bằng",
    "Điện Biên",
    "Lai Châu",
    "Lạng Sơn",
    "Nghệ An",
    "Hà Tĩnh",
    "Quảng Ninh",
    "Sơn La",
    "Thanh Hóa",
    "Tuyên Quang",
    "Lào Cai",
    "Thái Nguyên",
    "Phú Thọ",
    "Bắc Ninh",
    "Hưng Yên",
    "Ninh Bình",
    "Quảng Trị",
    "Quảng Ngãi",
    "Gia Lai",
    "Khánh Hòa",
    "Lâm Đồng",
    "Đắk Lắk",
    "Đồng Nai",
    "Tây Ninh",
    "Vĩnh Long",
    "Đồng Tháp",
    "Cà Mau",
    "An Giang",
)
_PROVINCE_BY_FOLD = {fold(p): p for p in PROVINCES}
_PROVINCE_BY_FOLD.update(
    {
        "tp hcm": "Thành phố Hồ Chí Minh",
        "hcm": "Thành phố Hồ Chí Minh",
        "ho chi minh": "Thành phố Hồ Chí Minh",
        "tp ho chi minh": "Thành phố Hồ Chí Minh",
        "thua thien hue": "Huế",
        "tp hue": "Huế",
    }
)
_PREFIXES = ("thanh pho ", "tinh ", "tp ")

# Mobile: 10 digits, 03x/05x/07x/08x/09x after the 2018 renumbering; landline: 02x + 8 digits.
_MOBILE = re.compile(r"^0(3[2-9]|5[25689]|7[06-9]|8[1-9]|9[0-9])[0-9]{7}$")
_LANDLINE = re.compile(r"^02[0-9]{9}$")
_COPY_CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{5,63}$")
_NAME = re.compile(r"^[^\W\d_]+(?:[ '.-][^\W\d_]+)*$")

Clock = Callable[[], dt.datetime]


class AddressInvalid(ServiceError):
    """One or more fields are wrong: `texts` maps each to what the citizen is told (an English
    msgid, see edge.texts), `fields` to the same in Vietnamese."""

    code = "address_invalid"

    def __init__(self, problems: dict[str, str]) -> None:
        self.texts = {name: Text(msgid) for name, msgid in problems.items()}
        fields = {name: text.vi for name, text in self.texts.items()}
        super().__init__(
            Text(
                N_("The delivery details are not right: %(problems)s"),
                {"problems": "; ".join(fields.values())},
            ),
            f"delivery address refused: {', '.join(sorted(fields))}",
            fields=fields,
        )
        self.fields = fields


def normalize_phone(text: str) -> str:
    """0xxxxxxxxx from '+84 912 345 678', '0912.345.678', '84912345678' ...; ValueError else."""
    digits = re.sub(r"[\s.\-()]", "", text)
    if digits.startswith("+84"):
        digits = "0" + digits[3:]
    elif digits.startswith("84") and len(digits) in (11, 12):
        digits = "0" + digits[2:]
    if _MOBILE.match(digits) or _LANDLINE.match(digits):
        return digits
    raise ValueError("not a Vietnamese phone number")


def match_province(text: str) -> str | None:
    """The official name for what was typed ('ha noi', 'TP HCM', 'Tỉnh Gia Lai'), or None."""
    key = fold(text)
    if key in _PROVINCE_BY_FOLD:
        return _PROVINCE_BY_FOLD[key]
    for prefix in _PREFIXES:
        if key.startswith(prefix) and key[len(prefix) :] in _PROVINCE_BY_FOLD:
            return _PROVINCE_BY_FOLD[key[len(prefix) :]]
    return None


@dataclass(frozen=True, slots=True)
class Address:
    province: str
    ward: str  # xã / phường / đặc khu
    street: str  # số nhà, ngõ, đường, thôn/tổ
    district: str | None = None  # only for addresses still written the pre-2025 way

    def one_line(self) -> str:
        parts = [self.street, self.ward, self.district, self.province]
        return ", ".join(p for p in parts if p)

    def as_dict(self) -> dict[str, Any]:
        return {
            "province": self.province,
            "ward": self.ward,
            "district": self.district,
            "street": self.street,
        }


@dataclass(frozen=True, slots=True)
class PostRequest:
    id: str
    subject_type: str  # "dossier" | "copy"
    subject_code: str
    recipient_name: str
    phone: str
    address: Address
    note: str
    created_at: dt.datetime
    printed: PrintOutcome | None = None

    @property
    def short_id(self) -> str:
        return self.id[:8].upper()

    @property
    def phone_masked(self) -> str:
        return self.phone[:4] + "*" * (len(self.phone) - 7) + self.phone[-3:]

    def record(self) -> dict[str, Any]:
        """The data central receives (records/post-request)."""
        return {
            "request_id": self.id,
            "subject": {"type": self.subject_type, "code": self.subject_code},
            "recipient": {"name": self.recipient_name, "phone": self.phone},
            "address": self.address.as_dict(),
            "note": self.note,
            "created_at": self.created_at.isoformat(),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.record(),
            "short_id": self.short_id,
            "phone_masked": self.phone_masked,
            "address_line": self.address.one_line(),
            "printed": self.printed.as_dict() if self.printed else None,
        }


def _clean(text: Any, limit: int) -> str:
    """Typed text: invisible characters dropped, NFC, single spaces (edge.text.clean_typed)."""
    if not isinstance(text, str):
        return ""
    return clean_typed(text)[:limit]


class PostService:
    """Takes delivery requests. Everything personal is sealed at rest and left out of logs.

    slip: builds the confirmation bytes (edge.services.printouts.post_confirmation_slip).
    """

    def __init__(
        self,
        *,
        store: Store,
        key: DataKey,
        outbox: Outbox,
        kiosk_id: str,
        timezone: str = "Asia/Ho_Chi_Minh",
        printer: PrintQueue | None = None,
        slip: Callable[..., bytes] | None = None,
        clock: Clock | None = None,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.key = key
        self.outbox = outbox
        self.kiosk_id = kiosk_id
        self.tz = ZoneInfo(timezone)
        self.printer = printer
        self.slip = slip
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.on_queued = on_queued
        self.shipments = Shipments(store)  # central's Vietnam Post references (post-shipment/1)

    @staticmethod
    def provinces() -> list[str]:
        """For the address form's list."""
        return list(PROVINCES)

    def validate(
        self,
        *,
        subject_type: str,
        subject_code: str,
        recipient_name: str,
        phone: str,
        province: str,
        ward: str,
        street: str,
        district: str | None = None,
        note: str = "",
    ) -> PostRequest:
        """A checked, normalised request (not stored); AddressInvalid lists every bad field."""
        problems: dict[str, str] = {}  # field -> msgid
        code = _clean(subject_code, 80).upper()
        if subject_type == "dossier":
            try:
                code = normalize_code(code, today=self.clock().astimezone(self.tz).date())
            except InvalidDossierCode:
                problems["subject_code"] = N_("The dossier code is not in the right format")
        elif subject_type == "copy":
            code = code.replace(" ", "")
            if not _COPY_CODE.match(code):
                problems["subject_code"] = N_("The copy code is not in the right format")
        else:
            problems["subject_type"] = N_("Choose to send a dossier result or a copy")
        name = _clean(recipient_name, 100)
        if len(name) < 2:
            problems["recipient_name"] = N_("Please enter the recipient's full name")
        elif not _NAME.match(name):
            problems["recipient_name"] = N_("A name has only letters and spaces")
        try:
            phone_norm = normalize_phone(_clean(phone, 30))
        except ValueError:
            phone_norm = ""
            problems["phone"] = N_("The phone number is not right (for example 0912 345 678)")
        province_name = match_province(_clean(province, 60))
        if province_name is None:
            problems["province"] = N_("Please choose a province or city from the list")
        ward_text = _clean(ward, 100)
        if len(ward_text) < 2:
            problems["ward"] = N_("Please enter the commune or ward")
        street_text = _clean(street, 200)
        if len(street_text) < 2:
            problems["street"] = N_("Please enter the house number, street, village or group")
        if problems:
            logger.info("delivery address refused", extra={"fields": sorted(problems)})
            raise AddressInvalid(problems)
        return PostRequest(
            id=uuid.uuid4().hex,
            subject_type=subject_type,
            subject_code=code,
            recipient_name=name,
            phone=phone_norm,
            address=Address(
                province=province_name,
                ward=ward_text,
                street=street_text,
                district=_clean(district, 100) or None,
            ),
            note=_clean(note, 300),
            created_at=self.clock().astimezone(self.tz),
        )

    def submit(
        self, *, print_confirmation: bool = True, lang: str = "vi", **fields: Any
    ) -> PostRequest:
        """Validate (see validate()), store sealed, queue for central, print the confirmation
        (`lang`: the citizen's language on the screen; English lines only for "en").

        Raises AddressInvalid. A failed print keeps the request (and the job for reprint).
        """
        request = self.validate(**fields)
        record = request.record()
        blob = self.key.encrypt(
            json.dumps(record, ensure_ascii=False).encode(), aad=request.id.encode()
        )
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO post_requests(id, subject, payload, created_at) VALUES (?, ?, ?, ?)",
                (request.id, request.subject_type, blob, request.created_at.timestamp()),
            )
        logger.info(
            "delivery request accepted",
            extra={"request": request.short_id, "subject": request.subject_type},
        )
        self._queue(request.id, record)
        if print_confirmation and self.printer is not None and self.slip is not None:
            outcome = self.printer.submit(
                "post",
                f"Gửi kết quả qua bưu điện {request.short_id}",
                self.slip(request, lang=lang),
            )
            request = _with_print(request, outcome)
        return request

    def requeue_unreported(self) -> int:
        """Requests stored but not yet in the outbox (a power cut in between); at start."""
        rows = self.store.query("SELECT id, payload FROM post_requests WHERE queued = 0")
        for row in rows:
            record = json.loads(self.key.decrypt(row["payload"], aad=row["id"].encode()))
            self._queue(row["id"], record)
        return len(rows)

    def _queue(self, request_id: str, record: dict[str, Any]) -> None:
        with contextlib.suppress(sqlite3.IntegrityError):  # queued before a crash: same id
            queue_record(
                self.outbox, self.kiosk_id, "post-request", record, message_id=f"post-{request_id}"
            )
        with self.store.transaction() as conn:
            conn.execute("UPDATE post_requests SET queued = 1 WHERE id = ?", (request_id,))
        if self.on_queued is not None:
            self.on_queued()


SHIPMENT_SUFFIX = "res/post-shipment"


class Shipments:
    """Central's post-shipment/1 messages: the Vietnam Post reference on the kiosk's request."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._validator = validator("post-shipment")

    def on_message(self, suffix: str, payload: bytes, properties: Any) -> None:
        """FleetClient.listen handler: check, then keep on the request it names."""
        try:
            message = json.loads(payload)
        except ValueError:
            logger.warning("post shipment update is not JSON; dropped")
            return
        self.record(message)

    def record(self, message: Any) -> bool:
        """True when the update was kept (its request exists here and it fits the contract)."""
        errors = list(self._validator.iter_errors(message))
        if errors or not s10_valid(message["reference"]):
            why = errors[0].message[:120] if errors else "S10 check digit wrong"
            logger.warning("post shipment update refused", extra={"why": why})
            return False
        with self.store.transaction() as conn:
            updated = conn.execute(
                "UPDATE post_requests SET shipment_ref = ?, shipment_status = ?, shipment_at = ? "
                "WHERE id = ? AND (shipment_at IS NULL OR shipment_at <= ?)",
                (
                    message["reference"],
                    message["status"],
                    message["at"],
                    message["request_id"],
                    message["at"],
                ),
            ).rowcount
        logger.info(
            "post shipment update %s",
            "kept" if updated else "not for a request here (or older); dropped",
            extra={"request": message["request_id"][:8].upper(), "status": message["status"]},
        )
        return bool(updated)

    def shipment(self, request_id: str) -> dict[str, str] | None:
        """{"reference", "status", "at"} once central sent one, else None."""
        rows = self.store.query(
            "SELECT shipment_ref, shipment_status, shipment_at FROM post_requests WHERE id = ?",
            (request_id,),
        )
        if not rows or rows[0]["shipment_ref"] is None:
            return None
        r = rows[0]
        return {
            "reference": r["shipment_ref"],
            "status": r["shipment_status"],
            "at": r["shipment_at"],
        }


def _with_print(request: PostRequest, outcome: PrintOutcome) -> PostRequest:
    return replace(request, printed=outcome)
