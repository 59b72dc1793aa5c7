"""What provisioning left on this kiosk, read only: which steps of the record are done."""

from __future__ import annotations

import json
from pathlib import Path

from edge.errors import KioskError

STATE_SCHEMA = "provision-state/1"
STEPS = ("identity", "device_key", "enrolment", "trust", "selftest", "report")


def record_file(state_dir: Path) -> Path:
    return state_dir / "provisioning" / "state.json"


def steps_done(state_dir: Path) -> list[str]:
    """The steps done, in order; none when there is no record (or one of another schema)."""
    path = record_file(state_dir)
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise KioskError(f"{path} is damaged ({err}); use --reprovision") from err
    if data.get("schema") != STATE_SCHEMA:
        return []
    steps = data.get("steps", {})
    return [s for s in STEPS if steps.get(s, {}).get("done_at")]
