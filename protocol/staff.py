"""Staff accounts as kiosk and central both see them: the login name, the PIN, the hash central
sends in the set-staff command (never a PIN), and the roles."""

from __future__ import annotations

import re
from typing import Any

from protocol.errors import BadInput

# The config's shared technician PIN ([ui] technician_pin_hash) signs in under this name; the
# `kiosk` command line on the device acts as "cli". Neither can be a staff account's name.
SHARED = "technician"
CLI = "cli"
CENTRAL = "central"  # the set-staff fleet command (an operator's signed command)
NAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
PIN = re.compile(r"^[0-9]{4,12}$")
# What central sends for a PIN: a werkzeug hash (scrypt, or pbkdf2), never the PIN itself.
PIN_HASH = re.compile(r"^(scrypt:\d+:\d+:\d+|pbkdf2:sha256:\d+)\$[!-#%-~]{1,64}\$[0-9a-f]{64,128}$")
# A "staff" account confirms identities and answers help calls; a "technician" account also
# reaches the technician panel's hardware actions (self-test, printer test, out of service).
ROLES = ("staff", "technician")
MAX_CENTRAL_ACCOUNTS = 200


def check_name(name: str) -> str:
    """A login handle: 2-32 lower-case letters, digits, '.', '_' or '-', starting with a letter."""
    handle = name.strip().lower()
    if not NAME.fullmatch(handle):
        raise BadInput(
            "tên đăng nhập: 2-32 chữ thường không dấu, số, '.', '_' hoặc '-' "
            "(login name: 2-32 lower-case letters, digits, '.', '_' or '-', starting with a letter)"
        )
    if handle in (SHARED, CLI, CENTRAL):
        raise BadInput(f"tên {handle!r} đã dành riêng (the name {handle!r} is reserved)")
    return handle


def check_pin(pin: str) -> str:
    if not (pin.isascii() and PIN.fullmatch(pin)):
        raise BadInput("mã PIN gồm 4 đến 12 chữ số (a PIN is 4 to 12 digits)")
    return pin


def _affordable(pin_hash: str) -> bool:
    """Cost parameters no higher than twice werkzeug's defaults, so a hash from central cannot
    stall every sign-in: scrypt N <= 2^16 (default 2^15), r <= 8, p = 1; pbkdf2 <= 1,000,000
    iterations (the default). Measured on the x86 build machine: 63 ms for scrypt 2^15, 148 ms
    for 2^16, 240 ms for pbkdf2 at 1,000,000; a Pi is several times slower."""
    method = pin_hash.split("$", 1)[0].split(":")
    if method[0] == "scrypt":
        n, r, p = (int(x) for x in method[1:])
        return 2**10 <= n <= 2**16 and n & (n - 1) == 0 and 1 <= r <= 8 and p == 1
    return 1000 <= int(method[2]) <= 1_000_000


def check_central(accounts: Any) -> list[dict[str, Any]]:
    """The set-staff list, checked whole before anything is applied (BadInput says why)."""
    if not isinstance(accounts, list) or len(accounts) > MAX_CENTRAL_ACCOUNTS:
        raise BadInput(f"accounts must be a list of at most {MAX_CENTRAL_ACCOUNTS} objects")
    wanted: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, a in enumerate(accounts):
        if not isinstance(a, dict) or set(a) - {"name", "pin_hash", "role", "disabled"}:
            raise BadInput(f"accounts[{i}]: an object of name, pin_hash, role, disabled")
        name, pin_hash = a.get("name"), a.get("pin_hash")
        role, disabled = a.get("role", "staff"), a.get("disabled", False)
        if not isinstance(name, str) or not isinstance(pin_hash, str):
            raise BadInput(f"accounts[{i}]: name and pin_hash are strings")
        handle = check_name(name)
        if handle != name or handle in seen:
            raise BadInput(f"accounts[{i}]: name {name!r} is not lower-case or is repeated")
        if not PIN_HASH.fullmatch(pin_hash) or not _affordable(pin_hash):
            raise BadInput(
                f"accounts[{i}]: pin_hash is not a werkzeug scrypt/pbkdf2 hash a kiosk can check"
            )
        if role not in ROLES or not isinstance(disabled, bool):
            raise BadInput(f"accounts[{i}]: role is staff or technician, disabled a boolean")
        seen.add(handle)
        wanted.append({"name": handle, "pin_hash": pin_hash, "role": role, "disabled": disabled})
    return wanted
