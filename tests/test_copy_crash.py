"""Power cut while issuing: a child issuing copies is killed (-9) at every step, many times.

Afterwards: 0 duplicate codes, 0 half-issued copies (a copy without its outbox record or the
other way round), every stored copy verifies, and SQLite's integrity check is ok.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from edge.copies.code import CopySequence, parse_code
from tests.copies_helpers import copy_service, page_image, write_config

REPO = Path(__file__).resolve().parent.parent
STEPS = ["reserved", "qr", "rendered", "signed", "stored"]
ROUNDS = 15
BUDGET_S = 45.0  # stops starting rounds past this; each round is a fresh interpreter


def test_kill_minus_9_across_issuing_steps(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    rng = random.Random(5)
    reported: list[str] = []
    killed_after: dict[str, int] = {}
    started = time.monotonic()
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for round_ in range(ROUNDS):
        if time.monotonic() - started > BUDGET_S:
            break
        target = STEPS[round_ % len(STEPS)]
        nth = rng.randint(1, 2)  # kill during this process's 1st or 2nd copy
        delay = rng.choice([0.0, 0.0, 0.002, 0.01, 0.03])  # at the step, or a bit into the next
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.copy_issuer", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=REPO,
        )
        try:
            for line in child.stdout:
                word, *rest = line.split()
                if word == "issued":
                    reported.append(rest[0])
                elif word == "step" and rest == [target, str(nth)]:
                    if delay:
                        time.sleep(delay)
                    child.send_signal(signal.SIGKILL)
                    killed_after[target] = killed_after.get(target, 0) + 1
                    break
        finally:
            child.kill()
            child.wait(10)
        # What the child printed after the kill signal was sent but before it died.
        reported += [
            ln.split()[1] for ln in child.stdout.read().splitlines() if ln.startswith("issued")
        ]
    assert set(killed_after) == set(STEPS), killed_after  # every step was hit
    assert sum(killed_after.values()) >= 2 * len(STEPS)

    with copy_service(tmp_path) as service:
        store = service.store
        assert store.integrity() == "ok"
        rows = store.query("SELECT code, seq, outbox_id FROM copies ORDER BY seq")
        codes = [r["code"] for r in rows]
        seqs = [r["seq"] for r in rows]
        assert len(set(codes)) == len(codes) and len(set(seqs)) == len(seqs)
        assert [parse_code(c).seq for c in codes] == seqs
        # Every copy a child reported as issued is there; nothing is there twice.
        assert set(reported) <= set(codes)
        assert len(reported) == len(set(reported))
        # No half-issued copy: each copy has its outbox record and each record its copy.
        outbox = {m.id: m for m in service.outbox.pending(limit=10_000)}
        assert {r["outbox_id"] for r in rows} == set(outbox)
        for row in rows:
            record = outbox[row["outbox_id"]].payload["data"]
            assert record["code"] == row["code"] and record["copy_seq"] == row["seq"]
            assert service.verify_pdf(service.pdf(row["code"])).status == "development"
        # Burnt numbers are gaps, never repeats: the floor is past every number used.
        floor = CopySequence(store, service.paths.sequence_floor).high()
        assert floor >= max(seqs)
        new = service.issue([page_image(2)], {"id_number": "001099012345", "name": "Thử"})
        assert parse_code(new.code).seq == floor + 1 and new.code not in codes


CLI_ROUNDS = 8
CLI_BUDGET_S = 40.0
# After the CLI says which copy it issued: at once, and into the write of the file.
CLI_DELAYS = [0.0, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.015, 0.03]


def test_kill_minus_9_of_kiosk_copy_issue_after_the_commit(tmp_path: Path) -> None:
    """Issue 21 item 8: the real `kiosk copy issue` killed once the copy is committed. Each
    time: the --out file is complete or absent, the copy it named is recoverable with
    `kiosk copy get`, no number is burnt, and the next run removes any leftover."""
    from tests.copies_helpers import CITIZEN_QR, write_pages

    config = str(write_config(tmp_path))
    [page] = write_pages(tmp_path, 1)
    out = tmp_path / "copy.pdf"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    issue = [
        sys.executable, "-m", "edge", "copy", "issue", "--config", config,
        "--pages", str(page), "--citizen-qr", CITIZEN_QR,
    ]  # fmt: skip
    announced: list[str] = []
    outcomes = {"complete": 0, "absent": 0, "leftover": 0}
    started = time.monotonic()
    for round_ in range(CLI_ROUNDS):
        if time.monotonic() - started > CLI_BUDGET_S:
            break
        target = tmp_path / f"copy-{round_}.pdf"  # a new name each time, as an operator would
        child = subprocess.Popen(
            [*issue, "--out", str(target)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        try:
            line = child.stderr.readline()  # said once committed, before the file is written
            match = re.fullmatch(r"kiosk: copy (\S+) issued, writing .*\n", line)
            assert match, f"the CLI did not say which copy it issued: {line!r}"
            time.sleep(CLI_DELAYS[round_ % len(CLI_DELAYS)])
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.wait(10)
            child.stderr.close()
        code = match[1]
        announced.append(code)
        with copy_service(tmp_path) as service:
            stored = service.pdf(code)  # committed: recoverable whatever happened to the file
        if target.exists():
            assert target.read_bytes() == stored  # never a part of it
            outcomes["complete"] += 1
        else:
            outcomes["absent"] += 1
        outcomes["leftover"] += (tmp_path / f".{target.name}").with_suffix(".pdf.tmp").exists()
    assert len(announced) >= 4, outcomes
    # One number per run, killed or not: consecutive, nothing burnt.
    assert [parse_code(c).seq for c in announced] == list(range(1, len(announced) + 1))
    # The last announced copy, through the CLI an operator would use.
    recovered = tmp_path / "recovered.pdf"
    got = subprocess.run(
        [sys.executable, "-m", "edge", "copy", "get", announced[-1], "--config", config,
         "--out", str(recovered)],
        capture_output=True, text=True, timeout=60, env=env, cwd=REPO,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    with copy_service(tmp_path) as service:
        assert recovered.read_bytes() == service.pdf(announced[-1])
        assert service.verify_pdf(recovered.read_bytes()).status == "development"
    # A clean run removes whatever the killed runs left and numbers on.
    done = subprocess.run(
        [*issue, "--out", str(out), "--json"],
        capture_output=True, text=True, timeout=60, env=env, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.glob(".*.tmp")) == []
    assert parse_code(json.loads(done.stdout)["code"]).seq == len(announced) + 1
