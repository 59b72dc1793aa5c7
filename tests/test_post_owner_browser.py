"""Results by post in headless Chromium, against a real Mosquitto and the real fleet console: a
dossier's result is sent only after the citizen identified (card, consent, face, liveness:
the e-copy identification) and central confirmed the dossier is theirs. Someone else's dossier
is refused before any address screen; the owner reaches the address screen. The ID number
travels only as a salted scrypt proof: not in the kiosk's log, not in central's table."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet import dossiers as central
from fleet.console import Console, build_console
from tests import web_ui_helpers as web
from tests.mqtt_broker import Broker, FleetPki
from tests.test_fleet_console import console_config
from tests.web_ui_helpers import (
    TECH_PIN,
    card,
    card_scene,
    headline,
    pass_face_check,
    running_kiosk,
    shoot,
)

if not Path("/usr/bin/chromium").exists():
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)

browser = pytest.fixture(scope="module")(web.browser_session)

SOMEONE_ELSES = "000.00.17.H26-261120-0001"  # sample dossiers the console seeds
THEIRS = "000.00.17.H26-261118-0042"
OTHER_NUMBER = "079185000321"


@pytest.fixture
def console(tmp_path: Path, broker: Broker, fleet_pki: FleetPki) -> Iterator[Console]:
    (tmp_path / "central").mkdir()
    c = build_console(console_config(tmp_path / "central", broker, fleet_pki))
    c.start()
    try:
        assert c.ingest.wait_connected(10), "console did not connect"
        key = central.owner_key(tmp_path / "central" / "dossier-owner.key")
        central.set_owner(c.store, key, SOMEONE_ELSES, OTHER_NUMBER)
        central.set_owner(c.store, key, THEIRS, card()[1].id_number)
        yield c
    finally:
        c.stop()


def identify_for_post(pg, scenes, code: str) -> str:
    pg.goto("/f/")
    pg.check("#subject-dossier")
    pg.fill("#code", code)
    scenes.show(card_scene())
    pg.click("#next")
    pg.wait_for_url("**/a/consent", timeout=30000)  # the card was read
    pg.click("#agree")
    pg.wait_for_url("**/a/face")
    ended = pass_face_check(pg, scenes)
    if ended.endswith("/a/staff"):  # a loaded machine can fail the liveness challenge three
        # times: then, as on a real kiosk, staff check the card by eye and confirm with a PIN.
        pg.fill("#pin", TECH_PIN)
        pg.click("#confirm-staff")
        pg.wait_for_url(re.compile(r"/f/(address)?$"), timeout=30000)
        ended = pg.url
    return ended


def test_only_the_identified_owner_reaches_the_address_screen(
    browser, tmp_path: Path, broker: Broker, fleet_pki: FleetPki, console: Console
) -> None:
    mqtt = web.fleet_mqtt(broker, fleet_pki, extra="\n[services]\ndossier_timeout_s = 5\n")
    number = card()[1].id_number
    with running_kiosk(tmp_path / "kiosk", extra=mqtt) as (daemon, scenes):
        web.wait_for_fleet(daemon)
        context = browser.new_context(
            viewport={"width": 1280, "height": 800}, base_url=daemon.base, locale="vi-VN"
        )
        pg = context.new_page()
        try:
            # No address screen before identification.
            pg.goto("/f/")
            pg.check("#subject-dossier")
            pg.fill("#code", SOMEONE_ELSES)
            pg.click("#next")
            pg.wait_for_url("**/a/identify")
            pg.goto("/f/address")
            pg.wait_for_url("**/f/")
            # Someone else's dossier: identified, then refused, back on the first screen.
            ended = identify_for_post(pg, scenes, SOMEONE_ELSES)
            assert "/a/" not in ended, ended  # identified, back in flow F
            pg.wait_for_selector("#owner-error", timeout=30000)
            assert pg.url.endswith("/f/")
            assert pg.inner_text("#owner-error").startswith("Hồ sơ này không đứng tên")
            shoot(pg, "74-post-not-the-owner")
            pg.goto("/f/address")
            pg.wait_for_url("**/f/")
            # A code no dossier has (the consent declined: staff confirm the card instead).
            pg.goto("/f/")
            pg.check("#subject-dossier")
            pg.fill("#code", "ZZ-991231-000001")
            scenes.show(card_scene())
            pg.click("#next")
            pg.wait_for_url("**/a/consent", timeout=30000)
            pg.click("#decline")
            pg.wait_for_url("**/a/staff")
            pg.fill("#pin", TECH_PIN)
            pg.click("#confirm-staff")
            pg.wait_for_selector("#owner-error", timeout=30000)
            assert pg.inner_text("#owner-error").startswith("Không có hồ sơ nào mang mã này")
            # The owner's dossier: the address screen.
            ended = identify_for_post(pg, scenes, THEIRS)
            assert "/a/" not in ended, ended
            pg.wait_for_url("**/f/address", timeout=30000)
            assert headline(pg) == "Gửi kết quả đến đâu?"
            # Central out of reach: the owner is refused too, never accepted unchecked.
            broker.stop()
            pg.goto("/f/")
            pg.check("#subject-dossier")
            pg.fill("#code", THEIRS)
            scenes.show(card_scene())
            pg.click("#next")
            pg.wait_for_url("**/a/consent", timeout=30000)
            pg.click("#decline")
            pg.wait_for_url("**/a/staff")
            pg.fill("#pin", TECH_PIN)
            pg.click("#confirm-staff")
            pg.wait_for_selector("#owner-error", timeout=30000)
            assert pg.inner_text("#owner-error") == (
                "Hiện không kiểm tra được hồ sơ. Vui lòng nhờ cán bộ tại quầy gửi kết quả "
                "qua bưu điện."
            )
            shoot(pg, "75-post-central-offline")
            pg.goto("/f/address")
            pg.wait_for_url("**/f/")
        finally:
            context.close()
        log = daemon.log_path.read_text(encoding="utf-8")
    assert number not in log and OTHER_NUMBER not in log
    rows = json.dumps([console.store.dossier(c) for c in (SOMEONE_ELSES, THEIRS)], default=str)
    assert number not in rows and OTHER_NUMBER not in rows and rows.count("owner_tag") == 2
    # Nor in any file the kiosk or central wrote (databases with their WAL, logs, keys).
    for f in [*(tmp_path / "kiosk").rglob("*"), *(tmp_path / "central").rglob("*")]:
        if f.is_file():
            assert number.encode() not in f.read_bytes(), f
