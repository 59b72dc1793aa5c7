"""Spoken guidance in headless Chromium against a simulated daemon whose speech writes WAV files
(espeak-ng, voice vi): entering a screen speaks it, "Nghe lại" and a long press on Help speak it
again, an error screen is spoken. Also collects what each screen says, for docs/web-ui.md's
table ("Spoken guidance"); written there only with KIOSK_UPDATE_SPEECH_TABLE=1."""

from __future__ import annotations

import os
import re
import shutil
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests import web_ui_helpers as web
from tests.cards import qr_image
from tests.conftest import wait_for
from tests.web_ui_helpers import running_kiosk

if not Path("/usr/bin/chromium").exists():
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)
if shutil.which("espeak-ng") is None:
    pytest.skip("espeak-ng is not installed", allow_module_level=True)

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "web-ui.md"
TABLE_START = "<!-- speech-table: written by tests/test_speech_browser.py -->"
TABLE_END = "<!-- /speech-table -->"

browser = pytest.fixture(scope="module")(web.browser_session)
page = pytest.fixture(web.kiosk_page)


@pytest.fixture(scope="module")
def speech_kiosk(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[web.Daemon, web.Scenes, Path]]:
    root = tmp_path_factory.mktemp("speech-kiosk")
    extra = '\n[speech]\nadapter = "wav"\nfolder = "speech-out"\n'
    with running_kiosk(root, extra=extra) as (daemon, scenes):
        yield daemon, scenes, root / "speech-out"


@pytest.fixture(scope="module")
def kiosk(speech_kiosk) -> tuple[web.Daemon, Path]:
    """What the shared `page` fixture wants (daemon first); the folder the WAVs go to."""
    return speech_kiosk[0], speech_kiosk[2]


def wavs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.wav")) if folder.exists() else []


def seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as f:
        return f.getnframes() / f.getframerate()


def next_wav(folder: Path, before: int) -> Path:
    """The WAV the last action produced (the daemon speaks it within a moment)."""
    files = wait_for(lambda: wavs(folder)[before:] or None, timeout=10)
    return files[-1]


def test_entering_a_screen_speaks_it_and_it_can_be_heard_again(page, kiosk) -> None:
    _, folder = kiosk
    before = len(wavs(folder))
    page.goto("/")
    said = page.evaluate("window.kioskSpeech.screenText()")
    assert said.startswith("Xin chào! Bạn cần làm gì?")
    start = next_wav(folder, before)
    assert start.name.endswith("-vi.wav") and seconds(start) > 1.0

    # "Nghe lại" in the header bar says it again.
    assert page.inner_text("#say-again").strip() == "Nghe lại"
    before = len(wavs(folder))
    page.click("#say-again")
    again = next_wav(folder, before)
    assert abs(seconds(again) - seconds(start)) < 0.05  # the same words

    # Holding the on-screen Help button for a second says it again and stays on the screen.
    before = len(wavs(folder))
    box = page.locator("#help-button").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.wait_for_timeout(1300)
    page.mouse.up()
    next_wav(folder, before)
    page.wait_for_timeout(300)
    assert page.evaluate("document.body.dataset.screen") == "home.index"

    # Personal data and typed values are never read, whatever their class.
    page.evaluate(
        """() => {
        const main = document.getElementById("main");
        main.insertAdjacentHTML("beforeend",
          '<p class="lead" data-nosay>NGUYỄN VĂN AN</p>' +
          '<div class="personal"><p class="lead">079099123456</p></div>' +
          '<input class="lead" value="Số 12 Hàng Bạc"><p class="lead">Đã thêm.</p>');
    }"""
    )
    text = page.evaluate("window.kioskSpeech.screenText()")
    assert text.endswith("Đã thêm.")
    assert "NGUYỄN" not in text and "079099" not in text and "Hàng Bạc" not in text

    # An error screen is spoken too.
    before = len(wavs(folder))
    page.goto("/no-such-screen")
    assert page.evaluate("window.kioskSpeech.screenText()") == "Trang này không tồn tại."
    error = next_wav(folder, before)
    assert 0.5 < seconds(error) < seconds(start)


def test_live_guidance_is_said_when_it_changes_not_more_often_than_every_3_s(
    page, speech_kiosk
) -> None:
    _, scenes, folder = speech_kiosk
    before = len(wavs(folder))
    page.goto("/c/scan")
    next_wav(folder, before)
    entered = time.monotonic()
    waiting = page.inner_text(".guidance")
    # A QR that is no dossier code: the scan screen's guidance changes and stays on the screen.
    scene = np.full((960, 1280, 3), 255, np.uint8)
    scene[280:680, 440:840] = np.asarray(qr_image("not a dossier code", 400))
    scenes.show(scene)
    try:
        wait_for(lambda: page.inner_text(".guidance") != waiting, timeout=10)
        count = len(wavs(folder))
        said = next_wav(folder, count)
        assert time.monotonic() - entered >= 2.9  # the throttle after the screen's own words
        assert said.name.endswith("-vi.wav")
        page.wait_for_timeout(3500)  # the same message again and again is not said again
        assert len(wavs(folder)) == count + 1
        assert page.evaluate("document.body.dataset.screen") == "dossier.scan"
    finally:
        scenes.show(np.full((960, 1280, 3), 60, np.uint8))


# Screens a citizen can open from the start screen, and a few steps into the flows that need no
# card or document in front of the camera: (what the table calls it, how to get there).
def _goto(url: str):
    return lambda pg: pg.goto(url)


def _submit(url: str, field: str, value: str, button: str):
    def go(pg) -> None:
        pg.goto(url)
        pg.fill(field, value)
        with pg.expect_navigation():
            pg.click(button)

    return go


def _click(url: str, target: str):
    def go(pg) -> None:
        pg.goto(url)
        with pg.expect_navigation():
            pg.click(target)

    return go


STEPS = [
    ("/", _goto("/")),
    ("/help", _goto("/help")),
    ("/a/", _goto("/a/")),
    ("/a/identify", _goto("/a/identify")),
    ("/b/", _goto("/b/")),
    ("/b/, area A", _click("/b/", "#area-A")),
    ("/c/", _goto("/c/")),
    ("/c/, code \"X\"", _submit("/c/", "#code", "X", "#look-up")),
    ("/c/scan", _goto("/c/scan")),
    ("/d/", _goto("/d/")),
    ("/d/, search \"khai sinh\"", _submit("/d/", "#q", "khai sinh", "#search")),
    ("/d/, search \"zzqqxx\"", _submit("/d/", "#q", "zzqqxx", "#search")),
    ("/d/, first result", lambda pg: (_submit("/d/", "#q", "khai sinh", "#search")(pg),
                                       pg.click("#results a"), pg.wait_for_load_state())),
    ("/e/", _goto("/e/")),
    ("/f/", _goto("/f/")),
    ("/no-such-screen", _goto("/no-such-screen")),
]  # fmt: skip


def _consent(scenes: web.Scenes):
    """The card under the camera on the identify screen: the consent screen follows."""

    def go(pg) -> None:
        pg.goto("/a/identify")
        scenes.show(web.card_scene())
        try:
            pg.wait_for_url("**/a/consent", timeout=20000)
        finally:
            scenes.show(np.full((960, 1280, 3), 60, np.uint8))

    return go


def test_what_each_screen_says(page, speech_kiosk) -> None:
    _, scenes, folder = speech_kiosk
    rows = []
    steps = [*STEPS[:4], ("/a/identify, a card shown", _consent(scenes)), *STEPS[4:]]
    for label, go in steps:
        go(page)
        before = len(wavs(folder))
        endpoint = page.evaluate("document.body.dataset.screen") or "(error page)"
        text = page.evaluate("window.kioskSpeech.screenText()")
        heading = page.inner_text("h1").strip()
        assert text.startswith(heading), (label, text)
        assert len(text) <= 600 and "X." not in text.split()  # a typed value is never read
        rows.append((endpoint, label, text))
        page.click("#say-again")
        next_wav(folder, before)  # each screen's words reach the loudspeaker
    if os.environ.get("KIOSK_UPDATE_SPEECH_TABLE") == "1":
        write_table(rows)


def write_table(rows: list[tuple[str, str, str]]) -> None:
    lines = [
        TABLE_START,
        "| screen (`data-screen`) | how it was reached | spoken on entering (Vietnamese session) |",
        "|---|---|---|",
        *(f"| `{e}` | {u} | {t.replace('|', '/')} |" for e, u, t in rows),
        TABLE_END,
    ]
    text = DOC.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(TABLE_START) + ".*?" + re.escape(TABLE_END), re.S)
    assert pattern.search(text), "docs/web-ui.md has no speech table markers"
    DOC.write_text(pattern.sub("\n".join(lines), text), encoding="utf-8")
