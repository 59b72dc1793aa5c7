"""Dossier status: asked of central over MQTT request/response, cached sealed, shown offline with age.

The contract (topics, payloads, code formats) is docs/fleet.md, "Dossier status".
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import hashlib
import json
import logging
import re
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import jsonschema

from edge.config import ServicesSection
from edge.errors import EXIT_FAILED
from edge.services.errors import ServiceError
from edge.store import DataKey, Store
from edge.texts import N_, Text, vietnamese
from protocol.messages import iso_time
from protocol.schemas import load_schema

logger = logging.getLogger(__name__)

REQUEST = "dossier-status-request/1"
RESPONSE = "dossier-status-response/1"
REQUEST_SUFFIX = "req/dossier-status"
RESPONSE_SUFFIX = "res/dossier-status"
PROBLEM_REPORT_S = 600.0  # at most one "central is not answering" event per 10 minutes

CODE_PATTERN = r"[0-9A-Z]{1,6}(?:\.[0-9A-Z]{1,6}){0,5}-[0-9]{6}-[0-9]{4,6}"
_CODE = re.compile(rf"^{CODE_PATTERN}$")
_CODE_IN_TEXT = re.compile(rf"(?<![0-9A-Z.])({CODE_PATTERN})(?![0-9])")
_DASHES = str.maketrans({"–": "-", "—": "-", "‐": "-", "‑": "-", "_": "-", "/": "-"})

# central's status -> what the citizen reads (English msgids; Vietnamese in the catalog).
STATUSES = {
    "received": N_("Received"),
    "in_process": N_("Being processed"),
    "additional_required": N_("More documents needed"),
    "ready": N_("Result ready for pickup"),
    "returned": N_("Result handed over"),
    "rejected": N_("Rejected"),
    "withdrawn": N_("Withdrawn"),
}

Clock = Callable[[], dt.datetime]


class Requester(Protocol):
    """What the service needs of the fleet connection (edge.fleet.FleetClient has it)."""

    @property
    def connected(self) -> bool: ...

    def listen(self, suffix_filter: str, handler: Callable[[str, bytes, Any], None]) -> None: ...

    def publish_live(
        self,
        suffix: str,
        payload: dict[str, Any],
        *,
        response_topic: str | None = None,
        correlation: bytes | None = None,
        expiry_s: int | None = None,
    ) -> bool: ...

    @property
    def topics(self) -> Any: ...


# --- errors --------------------------------------------------------------------------------


class InvalidDossierCode(ServiceError):
    code = "invalid_dossier_code"

    def __init__(self, why: str) -> None:
        super().__init__(
            Text(
                N_(
                    "The dossier code is not in the right format. The dossier code is printed on "
                    "the receipt, for example 000.00.13.H26-241120-0007. Please check it and "
                    "type it again."
                )
            ),
            f"dossier code refused: {why}",
        )


class DossierUnavailable(ServiceError):
    """Central did not answer (offline, timeout, unavailable) and nothing is cached."""

    code = "dossier_unavailable"
    exit_code = EXIT_FAILED  # not the person's fault

    def __init__(self, reason: str) -> None:
        super().__init__(
            Text(
                N_(
                    "The system cannot be reached right now. Please try again later or ask the staff at the counter."
                )
            ),
            f"dossier status unavailable ({reason}) and no cached answer",
            reason=reason,
        )


class OwnerNotConfirmed(ServiceError):
    """Results by post: the dossier does not exist, belongs to someone else, or central has
    no owner for it. `reason`: not_found | mismatch | unknown (never who the owner is)."""

    code = "owner_not_confirmed"

    def __init__(self, reason: str) -> None:
        texts = {
            "not_found": N_(
                "No dossier has this code. Please check the code on your receipt and type it again."
            ),
            "mismatch": N_(
                "This dossier is not registered in your name, so its result cannot be sent by "
                "post from here. Please ask the staff at the counter."
            ),
            "unknown": N_(
                "The system cannot confirm who this dossier belongs to. Please ask the staff "
                "at the counter."
            ),
        }
        super().__init__(
            Text(texts[reason]), f"dossier owner not confirmed ({reason})", reason=reason
        )


class OwnerCheckUnavailable(ServiceError):
    """Results by post: central could not be asked; nothing is accepted unchecked."""

    code = "owner_check_unavailable"
    exit_code = EXIT_FAILED

    def __init__(self, reason: str) -> None:
        super().__init__(
            Text(
                N_(
                    "The dossier cannot be checked right now. Please ask the staff at the "
                    "counter to send the result by post."
                )
            ),
            f"dossier owner check unavailable ({reason})",
            reason=reason,
        )


OWNER_PROOF_SALT = "kiosk-edge/dossier-owner/1|"


def owner_proof(code: str, id_number: str) -> str:
    """scrypt(ID number, salt = the dossier code) as hex: what the kiosk sends instead of the
    number (docs/fleet.md, "Whose dossier it is"; fleet.dossiers.owner_proof is the same)."""
    return hashlib.scrypt(
        id_number.encode(),
        salt=(OWNER_PROOF_SALT + code).encode(),
        n=2**14,
        r=8,
        p=1,
        dklen=32,
    ).hex()


class RateLimited(ServiceError):
    code = "rate_limited"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            Text(
                N_(
                    "You have looked up many times in a row. Please wait %(seconds)d seconds and try again."
                ),
                {"seconds": retry_after_s},
            ),
            f"dossier lookups rate-limited; retry after {retry_after_s} s",
            retry_after_s=retry_after_s,
        )


# --- dossier codes ---------------------------------------------------------------------------


def normalize_code(text: str, *, today: dt.date | None = None) -> str:
    """The code as central expects it, or InvalidDossierCode (docs/fleet.md lists the rules)."""
    code = unicodedata.normalize("NFKC", text).upper().translate(_DASHES)
    code = re.sub(r"\s+", "", code)
    _check(code, today)
    return code


def extract_code(scanned: str, *, today: dt.date | None = None) -> str:
    """A code typed, or found inside a scanned QR's text or URL (the first valid one)."""
    try:
        return normalize_code(scanned, today=today)
    except InvalidDossierCode:
        pass
    text = unicodedata.normalize("NFKC", scanned).upper().translate(_DASHES)
    for match in _CODE_IN_TEXT.finditer(text):
        try:
            _check(match.group(1), today)
        except InvalidDossierCode:
            continue
        return match.group(1)
    raise InvalidDossierCode("no dossier code in the text")


def _check(code: str, today: dt.date | None) -> None:
    if not _CODE.match(code):
        raise InvalidDossierCode("not <agency>-<yyMMdd>-<sequence>")
    _, date_part, sequence = code.rsplit("-", 2)
    try:
        day = dt.datetime.strptime(date_part, "%y%m%d").date()
    except ValueError:
        raise InvalidDossierCode("the date part is not a real date") from None
    if today is not None and day > today:
        raise InvalidDossierCode("the date part is in the future")
    if int(sequence) == 0:
        raise InvalidDossierCode("the sequence number is zero")


# --- answers ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimelineStep:
    at: dt.datetime
    status: str
    note: str | None = None

    @property
    def status_vi(self) -> str:
        return vietnamese(STATUSES[self.status])

    @property
    def status_text(self) -> Text:
        return Text(STATUSES[self.status])

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "status": self.status,
            "status_vi": self.status_vi,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class DossierStatus:
    """What the citizen sees. `found` False: central knows no dossier with this code.

    source "central": answered just now; "cache": the last known answer, `age_s` old,
    because of `stale_reason` ("offline", "timeout" or "unavailable").
    """

    code: str
    found: bool
    source: str
    fetched_at: dt.datetime
    age_s: float = 0.0
    stale_reason: str | None = None
    status: str | None = None
    procedure: str | None = None
    agency: str | None = None
    received_at: dt.datetime | None = None
    due_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    on_time: bool | None = None
    reason: str | None = None
    pickup: str | None = None
    shipment: dict[str, str] | None = None  # {"carrier", "reference", "status"}: sent by post
    timeline: tuple[TimelineStep, ...] = field(default_factory=tuple)

    @property
    def status_vi(self) -> str | None:
        return vietnamese(STATUSES[self.status]) if self.status in STATUSES else None

    @property
    def status_text(self) -> Text | None:
        return Text(STATUSES[self.status]) if self.status in STATUSES else None

    @property
    def on_time_text(self) -> Text | None:
        if self.on_time is None:
            return None
        return Text(N_("On time") if self.on_time else N_("Late"))

    @property
    def age_text(self) -> Text | None:
        """ "updated 2 h ago" for a cached answer (its age a Text too); None for a fresh one."""
        if self.source == "central":
            return None
        return Text(N_("updated %(age)s"), {"age": age_text(self.age_s)})

    @property
    def on_time_vi(self) -> str | None:
        if self.on_time is None:
            return None
        return vietnamese(N_("On time") if self.on_time else N_("Late"))

    @property
    def age_vi(self) -> str | None:
        """ "cập nhật 2 giờ trước" for a cached answer; None for a fresh one."""
        if self.source == "central":
            return None
        return vietnamese(N_("updated %(age)s")) % {"age": age_text_vi(self.age_s)}

    def as_dict(self) -> dict[str, Any]:
        def when(v: dt.datetime | None) -> str | None:
            return v.isoformat() if v else None

        return {
            "code": self.code,
            "found": self.found,
            "source": self.source,
            "fetched_at": self.fetched_at.isoformat(),
            "age_s": round(self.age_s),
            "age_vi": self.age_vi,
            "stale_reason": self.stale_reason,
            "status": self.status,
            "status_vi": self.status_vi,
            "procedure": self.procedure,
            "agency": self.agency,
            "received_at": when(self.received_at),
            "due_at": when(self.due_at),
            "completed_at": when(self.completed_at),
            "on_time": self.on_time,
            "on_time_vi": self.on_time_vi,
            "reason": self.reason,
            "pickup": self.pickup,
            "shipment": self.shipment,
            "timeline": [s.as_dict() for s in self.timeline],
        }


def age_text(seconds: float) -> Text:
    """How old an answer is, in no language yet (as age_text_vi)."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return Text(N_("just now"))
    if seconds < 3600:
        return Text(N_("%(n)d min ago"), {"n": seconds // 60})
    if seconds < 86400:
        return Text(N_("%(n)d h ago"), {"n": seconds // 3600})
    return Text(N_("%(n)d d ago"), {"n": seconds // 86400})


def age_text_vi(seconds: float) -> str:
    seconds = max(0, int(seconds))
    # Abbreviated in English: a msgid without plural forms (Vietnamese has none).
    if seconds < 60:
        return vietnamese(N_("just now"))
    if seconds < 3600:
        return vietnamese(N_("%(n)d min ago")) % {"n": seconds // 60}
    if seconds < 86400:
        return vietnamese(N_("%(n)d h ago")) % {"n": seconds // 3600}
    return vietnamese(N_("%(n)d d ago")) % {"n": seconds // 86400}


def _parse_time(value: str | None, tz: ZoneInfo) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value).astimezone(tz) if value else None


def _status_from_answer(
    answer: dict[str, Any],
    *,
    source: str,
    fetched_at: dt.datetime,
    now: dt.datetime,
    tz: ZoneInfo,
    stale_reason: str | None = None,
) -> DossierStatus:
    d = answer.get("dossier") or {}
    return DossierStatus(
        code=answer["code"],
        found=answer["result"] == "found",
        source=source,
        fetched_at=fetched_at.astimezone(tz),
        age_s=max(0.0, (now - fetched_at).total_seconds()),
        stale_reason=stale_reason,
        status=d.get("status"),
        procedure=d.get("procedure"),
        agency=d.get("agency"),
        received_at=_parse_time(d.get("received_at"), tz),
        due_at=_parse_time(d.get("due_at"), tz),
        completed_at=_parse_time(d.get("completed_at"), tz),
        on_time=d.get("on_time"),
        reason=d.get("reason"),
        pickup=d.get("pickup"),
        shipment=d.get("shipment"),
        timeline=tuple(
            TimelineStep(_parse_time(s["at"], tz), s["status"], s.get("note"))
            for s in d.get("timeline", [])
        ),
    )


# --- rate limit --------------------------------------------------------------------------------


class RateLimiter:
    """Sliding one-minute windows: per session and for the whole kiosk."""

    def __init__(
        self,
        per_session: int,
        per_kiosk: int,
        *,
        window_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_session = per_session
        self.per_kiosk = per_kiosk
        self.window_s = window_s
        self.monotonic = monotonic
        self._sessions: dict[str, collections.deque[float]] = {}
        self._kiosk: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def take(self, session_id: str) -> None:
        """Count one lookup, or raise RateLimited (nothing counted)."""
        with self._lock:
            now = self.monotonic()
            horizon = now - self.window_s
            for window in (self._kiosk, *self._sessions.values()):
                while window and window[0] <= horizon:
                    window.popleft()
            self._sessions = {k: v for k, v in self._sessions.items() if v}
            session = self._sessions.setdefault(session_id, collections.deque())
            for window, limit in ((session, self.per_session), (self._kiosk, self.per_kiosk)):
                if len(window) >= limit:
                    raise RateLimited(max(1, int(window[0] + self.window_s - now + 0.999)))
            session.append(now)
            self._kiosk.append(now)


# --- the service ---------------------------------------------------------------------------------


@dataclass
class _Pending:
    event: threading.Event = field(default_factory=threading.Event)
    payload: bytes | None = None
    correlation: bytes | None = None


class DossierService:
    """Looks dossiers up at central; see docs/services.md for the calls and docs/fleet.md for
    the wire contract. Thread-safe: several UI sessions may ask at once.

    requester: the fleet connection (FleetClient), or None when fleet reporting is off (then
    only cached answers can be shown).
    """

    def __init__(
        self,
        *,
        store: Store,
        key: DataKey,
        kiosk_id: str,
        settings: ServicesSection,
        requester: Requester | None = None,
        timezone: str = "Asia/Ho_Chi_Minh",
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        report: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.store = store
        self.key = key
        # report(kind, detail): tell central's operators (an event through the outbox) that
        # its responder is not answering; at most once per PROBLEM_REPORT_S.
        self.report = report
        self.monotonic = monotonic
        self._last_report: float | None = None
        self._unanswered = 0
        self.kiosk_id = kiosk_id
        self.settings = settings
        self.tz = ZoneInfo(timezone)
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.limiter = RateLimiter(
            settings.dossier_per_session_per_minute,
            settings.dossier_per_kiosk_per_minute,
            monotonic=monotonic,
        )
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._validator = jsonschema.Draft202012Validator(load_schema("dossier-status-response"))
        self.requester: Requester | None = None
        if requester is not None:
            self.attach(requester)

    def attach(self, requester: Requester) -> None:
        """Use this fleet connection (before or after it started) for the lookups."""
        self.requester = requester
        requester.listen(RESPONSE_SUFFIX, self._on_response)

    def lookup(self, text: str, *, session_id: str = "kiosk") -> DossierStatus:
        """Status of the dossier whose code was typed or scanned (a QR's text is fine).

        Raises InvalidDossierCode (nothing sent), RateLimited (nothing sent), or
        DossierUnavailable (no answer and nothing cached). A cached answer comes back with
        source "cache", its age and why it is not fresh.
        """
        code = extract_code(text, today=self.clock().astimezone(self.tz).date())
        self.limiter.take(session_id)
        requester = self.requester
        if requester is None or not requester.connected:
            return self._fallback(code, "offline")
        answer = self._ask(requester, code)
        if answer is None:
            reason = "timeout" if requester.connected else "offline"
            if reason == "timeout":
                self._problem("services.dossier_no_answer")
            return self._fallback(code, reason)
        if answer["result"] == "unavailable":
            logger.warning("central could not reach the dossier system")
            self._problem("services.dossier_unavailable")
            return self._fallback(code, "unavailable")
        now = self.clock()
        self._cache(code, answer, now)
        return _status_from_answer(answer, source="central", fetched_at=now, now=now, tz=self.tz)

    def check_owner(self, text: str, id_number: str, *, session_id: str = "kiosk") -> str:
        """Results by post: the normalised code if the dossier exists at central and belongs
        to the citizen whose card was read (`id_number`, used only to make the proof).

        Raises InvalidDossierCode, RateLimited, OwnerNotConfirmed (not found, someone else's,
        no owner recorded) or OwnerCheckUnavailable (offline, timeout, central unavailable):
        never the cache, never accepted unchecked.
        """
        code = extract_code(text, today=self.clock().astimezone(self.tz).date())
        self.limiter.take(session_id)
        requester = self.requester
        if requester is None or not requester.connected:
            raise OwnerCheckUnavailable("offline")
        answer = self._ask(requester, code, proof=owner_proof(code, id_number))
        if answer is None:
            raise OwnerCheckUnavailable("timeout" if requester.connected else "offline")
        if answer["result"] == "unavailable":
            self._problem("services.dossier_unavailable")
            raise OwnerCheckUnavailable("unavailable")
        if answer["result"] == "not_found":
            logger.info("post: dossier code not found at central")
            raise OwnerNotConfirmed("not_found")
        owner = answer.get("owner", "unknown")
        if owner != "match":
            logger.info("post: dossier owner not confirmed", extra={"owner": owner})
            raise OwnerNotConfirmed(owner)
        logger.info("post: dossier owner confirmed by central")
        return code

    def purge_cache(self) -> int:
        """Drop cached answers older than dossier_cache_days; returns how many."""
        horizon = self.clock().timestamp() - self.settings.dossier_cache_days * 86400
        with self.store.transaction() as conn:
            return conn.execute(
                "DELETE FROM dossier_cache WHERE fetched_at < ?", (horizon,)
            ).rowcount

    def _problem(self, kind: str) -> None:
        self._unanswered += 1
        now = self.monotonic()
        if self.report is None or (
            self._last_report is not None and now - self._last_report < PROBLEM_REPORT_S
        ):
            return
        self._last_report = now
        try:
            self.report(kind, {"since_last_report": self._unanswered})
        except Exception:
            logger.exception("could not report a dossier problem")
        self._unanswered = 0

    # --- request / response -----------------------------------------------------------------

    def _ask(
        self, requester: Requester, code: str, *, proof: str | None = None
    ) -> dict[str, Any] | None:
        request_id = uuid.uuid4().hex
        timeout = self.settings.dossier_timeout_s
        now = time.time()
        reply_to = requester.topics.under(RESPONSE_SUFFIX)
        payload = {
            "schema": REQUEST,
            "request_id": request_id,
            "kiosk_id": self.kiosk_id,
            "code": code,
            "time": iso_time(now),
            "expires_at": iso_time(now + timeout),
            "reply_to": reply_to,
        }
        if proof is not None:
            payload["owner_proof"] = proof
        pending = _Pending()
        with self._lock:
            self._pending[request_id] = pending
        try:
            sent = requester.publish_live(
                REQUEST_SUFFIX,
                payload,
                response_topic=reply_to,
                correlation=request_id.encode(),
                expiry_s=max(1, round(timeout)),
            )
            if not sent:
                return None
            if not pending.event.wait(timeout):
                logger.warning("no dossier answer from central in time", extra={"s": timeout})
                return None
        finally:
            with self._lock:
                self._pending.pop(request_id, None)
        return self._valid_answer(pending, request_id, code)

    def _on_response(self, suffix: str, payload: bytes, properties: Any) -> None:
        """paho's network thread: find the waiting request and wake it; nothing else."""
        correlation = getattr(properties, "CorrelationData", None) if properties else None
        request_id = None
        with contextlib.suppress(ValueError, AttributeError):
            request_id = json.loads(payload).get("request_id")
        if not isinstance(request_id, str) and correlation:
            request_id = bytes(correlation).decode("ascii", "replace")
        with self._lock:
            pending = self._pending.get(request_id) if isinstance(request_id, str) else None
        if pending is None:
            logger.info("dossier answer for no waiting request (late or unknown); dropped")
            return
        pending.payload, pending.correlation = payload, correlation
        pending.event.set()

    def _valid_answer(self, pending: _Pending, request_id: str, code: str) -> dict[str, Any] | None:
        try:
            answer = json.loads(pending.payload)
        except ValueError:
            logger.error("dossier answer is not JSON; treated as no answer")
            return None
        problems = [e.message for e in self._validator.iter_errors(answer)]
        if pending.correlation is not None and bytes(pending.correlation) != request_id.encode():
            problems.append("correlation data does not match")
        if not problems and answer["code"] != code:
            problems.append("answer is for another code")
        if problems:
            logger.error(
                "dossier answer refused; treated as no answer",
                extra={"problems": [p[:120] for p in problems[:3]]},
            )
            return None
        return answer

    # --- cache --------------------------------------------------------------------------------

    @staticmethod
    def _hash(code: str) -> str:
        return hashlib.sha256(code.encode()).hexdigest()

    def _cache(self, code: str, answer: dict[str, Any], at: dt.datetime) -> None:
        code_hash = self._hash(code)
        blob = self.key.encrypt(
            json.dumps(answer, ensure_ascii=False).encode(), aad=code_hash.encode()
        )
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO dossier_cache(code_hash, answer, fetched_at) VALUES (?, ?, ?) "
                "ON CONFLICT(code_hash) DO UPDATE SET answer = excluded.answer, "
                "fetched_at = excluded.fetched_at",
                (code_hash, blob, at.timestamp()),
            )
        self.purge_cache()

    def _fallback(self, code: str, reason: str) -> DossierStatus:
        code_hash = self._hash(code)
        rows = self.store.query(
            "SELECT answer, fetched_at FROM dossier_cache WHERE code_hash = ?", (code_hash,)
        )
        now = self.clock()
        horizon = now.timestamp() - self.settings.dossier_cache_days * 86400
        if not rows or rows[0]["fetched_at"] < horizon:
            raise DossierUnavailable(reason)
        try:
            answer = json.loads(self.key.decrypt(rows[0]["answer"], aad=code_hash.encode()))
        except Exception as err:
            logger.error("cached dossier answer unreadable: %s", type(err).__name__)
            raise DossierUnavailable(reason) from err
        fetched = dt.datetime.fromtimestamp(rows[0]["fetched_at"], dt.UTC)
        logger.info("dossier status from cache", extra={"reason": reason})
        return _status_from_answer(
            answer, source="cache", fetched_at=fetched, now=now, tz=self.tz, stale_reason=reason
        )
