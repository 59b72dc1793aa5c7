"""Power cut while issuing: a child issuing copies is killed (-9) at every step, many times.

Afterwards: 0 duplicate codes, 0 half-issued copies (a copy without its outbox record or the
other way round), every stored copy verifies, and SQLite's integrity check is ok.
"""

from __future__ import annotations

import os
import random
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
            assert service.verify_pdf(service.pdf(row["code"])).status == "valid"
        # Burnt numbers are gaps, never repeats: the floor is past every number used.
        floor = CopySequence(store, service.paths.sequence_floor).high()
        assert floor >= max(seqs)
        new = service.issue([page_image(2)], {"id_number": "001099012345", "name": "Thử"})
        assert parse_code(new.code).seq == floor + 1 and new.code not in codes
