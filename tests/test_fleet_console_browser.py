"""The console in headless Chromium (Playwright): login, the fleet at a glance, a kiosk's
page with its 24 h charts, and a command signed, sent to a real kiosk client and answered.
Screenshots go to docs/screens/fleet-*.png with --update-screens (conftest's `screens`)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.console import Console, build_console
from fleet.operators import create_operator
from fleet.web import create_app
from tests.browser import chromium
from tests.fleet_console_helpers import SimKiosk
from tests.mqtt_broker import Broker, FleetPki, wait_until
from tests.test_fleet_console import RealKiosk, console_config
from web_ui.server import WebServer

pytest.importorskip("playwright.sync_api")

OPERATOR, PASSWORD = "le.thi.hoa", "mật-khẩu-dài-2"


@pytest.fixture
def site(tmp_path: Path, broker: Broker, fleet_pki: FleetPki) -> Iterator[dict]:
    """A console with its web server, a simulated fleet with 24 h of history, a real kiosk."""
    from cryptography import x509

    from fleet.config import ProvisioningSection
    from provisioning.ca import CertificateAuthority

    ca_dir = tmp_path / "ca"  # the test fleet CA, kept the way kiosk-ca keeps it
    CertificateAuthority.adopt(
        ca_dir, fleet_pki._ca_key, x509.load_pem_x509_certificate(fleet_pki.ca_file.read_bytes())
    )
    service = fleet_pki.client("fleet-provisioning")
    config = console_config(tmp_path, broker, fleet_pki, offline_after_s=1.0)
    config = config.model_copy(
        update={
            "provisioning": ProvisioningSection(
                ca_dir=ca_dir,
                secrets_key_file=tmp_path / "claims.key",
                cert_file=service.cert,
                key_file=service.key,
            )
        }
    )
    console: Console = build_console(config)
    console.start()
    assert console.ingest.wait_connected(10)
    public = create_operator(console.store, OPERATOR, "Lê Thị Hoa", PASSWORD)
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / f"{OPERATOR}.pem").write_text(public)
    web = WebServer(create_app(console), host="127.0.0.1", port=0)
    web.start()
    sims: list[SimKiosk] = []
    real = RealKiosk(tmp_path / "kiosks", broker, fleet_pki, "HN-TAYHO-01", trust_dir=trust)
    try:
        now = time.time()
        plan = [
            ("HN-TAYHO-02", {}),
            ("HN-TAYHO-03", {"paper": "near-end"}),
            ("HN-QUANGAN-01", {"paper": "out"}),
            ("HN-QUANGAN-02", {"cpu": 83.0}),
            ("HN-BADINH-01", {"disk_pct": 94.0}),
            ("HN-BADINH-02", {}),
        ]
        for kiosk_id, last in plan:
            sim = SimKiosk(broker, fleet_pki.client(kiosk_id)).start()
            sims.append(sim)
            for i in range(48):  # a sample every 30 min over the last day, via the broker
                at = now - 86400 + i * 1800
                sim.telemetry(
                    cpu=55 + 12 * math.sin(i / 48 * 2 * math.pi) + (i % 5),
                    disk_pct=40 + i / 4,
                    outbox=max(0, 6 - abs(i - 30)),
                    wait=False,
                    at=at,
                )
            sim.telemetry(**last)
            if "paper" in last:
                sim.event(f"printer.paper_{last['paper'].replace('-', '_')}", "warning", {})
        sims[-1].drop()  # HN-BADINH-02 loses power
        wait_until(lambda: len(console.store.kiosks()) == 7, 15, "fleet seen")
        wait_until(
            lambda: (
                {a["rule"] for a in console.store.open_alerts()}
                >= {"offline", "paper_out", "paper_near_end", "cpu_temp", "disk"}
            ),
            15,
            "alerts raised",
        )
        yield {"console": console, "url": f"http://127.0.0.1:{web.port}", "real": real}
    finally:
        for sim in sims:
            sim.close()
        real.close()
        web.stop()
        console.stop()


def test_login_dashboard_kiosk_page_and_a_command_in_chromium(site: dict, screens: Path) -> None:
    url = site["url"]
    console: Console = site["console"]
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1360, "height": 820}, locale="vi-VN")
        page.goto(f"{url}/")
        assert page.url.startswith(f"{url}/login")  # not logged in: sent to the login
        page.fill("#operator", OPERATOR)
        page.fill("#password", "sai mật khẩu")
        page.click("#login")
        assert "Sai tên đăng nhập hoặc mật khẩu" in page.inner_text("#login-error")
        page.screenshot(path=str(screens / "fleet-login.png"))
        page.fill("#operator", OPERATOR)
        page.fill("#password", PASSWORD)
        page.click("#login")
        page.wait_for_selector("#kiosks")
        rows = page.locator("#kiosks tbody tr")
        assert rows.count() == 7
        assert "Lê Thị Hoa" in page.inner_text("#operator")
        assert page.inner_text("#count-offline").startswith("1")
        offline = page.locator('tr[data-kiosk="HN-BADINH-02"]')
        assert "Mất kết nối" in offline.locator("td.state").inner_text()
        assert offline.locator('.tag[data-rule="offline"]').count() == 1
        assert "Hết" in page.locator('tr[data-kiosk="HN-QUANGAN-01"] td.paper').inner_text()
        page.screenshot(path=str(screens / "fleet-dashboard.png"), full_page=True)

        # Sorted by temperature, hottest first; filtered to one site.
        page.click("th >> text=CPU °C")
        assert page.locator("#kiosks tbody tr").first.get_attribute("data-kiosk") == (
            "HN-QUANGAN-02"
        )
        page.select_option("#site-filter", "HN-QUANGAN")
        page.click("#apply-filter")
        kept = page.locator("#kiosks tbody tr")
        assert sorted(kept.nth(i).get_attribute("data-kiosk") for i in range(kept.count())) == [
            "HN-QUANGAN-01",
            "HN-QUANGAN-02",
        ]

        # A kiosk's page: the charts are inline SVG with a line over the day.
        page.goto(f"{url}/kiosks/HN-TAYHO-03")
        assert page.locator("svg.chart").count() == 3
        assert page.locator("svg.chart polyline").count() >= 3
        assert "Sắp hết giấy in" in page.inner_text(".alerts-box")
        page.screenshot(path=str(screens / "fleet-kiosk.png"), full_page=True)

        # A command to the real kiosk, signed with this operator's key, and its result.
        page.goto(f"{url}/kiosks/HN-TAYHO-01")
        page.select_option("#command-name", "lock")
        page.click("#send-command")
        page.wait_for_selector(".flash.ok")
        wait_until(
            lambda: any(c["status"] == "ok" for c in console.store.commands()),
            10,
            "lock result",
        )
        page.goto(f"{url}/commands")
        row = page.locator("#command-log tbody tr").first
        assert "Thành công" in row.inner_text() and OPERATOR in row.inner_text()
        assert site["real"].locked
        page.screenshot(path=str(screens / "fleet-commands.png"), full_page=True)

        # A claim token for a new kiosk, shown once.
        page.goto(f"{url}/provisioning")
        page.fill("#kiosk_id", "HN-TAYHO-08")
        page.fill("#site", "Phường Tây Hồ")
        page.click("#make-token")
        shown = page.inner_text("#claim-token")
        assert re.search(r"c[a-z2-7]{12}\.[a-z2-7]{32}", shown), shown
        assert "HN-TAYHO-08" in page.inner_text("#claims")
        page.screenshot(path=str(screens / "fleet-provisioning.png"), full_page=True)
