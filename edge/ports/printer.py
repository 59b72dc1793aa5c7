"""The printer port: a transport for raw ESC/POS bytes, and the status it can report."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Literal

Paper = Literal["ok", "near-end", "out", "unknown"]


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    online: bool
    paper: Paper = "unknown"
    cover_open: bool | None = None
    detail: str = ""

    @property
    def can_print(self) -> bool:
        return self.online and self.paper != "out" and not self.cover_open

    def as_dict(self) -> dict[str, object]:
        return asdict(self) | {"can_print": self.can_print}


class PrinterTransport(ABC):
    """Moves bytes to a printer. Receipt layout lives elsewhere, once (see edge.printing)."""

    kind: str = "printer"

    @abstractmethod
    def send(self, data: bytes, *, job_id: str) -> None:
        """Deliver one whole job; raise PrinterError if the printer did not take it."""

    @abstractmethod
    def status(self) -> PrinterStatus:
        """Ask the printer how it is; never raises (offline is a status)."""

    def describe(self) -> str:
        return self.kind
