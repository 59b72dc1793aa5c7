"""Online enrolment, kiosk side: a one-time claim token, the CSR over MQTT to the provisioning
service, the certificate back (docs/provisioning.md is the contract)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import queue
import re
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge import __version__
from edge.errors import BadInput, KioskError
from protocol.enrolment import CLAIM_ID, REQUEST_SCHEMA, RESPONSE_SCHEMA, SECRET, proof, proof_ok
from protocol.mqtt import new_client, tls_context

logger = logging.getLogger(__name__)

MAX_PAYLOAD = 64 * 1024


class EnrolmentFailed(KioskError):
    """The provisioning service refused, did not answer, or answered something unusable."""

    code = "enrolment_failed"

    def __init__(self, message: str, *, reason: str = "error") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ClaimToken:
    claim_id: str
    secret: str

    @classmethod
    def parse(cls, text: str) -> ClaimToken:
        cleaned = re.sub(r"[\s-]", "", text).lower()
        claim_id, _, secret = cleaned.partition(".")
        if not CLAIM_ID.match(claim_id) or not SECRET.match(secret):
            raise BadInput(
                "Mã nhận thiết bị không hợp lệ: cần dạng c…….<32 ký tự> như trung tâm đã cấp. "
                "/ The claim token is not valid: expected <claim id>.<secret> as issued by central."
            )
        return cls(claim_id, secret)

    def topic(self, leaf: str) -> str:
        return f"provision/v1/{self.claim_id}/{leaf}"

    def __repr__(self) -> str:  # the secret never reaches a log line
        return f"ClaimToken({self.claim_id}, secret=***)"


def build_request(
    token: ClaimToken,
    *,
    kiosk_id: str,
    serial: str,
    csr_pem: str,
    site: str = "",
    location: str = "",
    request_id: str | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "schema": REQUEST_SCHEMA,
        "claim_id": token.claim_id,
        "request_id": request_id or str(uuid.uuid4()),
        "kiosk_id": kiosk_id,
        "serial": serial,
        "csr": csr_pem,
        "site": site,
        "location": location,
        "software_version": __version__,
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    message["proof"] = proof(message, token.secret)
    return message


def enrol(
    token: ClaimToken,
    request: dict[str, Any],
    *,
    host: str,
    port: int,
    ca_file: Path,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Send the request on the enrolment listener and return the verified success answer.

    The broker is verified against the fleet CA; a response is taken only if its proof
    verifies with the claim secret and it answers our request id.
    """
    answers: queue.Queue[tuple[str, Any]] = queue.Queue()
    try:
        context = tls_context(ca_file)
    except (OSError, ssl.SSLError) as err:
        raise EnrolmentFailed(f"fleet CA file {ca_file} unusable: {err}", reason="ca") from err
    client = new_client(token.claim_id, tls=context, suppress_exceptions=False)
    client.username_pw_set(token.claim_id, token.secret)

    def on_connect(c, userdata, flags, reason_code, properties) -> None:
        answers.put(("connack", reason_code))

    def on_subscribe(c, userdata, mid, reason_codes, properties) -> None:
        answers.put(("suback", reason_codes))

    def on_message(c, userdata, message) -> None:
        answers.put(("message", bytes(message.payload)))

    def on_connect_fail(c, userdata) -> None:
        answers.put(("connect_fail", None))

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.on_connect_fail = on_connect_fail
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=timeout)

    def next_item(what: str) -> tuple[str, Any]:
        left = (deadline - dt.datetime.now(dt.UTC)).total_seconds()
        try:
            return answers.get(timeout=max(left, 0.01))
        except queue.Empty:
            raise EnrolmentFailed(
                f"no {what} from the provisioning service at {host}:{port} in {timeout:.0f} s",
                reason="timeout",
            ) from None

    try:
        client.connect_async(host, port, keepalive=30, clean_start=True)
        client.loop_start()
        kind, value = next_item("connection")
        if kind == "connect_fail":
            raise EnrolmentFailed(
                f"cannot reach the provisioning listener {host}:{port} (TLS or network)",
                reason="unreachable",
            )
        if kind == "connack" and value.is_failure:
            raise EnrolmentFailed(
                f"the broker refused the claim account: {value} (claim unknown, used or expired?)",
                reason="refused",
            )
        client.subscribe(token.topic("response"), qos=1)
        while kind != "suback":
            kind, value = next_item("subscription")
        if any(code.is_failure for code in value):
            raise EnrolmentFailed("the broker refused the response topic", reason="refused")
        client.publish(
            token.topic("request"), json.dumps(request, ensure_ascii=False).encode(), qos=1
        )
        logger.info("enrolment request sent", extra={"claim_id": token.claim_id})
        while True:
            kind, value = next_item("answer")
            if kind != "message":
                continue
            answer = _check_answer(value, token, request)
            if answer is not None:
                return answer
    finally:
        client.disconnect()
        client.loop_stop()


def _check_answer(
    payload: bytes, token: ClaimToken, request: dict[str, Any]
) -> dict[str, Any] | None:
    """The answer if it is ours and proven; None to keep waiting; EnrolmentFailed on a refusal."""
    if len(payload) > MAX_PAYLOAD:
        logger.warning("enrolment answer too large, ignored")
        return None
    try:
        answer = json.loads(payload)
    except ValueError:
        logger.warning("enrolment answer is not JSON, ignored")
        return None
    if not isinstance(answer, dict) or answer.get("schema") != RESPONSE_SCHEMA:
        logger.warning("enrolment answer of an unknown shape, ignored")
        return None
    if answer.get("request_id") not in (request["request_id"], None):
        return None  # an answer to an earlier attempt
    proven = proof_ok(answer, token.secret)
    if answer.get("status") == "error":
        error = answer.get("error") or {}
        code = str(error.get("code", "internal"))
        message = str(error.get("message", ""))[:500]
        if not proven and code not in ("claim_unknown", "malformed"):
            logger.warning("unproven enrolment error ignored", extra={"code": code})
            return None
        raise EnrolmentFailed(
            f"the provisioning service refused: {code}: {message}"
            + ("" if proven else " (unproven answer)"),
            reason=code,
        )
    if not proven:
        logger.warning("enrolment answer with a bad proof ignored")
        return None
    if answer.get("status") != "ok" or answer.get("kiosk_id") != request["kiosk_id"]:
        logger.warning("enrolment answer for another kiosk ignored")
        return None
    for field in ("certificate", "ca_chain", "broker", "operators"):
        if field not in answer:
            raise EnrolmentFailed(f"the answer has no {field}", reason="malformed")
    return answer
