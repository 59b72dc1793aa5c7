"""Fee rules as data: which fee a procedure costs, where, when and by which channel.

The rules live in a TOML file (default edge/config/fee_rules.toml; docs/fees.md lists them and
their sources). Each [[fee]] rule names its procedure code (national procedure database, e.g.
2.000815), its area (a kiosk-id prefix or "*"), validity dates, channels, the amount rule (per
page tiers and a cap per copy) and its legal basis; each [[support]] rule waives a share of the
fee (who pays instead, from which date, on which channel). The file is validated when loaded:
a broken file is refused with the reason, never half-used.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.errors import ConfigError

DEFAULT_RULES = Path(__file__).with_name("config") / "fee_rules.toml"
COPY_FROM_ORIGINAL = "2.000815"  # chứng thực bản sao từ bản chính (national procedure database)
Channel = Literal["online", "at-kiosk", "at-counter"]
CHANNELS: tuple[Channel, ...] = ("online", "at-kiosk", "at-counter")
AREA = r"^(\*|[A-Z0-9][A-Z0-9-]{0,31})$"


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{1,63}$")
    area: str = Field(pattern=AREA)
    channels: tuple[Channel, ...] = Field(min_length=1)
    valid_from: dt.date
    valid_to: dt.date | None = None
    basis_vi: str = Field(min_length=5, max_length=200)
    source: str = Field(pattern=r"^https?://")

    @model_validator(mode="after")
    def _dates(self) -> _Rule:
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError(f"{self.id}: valid_to is before valid_from")
        return self

    def applies(self, area: str, channel: str, on: dt.date) -> bool:
        """Valid on this date, for this channel, and its area covers this kiosk id."""
        in_area = self.area == "*" or area == self.area or area.startswith(self.area + "-")
        in_time = self.valid_from <= on and (self.valid_to is None or on <= self.valid_to)
        return in_area and in_time and channel in self.channels

    @property
    def specificity(self) -> int:
        return -1 if self.area == "*" else len(self.area)


class Tier(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    from_page: int = Field(ge=1)
    vnd: int = Field(ge=0)


class FeeRule(_Rule):
    """An amount rule: per page of the original by tiers, at most cap_vnd per copy."""

    procedure: str = Field(pattern=r"^[0-9]\.[0-9]{6}$")
    name_vi: str = Field(min_length=3)
    kind: Literal["phí", "lệ phí"]
    tiers: tuple[Tier, ...] = Field(min_length=1)
    cap_vnd: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _tiers(self) -> FeeRule:
        starts = [t.from_page for t in self.tiers]
        if starts[0] != 1 or starts != sorted(set(starts)):
            raise ValueError(f"{self.id}: tiers must start at page 1, in increasing order")
        return self

    def amount(self, pages: int) -> int:
        total = 0
        for n, tier in enumerate(self.tiers):
            end = self.tiers[n + 1].from_page - 1 if n + 1 < len(self.tiers) else pages
            total += max(0, min(pages, end) - tier.from_page + 1) * tier.vnd
        return total if self.cap_vnd is None else min(total, self.cap_vnd)


class SupportRule(_Rule):
    """A waiver or support: percent of the fee paid by payer_vi instead of the citizen."""

    procedures: tuple[str, ...] = Field(min_length=1)
    percent: int = Field(ge=1, le=100)
    payer_vi: str = Field(min_length=3)

    def covers(self, procedure: str) -> bool:
        return "*" in self.procedures or procedure in self.procedures


class FeeRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fee: tuple[FeeRule, ...] = Field(min_length=1)
    support: tuple[SupportRule, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> FeeRules:
        ids = [r.id for r in (*self.fee, *self.support)]
        if len(ids) != len(set(ids)):
            raise ValueError("rule ids must be unique")
        for rule in self.fee:  # two rules for the same case on the same day: ambiguous
            for other in self.fee:
                if other is not rule and _overlap(rule, other):
                    raise ValueError(f"{rule.id} and {other.id} overlap (same case, same days)")
        return self

    def fee_rule(self, procedure: str, area: str, channel: str, on: dt.date) -> FeeRule | None:
        """The most specific fee rule in force on that day, or None."""
        found = [r for r in self.fee if r.procedure == procedure and r.applies(area, channel, on)]
        return max(found, key=lambda r: r.specificity) if found else None

    def support_rule(
        self, procedure: str, area: str, channel: str, on: dt.date
    ) -> SupportRule | None:
        found = [r for r in self.support if r.covers(procedure) and r.applies(area, channel, on)]
        return max(found, key=lambda r: (r.specificity, r.percent)) if found else None


def _overlap(a: FeeRule, b: FeeRule) -> bool:
    if a.procedure != b.procedure or a.area != b.area or not set(a.channels) & set(b.channels):
        return False
    a_end = a.valid_to or dt.date.max
    b_end = b.valid_to or dt.date.max
    return a.valid_from <= b_end and b.valid_from <= a_end


def load_rules(path: Path | None = None) -> FeeRules:
    """Read and validate a rules file; ConfigError with the reason when it is not valid."""
    path = path or DEFAULT_RULES
    try:
        return _load(path.resolve(), path.stat().st_mtime_ns)
    except OSError as err:
        raise ConfigError(f"fee rules {path}: {err.strerror or err}") from err


@cache
def _load(path: Path, mtime_ns: int) -> FeeRules:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return FeeRules.model_validate(data)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"fee rules {path}: {err}") from err
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"fee rules {path}: {where}: {first['msg']}") from err
