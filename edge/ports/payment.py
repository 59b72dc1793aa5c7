"""The payment port: ask the citizen to pay a fee under a reference, then learn that they did."""

from __future__ import annotations

from typing import Protocol

from edge.fees import Fee


class Payment(Protocol):
    """How a fee is paid. The reference carries no personal data; the bank's confirmation
    (through central, later) is what `paid` reports."""

    def request(self, fee: Fee, reference: str) -> str | None:
        """What the citizen scans to pay (a VietQR payload), or None when there is nothing to
        scan (the fee is waived, or no account is configured)."""
        ...

    def paid(self, reference: str) -> bool:
        """Whether the payment under this reference has been confirmed."""
        ...

    def cancel(self, reference: str) -> None:
        """The citizen left: forget the reference, paid or not."""
        ...
