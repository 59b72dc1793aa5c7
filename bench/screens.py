"""Screen changes in headless Chromium against a running simulated kiosk (issue 18, "No
stalls"): how long each change from one citizen screen to the next takes, at a fast pace (a
new screen every 200-500 ms, a citizen tapping through) and a realistic one (every 1.5-3 s),
and how many button event streams the daemon holds open meanwhile.

    .venv/bin/python -m bench.screens                      # this tree, prints a table
    .venv/bin/python -m bench.screens --compare ../main    # and another checkout, side by side
    .venv/bin/python -m bench.screens --json

A change is `page.goto(screen)` until the new page's `load` event (its HTML, CSS and script;
the page then opens its /live/events stream as the kiosk's page does). The next change comes
when the pace's time since the previous one started has passed, at once if it took longer.
Screens: start, queue ticket, guide, help, verify (no camera or session needed). The open
streams are read from `GET /api/browser` ("event_streams") every 100 ms by another thread; a
tree without that field shows "n/a". Goal on x86: p95 < 300 ms at both paces.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

SCREENS = ("/", "/b/", "/d/", "/help", "/e/")
PACES = {"fast": (0.2, 0.5), "realistic": (1.5, 3.0)}
CHANGES = {"fast": 30, "realistic": 10}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
GOTO_TIMEOUT_MS = 15000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(q * len(ordered)) - 1)]


class StreamCounter:
    """The daemon's open event streams, sampled every 100 ms while the changes run."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                with urllib.request.urlopen(self.base + "/api/browser", timeout=5) as r:
                    count = json.loads(r.read()).get("event_streams")
            except OSError:
                continue
            if isinstance(count, int):
                self.samples.append(count)

    def __enter__(self) -> StreamCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    @property
    def most(self) -> int | None:
        return max(self.samples) if self.samples else None


def change_screens(
    page: Any, base: str, *, pace: tuple[float, float], changes: int, seed: int = 18
) -> list[float]:
    """Milliseconds each of `changes` screen changes took (goto until `load`)."""
    rng = random.Random(seed)
    here = page.url.removeprefix(base) or "/"
    times = []
    for _ in range(changes):
        target = rng.choice([s for s in SCREENS if s != here])
        started = time.perf_counter()
        page.goto(base + target, wait_until="load", timeout=GOTO_TIMEOUT_MS)
        took = time.perf_counter() - started
        times.append(took * 1000)
        here = target
        rest = rng.uniform(*pace) - took
        if rest > 0:
            page.wait_for_timeout(rest * 1000)
    return times


def summary(times: list[float], streams: int | None) -> dict[str, Any]:
    return {
        "changes": len(times),
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(percentile(times, 0.95), 1),
        "max_ms": round(max(times), 1),
        "max_streams": streams,
    }


def measure(browser: Any, base: str, pace: str, changes: int) -> dict[str, Any]:
    """One fresh browser context on the kiosk's start screen, then the changes at a pace."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, base_url=base, locale="vi-VN"
    )
    try:
        page = context.new_page()
        page.goto(base + "/", wait_until="load", timeout=GOTO_TIMEOUT_MS)
        page.wait_for_timeout(500)
        with StreamCounter(base) as counter:
            times = change_screens(page, base, pace=PACES[pace], changes=changes)
        return summary(times, counter.most)
    finally:
        context.close()


def run(tree: Path | None, changes: dict[str, int]) -> dict[str, dict[str, Any]]:
    """A simulated daemon from `tree` (this one when None), headless Chromium, both paces."""
    from playwright.sync_api import sync_playwright

    from bench.daemon import simulated_daemon

    with ExitStack() as stack:
        daemon = stack.enter_context(simulated_daemon(tree=tree))
        base = f"http://127.0.0.1:{daemon.port}"
        p = stack.enter_context(sync_playwright())
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        stack.callback(browser.close)
        return {pace: measure(browser, base, pace, n) for pace, n in changes.items()}


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    rows = [
        "| tree | pace | changes | p50 ms | p95 ms | max ms | most open streams |",
        "|---|---|---|---|---|---|---|",
    ]
    for tree, paces in results.items():
        for pace, r in paces.items():
            streams = "n/a" if r["max_streams"] is None else str(r["max_streams"])
            rows.append(
                f"| {tree} | {pace} {PACES[pace][0]:g}-{PACES[pace][1]:g} s | {r['changes']} "
                f"| {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['max_ms']:.0f} | {streams} |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.screens", description=__doc__)
    parser.add_argument("--fast", type=int, default=CHANGES["fast"], help="fast-pace changes")
    parser.add_argument(
        "--realistic", type=int, default=CHANGES["realistic"], help="realistic-pace changes"
    )
    parser.add_argument(
        "--compare", type=Path, metavar="TREE", help="also measure another checkout (e.g. main)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    changes = {"fast": args.fast, "realistic": args.realistic}
    results = {"this tree": run(None, changes)}
    if args.compare is not None:
        results[str(args.compare)] = run(args.compare.resolve(), changes)
    print(json.dumps(results, indent=2) if args.json else table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
