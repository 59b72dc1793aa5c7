"""Results by post, shared by the kiosk and central: the UPU S10 item identifier Vietnam Post's
shipment references use (docs/fleet.md, "Post shipments")."""

from __future__ import annotations

import re

_S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)


def s10_valid(reference: str) -> bool:
    """A UPU S10 item identifier (2 letters, 8 digits, check digit, country) whose check digit
    is right: weights 8 6 4 2 3 5 9 7, C = 11 - (S mod 11), 10 -> 0, 11 -> 5 (docs/fleet.md)."""
    if not re.fullmatch(r"[A-Z]{2}[0-9]{9}[A-Z]{2}", reference):
        return False
    return int(reference[10]) == s10_check_digit(reference[2:10])


def s10_check_digit(serial: str) -> int:
    """The check digit of an 8-digit S10 serial."""
    total = sum(int(d) * w for d, w in zip(serial, _S10_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: 0, 11: 5}.get(check, check)
