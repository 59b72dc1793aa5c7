"""mypy over the project, held to a per-module baseline of errors that may only shrink.

    .venv/bin/python firmware_scripts/mypy_baseline.py            # check (CI runs this)
    .venv/bin/python firmware_scripts/mypy_baseline.py --update   # lower the baseline after fixes

Runs mypy once with the settings in pyproject.toml ([tool.mypy]) and counts its errors per file.
Fails if a file has more errors than firmware_scripts/mypy-baseline.json allows it, or if a file
the baseline does not list has any. --update only ever lowers a count, and drops a file fixed to
zero; it never raises one or adds a file (the one exception: it writes the first baseline).
Any other arguments go to mypy (e.g. --cache-dir /tmp/mypy-cache).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASELINE = REPO / "firmware_scripts" / "mypy-baseline.json"

# "edge/app.py:31: error: ..." or "edge/app.py:31:5: error: ..."; notes are not errors.
ERROR = re.compile(r"^(?P<path>[^:\s]+\.pyi?):\d+(?::\d+)?: error: ")


def count_errors(output: str) -> Counter[str]:
    """Errors per file in mypy's output."""
    return Counter(m["path"] for line in output.splitlines() if (m := ERROR.match(line)))


def over_baseline(counts: Counter[str], baseline: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Files with more errors than the baseline allows: {path: (errors, allowed)}."""
    return {
        path: (n, baseline.get(path, 0))
        for path, n in sorted(counts.items())
        if n > baseline.get(path, 0)
    }


def lowered(counts: Counter[str], baseline: dict[str, int]) -> dict[str, int]:
    """The baseline with each count lowered to today's, never raised; files at zero dropped."""
    return {
        path: min(allowed, counts[path])
        for path, allowed in sorted(baseline.items())
        if counts[path] > 0
    }


def run_mypy(args: list[str]) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", *args], cwd=REPO, capture_output=True, text=True
    )
    if proc.returncode not in (0, 1):  # 2: mypy itself failed (bad config, crash)
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"mypy failed to run (exit {proc.returncode})")
    return proc.stdout


def load_baseline(path: Path) -> dict[str, int]:
    return json.loads(path.read_text()) if path.exists() else {}


def write_baseline(path: Path, baseline: dict[str, int]) -> None:
    path.write_text(json.dumps(baseline, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--update", action="store_true", help="lower the baseline to today's counts"
    )
    parser.add_argument("--baseline", type=Path, default=BASELINE, help="the baseline file (JSON)")
    opts, mypy_args = parser.parse_known_args(argv)

    output = run_mypy(mypy_args)
    counts = count_errors(output)
    first = not opts.baseline.exists()
    baseline = dict(counts) if first and opts.update else load_baseline(opts.baseline)
    total, allowed = sum(counts.values()), sum(baseline.values())
    print(f"mypy: {total} errors in {len(counts)} files; the baseline allows {allowed}")

    over = over_baseline(counts, baseline)
    for path, (n, limit) in over.items():
        print(f"  {path}: {n} errors, the baseline allows {limit}")
        for line in output.splitlines():
            if line.startswith(f"{path}:"):
                print(f"    {line}")

    if opts.update:
        new = lowered(counts, baseline)
        if first:
            write_baseline(opts.baseline, new)
            print(f"baseline written: {opts.baseline}")
        elif new != baseline:
            write_baseline(opts.baseline, new)
            print(f"baseline lowered: {allowed} -> {sum(new.values())} errors allowed")
    else:
        better = sorted(p for p, limit in baseline.items() if counts[p] < limit)
        if better:
            print(f"fewer errors than the baseline in {', '.join(better)}: run with --update")
    if over:
        print("mypy: errors above the baseline (fix them; the baseline never grows)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
