"""`kiosk id` and `kiosk face` on files: JSON shapes, exit codes, refusals with their rule."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2

from tests import cards
from tests.test_identify import card_scene_with_portrait
from tests.test_liveness import turning_frames

FACES = Path(__file__).resolve().parent / "data" / "faces"
VALID = "001099012345||Nguyễn Văn Mẫu|01011999|Nam|Số 1 Phố Mẫu, Hoàn Kiếm, Hà Nội|15062021"


def kiosk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=120
    )


def test_id_parse_valid_and_invalid() -> None:
    ok = kiosk("id", "parse", VALID, "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {
        "id_number": "001099012345",
        "name": "Nguyễn Văn Mẫu",
        "date_of_birth": "1999-01-01",
        "sex": "Nam",
        "address": "Số 1 Phố Mẫu, Hoàn Kiếm, Hà Nội",
        "issue_date": "2021-06-15",
        "old_id": None,
        "card_generation": "cccd",
        "cancelled_id": None,
        "father_name": None,
        "mother_name": None,
    }
    bad = kiosk("id", "parse", VALID.replace("|Nam|", "|Nữ|"), "--json")
    assert bad.returncode == 2
    error = json.loads(bad.stderr)["error"]
    assert error["rule"] == "century_sex"
    assert error["message_vi"].startswith("Mã QR trên thẻ không hợp lệ")
    assert "001099012345" not in bad.stderr and "Mẫu" not in bad.stderr


def test_id_read_finds_the_card_and_its_portrait(tmp_path: Path) -> None:
    frame, person = card_scene_with_portrait("grace_hopper.jpg", seed=5)
    cv2.imwrite(str(tmp_path / "scene.jpg"), frame)
    result = kiosk("id", "read", str(tmp_path / "scene.jpg"), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["id_number"] == person.id_number and data["name"] == person.name
    assert data["date_of_birth"] == person.date_of_birth.isoformat()
    assert data["face_found"] is True
    cv2.imwrite(str(tmp_path / "empty.jpg"), cards.empty_platen(1))
    empty = kiosk("id", "read", str(tmp_path / "empty.jpg"), "--json")
    assert empty.returncode == 2
    assert json.loads(empty.stderr)["error"]["code"] == "card_not_found"
    missing = kiosk("id", "read", str(tmp_path / "nope.jpg"))
    assert missing.returncode == 2 and "cannot read an image" in missing.stderr


def test_face_verify_exit_code_is_the_verdict(tmp_path: Path) -> None:
    frame, _ = card_scene_with_portrait("obama.jpg")
    cv2.imwrite(str(tmp_path / "card.jpg"), frame)
    same = kiosk("face", "verify", str(tmp_path / "card.jpg"), str(FACES / "obama2.jpg"), "--json")
    assert same.returncode == 0, same.stdout + same.stderr
    data = json.loads(same.stdout)
    assert data["match"] is True and data["score"] <= data["threshold"]
    assert data["faces"]["card"]["source"] == "card portrait"
    other = kiosk("face", "verify", str(tmp_path / "card.jpg"), str(FACES / "biden.jpg"), "--json")
    assert other.returncode == 1
    assert json.loads(other.stdout)["match"] is False


def test_face_liveness_over_a_folder_of_frames(tmp_path: Path) -> None:
    turning = tmp_path / "turning"
    turning.mkdir()
    for i, (frame, _) in enumerate(turning_frames("obama2.jpg", -5)):
        cv2.imwrite(str(turning / f"{i:03d}.png"), frame)
    passed = kiosk("face", "liveness", str(turning), "--challenge", "turn_right", "--json")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert json.loads(passed.stdout)["status"] == "passed"
    wrong_way = kiosk("face", "liveness", str(turning), "--challenge", "turn_left", "--json")
    assert wrong_way.returncode == 1
    still = tmp_path / "still"
    still.mkdir()
    photo = cv2.imread(str(FACES / "obama2.jpg"))
    for i in range(50):
        cv2.imwrite(str(still / f"{i:03d}.png"), photo)
    refused = kiosk("face", "liveness", str(still), "--challenge", "blink", "--json")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["reason"] == "no_motion"
