"""A fake bank for tests: sends payOS-format payment notifications over real HTTP, signed with a
given checksum key (payos.vn/docs/tich-hop-webhook/kiem-tra-du-lieu-voi-signature: HMAC-SHA256
over the data's members sorted by key, `key=value&...`). It can forge, leave out the signature,
send again (the same bank_reference) and change the amount or account.

The signing code here is written apart from fleet.payments on purpose: the tests check central
against payOS's rules, not against itself (tests/test_payments_central.py also checks it against
payOS's published sample)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import urllib.error
import urllib.request
from typing import Any
from zoneinfo import ZoneInfo

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def sign(data: dict[str, Any], key: str) -> str:
    parts = []
    for k in sorted(data):
        v = data[k]
        parts.append(f"{k}={'' if v is None else v}")
    return hmac.new(key.encode(), "&".join(parts).encode("utf-8"), hashlib.sha256).hexdigest()


def notification(
    key: str,
    *,
    reference: str,
    amount: int,
    account: str,
    bank_reference: str | None = None,
    description: str | None = None,
    when: dt.datetime | None = None,
    forge: bool = False,
    signed: bool = True,
    code: str = "00",
) -> dict[str, Any]:
    """The JSON body payOS posts: {code, desc, success, data, signature}."""
    when = (when or dt.datetime.now(ZONE)).astimezone(ZONE)
    data: dict[str, Any] = {
        "orderCode": secrets.randbelow(10**9),
        "amount": amount,
        # What a bank app makes of "<prefix> <reference>": its own text around it, and often
        # upper-cased with the spaces gone.
        "description": description if description is not None else f"CT{reference} GD 4712",
        "accountNumber": account,
        "reference": bank_reference or f"FT{secrets.token_hex(6).upper()}",
        "transactionDateTime": when.strftime("%Y-%m-%d %H:%M:%S"),
        "currency": "VND",
        "paymentLinkId": secrets.token_hex(16),
        "code": code,
        "desc": "Thành công" if code == "00" else "Lỗi",
        "counterAccountBankId": "970436",
        "counterAccountBankName": "Vietcombank",
        "counterAccountName": "NGUYEN VAN AN",
        "counterAccountNumber": "0011001234567",
        "virtualAccountName": "",
        "virtualAccountNumber": "",
    }
    body: dict[str, Any] = {
        "code": code,
        "desc": "success" if code == "00" else "error",
        "success": code == "00",
        "data": data,
    }
    if signed:
        body["signature"] = sign(data, "not the channel's key" if forge else key)
    return body


def post(url: str, body: bytes, timeout: float = 10.0) -> tuple[int, dict[str, Any] | str]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def notify(url: str, key: str, **notification_args: Any) -> tuple[int, dict[str, Any] | str]:
    """POST one notification(key, **notification_args); (HTTP status, the answer's JSON or
    text)."""
    body = notification(key, **notification_args)
    return post(url, json.dumps(body, ensure_ascii=False).encode("utf-8"))
