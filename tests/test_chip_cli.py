"""`kiosk id chip --simulate`: the emulated card through the configured (simulated) reader."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

from edge.sim.icao_card import CardHolder, sample_holder

REPO = Path(__file__).resolve().parent.parent


def kiosk(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "PYTHONPATH": str(REPO)}
    env.pop("KIOSK_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "edge", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )


def test_chip_simulate_reads_the_emulated_card_and_writes_no_portrait(tmp_path: Path) -> None:
    holder = sample_holder()
    done = kiosk(tmp_path, "id", "chip", "--simulate", "--json", "--mrz", holder.mrz())
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["passive_auth"], data["reason"], data["development"]) == ("valid", "ok", True)
    assert data["id_number"] == holder.id_number and data["name"] == holder.name
    assert data["portrait"] == {"found": True, "width": 240, "height": 320}
    assert set(data["timings_ms"]) >= {"bac", "read_DG2", "passive_auth", "total"}
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [p for p in written if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".jp2")]
    assert holder.id_number not in done.stderr


def test_chip_with_the_mrz_of_another_card_is_refused_as_bac(tmp_path: Path) -> None:
    other = CardHolder(
        id_number="079088001122",
        name="Lê Văn Khác",
        date_of_birth=dt.date(1988, 2, 3),
        sex="Nam",
        address="-",
        issue_date=dt.date(2022, 1, 1),
        expiry_date=dt.date(2048, 2, 3),
    )
    done = kiosk(tmp_path, "id", "chip", "--simulate", "--json", "--mrz", other.mrz())
    assert done.returncode != 0
    error = json.loads(done.stderr)["error"]
    assert error["code"] == "chip_error" and error.get("rule") == "bac_refused", error


def test_chip_opened_with_the_mrz_read_from_a_photo_of_the_back(tmp_path: Path) -> None:
    """--back: the MRZ taken by OCR off a photographed back (the emulated card's own MRZ,
    printed on an invented card back) opens the chip."""
    from edge.sim.make_scenes import _paste_warped, _platen, can_cuoc_back

    holder = sample_holder()
    back = can_cuoc_back("sample", holder.mrz(), holder.address)
    photo = _paste_warped(_platen(7), back, [(300, 230), (980, 250), (970, 690), (290, 670)])
    photo.save(tmp_path / "back.jpg", quality=92)
    done = kiosk(tmp_path, "id", "chip", "--simulate", "--json", "--back", "back.jpg")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["passive_auth"] == "valid" and data["id_number"] == holder.id_number
    _platen(8).save(tmp_path / "nothing.jpg")  # an empty platen: no card, no MRZ
    blank = kiosk(tmp_path, "id", "chip", "--simulate", "--json", "--back", "nothing.jpg")
    assert blank.returncode == 2
