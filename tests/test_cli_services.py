"""`kiosk ticket`, `kiosk guide`, `kiosk dossier` without a daemon: JSON shapes, exit codes,
the printed slips, the citizen's messages; and a bad services block in the config file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge import cli
from edge import config as cfg
from edge.errors import ConfigError
from edge.services.catalog import BUNDLED_CATALOG, Catalog
from tests.conftest import write_sim_config
from tests.escpos_readback import native_qr_payloads


def kiosk(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, Any]:
    try:
        code = cli.main([*argv, "--json", "--config", str(config)])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, json.loads(out if out.strip() else err)


def test_ticket_take_prints_and_counts(tmp_path: Path, capsys) -> None:
    config = write_sim_config(tmp_path)
    code, first = kiosk(capsys, config, "ticket", "take", "b")
    assert code == 0 and first["number"] == "B-001" and first["area_name"] == "Đất đai"
    assert first["printed"]["printed"] is True
    (slip,) = (tmp_path / "printer-out").glob("*.bin")
    assert native_qr_payloads(slip.read_bytes()) == [first["follow"]]  # TM-T88V: native QR
    code, second = kiosk(capsys, config, "ticket", "take", "B", "--no-print")
    assert (code, second["number"], second["waiting_ahead"], second["printed"]) == (
        0,
        "B-002",
        1,
        None,
    )
    code, areas = kiosk(capsys, config, "ticket", "areas")
    b = next(a for a in areas["areas"] if a["code"] == "B")
    assert b["issued_today"] == 2


def test_ticket_for_an_unknown_area(tmp_path: Path, capsys) -> None:
    code, body = kiosk(capsys, write_sim_config(tmp_path), "ticket", "take", "Q")
    assert code == 2 and body["error"]["code"] == "unknown_area"
    assert body["error"]["message_vi"].startswith("Khu vực dịch vụ này không có")


def test_guide_search_show_and_print(tmp_path: Path, capsys) -> None:
    config = write_sim_config(tmp_path)
    code, found = kiosk(capsys, config, "guide", "search", "giay", "doc", "than")
    assert code == 0 and found["hits"][0]["id"] == "HT-004"
    code, none = kiosk(capsys, config, "guide", "search", "xyzqw")
    assert code == 1 and none["hits"] == []
    code, shown = kiosk(capsys, config, "guide", "show", "ct-002")
    assert code == 0 and shown["fee"]["amount_vnd"] == 10000 and "printed" not in shown
    code, printed = kiosk(capsys, config, "guide", "show", "CT-002", "--print")
    assert code == 0 and printed["printed"]["printed"] is True
    assert len(list((tmp_path / "printer-out").glob("*.bin"))) == 1
    code, missing = kiosk(capsys, config, "guide", "show", "ZZ-000")
    assert code == 2 and missing["error"]["code"] == "procedure_not_found"
    code, info = kiosk(capsys, config, "guide", "info")
    assert (
        info["procedures"] == len(Catalog.from_file(BUNDLED_CATALOG)) and info["installed"] is False
    )


def test_dossier_without_daemon_or_broker(tmp_path: Path, capsys) -> None:
    config = write_sim_config(tmp_path)
    code, body = kiosk(capsys, config, "dossier", "status", "000.00.13.H26-241120-0007")
    assert code == 1 and body["error"]["code"] == "dossier_unavailable"
    assert body["error"]["message_vi"].startswith("Hiện không kết nối được")
    code, body = kiosk(capsys, config, "dossier", "status", "not a code")
    assert code == 2 and body["error"]["code"] == "invalid_dossier_code"


def test_services_config_block_is_validated(tmp_path: Path) -> None:
    config = write_sim_config(
        tmp_path,
        extra='[services]\ndossier_timeout_s = 0\n[[services.areas]]\ncode = "AB"\nname = "x"\n',
    )
    with pytest.raises(ConfigError) as err:
        cfg.load(config)
    keys = {p.key for p in err.value.problems}
    assert "services.dossier_timeout_s" in keys and any(
        k.startswith("services.areas") for k in keys
    )
    bad_url = write_sim_config(
        tmp_path, extra='[services]\nticket_follow_url = "https://x/{ticket}"\n'
    )
    with pytest.raises(ConfigError, match="kiosk_id"):
        cfg.load(bad_url)
    twice = write_sim_config(
        tmp_path,
        extra='[[services.areas]]\ncode = "A"\nname = "x"\n[[services.areas]]\ncode = "A"\nname = "y"\n',
    )
    with pytest.raises(ConfigError, match="unique"):
        cfg.load(twice)
