"""Fees for certified copies, from the fee rules (edge/fee_rules.py, docs/fees.md).

quote() picks the fee rule in force on the day for the kiosk's area and channel, then any
support rule (e.g. Hanoi's Resolution 77/2025/NQ-HĐND for online procedures), and says which
rules it applied and their legal basis. MAX_PAGES is the one page limit: quote() and
CopyService.issue() both refuse more.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from edge.config import CopiesSection
from edge.copies.code import CopyRefused
from edge.errors import BadInput
from edge.fee_rules import COPY_FROM_ORIGINAL, FeeRules, load_rules
from edge.texts import N_, Text

FREE_VI = "Miễn phí"
FREE_EN = "Free of charge"
# Pages of one original the kiosk quotes and issues (scanning, PDF and signing bound); past
# 198 pages Circular 226/2016's cap (200,000 đ) is reached anyway.
MAX_PAGES = 200


@dataclass(frozen=True, slots=True)
class Fee:
    """What one copy costs: fee_vnd by the rule, payable_vnd after any support (exempt)."""

    pages: int
    fee_vnd: int
    payable_vnd: int
    exempt: bool
    rule_id: str = ""
    basis_vi: str = ""
    name_vi: str = "Phí chứng thực bản sao từ bản chính"
    kind: str = "phí"
    support_id: str = ""
    support_basis_vi: str = ""
    payer_vi: str = ""

    @property
    def label_vi(self) -> str:
        """What the screen and the receipt show: 'Miễn phí' or '5.000 đ'."""
        return FREE_VI if self.payable_vnd == 0 else format_vnd(self.payable_vnd)

    @property
    def word_vi(self) -> str:
        """'Phí' or 'Lệ phí', as the rule's legal basis names it."""
        return self.kind[:1].upper() + self.kind[1:]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "pages": self.pages,
            "fee_vnd": self.fee_vnd,
            "payable_vnd": self.payable_vnd,
            "exempt": self.exempt,
            "label_vi": self.label_vi,
        }
        if self.rule_id:
            out["rule"] = {"id": self.rule_id, "basis_vi": self.basis_vi, "kind": self.kind}
        if self.support_id:
            out["support"] = {
                "id": self.support_id,
                "basis_vi": self.support_basis_vi,
                "payer_vi": self.payer_vi,
            }
        return out


def check_pages(pages: int) -> None:
    """The one page limit of quote and issue."""
    if pages < 1:
        raise BadInput("a copy has at least one page (bản sao phải có ít nhất một trang)")
    if pages > MAX_PAGES:
        raise CopyRefused(
            Text(N_("At most %(n)d pages per copy"), {"n": MAX_PAGES}),
            f"at most {MAX_PAGES} pages",
        )


def quote(
    pages: int,
    copies: CopiesSection,
    kiosk_id: str,
    *,
    on: dt.date | None = None,
    channel: str | None = None,
    rules: FeeRules | None = None,
    procedure: str = COPY_FROM_ORIGINAL,
) -> Fee:
    """The fee for a copy of an original with this many pages, on that day (default: today in
    Vietnam) by that channel (default: copies.fee_channel), at this kiosk."""
    check_pages(pages)
    rules = rules or load_rules(Path(copies.fee_rules) if copies.fee_rules else None)
    on = on or dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date()
    channel = channel or copies.fee_channel
    rule = rules.fee_rule(procedure, kiosk_id, channel, on)
    if rule is None:
        raise CopyRefused(
            Text(N_("No fee rule applies today, please ask the staff")),
            f"no fee rule for {procedure} at {kiosk_id} by {channel} on {on.isoformat()}",
        )
    fee = rule.amount(pages)
    support = rules.support_rule(procedure, kiosk_id, channel, on) if fee else None
    payable = fee - fee * support.percent // 100 if support else fee
    return Fee(
        pages,
        fee,
        payable,
        support is not None,
        rule_id=rule.id,
        basis_vi=rule.basis_vi,
        name_vi=rule.name_vi,
        kind=rule.kind,
        support_id=support.id if support else "",
        support_basis_vi=support.basis_vi if support else "",
        payer_vi=support.payer_vi if support else "",
    )


def basis_text_vi(fee: Fee) -> str:
    """The legal basis a slip names: the fee rule's, and the support's when one applied."""
    text = f"Căn cứ: {fee.basis_vi}" if fee.basis_vi else ""
    if fee.support_id:
        text += f"\nHỗ trợ {fee.kind}: {fee.support_basis_vi}; chi trả: {fee.payer_vi}"
    return text.strip()


def format_vnd(amount: int) -> str:
    """Vietnamese style: dots between thousands, then 'đ' (12.000 đ)."""
    return f"{amount:,}".replace(",", ".") + " đ"
