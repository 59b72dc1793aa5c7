"""Spoken guidance through espeak-ng: played on ALSA (`espeak-ng --stdout | aplay`) on a Pi, or
written to numbered WAV files on a PC. One worker thread speaks; a newer sentence kills the old.

Why a pipe into aplay and not espeak-ng's own audio output: the first audio bytes leave
`espeak-ng --stdout` a few milliseconds after the text goes in (bench/speech.py), aplay starts
the ALSA device on its first period, and the device is named explicitly (`[speech] device`);
espeak-ng's own output goes through pcaudiolib, which tries PulseAudio before ALSA, and a
system service has no PulseAudio session. Both simulated and real speech share the same
synthesis path, so the bench measures what the kiosk runs."""

from __future__ import annotations

import logging
import os
import shutil
import struct
import subprocess
import tempfile
import threading
import wave
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path

from edge.ports.speech import Language, Speech, SpeechStatus, clip

logger = logging.getLogger(__name__)

ESPEAK = "espeak-ng"
VOICES: dict[Language, str] = {"vi": "vi", "en": "en"}  # espeak-ng voice names
WAV_HEADER = 44  # espeak-ng --stdout: RIFF/WAVE, 16-bit mono PCM, sizes unknown (0x7fff...)
POLL_S = 0.02  # how often a playing utterance looks whether it was cut off
SYNTH_TIMEOUT_S = 30.0


class SpeechFailed(Exception):
    """The voice or the audio output failed on one utterance (the reason, never the text)."""


def espeak_command(lang: Language, *, volume: int, rate: int, binary: str = ESPEAK) -> list[str]:
    """espeak-ng reading UTF-8 text from stdin (not argv: `ps` would show what is said) and
    writing a WAV stream to stdout. -a is espeak-ng's amplitude 0-200 (100 its default): our
    volume 0-100 maps onto it linearly, so volume 50 is espeak-ng's normal loudness."""
    return [
        binary,
        "-v",
        VOICES[lang],
        "-s",
        str(rate),
        "-a",
        str(round(max(0, min(100, volume)) * 2)),
        "-b",
        "1",  # input is UTF-8
        "--stdin",
        "--stdout",
    ]


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _first_line(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip().splitlines()
    return text[0][:200] if text else ""


QUEUE_MAX = 8  # parts waiting after the one being said (say(queue=True)); more are dropped


class QueuedSpeech(Speech):
    """The worker thread and its queue: a new sentence cuts off what is said and drops what
    waits; a queued one (say(queue=True)) waits its turn."""

    def __init__(self, *, enabled: bool, volume: int, rate: int) -> None:
        self._enabled = enabled
        self._volume = volume
        self._rate = rate
        self._cond = threading.Condition()
        self._pending: list[tuple[str, Language]] = []  # the first is said next
        self._cancel = threading.Event()  # the utterance being spoken; set to cut it off
        self._closed = False
        self._thread: threading.Thread | None = None
        self._unusable: str | None = "not started"
        self._failure = ""
        self._counts = {"spoken": 0, "interrupted": 0, "failed": 0}

    @abstractmethod
    def unusable(self) -> str | None:
        """Why this adapter cannot speak here (a missing program, folder ...), or None."""

    @abstractmethod
    def speak(self, text: str, lang: Language, cancel: threading.Event) -> bool:
        """Speak one utterance to its end (True) or until cancel is set (False, cut short).
        Raises SpeechFailed when the voice or the audio output fails."""

    def start(self) -> None:
        self._unusable = self.unusable()
        if self._unusable is not None:
            logger.warning(
                "speech unavailable, the kiosk goes on silently: %s",
                self._unusable,
                extra={"adapter": self.kind},
            )
            return
        self._thread = threading.Thread(target=self._run, name="speech", daemon=True)
        self._thread.start()
        logger.info("speech ready", extra={"adapter": self.describe()})

    def say(self, text: str, lang: Language, *, queue: bool = False) -> None:
        text = clip(text)
        if not text or lang not in VOICES:
            return
        with self._cond:
            if self._closed or not self._enabled or self._thread is None:
                return
            if queue and len(self._pending) < QUEUE_MAX:
                self._pending.append((text, lang))
            elif not queue:
                self._pending = [(text, lang)]
                self._cancel.set()
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._pending = []
            self._cancel.set()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._pending = []
            self._cancel.set()
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(2.0)

    def configure(self, *, enabled: bool | None = None, volume: int | None = None) -> None:
        with self._cond:
            if enabled is not None:
                self._enabled = enabled
                if not enabled:
                    self._pending = []
                    self._cancel.set()
            if volume is not None:
                self._volume = max(0, min(100, volume))

    @property
    def volume(self) -> int:
        return self._volume

    @property
    def rate(self) -> int:
        return self._rate

    def status(self) -> SpeechStatus:
        detail = self._unusable or self._failure
        return SpeechStatus(
            adapter=self.kind,
            available=self._unusable is None and not self._failure,
            enabled=self._enabled,
            volume=self._volume,
            detail=detail,
            **self._counts,
        )

    def wait_idle(self, timeout: float) -> bool:
        """Tests and the bench: wait until nothing is pending or being spoken."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._pending and not self._busy, timeout=timeout
            )

    _busy = False

    def _run(self) -> None:
        while True:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
                self._cond.wait_for(lambda: self._closed or bool(self._pending))
                if self._closed:
                    return
                text, lang = self._pending.pop(0)
                self._cancel = cancel = threading.Event()
                self._busy = True
            try:
                finished = self.speak(text, lang, cancel)
            except SpeechFailed as err:
                self._counts["failed"] += 1
                if str(err) != self._failure:  # one line per new trouble, not per sentence
                    logger.warning(
                        "speech failed, the kiosk goes on silently: %s",
                        err,
                        extra={"adapter": self.kind},
                    )
                self._failure = str(err)
                continue
            except Exception:
                self._counts["failed"] += 1
                logger.exception("speech failed unexpectedly")
                continue
            if self._failure:
                logger.info("speech works again", extra={"adapter": self.kind})
                self._failure = ""
            self._counts["spoken" if finished else "interrupted"] += 1


class EspeakSpeech(QueuedSpeech):
    """espeak-ng's WAV stream piped into an audio player (aplay on the Pi's ALSA device)."""

    kind = "espeak"

    def __init__(
        self,
        *,
        enabled: bool,
        volume: int,
        rate: int,
        device: str = "default",
        binary: str = ESPEAK,
        player: Sequence[str] | None = None,
    ) -> None:
        super().__init__(enabled=enabled, volume=volume, rate=rate)
        self.binary = binary
        self.device = device
        # The lowest port: the program that takes the WAV stream to the loudspeaker.
        self.player = list(player) if player is not None else ["aplay", "-q", "-D", device]

    def describe(self) -> str:
        return f"espeak:{self.player[0]}"

    def unusable(self) -> str | None:
        for program in (self.binary, self.player[0]):
            if shutil.which(program) is None:
                return f"{program} is not installed (firmware_scripts/apt-packages.txt)"
        return None

    def speak(self, text: str, lang: Language, cancel: threading.Event) -> bool:
        if cancel.is_set():
            return False
        command = espeak_command(lang, volume=self.volume, rate=self.rate, binary=self.binary)
        try:
            synth = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as err:
            raise SpeechFailed(f"{self.binary} cannot start: {err.strerror or err}") from err
        try:
            player = subprocess.Popen(
                self.player, stdin=synth.stdout, stderr=subprocess.PIPE, start_new_session=True
            )
        except OSError as err:
            _kill(synth)
            raise SpeechFailed(f"{self.player[0]} cannot start: {err.strerror or err}") from err
        assert synth.stdout is not None and synth.stdin is not None
        synth.stdout.close()  # the player holds it now; espeak-ng sees a closed pipe if it dies
        try:
            synth.stdin.write(text.encode("utf-8"))
            synth.stdin.close()
        except OSError:
            pass  # espeak-ng died at once: its exit code says why, below
        while player.poll() is None:
            if cancel.wait(POLL_S):
                _kill(player)
                _kill(synth)
                return False
        _kill(synth)
        if player.returncode != 0:
            raise SpeechFailed(
                f"audio output failed ({self.player[0]} exit {player.returncode}): "
                f"{_first_line(player.stderr.read() if player.stderr else b'')}"
            )
        if synth.returncode != 0:
            raise SpeechFailed(
                f"{self.binary} exit {synth.returncode}: "
                f"{_first_line(synth.stderr.read() if synth.stderr else b'')}"
            )
        return True


def synthesise(
    text: str, lang: Language, *, volume: int, rate: int, binary: str = ESPEAK
) -> tuple[int, bytes]:
    """The whole utterance as (sample rate, 16-bit mono PCM) from espeak-ng --stdout."""
    command = espeak_command(lang, volume=volume, rate=rate, binary=binary)
    try:
        done = subprocess.run(
            command, input=text.encode("utf-8"), capture_output=True, timeout=SYNTH_TIMEOUT_S
        )
    except OSError as err:
        raise SpeechFailed(f"{binary} cannot start: {err.strerror or err}") from err
    except subprocess.TimeoutExpired as err:
        raise SpeechFailed(f"{binary} took longer than {SYNTH_TIMEOUT_S:.0f} s") from err
    if done.returncode != 0 or len(done.stdout) < WAV_HEADER:
        raise SpeechFailed(f"{binary} exit {done.returncode}: {_first_line(done.stderr)}")
    (sample_rate,) = struct.unpack_from("<I", done.stdout, 24)
    return sample_rate, done.stdout[WAV_HEADER:]


class WavSpeech(QueuedSpeech):
    """Simulation on a PC: each utterance becomes <folder>/<number>-<lang>.wav, then "plays" for
    as long as the audio lasts (so a newer sentence cuts it off, as on the kiosk)."""

    kind = "wav"

    def __init__(
        self, folder: Path, *, enabled: bool, volume: int, rate: int, binary: str = ESPEAK
    ) -> None:
        super().__init__(enabled=enabled, volume=volume, rate=rate)
        self.folder = folder
        self.binary = binary
        self._number = 0

    def describe(self) -> str:
        return f"wav:{self.folder}"

    def unusable(self) -> str | None:
        if shutil.which(self.binary) is None:
            return f"{self.binary} is not installed (firmware_scripts/apt-packages.txt)"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            return f"{self.folder} is not usable: {err.strerror or err}"
        numbers = [int(p.name[:6]) for p in self.folder.glob("[0-9]*.wav") if p.name[:6].isdigit()]
        self._number = max(numbers, default=0)
        return None

    def speak(self, text: str, lang: Language, cancel: threading.Event) -> bool:
        if cancel.is_set():
            return False
        sample_rate, pcm = synthesise(
            text, lang, volume=self.volume, rate=self.rate, binary=self.binary
        )
        self._number += 1
        path = self.folder / f"{self._number:06d}-{lang}.wav"
        try:
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".speech-", suffix=".wav")
            with os.fdopen(fd, "wb") as f, wave.open(f, "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(sample_rate)
                out.writeframes(pcm)
            os.replace(tmp, path)
        except OSError as err:
            raise SpeechFailed(f"cannot write to {self.folder}: {err.strerror or err}") from err
        return not cancel.wait(len(pcm) / 2 / sample_rate)
