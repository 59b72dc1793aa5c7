"""What central sends a kiosk besides commands: record acknowledgements, the e-copy
revocation list and the officers' answers to certification requests. Each is checked here
against its JSON Schema (schemas/record-ack.json, schemas/copy-revocations.json,
schemas/cert-result.json, shipped in protocol/schemas/); anything else is `Malformed`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from functools import lru_cache
from typing import Any

import jsonschema

from protocol.schemas import load_schema

MAX_ACK_BYTES = 1 << 20  # a batch of ids; the console sends at most batch_max of them
MAX_REVOCATIONS_BYTES = 16 << 20  # ~100,000 codes

_FORMATS = jsonschema.FormatChecker()


class Malformed(ValueError):
    """A message from central that does not follow its schema (logged and ignored)."""


@_FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    # jsonschema checks date-time only with an optional package; ISO 8601 with a zone is enough.
    if not isinstance(value, str):
        return True
    return dt.datetime.fromisoformat(value).tzinfo is not None


@lru_cache(maxsize=4)
def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema(name), format_checker=_FORMATS)


def _decode(payload: bytes, limit: int, name: str) -> dict[str, Any]:
    if len(payload) > limit:
        raise Malformed(f"{name}: {len(payload)} bytes, more than {limit}")
    try:
        data = json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as err:
        raise Malformed(f"{name}: not UTF-8 JSON ({type(err).__name__})") from None
    error = jsonschema.exceptions.best_match(_validator(name).iter_errors(data))
    if error is not None:
        where = "/".join(map(str, error.absolute_path)) or "(top)"
        raise Malformed(f"{name}: {where}: {error.message[:200]}")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_record_ack(payload: bytes, kiosk_id: str) -> list[str]:
    """The record ids central has stored, from a record-ack/1 meant for this kiosk."""
    data = _decode(payload, MAX_ACK_BYTES, "record-ack")
    if data["kiosk_id"] != kiosk_id:
        raise Malformed(f"record-ack: for kiosk {data['kiosk_id']}, not this one")
    return list(dict.fromkeys(data["ids"]))  # order kept, duplicates dropped


def parse_revocation_list(payload: bytes) -> dict[str, Any]:
    """Central's retained copy-revocations/1 (fleet/v1/revocations), checked: codes and
    signing-certificate serials, ready for edge.copies.verify.install_revocation_list."""
    return _decode(payload, MAX_REVOCATIONS_BYTES, "copy-revocations")


MAX_CERT_RESULT_BYTES = 32 << 20  # an approved result carries the certified copy's PDF


def parse_cert_result(payload: bytes, kiosk_id: str) -> dict[str, Any]:
    """Central's cert-result/1 on <prefix>/<kiosk_id>/cert, checked and meant for this kiosk."""
    data = _decode(payload, MAX_CERT_RESULT_BYTES, "cert-result")
    if data["kiosk_id"] != kiosk_id:
        raise Malformed(f"cert-result: for kiosk {data['kiosk_id']}, not this one")
    if data["status"] == "approved":
        try:
            pdf = base64.b64decode(data["pdf"], validate=True)
        except (binascii.Error, ValueError):
            raise Malformed("cert-result: pdf is not base64") from None
        if not pdf.startswith(b"%PDF"):
            raise Malformed("cert-result: pdf is not a PDF")
    return data
