"""The identify screen with a 2024 "thẻ Căn cước" in headless Chromium: the back (QR) shown
first, the screen asks for the front (photo), then the consent screen; a child's card without a
portrait goes to staff."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.sim import make_scenes as ms
from tests import web_ui_helpers as web
from tests.test_card_sides import sides
from tests.web_ui_helpers import shoot

if not Path("/usr/bin/chromium").exists():
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)

browser = pytest.fixture(scope="module")(web.browser_session)
kiosk = pytest.fixture(scope="module")(web.kiosk_session)
page = pytest.fixture(web.kiosk_page)


def guidance_says(pg, text: str) -> None:
    pg.wait_for_function(
        "(t) => document.getElementById('guidance').textContent.includes(t)",
        arg=text,
        timeout=20000,
    )


def test_2024_card_back_first_asks_for_the_front_then_consent(page, kiosk) -> None:
    _, scenes = kiosk
    front, back = sides()
    scenes.show(np.full((960, 1280, 3), 60, np.uint8))
    page.goto("/a/")
    page.click("#begin")
    page.wait_for_url("**/a/identify")
    guidance_says(page, "Không tìm thấy thẻ căn cước")  # no card yet: either side will do
    scenes.show(back)
    guidance_says(page, "Lật mặt trước có ảnh")
    assert page.url.endswith("/a/identify")
    shoot(page, "11b-ecopy-identify-2024-front-needed")
    scenes.show(front)
    page.wait_for_url("**/a/consent", timeout=20000)
    assert "Ảnh khuôn mặt và đặc trưng khuôn mặt" in page.inner_text("#consent-text")


def test_2024_card_front_first_asks_for_the_back(page, kiosk) -> None:
    _, scenes = kiosk
    front, back = sides(seed=21)
    scenes.show(front)
    page.goto("/a/")
    page.click("#begin")
    page.wait_for_url("**/a/identify")
    guidance_says(page, "Lật mặt sau có mã QR")
    scenes.show(back)
    page.wait_for_url("**/a/consent", timeout=20000)


def test_a_childs_card_goes_to_staff(page, kiosk) -> None:
    _, scenes = kiosk
    front, back = sides(ms.SAMPLE_CHILD, face=None, seed=11)
    scenes.show(front)
    page.goto("/a/")
    page.click("#begin")
    page.wait_for_url("**/a/identify")
    guidance_says(page, "Lật mặt sau có mã QR")
    scenes.show(back)
    page.wait_for_url("**/a/staff", timeout=20000)
    assert page.inner_text("h1").strip() == "Thẻ không có ảnh"
    assert "Nhân viên sẽ đến xác minh danh tính cho bạn" in page.inner_text("main")
    shoot(page, "11c-ecopy-child-card-staff")


@pytest.fixture(scope="module")
def chip_kiosk(tmp_path_factory):
    """A kiosk with the simulated card reader, as the PC simulation runs (simulate.toml)."""
    root = tmp_path_factory.mktemp("chip-kiosk")
    with web.running_kiosk(root, extra='[card_reader]\nadapter = "sim"\n') as running:
        yield running


def test_2024_card_then_the_chip_then_the_face(browser, chip_kiosk) -> None:
    """With a card reader (the simulated one: the chip of the card the camera read, signed by
    the development CSCA), consent leads to the chip screen, and the chip read to the face."""
    daemon, scenes = chip_kiosk
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, base_url=daemon.base, locale="vi-VN"
    )
    page = context.new_page()
    front, back = sides(seed=31)
    seen: list[str] = []
    page.on("framenavigated", lambda frame: seen.append(frame.url))
    scenes.show(back)
    page.goto("/a/")
    page.click("#begin")
    page.wait_for_url("**/a/identify")
    guidance_says(page, "Lật mặt trước có ảnh")
    scenes.show(front)
    page.wait_for_url("**/a/consent", timeout=20000)
    page.click("#agree")
    page.wait_for_url("**/a/face", timeout=20000)
    assert any(url.endswith("/a/chip") for url in seen), seen
    assert seen.index(next(u for u in seen if u.endswith("/a/chip"))) < len(seen) - 1
    context.close()
