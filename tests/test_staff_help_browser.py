"""Staff help in headless Chromium, on a kiosk of its own with a short idle timeout (5 s): holding
Cancel on a flow screen calls staff once (help.requested, reason long_press, the screen); the
help screen then waits past the idle timeout without wiping anything; a member of staff answers
on the technician screen (a second browser) and the citizen's screen says so, then returns to
the flow screen it came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import web_ui_helpers as web
from tests.conftest import wait_for
from tests.web_ui_helpers import TECH_PIN, headline, press, running_kiosk, wait_buttons

if not Path("/usr/bin/chromium").exists():
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)

browser = pytest.fixture(scope="module")(web.browser_session)


def calls(daemon) -> list[dict]:
    events = daemon.get("/api/status")[1]["recent_events"]
    return [e for e in events if e["kind"] == "help.requested"]


def test_held_cancel_calls_staff_the_wait_never_idles_and_the_answer_moves_it_on(
    browser, tmp_path: Path
) -> None:
    with running_kiosk(tmp_path, idle_s=5, warn_s=3) as (daemon, _scenes):
        size = {"width": 1280, "height": 800}
        citizen = browser.new_context(viewport=size, base_url=daemon.base, locale="vi-VN")
        pg = citizen.new_page()
        pg.goto("/d/")  # the procedure guide's search screen
        wait_buttons(pg)
        press(daemon, "cancel", hold_s=1.2)  # held past long_press_s (0.5 s in tests)
        pg.wait_for_selector("#staff-called", timeout=10000)
        assert headline(pg) == "Đã gọi nhân viên" and pg.url.endswith("/help")
        (call,) = wait_for(lambda: calls(daemon), timeout=5)
        assert (call["source"], call["screen"], call["reason"]) == (
            "ui",
            "guide.start",
            "long_press",
        )

        # Longer than the idle timeout and the server's sweep (5 s + 5 s grace): nothing goes.
        pg.wait_for_timeout(12000)
        assert pg.url.endswith("/help") and pg.is_hidden("#idle-warning")
        assert pg.get_attribute("body", "data-idle-free") == "true"
        assert pg.inner_text("#staff-called") == "Đã gọi nhân viên. Vui lòng ở lại ki-ốt."

        # A member of staff answers on the technician screen.
        staff = browser.new_context(viewport=size, base_url=daemon.base, locale="vi-VN")
        sp = staff.new_page()
        sp.goto("/technician/")
        sp.fill("#pin", TECH_PIN)
        sp.click("#login")
        sp.wait_for_url("**/technician/panel")
        assert sp.get_attribute(f'tr[data-call="{call["call"]}"]', "data-state") == "open"
        sp.click(f"#answer-{call['call']}")
        sp.wait_for_selector("#answered-notice")
        staff.close()

        # The citizen's screen says staff are coming, then goes back to the guide's search.
        pg.wait_for_function(
            "() => document.getElementById('staff-called').textContent"
            ".includes('Nhân viên đã nhận yêu cầu')",
            timeout=10000,
        )
        pg.wait_for_url("**/d/", timeout=15000)
        assert headline(pg) != "Đã gọi nhân viên"
        assert len(calls(daemon)) == 1  # polls and reloads posted no second call
        answered = daemon.get("/api/status")[1]["recent_events"]
        assert [e["call"] for e in answered if e["kind"] == "help.answered"] == [call["call"]]
        citizen.close()
