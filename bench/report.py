"""The bench's output: a table for people or JSON for machines; the only place that prints."""

from __future__ import annotations

import json
import logging

from bench.machine import Machine
from bench.registry import Result

logger = logging.getLogger(__name__)

_COLUMNS = ("figure", "unit", "median", "min", "max", "target", "within target")


def report(machine: Machine, results: list[Result], *, runs: int, as_json: bool) -> None:
    if as_json:
        print(json.dumps(_as_json(machine, results, runs), ensure_ascii=False, indent=2))
    else:
        print(_as_table(machine, results, runs))


def _as_json(machine: Machine, results: list[Result], runs: int) -> dict[str, object]:
    return {
        "machine": machine.as_dict(),
        "runs": runs,
        "target_machine": "Raspberry Pi 4",
        "figures": [
            {
                "name": r.figure.name,
                "unit": r.figure.unit,
                "median": r.median,
                "samples": r.samples,
                "target_below": r.figure.below,
                "within_target": r.within_target,
                "error": r.error,
            }
            for r in results
        ],
    }


def _as_table(machine: Machine, results: list[Result], runs: int) -> str:
    header = [
        f"kiosk-edge {machine.kiosk_edge} bench: median of {runs} run{'s' * (runs != 1)}",
        f"machine: {machine.board + ', ' if machine.board else ''}{machine.cpu}, "
        f"{machine.cores} cores, {machine.ram_gb:g} GB RAM",
        f"os:      {machine.os}",
        f"python:  {machine.python}",
        "",
    ]
    rows = [_COLUMNS, *(_row(r) for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    numeric = {2, 3, 4}
    lines = [
        "  ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    where = (
        f"this machine is a {machine.board}"
        if machine.is_pi
        else "this machine is not a Pi, so compare with care"
    )
    footer = ["", f"Targets are for a Raspberry Pi 4 (product spec §10); {where}."]
    footer += [f"FAILED {r.figure.name}: {r.error}" for r in results if r.error]
    return "\n".join(header + lines + footer)


def _row(result: Result) -> tuple[str, ...]:
    fig = result.figure
    target = f"< {fig.below:g}" if fig.below is not None else "-"
    within = {True: "yes", False: "no", None: "-"}[result.within_target]
    if result.error:
        return (fig.name, fig.unit, "FAILED", "-", "-", target, within)
    return (
        fig.name,
        fig.unit,
        _number(result.median),
        _number(min(result.samples)),
        _number(max(result.samples)),
        target,
        within,
    )


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
