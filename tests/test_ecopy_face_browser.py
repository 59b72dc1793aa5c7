"""The face step on screen (issue 17), in headless Chromium against a simulated daemon: a card
still under the camera is told to go, a face that does not match shows its reason with the
countdown to the next try, the liveness challenge shows its countdown, and after the last try
staff are called (help.requested) and the screen waits for them without an idle wipe."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests import web_ui_helpers as web
from tests.test_face import load
from tests.web_ui_helpers import card_scene, headline, shoot

if not Path("/usr/bin/chromium").exists():
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)

browser = pytest.fixture(scope="module")(web.browser_session)
kiosk = pytest.fixture(scope="module")(web.kiosk_session)
page = pytest.fixture(web.kiosk_page)


def guidance_has(pg, pattern: str, timeout: int = 30000) -> None:
    pg.wait_for_function(
        "(p) => new RegExp(p).test(document.getElementById('guidance').textContent)",
        arg=pattern,
        timeout=timeout,
    )


def to_face_step(pg, scenes) -> None:
    scenes.show(card_scene())
    pg.goto("/a/")
    pg.click("#begin")
    pg.wait_for_url("**/a/consent", timeout=30000)
    pg.click("#agree")
    pg.wait_for_url("**/a/face")


def test_reason_and_countdowns_on_the_face_screen(page, kiosk) -> None:
    _, scenes = kiosk
    to_face_step(page, scenes)
    # The card is still under the camera: told to put it away, no try used.
    guidance_has(page, "Cất thẻ đi, nhìn vào camera")
    assert page.locator("#countdown").is_hidden()
    # Someone else: the reason, the tries left and the seconds to the next try, shown large.
    scenes.show(load("biden.jpg"))
    guidance_has(page, "Khuôn mặt không khớp với ảnh trên thẻ")
    assert "còn 2 lần thử" in page.inner_text("#guidance")
    assert page.locator("#countdown").is_visible()
    assert 1 <= int(page.inner_text("#countdown-n")) <= 3
    shoot(page, "13b-ecopy-face-reason")
    # The card holder: the liveness challenge with its countdown (12 s in the test config).
    scenes.show(load("obama2.jpg"))
    guidance_has(page, "quay đầu|chớp mắt")
    page.wait_for_function("() => !document.getElementById('countdown').hidden")
    count = int(page.inner_text("#countdown-n"))
    assert 1 <= count <= 12
    assert "big" in page.get_attribute("#guidance", "class")
    assert (
        page.evaluate(
            "parseFloat(getComputedStyle(document.getElementById('countdown-n')).fontSize)"
        )
        >= 56
    )
    shoot(page, "13c-ecopy-liveness-countdown")
    page.wait_for_function(  # it goes down while the citizen acts
        "(c) => parseInt(document.getElementById('countdown-n').textContent) < c",
        arg=count,
        timeout=15000,
    )


def test_after_the_last_try_staff_are_called_and_the_screen_waits(page, kiosk) -> None:
    daemon, scenes = kiosk
    to_face_step(page, scenes)
    for name in ("biden.jpg", "grace_hopper.jpg", "astronaut.jpg"):
        scenes.show(load(name))
        if name != "astronaut.jpg":
            guidance_has(page, "Khuôn mặt không khớp")
            page.wait_for_function(  # the wait before the next try is over
                "() => document.getElementById('countdown').hidden || "
                "parseInt(document.getElementById('countdown-n').textContent) <= 1",
                timeout=10000,
            )
            page.wait_for_timeout(1200)
    page.wait_for_url(re.compile(r"/a/staff$"), timeout=30000)
    assert headline(page) == "Chưa xác minh được khuôn mặt"
    assert page.inner_text("#staff-called") == "Đã gọi nhân viên. Vui lòng ở lại ki-ốt."
    assert page.get_attribute("body", "data-idle-free") == "true"  # no idle wipe here
    events = daemon.get("/api/status")[1]["recent_events"]
    called = [e for e in events if e["kind"] == "help.requested" and e["source"] == "identity"]
    assert called and called[-1]["reason"] == "no_match"
    assert set(called[-1]) <= {
        "id",
        "kind",
        "source",
        "at",
        "severity",
        "reason",
        "tries",
        "screen",
    }
    shoot(page, "19b-ecopy-staff-called")
    page.click("#cancel-button")  # the citizen may leave at any time
    page.click("#cancel-yes")
    page.wait_for_url(re.compile(r"/$"))
