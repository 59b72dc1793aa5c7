"""Staff help that works and named staff accounts (issue 18 points 2 and 3), against a real
kiosk in this process (edge.app.App, its Flask app through LoopbackClient, its store): every
"staff are coming" path posts help.requested exactly once with the screen and a reason code;
the technician screen answers a call and the citizen's screen hears it; Help's way back
resumes the flow; PIN lockouts per place and per account, kept in the store across a restart;
unknown names answered as real ones; roles."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import pytest

from edge.app import App
from edge.errors import BadInput
from edge.store import Store
from edge.store.staff import StaffAccounts, recent
from tests.web_ui_helpers import TECH_PIN, LoopbackClient, card_scene, in_process_kiosk
from web_ui.pin import PinGate

ANA, ANA_PIN = "ana.tran", "112233"  # a staff account
BINH, BINH_PIN = "binh.le", "445566"  # a technician account


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("staffhelp")


@pytest.fixture(scope="module")
def app(root: Path) -> Iterator[App]:
    with in_process_kiosk(root) as kiosk:
        staff = StaffAccounts(kiosk.store)
        staff.add(ANA, ANA_PIN, role="staff")
        staff.add(BINH, BINH_PIN, role="technician")
        yield kiosk


def unlock_all(app: App) -> None:
    """Every PIN counter back to zero (as after the lock period)."""
    with app.store.transaction() as conn:
        conn.execute("DELETE FROM kv WHERE key LIKE 'ui.pin.%' OR key LIKE 'ui.technician.%'")


class Person:
    """One browser: its cookies (session) and the form token of the last page it saw."""

    def __init__(self, app: App) -> None:
        flask_app = app.web.app
        flask_app.config["TESTING"] = False  # CSRF on, as in service
        self.client = LoopbackClient(flask_app, flask_app.response_class, use_cookies=True)
        self.token = ""

    def get(self, path: str) -> Any:
        response = self.client.get(path)
        found = re.search(r'name="csrf-token" content="([^"]+)"', response.get_data(as_text=True))
        if found:
            self.token = found.group(1)
        return response

    def post(self, path: str, **fields: str) -> Any:
        return self.client.post(path, data={"csrf_token": self.token, **fields})

    def poll(self, path: str) -> dict[str, Any]:
        response = self.client.post(path, headers={"X-CSRFToken": self.token})
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        return response.get_json()


def back_link(page: str) -> str:
    return re.search(r'href="([^"]*)" id="help-back"', page).group(1)


def helps(app: App, since: float) -> list[Any]:
    app.bus.drain()
    return [e for e in app.bus.recent("help.requested") if e.at >= since]


def kinds(app: App, kind: str, since: float) -> list[Any]:
    app.bus.drain()
    return [e for e in app.bus.recent(kind) if e.at >= since]


def signed_in(app: App, pin: str, name: str = "") -> Person:
    staff = Person(app)
    staff.get("/technician/")
    answer = staff.post("/technician/", name=name, pin=pin)
    assert answer.status_code == 302 and answer.location.endswith("/technician/panel"), (
        answer.get_data(as_text=True)[:400]
    )
    staff.get("/technician/panel")
    return staff


def show(root: Path, image: Any) -> None:
    tmp = root / "scene.tmp.jpg"  # outside the folder the camera plays, then renamed in
    cv2.imwrite(str(tmp), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    tmp.replace(root / "scenes" / "scene.jpg")


def at_staff_screen(app: App, root: Path) -> Person:
    """A citizen whose card was read and who declined the face check: the staff screen."""
    citizen = Person(app)
    show(root, card_scene())
    citizen.get("/a/identify")
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        answer = citizen.poll("/a/identify/poll")
        if answer.get("next", "").endswith("/a/consent"):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the card was not read")
    assert citizen.get("/a/consent").status_code == 200
    declined = citizen.post("/a/consent/no")
    assert declined.status_code == 302 and declined.location.endswith("/a/staff")
    assert citizen.get("/a/staff").status_code == 200
    return citizen


# --- help.requested: once per path, with the screen and a reason ----------------------------


def test_the_help_button_calls_staff_once_with_the_screen_and_goes_back_to_it(app: App) -> None:
    since = time.time()
    citizen = Person(app)
    assert citizen.get("/d/").status_code == 200  # a flow screen
    page = citizen.get("/help").get_data(as_text=True)
    assert back_link(page) == "/d/" and "Quay lại" in page
    called = citizen.post("/help", reason="help_button")
    assert called.status_code == 302 and called.location.endswith("/help")  # reload-safe GET
    assert citizen.post("/help", reason="help_button").status_code == 302  # pressed again
    page = citizen.get("/help").get_data(as_text=True)  # and reloaded
    assert "Đã gọi nhân viên" in page and 'data-idle-free="true"' in page
    (event,) = helps(app, since)
    assert event.source == "ui"
    call = event.detail["call"]
    assert event.detail == {
        "severity": "info", "call": call, "screen": "guide.start", "reason": "help_button"
    }  # fmt: skip
    # Its poll waits (and keeps the session) while no one has answered.
    assert citizen.poll("/help/poll")["message"] == "Đã gọi nhân viên. Vui lòng ở lại ki-ốt."
    # A member of staff answers on the technician screen: audited, central hears it.
    staff = signed_in(app, ANA_PIN, ANA)
    panel = staff.get("/technician/panel").get_data(as_text=True)
    assert f'data-call="{call}" data-state="open"' in panel and "<td>guide.start</td>" in panel
    assert "bấm “Gọi nhân viên”" in panel
    assert staff.post(f"/technician/calls/{call}/answer").status_code == 302
    assert 'id="answered-notice" data-state="answered"' in staff.get("/technician/panel").text
    (answered,) = kinds(app, "help.answered", since)
    assert answered.detail["call"] == call and answered.detail["by"] == "staff"
    assert ANA not in repr(answered.detail)  # central learns "staff", the audit the name
    last = recent(app.store, limit=1)[0]
    assert (last["actor"], last["action"], last["subject"]) == (ANA, "help.answered", call)
    # The citizen's screen says so, then returns to where the citizen was.
    told = citizen.poll("/help/poll")
    assert told["message"] == "Nhân viên đã nhận yêu cầu và đang đến chỗ bạn." and told["answered"]
    assert citizen.poll("/help/poll")["next"] == "/d/"
    # Answering twice changes nothing; a new press is a new call.
    assert staff.post(f"/technician/calls/{call}/answer").status_code == 302
    assert len(kinds(app, "help.answered", since)) == 1
    citizen.get("/help")
    citizen.post("/help")
    assert len(helps(app, since)) == 2


def test_holding_cancel_calls_staff_with_its_reason_and_cancel_closes_the_call(app: App) -> None:
    """What the page posts when the daemon reports a long press (kiosk.js callStaff)."""
    since = time.time()
    citizen = Person(app)
    citizen.get("/c/")
    citizen.post("/help", reason="long_press")
    citizen.post("/help", reason="long_press")
    (event,) = helps(app, since)
    assert (event.detail["screen"], event.detail["reason"]) == ("dossier.start", "long_press")
    assert citizen.post("/help", reason="<script>").status_code == 302
    assert len(helps(app, since)) == 1  # still just one call
    citizen.post("/help/cancel")  # "Tôi không cần nhân viên nữa"
    (cancelled,) = kinds(app, "help.cancelled", since)
    assert cancelled.detail["call"] == event.detail["call"]
    page = citizen.get("/help").get_data(as_text=True)
    assert 'id="call-staff"' in page and 'data-idle-free="false"' in page
    staff = signed_in(app, TECH_PIN)
    assert f'data-call="{event.detail["call"]}" data-state="cancelled"' in staff.get(
        "/technician/panel"
    ).get_data(as_text=True)
    # A reason the page did not send is not passed on as one.
    citizen.post("/help", reason="x" * 500)
    assert helps(app, since)[-1].detail["reason"] == "help_button"
    citizen.post("/cancel")  # the citizen's Cancel ends the visit and its call
    assert len(kinds(app, "help.cancelled", since)) == 2


def test_the_identity_step_calls_once_and_the_staff_screen_hears_the_answer(
    app: App, root: Path
) -> None:
    unlock_all(app)
    since = time.time()
    citizen = at_staff_screen(app, root)
    for _ in range(3):  # shown, reloaded, polled: no second call
        assert citizen.get("/a/staff").status_code == 200
        assert citizen.poll("/a/staff/poll")["message"] == "Đã gọi nhân viên. Vui lòng ở lại ki-ốt."
    (event,) = helps(app, since)
    assert event.source == "identity"
    assert (event.detail["screen"], event.detail["reason"]) == ("ecopy.staff", "consent_declined")
    assert set(event.detail) == {"severity", "screen", "reason"}  # no personal data
    staff = signed_in(app, TECH_PIN)
    panel = staff.get("/technician/panel").get_data(as_text=True)
    call = f"e{event.id}"
    assert f'data-call="{call}" data-state="open"' in panel
    assert "kiểm tra danh tính" in panel and "không đồng ý kiểm tra khuôn mặt" in panel
    staff.post(f"/technician/calls/{call}/answer")
    answer = citizen.poll("/a/staff/poll")
    assert answer["answered"] and answer["message"].startswith("Nhân viên đã nhận yêu cầu")
    assert "đang đến kiểm tra thẻ" in citizen.get("/a/staff").get_data(as_text=True)
    # The staff member then confirms the identity at the citizen's screen with their own name.
    citizen.get("/a/staff")
    done = citizen.post("/a/staff", name=ANA, pin=ANA_PIN)
    assert done.status_code == 302 and done.location.endswith("/a/pages")
    last = recent(app.store, limit=1)[0]
    assert (last["actor"], last["action"]) == (ANA, "identity.confirmed")
    citizen.post("/cancel")


def test_a_refusal_offers_the_services_that_need_no_personal_data(app: App, root: Path) -> None:
    """Law 91/2025 consent refused: staff are called, and the screen also offers the start, where
    the guide and a ticket need no personal data; going there ends the e-copy and its data."""
    unlock_all(app)
    consents_before = app.store.query("SELECT COUNT(*) FROM consents")[0][0]
    citizen = at_staff_screen(app, root)
    page = citizen.get("/a/staff").get_data(as_text=True)
    assert 'id="no-data-services"' in page and "hướng dẫn thủ tục và lấy số thứ tự" in page
    assert re.search(r'<a class="btn" href="/" id="declined-home">Về màn hình đầu', page)
    assert app.store.query("SELECT COUNT(*) FROM consents")[0][0] == consents_before
    assert citizen.get("/").status_code == 200  # the start: the e-copy and its card data end
    assert citizen.get("/a/staff").status_code == 302  # nothing left to confirm
    assert citizen.get("/d/").status_code == 200 and citizen.get("/b/").status_code == 200


def test_help_from_a_flow_screen_comes_back_to_it_without_losing_the_flow(
    app: App, root: Path
) -> None:
    unlock_all(app)
    since = time.time()
    citizen = at_staff_screen(app, root)
    page = citizen.get("/help").get_data(as_text=True)
    assert back_link(page) == "/a/staff"
    # Staff are already called for this citizen: Help shows that call, "Gọi nhân viên" adds none.
    assert "Đã gọi nhân viên" in page and 'id="call-staff"' not in page
    citizen.post("/help")
    assert [e.source for e in helps(app, since)] == ["identity"]
    # Back: the same screen, same identity session (the declined consent is still there).
    back = citizen.get("/a/staff")
    assert back.status_code == 200
    assert "Bạn đã không đồng ý kiểm tra khuôn mặt" in back.get_data(as_text=True)
    citizen.post("/cancel")
    # Not a way out of the kiosk: only the app's own screens are gone back to.
    stranger = Person(app)
    stranger.get("/help")
    assert back_link(stranger.get("/help").get_data(as_text=True)) == "/"


# --- PIN lockouts: per place, per account, unknown names, across a restart --------------------


def test_five_wrong_pins_on_the_citizen_prompt_lock_no_one_else(app: App, root: Path) -> None:
    unlock_all(app)
    citizen = at_staff_screen(app, root)
    citizen.get("/a/staff")
    for name in ("", ANA):  # the shared PIN, then a staff account, five wrong PINs each
        pages = [citizen.post("/a/staff", name=name, pin="999999") for _ in range(5)]
        tries = [re.search(r"Còn (\d+) lần thử", p.get_data(as_text=True)) for p in pages[:4]]
        assert [int(t.group(1)) for t in tries if t] == [4, 3, 2, 1]
        assert "quá nhiều lần" in pages[4].get_data(as_text=True)
        locked = citizen.post("/a/staff", name=name, pin=ANA_PIN if name else TECH_PIN)
        assert "quá nhiều lần" in locked.get_data(as_text=True)  # even the right PIN, there
    # The technician screen is not locked: the shared PIN, the same account, another one.
    signed_in(app, TECH_PIN)
    signed_in(app, ANA_PIN, ANA)
    signed_in(app, BINH_PIN, BINH)
    # And on the prompt another account still confirms the citizen.
    done = citizen.post("/a/staff", name=BINH, pin=BINH_PIN)
    assert done.status_code == 302 and done.location.endswith("/a/pages")
    citizen.post("/cancel")


def test_lockouts_are_per_account_and_survive_a_restart(app: App) -> None:
    unlock_all(app)
    now = [time.time()]
    gate = PinGate(app, clock=lambda: now[0])
    assert [gate.check("000000", ANA).verdict for _ in range(5)] == ["wrong"] * 4 + ["locked"]
    assert gate.check(ANA_PIN, ANA).verdict == "locked"
    assert gate.check(BINH_PIN, BINH).verdict == "ok"  # another account
    assert gate.check(TECH_PIN).verdict == "ok"  # the shared PIN: its own counter
    # A restart: a new store on the same database file, a new gate.
    store = Store(app.config.storage.db_path)
    store.open()
    try:
        again = PinGate(SimpleNamespace(config=app.config, store=store), clock=lambda: now[0])
        assert again.check(ANA_PIN, ANA).verdict == "locked"
        assert again.locked_for(ANA) == pytest.approx(900, abs=2)
        now[0] += 901
        assert again.check(ANA_PIN, ANA).verdict == "ok"
    finally:
        store.close()


def test_a_real_and_an_unknown_name_get_the_same_answers(app: App, root: Path) -> None:
    """The prompt must not tell whether a name is an account: the same verdicts and tries left
    for a real name and a made-up one, the same page text, a PIN hash checked either way."""
    unlock_all(app)
    gate = PinGate(app)

    def tries(name: str) -> list[tuple[str, int]]:
        return [(r.verdict, r.tries_left) for r in (gate.check("123456", name) for _ in range(5))]

    real = tries(ANA)
    assert real == [("wrong", 4), ("wrong", 3), ("wrong", 2), ("wrong", 1), ("locked", 0)]
    assert tries("khong.co.ai") == real
    # Tries on made-up names did not use up another made-up name's tries, nor a real one's.
    assert tries("nguoi.la") == real
    assert gate.check(BINH_PIN, BINH).verdict == "ok"
    assert gate.check(TECH_PIN).verdict == "ok"
    # Timing: a wrong PIN for a real and for an unknown name both cost one scrypt check.
    # Interleaved and compared by median: the machine's other load hits both alike.
    timings: dict[str, list[float]] = {BINH: [], "ai.do.khac": []}
    for _ in range(9):
        for name, seen in timings.items():
            unlock_all(app)
            began = time.perf_counter()
            assert gate.check("123456", name).verdict == "wrong"
            seen.append(time.perf_counter() - began)
    real_s, unknown_s = (statistics.median(seen) for seen in timings.values())
    assert 0.5 < real_s / unknown_s < 2.0, timings
    # Through the citizen's prompt: the same page for both names, tries included.
    unlock_all(app)
    citizen = at_staff_screen(app, root)
    citizen.get("/a/staff")

    def page(name: str) -> str:
        text = citizen.post("/a/staff", name=name, pin="999999").get_data(as_text=True)
        text = re.sub(r'(value|content)="[^"]*"', "", text)  # form tokens: signed, timed
        return text.replace(name, "NAME")

    first = [page(ANA), page(ANA)]
    assert "Còn 3 lần thử" in first[1]
    assert [page("mot.nguoi.la"), page("mot.nguoi.la")] == first
    citizen.post("/cancel")
    # A disabled account is an unknown name: its right PIN does not sign in.
    with app.store.transaction() as conn:
        conn.execute("UPDATE staff SET disabled = 1 WHERE name = ?", (BINH,))
    try:
        assert gate.check(BINH_PIN, BINH).verdict == "wrong"
    finally:
        with app.store.transaction() as conn:
            conn.execute("UPDATE staff SET disabled = 0 WHERE name = ?", (BINH,))
    unlock_all(app)


# --- roles ----------------------------------------------------------------------------------


def test_a_staff_account_answers_calls_but_reaches_no_hardware_action(app: App) -> None:
    unlock_all(app)
    staff = signed_in(app, ANA_PIN, ANA)
    panel = staff.get("/technician/panel").get_data(as_text=True)
    assert 'id="calls"' in panel and 'id="lock"' not in panel and 'id="run-selftest"' not in panel
    assert staff.post("/technician/lock").location.endswith("/technician/panel")
    assert app.locked is False
    tech = signed_in(app, BINH_PIN, BINH)
    assert 'id="lock"' in tech.get("/technician/panel").get_data(as_text=True)


# --- central's accounts (the set-staff command's store side) ---------------------------------


def test_central_accounts_are_applied_whole_or_not_at_all(app: App) -> None:
    from werkzeug.security import generate_password_hash

    staff = StaffAccounts(app.store)
    good = {"name": "chi.pham", "pin_hash": generate_password_hash("778899"), "role": "staff"}
    pbkdf2 = {**good, "name": "gia.vu", "pin_hash": generate_password_hash("1", "pbkdf2:sha256")}
    assert staff.set_central([pbkdf2], actor="central")["changed"] == ["gia.vu"]
    done = staff.set_central([good], actor="central")
    assert done == {"accounts": 1, "changed": ["chi.pham"], "removed": ["gia.vu"]}
    assert staff.account("chi.pham")[1] == "staff"
    for bad in (
        [good, {**good, "name": "dung"} | {"pin_hash": "778899"}],  # a clear PIN
        [good, {**good, "name": "em.vo", "role": "admin"}],
        [good, {**good, "name": "em.vo", "pin_hash": "scrypt:1073741824:8:1$ab$" + "0" * 128}],
        [
            good,
            {**good, "name": "em.vo", "pin_hash": generate_password_hash("1", "scrypt:32768:8:4")},
        ],
        [good, good],
        [{**good, "extra": 1}],
        "chi.pham",
    ):
        with pytest.raises(BadInput):
            staff.set_central(bad, actor="central")
    assert [a["name"] for a in staff.list() if a["origin"] == "central"] == ["chi.pham"]
    # The next list replaces central's accounts; local ones stay.
    assert staff.set_central([], actor="central")["removed"] == ["chi.pham"]
    assert {a["name"] for a in staff.list()} == {ANA, BINH}
    audit = [(r["action"], r["subject"]) for r in recent(app.store, limit=2)]
    assert audit == [("staff.removed", "chi.pham"), ("staff.set", "chi.pham")]


def test_the_command_line_adds_an_account_with_its_role(app: App) -> None:
    import json
    import subprocess
    import sys

    def kiosk(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edge", *args, "--config", str(app.config_path)],
            input=stdin, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    added = kiosk("staff", "add", "cuong.ho", "--role", "staff", stdin="778800\n")
    assert added.returncode == 0, added.stderr
    try:
        listed = json.loads(kiosk("staff", "list", "--json").stdout)["staff"]
        (row,) = [r for r in listed if r["name"] == "cuong.ho"]
        assert (row["role"], row["origin"], row["disabled"]) == ("staff", "local", False)
        assert PinGate(app).check("778800", "cuong.ho").role == "staff"
        refused = kiosk("staff", "add", "dao.ly", "--role", "admin", stdin="778800\n")
        assert refused.returncode == 2 and "invalid choice" in refused.stderr
    finally:
        assert kiosk("staff", "remove", "cuong.ho").returncode == 0
