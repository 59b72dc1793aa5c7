"""Spoken guidance in headless Chromium against a simulated daemon whose speech writes WAV files
(espeak-ng, voice vi): entering a screen speaks it, "Nghe lại" and a long press on Help speak it
again, an error screen is spoken. Also collects what each screen says, for docs/web-ui.md's
table ("Spoken guidance"); written there only with KIOSK_UPDATE_SPEECH_TABLE=1."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests import pages as docs
from tests import web_ui_helpers as web
from tests.cards import qr_image
from tests.conftest import wait_for
from tests.test_card_sides import sides
from tests.test_web_ui_browser import _issue_copy_with_the_cli
from tests.test_web_ui_services import COPY, on_platen
from tests.web_ui_helpers import TECH_PIN, page_scene, running_kiosk

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
    # The simulated card reader (the chip of the card the camera read), as simulate.toml runs.
    extra = '\n[speech]\nadapter = "wav"\nfolder = "speech-out"\n[card_reader]\nadapter = "sim"\n'
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
    entered = time.monotonic()  # the screen's words are said after this, the throttle counts
    page.goto("/c/scan")  # from them
    next_wav(folder, before)
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
            scenes.show(DARK)

    return go


DARK = np.full((960, 1280, 3), 60, np.uint8)
# What a citizen typed or showed in the flows below: never in any spoken text.
POST_INPUT = {
    "#recipient": "Nguyễn Văn An",
    "#phone": "0912 345 678",
    "#ward": "Phường Tây Hồ",
    "#street": "Số 12 ngõ 34 Đường Âu Cơ",
}
CONTACT = "nguoidan@example.vn"


@functools.cache
def personal_data() -> list[str]:
    """The card's holder, the diploma's holder, the post address and contact: what must never
    be read aloud."""
    person = web.card()[1]
    diploma = docs.photographed(3, "diploma", size=docs.PREVIEW).doc.fields["name"]
    words = [person.name, person.name.upper(), person.id_number, diploma, diploma.upper()]
    words += [*POST_INPUT.values(), "0912", "345 678", "Âu Cơ", "Tây Hồ", CONTACT]
    words += [w for w in person.name.split() + diploma.split() if len(w) > 3]  # given names
    return words


# The screen's live guidance (kiosk.js poll()) has had its first answer, if it has any.
FIRST_POLL = """() => {
  const el = document.querySelector("main [data-poll]");
  if (!el) return true;
  const url = new URL(el.dataset.poll, location.href).href;
  return performance.getEntriesByType("resource").some((e) => e.name === url && e.responseEnd > 0);
}"""


class Table:
    """The rows of the table: each screen as the page shows it now, or a dialog as it was said
    (the text POSTed to /live/say)."""

    def __init__(self, pg) -> None:
        self.pg = pg
        self.rows: list[tuple[str, str, str]] = []
        self.said: list[str] = []
        pg.on("request", self._heard)

    def _heard(self, request) -> None:
        if request.url.endswith("/live/say") and request.method == "POST":
            self.said.append(json.loads(request.post_data or "{}").get("text", ""))

    def screen(self, label: str, vary: tuple[str, ...] = (), polled: bool = True) -> str:
        """`vary`: elements whose value differs at each run (a request code), written in the
        table as [code]. A screen with live guidance is read once its first poll has answered
        (`polled`), so the table says what a citizen hears, not the first instant's text."""
        pg = self.pg
        pg.wait_for_load_state()
        if polled:
            pg.wait_for_function(FIRST_POLL, timeout=15000)
            pg.wait_for_timeout(200)  # the answer shown
        endpoint = pg.evaluate("document.body.dataset.screen") or "(error page)"
        text = pg.evaluate("window.kioskSpeech.screenText()")
        assert text.startswith(web.headline(pg)), (label, text)  # the heading first
        assert 0 < len(text) <= 600, (label, text)
        self.check(label, text)
        for selector in vary:
            value = pg.inner_text(selector).strip()
            assert value and value in text, (label, selector, text)
            text = text.replace(value, "[code]")
        self.rows.append((endpoint, label, text))
        return text

    def dialog(self, label: str, dialog_id: str, before: int) -> str:
        """A dialog over the screen: what the page said when it opened (its heading)."""
        heading = self.pg.inner_text(f"#{dialog_id} h2").strip()
        said = wait_for(
            lambda: [t for t in self.said[before:] if t.rstrip(".") == heading] or None,
            timeout=10,
        )
        endpoint = self.pg.evaluate("document.body.dataset.screen")
        self.rows.append((f"{endpoint}` + `#{dialog_id}", label, said[0]))
        return said[0]

    @staticmethod
    def check(label: str, text: str) -> None:
        leaked = [w for w in personal_data() if w in text]
        assert not leaked, (label, leaked)  # nothing personal is ever read aloud


def _idle_warning(browser, daemon: web.Daemon, table: Table) -> None:
    """The idle warning, on a page whose clock is moved on to 20 s before the wipe (300 s)."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, base_url=daemon.base, locale="vi-VN"
    )
    try:
        pg = context.new_page()
        pg.clock.install()
        other = Table(pg)
        pg.goto("/a/")
        pg.wait_for_load_state()
        before = len(other.said)
        pg.clock.fast_forward(282_000)
        pg.wait_for_selector("#idle-warning:not([hidden])", timeout=10000)
        other.dialog("/a/, idle 282 s", "idle-warning", before)
        table.rows.extend(other.rows)
    finally:
        context.close()


def _flows(pg, daemon: web.Daemon, scenes: web.Scenes, table: Table, tmp: Path) -> None:
    """The flows driven by touch (as tests/test_layout_browser.py does) from where STEPS end."""
    at = table.screen
    # The cancel question over a flow screen.
    pg.goto("/b/")
    before = len(table.said)
    pg.click("#cancel-button")
    pg.wait_for_selector("#cancel-confirm:not([hidden])")
    table.dialog("/b/, “Hủy”", "cancel-confirm", before)
    pg.click("#cancel-no")

    # Help after the staff call.
    pg.goto("/help")
    pg.click("#call-staff")
    pg.wait_for_selector("text=Đã gọi nhân viên")
    at("/help, “Gọi nhân viên”")

    # B, a priority ticket.
    pg.goto("/b/")
    pg.click("#priority")
    pg.wait_for_url("**/b/priority")
    at("/b/, “Ưu tiên”")
    pg.click("#group-elderly")
    pg.wait_for_url("**/b/")
    at("/b/, priority: elderly")
    pg.click("#area-B")
    pg.wait_for_url("**/b/ticket")
    at("/b/, priority: elderly, area B")
    pg.click("#done")

    # F, results by post: the address, its errors, the confirmation, done.
    pg.goto("/f/")
    pg.check("#subject-copy")  # a dossier's result needs its owner identified first (central)
    pg.fill("#code", COPY)
    pg.click("#next")
    pg.wait_for_url("**/f/address")
    at("/f/, a copy's code")
    with pg.expect_navigation():
        pg.click("#next")
    at("/f/address, nothing filled in")
    for field, value in POST_INPUT.items():
        pg.fill(field, value)
    pg.select_option("#province", index=1)
    pg.click("#next")
    pg.wait_for_url("**/f/confirm")
    at("/f/address, filled in")
    pg.click("#send")
    pg.wait_for_url("**/f/done")
    at("/f/confirm, “Gửi”", vary=("#request-id",))
    pg.click("#done")

    # E, verify: a queue ticket's QR (not a copy), then a copy this kiosk issued.
    scenes.show(on_platen("KIOSK-QUEUE|TEST-UI|20260105|B001"))
    web.wait_new_frames(daemon)
    pg.goto("/e/")
    pg.wait_for_url("**/e/result", timeout=20000)
    at("/e/, a queue ticket's QR")
    pg.click("#done")
    issued = _issue_copy_with_the_cli(daemon, tmp)
    scenes.show(on_platen(issued["qr"]))
    web.wait_new_frames(daemon)
    pg.goto("/e/")
    pg.wait_for_url("**/e/result", timeout=20000)
    at("/e/, a copy issued here (development key)")
    pg.click("#done")
    scenes.show(DARK)

    # A, certified e-copy: collect, staff after a declined consent, pages, review, fee, slip.
    pg.goto("/a/")
    pg.click("#to-collect")
    pg.wait_for_url("**/a/collect")
    at("/a/, “Nhận bản sao”")
    pg.goto("/a/identify")
    scenes.show(web.card_scene())
    pg.wait_for_url("**/a/consent", timeout=20000)
    pg.click("#decline")
    pg.wait_for_url("**/a/staff")
    at("/a/consent, “Tôi không đồng ý”")
    scenes.show(DARK)  # the card taken away: the pages screen sees an empty platen
    web.wait_new_frames(daemon)
    pg.fill("#pin", TECH_PIN)
    pg.click("#confirm-staff")
    pg.wait_for_url("**/a/pages")
    at("/a/staff, staff confirmed")
    scenes.show(page_scene(3, "diploma"))  # in the name of someone else than the card's holder
    pg.wait_for_function(
        "() => document.getElementById('page-count').textContent === '1'", timeout=30000
    )
    scenes.show(DARK)
    at("/a/pages, one page taken")
    # The working screen stays while its poll does not get through (it retries every second).
    pg.route("**/a/working/poll", lambda route: route.abort())
    pg.click("#pages-done")
    pg.wait_for_url("**/a/working")
    at("/a/pages, “Xong, đọc các trang”", polled=False)
    pg.unroute("**/a/working/poll")
    pg.wait_for_url("**/a/review", timeout=60000)
    text = at("/a/working, pages read (a name that is not the card's)")
    assert "khác với họ tên trên thẻ" in text  # the name-mismatch warning is said
    pg.click("#confirm-review")
    pg.wait_for_url("**/a/fee")
    at("/a/review, “Đúng, tiếp tục”")
    pg.click("#simulate-paid")
    pg.wait_for_load_state()
    at("/a/fee, paid (simulated)")
    pg.fill("#contact", CONTACT)
    pg.route("**/a/working/poll", lambda route: route.abort())
    pg.click("#issue")
    pg.wait_for_url("**/a/working")
    at("/a/fee, “Gửi yêu cầu”", polled=False)
    pg.unroute("**/a/working/poll")
    pg.wait_for_url("**/a/slip", timeout=30000)
    at("/a/working, no certifying officer answers")
    pg.goto("/a/result")
    at("/a/result, after the slip")
    pg.goto("/a/expired")
    at("/a/expired")

    # The chip and the face check (after agreeing), with a 2024 card: the simulated reader has
    # its chip (tests/test_card_sides_browser.py).
    front, back = sides(seed=31)
    scenes.show(back)
    pg.goto("/a/identify")
    pg.wait_for_function(
        "() => document.getElementById('guidance').textContent.includes('Lật mặt trước')"
    )
    scenes.show(front)
    pg.wait_for_url("**/a/consent", timeout=20000)
    scenes.show(DARK)  # the card taken away: the face screen sees nobody yet
    web.wait_new_frames(daemon)
    pg.route("**/a/chip/poll", lambda route: route.abort())  # the chip screen stays
    pg.click("#agree")
    pg.wait_for_url("**/a/chip")
    at("/a/consent, “Tôi đồng ý”", polled=False)
    pg.unroute("**/a/chip/poll")
    pg.wait_for_url("**/a/face", timeout=20000)
    at("/a/chip, the chip read")
    pg.goto("/")

    # Out of service: the camera is gone.
    scenes.remove()
    try:
        wait_for(lambda: not daemon.get("/api/status")[1]["parts"]["camera"]["ok"], timeout=10)
        pg.goto("/e/")
        assert pg.locator("#out-of-service").count() == 1
        at("/e/, the camera gone")
    finally:
        scenes.show(DARK)
        wait_for(lambda: daemon.get("/api/status")[1]["parts"]["camera"]["ok"], timeout=10)


def test_what_each_screen_says(browser, page, speech_kiosk, tmp_path: Path) -> None:
    daemon, scenes, folder = speech_kiosk
    page.set_default_timeout(20000)
    table = Table(page)
    _idle_warning(browser, daemon, table)
    steps = [*STEPS[:4], ("/a/identify, a card shown", _consent(scenes)), *STEPS[4:]]
    for label, go in steps:
        go(page)
        before = len(wavs(folder))
        text = table.screen(label)
        assert "X." not in text.split()  # a typed value is never read
        page.click("#say-again")
        next_wav(folder, before)  # each screen's words reach the loudspeaker
    _flows(page, daemon, scenes, table, tmp_path)

    for _endpoint, label, text in table.rows:
        table.check(label, text)  # the dialogs too
    # 30 screens and the two dialogs, some in several states (errors, a page taken, paid).
    assert len({e for e, _, _ in table.rows}) == 32 and len(table.rows) == 44, table.rows
    lines = table_lines(table.rows)
    if os.environ.get("KIOSK_UPDATE_SPEECH_TABLE") == "1":
        write_table(lines)
    assert current_table() == lines, "docs/web-ui.md's speech table is out of date: run with " \
        "KIOSK_UPDATE_SPEECH_TABLE=1"  # fmt: skip


NOT_LISTED = (
    "Not listed: `ecopy.wait` and `dossier.status` (both need central: this kiosk has no fleet "
    "broker, so a request goes to the slip at once (edge/services/ecopy.py `wait_state`) and a "
    "dossier code gets the offline message; tests/test_web_ui_services.py drives the status "
    "against a broker), the technician and developer screens (staff only, not spoken on "
    "entering). [code]: the request's code, different at each run."
)


def table_lines(rows: list[tuple[str, str, str]]) -> list[str]:
    return [
        TABLE_START,
        "| screen (`data-screen`) | how it was reached | spoken on entering (Vietnamese session) |",
        "|---|---|---|",
        *(f"| `{e}` | {u} | {t.replace('|', '/')} |" for e, u, t in rows),
        "",
        NOT_LISTED,
        TABLE_END,
    ]


PATTERN = re.compile(re.escape(TABLE_START) + ".*?" + re.escape(TABLE_END), re.S)


def current_table() -> list[str]:
    found = PATTERN.search(DOC.read_text(encoding="utf-8"))
    assert found, "docs/web-ui.md has no speech table markers"
    return found.group(0).split("\n")


def write_table(lines: list[str]) -> None:
    text = DOC.read_text(encoding="utf-8")
    assert PATTERN.search(text), "docs/web-ui.md has no speech table markers"
    DOC.write_text(PATTERN.sub(lambda _: "\n".join(lines), text), encoding="utf-8")
