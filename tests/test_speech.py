"""Spoken guidance with the real espeak-ng (Debian's, voice vi): the simulated adapter's WAV files,
interruption, a missing program or a failing audio device, /live/say and the technician's switch.
Only the loudspeaker is faked: a player that takes the WAV stream at the speed it would play."""

from __future__ import annotations

import json
import logging
import re
import shutil
import sys
import textwrap
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge import config as cfg
from edge.adapters.speech_espeak import EspeakSpeech, WavSpeech, espeak_command, synthesise
from edge.app import App
from edge.speech_settings import KV_KEY, apply_saved, saved
from edge.store import Store
from tests.web_ui_helpers import LoopbackClient, kiosk_config

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (firmware_scripts/apt-packages.txt [runtime])",
)

SHORT = "Xin chào."
LONG = (
    "Vui lòng đặt thẻ căn cước dưới camera, mặt nào hướng lên cũng được. "
    "Giữ yên thẻ cho đến khi màn hình báo đã đọc xong."
)


def wav(path: Path) -> tuple[float, np.ndarray]:
    """(seconds, samples) of a WAV file, through the standard library's reader."""
    with wave.open(str(path), "rb") as f:
        assert (f.getnchannels(), f.getsampwidth()) == (1, 2)
        samples = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
        return f.getnframes() / f.getframerate(), samples


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


@pytest.fixture
def wav_speech(tmp_path: Path) -> Iterator[WavSpeech]:
    speech = WavSpeech(tmp_path / "speech", enabled=True, volume=70, rate=150)
    speech.start()
    yield speech
    speech.close()


def test_the_wav_adapter_writes_speech_that_lasts_as_long_as_the_text(
    wav_speech: WavSpeech,
) -> None:
    wav_speech.say(SHORT, "vi")
    assert wav_speech.wait_idle(10)
    wav_speech.say(LONG, "vi")
    assert wav_speech.wait_idle(30)
    short, long = sorted(wav_speech.folder.glob("*.wav"))
    assert (short.name, long.name) == ("000001-vi.wav", "000002-vi.wav")
    short_s, short_samples = wav(short)
    long_s, long_samples = wav(long)
    assert 0.3 < short_s < 3 and long_s > 4 * short_s  # ~20 words against two
    assert rms(short_samples) > 500 and rms(long_samples) > 500  # not silence (full scale 32767)
    assert wav_speech.status().spoken == 2 and wav_speech.status().interrupted == 0
    # Louder is louder: volume maps onto espeak-ng's amplitude.
    _, quiet = synthesise(LONG, "vi", volume=20, rate=150)
    _, loud = synthesise(LONG, "vi", volume=90, rate=150)
    quiet_rms = rms(np.frombuffer(quiet, "<i2"))
    loud_rms = rms(np.frombuffer(loud, "<i2"))
    assert loud_rms > 2 * quiet_rms


def test_vietnamese_is_spoken_with_espeak_ngs_vi_voice() -> None:
    command = espeak_command("vi", volume=50, rate=150)
    assert command[command.index("-v") + 1] == "vi"
    assert command[command.index("-a") + 1] == "100"  # espeak-ng's own normal loudness
    assert "--stdin" in command  # the text is never on the command line (ps would show it)
    # The vi voice reads the tones: "ma, má, mà, mả, mã, mạ" are six different sounds, and
    # the English voice reads the same letters differently.
    words = ["ma", "má", "mà", "mả", "mã", "mạ"]
    sounds = {synthesise(w, "vi", volume=50, rate=150)[1] for w in words}
    assert len(sounds) == len(words)
    assert synthesise(LONG, "vi", volume=50, rate=150) != synthesise(
        LONG, "en", volume=50, rate=150
    )


PLAYER = textwrap.dedent(
    """
    # A loudspeaker on the lowest port: takes the WAV stream at the speed it would play it
    # (16-bit mono, the rate in its header) and keeps what it "played" in a file.
    import os, struct, sys, time
    out = open(os.path.join(sys.argv[1], f"{os.getpid()}.raw"), "wb")
    header = sys.stdin.buffer.read(44)
    rate = struct.unpack_from("<I", header, 24)[0]
    start, played = time.monotonic(), 0
    while chunk := sys.stdin.buffer.read(2048):
        out.write(chunk); out.flush(); played += len(chunk)
        time.sleep(max(0.0, start + played / (2 * rate) - time.monotonic()))
    """
)


def player(tmp_path: Path) -> list[str]:
    script = tmp_path / "player.py"
    script.write_text(PLAYER)
    (tmp_path / "played").mkdir()
    return [sys.executable, str(script), str(tmp_path / "played")]


def test_a_new_sentence_cuts_off_the_one_being_spoken(tmp_path: Path) -> None:
    speech = EspeakSpeech(enabled=True, volume=70, rate=150, player=player(tmp_path))
    speech.start()
    try:
        assert speech.status().available
        speech.say(LONG, "vi")
        played = tmp_path / "played"
        deadline = time.monotonic() + 10
        while not any(p.stat().st_size for p in played.glob("*.raw")):
            assert time.monotonic() < deadline, "nothing reached the loudspeaker"
            time.sleep(0.02)
        time.sleep(0.3)
        speech.say(SHORT, "vi")
        assert speech.wait_idle(10)
    finally:
        speech.close()
    first, second = sorted(played.glob("*.raw"), key=lambda p: p.stat().st_mtime)
    full_long = len(synthesise(LONG, "vi", volume=70, rate=150)[1])
    # The long sentence stopped after about 0.3 s of sound; the short one played whole.
    assert 0 < first.stat().st_size < full_long / 3
    assert second.read_bytes() == synthesise(SHORT, "vi", volume=70, rate=150)[1]
    status = speech.status()
    assert (status.spoken, status.interrupted, status.failed) == (1, 1, 0)


def test_a_queued_part_follows_the_one_being_said_without_cutting_it(
    wav_speech: WavSpeech,
) -> None:
    """A screen's text longer than 600 characters (the consent) is said in parts, in order."""
    wav_speech.say(LONG, "vi")
    wav_speech.say(SHORT, "vi", queue=True)
    wav_speech.say(LONG, "vi", queue=True)
    assert wav_speech.wait_idle(60)
    status = wav_speech.status()
    assert (status.spoken, status.interrupted) == (3, 0)
    files = sorted(wav_speech.folder.glob("*.wav"))
    assert [wav(f)[0] > 4 * wav(files[1])[0] for f in files] == [True, False, True]


def test_the_wav_adapter_is_cut_off_too(wav_speech: WavSpeech) -> None:
    wav_speech.say(LONG, "vi")
    deadline = time.monotonic() + 10
    while not list(wav_speech.folder.glob("*.wav")):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    wav_speech.say(SHORT, "en")
    assert wav_speech.wait_idle(10)
    status = wav_speech.status()
    assert (status.spoken, status.interrupted) == (1, 1)
    assert [p.name for p in sorted(wav_speech.folder.glob("*.wav"))] == [
        "000001-vi.wav",
        "000002-en.wav",
    ]


def test_a_missing_espeak_ng_leaves_the_kiosk_silent_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    speech = EspeakSpeech(enabled=True, volume=70, rate=150, binary="espeak-ng-not-here")
    with caplog.at_level(logging.INFO, logger="edge.adapters.speech_espeak"):
        speech.start()
        for _ in range(3):
            speech.say(LONG, "vi")  # returns at once, nothing to speak with
        speech.close()
    status = speech.status()
    assert not status.available and not status.ok and "espeak-ng-not-here" in status.detail
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "speech unavailable" in lines[0].getMessage()
    assert all(LONG not in r.getMessage() for r in caplog.records)


def test_a_failing_audio_device_is_reported_once_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # What aplay does without a sound card: an error line and exit code 1.
    broken = tmp_path / "broken"
    script = tmp_path / "aplay.py"
    script.write_text(
        "import pathlib, sys\n"
        f"if pathlib.Path({str(broken)!r}).exists():\n"
        "    sys.stderr.write('aplay: main:831: audio open error: No such file or directory\\n')\n"
        "    sys.exit(1)\n"
        "sys.stdin.buffer.read()\n"
    )
    broken.touch()
    speech = EspeakSpeech(enabled=True, volume=70, rate=150, player=[sys.executable, str(script)])
    with caplog.at_level(logging.INFO, logger="edge.adapters.speech_espeak"):
        speech.start()
        try:
            for _ in range(3):
                speech.say(SHORT, "vi")
                assert speech.wait_idle(10)
            status = speech.status()
            assert (status.failed, status.available, status.ok) == (3, False, False)
            assert "audio open error" in status.detail
            broken.unlink()  # the loudspeaker is plugged back in
            speech.say(SHORT, "vi")
            assert speech.wait_idle(10)
            assert speech.status().available and speech.status().spoken == 1
        finally:
            speech.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "audio open error" in warnings[0]
    assert any(r.getMessage() == "speech works again" for r in caplog.records)


def test_switched_off_it_says_nothing(wav_speech: WavSpeech) -> None:
    wav_speech.configure(enabled=False)
    wav_speech.say(SHORT, "vi")
    assert wav_speech.wait_idle(5)
    assert not list(wav_speech.folder.glob("*.wav")) and wav_speech.status().ok


# --- the daemon: /live/say, status, the technician's switch ----------------------------------


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    root = tmp_path_factory.mktemp("speech")
    path = kiosk_config(root, extra='\n[speech]\nadapter = "wav"\nfolder = "speech-out"\n')
    (root / "scenes" / "scene.jpg").write_bytes(
        (Path(__file__).resolve().parents[1] / "edge/sim/scenes/01-empty-platen.jpg").read_bytes()
    )
    app = App(cfg.load(path), config_path=path)
    app.start()
    try:
        yield app
    finally:
        app.stop()


def client(app: App):
    web = app.web.app
    web.test_client_class = LoopbackClient
    return web.test_client()


def spoken(app: App) -> list[Path]:
    return sorted(app.config.speech.folder.glob("*.wav")) if app.config.speech.folder else []


def test_live_say_speaks_in_the_session_language_only_for_the_kiosk_page(
    kiosk: App, caplog: pytest.LogCaptureFixture
) -> None:
    assert kiosk.config.speech.folder is not None
    web = client(kiosk)
    token = {"X-Kiosk-Token": kiosk.web.app.config["KIOSK_TOKEN"]}
    before = len(spoken(kiosk))
    secret = "Nguyễn Văn Bí Mật"
    with caplog.at_level(logging.DEBUG):
        # No token and not the kiosk's page: refused.
        assert web.post("/live/say", json={"text": secret}).status_code == 403
        # Too long, or not text: refused.
        assert web.post("/live/say", json={"text": "a" * 601}, headers=token).status_code == 400
        assert web.post("/live/say", json={"text": 5}, headers=token).status_code == 400
        assert web.post("/live/say", data="x", headers=token).status_code == 400
        answer = web.post("/live/say", json={"text": "Chào mừng " + secret}, headers=token)
        assert answer.status_code == 204
        assert kiosk.speech is not None
        assert kiosk.speech.wait_idle(20)  # type: ignore[attr-defined]
        # The session switches to English: the same call speaks English.
        page = web.get("/").get_data(as_text=True)
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        assert (
            web.post("/lang", data={"lang": "en", "back": "/", "csrf_token": csrf}).status_code
            == 302
        )
        assert web.post("/live/say", json={"text": "Welcome"}, headers=token).status_code == 204
        # A second part queued after it: said after, not cutting it off.
        queued = web.post("/live/say", json={"text": "Thank you", "queue": True}, headers=token)
        assert queued.status_code == 204
        assert kiosk.speech.wait_idle(20)  # type: ignore[attr-defined]
    files = spoken(kiosk)[before:]
    assert [f.name[-7:] for f in files] == ["-vi.wav", "-en.wav", "-en.wav"]
    assert kiosk.speech.status().interrupted == 0
    assert all(secret not in r.getMessage() and secret not in repr(vars(r)) for r in caplog.records)
    status = kiosk.status()["parts"]["speech"]
    assert status["ok"] and status["available"] and status["adapter"] == "wav"


def test_the_technician_switches_speech_off_and_sets_the_volume_audited(kiosk: App) -> None:
    from tests.test_technician import kiosk_cli, sign_in
    from tests.web_ui_helpers import TECH_PIN

    assert kiosk.speech is not None
    b = sign_in(kiosk, TECH_PIN)
    assert 'id="speech-off"' in b.get("/technician/panel")[1]
    assert b.post("/technician/speech", action="quieter")[0] == 302
    assert b.post("/technician/speech", action="off")[0] == 302
    panel = b.get("/technician/panel")[1]
    assert 'data-enabled="false" data-volume="60"' in panel and 'id="speech-on"' in panel
    assert (kiosk.speech.status().enabled, kiosk.speech.status().volume) == (False, 60)
    assert b.post("/technician/speech", action="sing")[0] == 400
    before = len(spoken(kiosk))
    client(kiosk).post(
        "/live/say",
        json={"text": "Xin chào"},
        headers={"X-Kiosk-Token": kiosk.web.app.config["KIOSK_TOKEN"]},
    )
    assert kiosk.speech.wait_idle(10)  # type: ignore[attr-defined]
    assert len(spoken(kiosk)) == before  # off: nothing said
    audit = json.loads(kiosk_cli(kiosk, "staff", "audit", "--json").stdout)["audit"]
    assert [(a["action"], a["subject"]) for a in audit[:2]] == [
        ("technician.speech", "enabled=0 volume=60"),
        ("technician.speech", "enabled=1 volume=60"),
    ]
    # Kept across a restart, until the config says something newer.
    assert saved(kiosk.store, kiosk.config.speech) == {"enabled": False, "volume": 60}
    newer = kiosk.config.speech.model_copy(update={"volume": 80})
    assert saved(kiosk.store, newer) is None
    b.post("/technician/speech", action="on")
    b.post("/technician/speech", action="louder")
    assert (kiosk.speech.status().enabled, kiosk.speech.status().volume) == (True, 70)


def test_a_saved_setting_applies_at_start_until_the_config_changes(tmp_path: Path) -> None:
    store = Store(tmp_path / "kiosk.db")
    store.open()
    try:
        section = cfg.SpeechSection(volume=70)
        store.set_kv(
            KV_KEY,
            json.dumps({"enabled": False, "volume": 30, "config": {"enabled": True, "volume": 70}}),
        )
        speech = WavSpeech(tmp_path / "s", enabled=True, volume=70, rate=150)
        apply_saved(speech, store, section)
        assert (speech.status().enabled, speech.status().volume) == (False, 30)
        fresh = WavSpeech(tmp_path / "s", enabled=True, volume=50, rate=150)
        apply_saved(fresh, store, cfg.SpeechSection(volume=50))  # set-config said 50 since
        assert (fresh.status().enabled, fresh.status().volume) == (True, 50)
        store.set_kv(KV_KEY, "not json")
        assert saved(store, section) is None
    finally:
        store.close()
