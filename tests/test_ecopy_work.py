"""Long work off the request (issue 18, "No stalls"): the OCR of a citizen's pages runs on the
kiosk's worker thread, the screen shows its progress and moves on by itself, and a session
cancelled meanwhile drops the result. Real parts: photographed pages, tesseract, the daemon's
Flask app in process (tests/web_ui_helpers.in_process_kiosk)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from edge.services.ecopy import BUSY, EcopySession
from edge.services.jobs import Job, Worker
from tests import pages as docs
from tests.test_ecopy_session import card_scene, identify_by_staff, kiosk, place, verifier  # noqa: F401  (fixtures)


def finished(job: Job | None, timeout: float = 60.0) -> Job:
    deadline = time.monotonic() + timeout
    while job is not None and job.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job is not None and job.finished, "the job did not end in time"
    return job


def test_pages_are_read_on_the_worker_and_a_cancelled_session_drops_them(kiosk) -> None:  # noqa: F811
    make, _, _, _, _ = kiosk
    worker = Worker()
    try:
        s = make()
        identify_by_staff(s, card_scene()[0])
        place(s, docs.photographed(2, "birth_certificate", size=docs.PREVIEW).image)
        place(s, docs.photographed(3, "diploma", size=docs.PREVIEW).image)
        started = time.monotonic()
        assert s.start_reading(worker) is None
        took = time.monotonic() - started
        assert took < 0.2, took  # the caller does not wait for the OCR
        job = s.job
        assert job is not None and job.kind == "read" and job.total == 2
        assert job.running and s.reads == [] and not s.read_done
        assert s.start_reading(worker) is None and s.job is job  # a second press: same job
        finished(job)
        assert (job.next, job.done, job.error, job.dropped) == ("review", 2, None, False)
        assert s.read_done and [r.doc_type for r in s.reads] == ["birth_certificate", "diploma"]

        # Cancelled (or timed out) while its pages are read: nothing of the reading is kept.
        gone = make()
        identify_by_staff(gone, card_scene(seed=8)[0])
        place(gone, docs.photographed(4, "birth_certificate", size=docs.PREVIEW).image)
        assert gone.start_reading(worker) is None
        gone.close()
        job = finished(gone.job)
        assert job.dropped and job.next is None
        assert gone.reads == [] and gone.pages == [] and gone.identity.card is None
    finally:
        worker.close()


def test_issuing_runs_on_the_worker_and_a_cancel_meanwhile_keeps_nothing(kiosk) -> None:  # noqa: F811
    make, copies, payment, _, _ = kiosk
    worker = Worker()
    try:
        sessions = []
        for seed in (7, 8):
            s = make()
            identify_by_staff(s, card_scene(seed=seed)[0])
            place(s, docs.photographed(seed, "birth_certificate", size=docs.PREVIEW).image)
            assert s.read_pages() is None
            payment.confirm(s.reference)
            assert s.give_contact("nguoidan@example.vn") == "issue"
            sessions.append(s)
        s, gone = sessions
        assert s.start_issuing(worker) is None
        job = finished(s.job)
        assert (job.kind, job.next, job.error, job.dropped) == ("issue", "wait", None, False)
        assert len(s.codes) == 1 and len(copies.outbox.pending()) == 1 and s.pages == []

        # Cancelled while its request waits for the worker: nothing is sent, and the card and
        # pages (kept for the job meanwhile) go with the session once the job has ended.
        release = threading.Event()
        assert worker.submit(lambda: release.wait(10))  # the worker is busy
        assert gone.start_issuing(worker) is None
        gone.close()
        assert gone.identity.card is not None  # the job still needs it
        release.set()
        job = finished(gone.job)
        assert job.dropped and job.next is None and len(copies.outbox.pending()) == 1
        assert gone.identity.card is None and gone.pages == [] and gone.reads == []
        assert gone.codes == []
    finally:
        worker.close()


def test_the_worker_is_bounded_and_a_full_queue_is_told_plainly(kiosk) -> None:  # noqa: F811
    make, _, _, _, _ = kiosk
    worker = Worker(max_queued=1)
    release = threading.Event()
    try:
        assert worker.submit(lambda: release.wait(10))
        assert not worker.submit(lambda: None)  # refused, not queued without end
        s = make()
        identify_by_staff(s, card_scene()[0])
        place(s, docs.photographed(2, "birth_certificate", size=docs.PREVIEW).image)
        assert s.start_reading(worker) == BUSY and s.job is None
        assert BUSY.vi == "Ki-ốt đang bận. Vui lòng thử lại sau giây lát."
    finally:
        release.set()
        worker.close()


# --- the screens: POST "read the pages" answers at once, the progress screen moves on -------


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, list[Any]]]:
    """The daemon in process; a test-only route gives the client a session identified by
    staff with two photographed pages on it (as the pages screen leaves it)."""
    from flask import request

    from edge.adapters.payment_sim import SimulatedPayment
    from tests.ecopy_helpers import ecopy_session, plant_route
    from tests.web_ui_helpers import in_process_kiosk

    made: list[EcopySession] = []
    with in_process_kiosk(tmp_path_factory.mktemp("work")) as app:
        flask_app = app.web.app

        def plant_pages() -> EcopySession:
            work = ecopy_session(app)
            work.staff_verified = True
            for n, kind in ((5, "birth_certificate"), (6, "diploma")):
                assert (
                    work.capture_page(docs.photographed(n, kind, size=docs.PREVIEW).image) is None
                )
            if request.args.get("read"):  # read and paid, ready to issue
                assert work.read_pages() is None
                work.payment = SimulatedPayment(qr=app.copies.payment_qr)
                work.payment.confirm(work.reference)
            made.append(work)
            return work

        plant_route(flask_app, "/test/plant-pages", plant_pages)
        yield app, flask_app, made


def client_with_pages(ui: Any, plant: str = "/test/plant-pages") -> Any:
    from tests.ecopy_helpers import planted_client

    return planted_client(ui[1], plant)


def test_read_pages_answers_at_once_and_the_progress_screen_moves_on_to_review(ui) -> None:
    _, _, made = ui
    client = client_with_pages(ui)
    work = made[-1]
    started = time.monotonic()
    sent = client.post("/a/pages/done", data={"csrf_token": client.token})
    took = time.monotonic() - started
    assert sent.status_code == 302 and sent.headers["Location"].endswith("/a/working")
    assert work.reads == [] and work.job is not None and work.job.running, "waited for the OCR"
    assert took < 0.5, took
    screen = client.get("/a/working").get_data(as_text=True)
    assert "Đang đọc các trang của bạn…" in screen and 'data-poll="/a/working/poll"' in screen
    polls = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = client.post("/a/working/poll").get_json()
        polls.append(answer)
        if "next" in answer:
            break
        time.sleep(0.2)
    assert polls[-1]["next"].endswith("/a/review")
    assert re.fullmatch(r"Đang đọc trang [12]/2…", polls[0]["message"]), polls[0]
    assert polls[0]["progress"] is True  # the idle countdown does not run out meanwhile
    review = client.get("/a/review")
    assert review.status_code == 200 and "Giấy khai sinh" in review.get_data(as_text=True)


def test_cancel_while_the_pages_are_read_drops_the_result(ui) -> None:
    _, _, made = ui
    client = client_with_pages(ui)
    work = made[-1]
    assert client.post("/a/pages/done").headers["Location"].endswith("/a/working")
    job = work.job
    assert job is not None and job.running
    assert client.post("/cancel").status_code == 302  # "Hủy" while the OCR runs
    finished(job)
    assert job.dropped and work.reads == [] and work.pages == []
    assert client.post("/a/working/poll").get_json()["next"].endswith("/a/")
    assert client.get("/a/review").headers["Location"].endswith("/a/")


def test_a_failed_issue_in_the_background_shows_the_same_screen_as_before(ui) -> None:
    """No citizen card on the session: issue() refuses (KioskError), as it did in the POST."""
    _, _, made = ui
    client = client_with_pages(ui, "/test/plant-pages?read=1")
    work = made[-1]
    assert work.read_done and work.paid and work.identity.card is None
    sent = client.post("/a/issue")
    assert sent.status_code == 302 and sent.headers["Location"].endswith("/a/working")
    screen = client.get("/a/working").get_data(as_text=True)
    assert "Đang gửi yêu cầu của bạn…" in screen
    job = finished(work.job)
    assert (job.kind, job.error, job.next) == ("issue", "part_down", None)
    answer = client.post("/a/working/poll").get_json()
    assert answer["next"].endswith("/a/working/failed")
    failed = client.get("/a/working/failed")
    assert failed.status_code == 503
    assert "Một bộ phận của ki-ốt đang không hoạt động" in failed.get_data(as_text=True)
    assert work.codes == []
