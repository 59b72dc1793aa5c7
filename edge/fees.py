"""Fees for certified copies (Circular 226/2016/TT-BTC) and a site's exemption ("Miễn phí")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.config import CopiesSection, FeeSchedule
from edge.errors import BadInput

FREE_VI = "Miễn phí"
FREE_EN = "Free of charge"


@dataclass(frozen=True, slots=True)
class Fee:
    """What one copy costs: fee_vnd by the schedule, payable_vnd after the site's exemption."""

    pages: int
    fee_vnd: int
    payable_vnd: int
    exempt: bool

    @property
    def label_vi(self) -> str:
        """What the screen and the receipt show: 'Miễn phí' or '5.000 đ'."""
        return FREE_VI if self.payable_vnd == 0 else format_vnd(self.payable_vnd)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pages": self.pages,
            "fee_vnd": self.fee_vnd,
            "payable_vnd": self.payable_vnd,
            "exempt": self.exempt,
            "label_vi": self.label_vi,
        }


def schedule_fee(pages: int, schedule: FeeSchedule | None = None) -> int:
    """The schedule amount for a copy of an original with this many pages.

    Default: 2,000 VND a page for pages 1-2, 1,000 VND a page from page 3, at most 200,000 VND.
    """
    schedule = schedule or FeeSchedule()
    if pages < 1:
        raise BadInput("a copy has at least one page (bản sao phải có ít nhất một trang)")
    first = min(pages, schedule.first_pages)
    amount = first * schedule.first_page_vnd + (pages - first) * schedule.next_page_vnd
    return min(amount, schedule.cap_vnd)


def site_exempt(copies: CopiesSection, kiosk_id: str) -> bool:
    """Hanoi waives fees for procedures done online from 1 Jan 2026: the default for HN- kiosks."""
    if copies.fee_exempt is not None:
        return copies.fee_exempt
    return kiosk_id.startswith("HN-")


def quote(pages: int, copies: CopiesSection, kiosk_id: str) -> Fee:
    fee = schedule_fee(pages, copies.fees)
    exempt = site_exempt(copies, kiosk_id)
    return Fee(pages, fee, 0 if exempt else fee, exempt)


def format_vnd(amount: int) -> str:
    """Vietnamese style: dots between thousands, then 'đ' (12.000 đ)."""
    return f"{amount:,}".replace(",", ".") + " đ"
