"""Spoken guidance figures (issue 18): time to first sound and full synthesis with espeak-ng.

`python -m bench.speech` prints a table over the real screen sentences; `python -m bench`
reports the p95s. Sentences: the first SENTENCES Vietnamese texts of 30 characters or more in
the web UI's catalog (web_ui/translations/vi), the words the screens show and speak."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import cache
from pathlib import Path

from bench.registry import BenchError, figure

SENTENCES = 20
GOAL_MS = 300.0  # issue 18: time to first sound on x86
WAV_HEADER = 44
REPO = Path(__file__).resolve().parents[1]


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


@cache
def sentences() -> tuple[str, ...]:
    from babel.messages.pofile import read_po

    po = REPO / "web_ui/translations/vi/LC_MESSAGES/messages.po"
    with po.open("rb") as f:
        catalog = read_po(f, locale="vi")
    texts = [
        m.string
        for m in catalog
        if m.id and isinstance(m.string, str) and len(m.string) >= 30 and "%(" not in m.string
    ]
    return tuple(texts[:SENTENCES])


def _require_espeak() -> None:
    if shutil.which("espeak-ng") is None:
        raise BenchError("espeak-ng is not installed (firmware_scripts/apt-packages.txt)")


def synthesis_times(text: str) -> tuple[float, float, float]:
    """(ms to the first audio byte, ms to the whole utterance, seconds of audio) of one
    espeak-ng --stdout run, with the kiosk's own command line."""
    from edge.adapters.speech_espeak import espeak_command

    command = espeak_command("vi", volume=70, rate=150)
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(text.encode("utf-8"))
    proc.stdin.close()
    header = proc.stdout.read(WAV_HEADER + 1)  # the header, then the first audio byte
    first = time.perf_counter()
    rest = proc.stdout.read()
    proc.wait()
    done = time.perf_counter()
    if proc.returncode != 0 or len(header) <= WAV_HEADER:
        raise BenchError(f"espeak-ng failed (exit {proc.returncode})")
    samples = (len(header) - WAV_HEADER + len(rest)) // 2
    return (first - started) * 1000, (done - started) * 1000, samples / 22050


def first_sound_through_the_kiosk(texts: tuple[str, ...]) -> list[float]:
    """ms from EspeakSpeech.say() to the first audio byte reaching the player's process, with a
    player that notes the time of that byte (in aplay's place: dd and date, no Python start)."""
    from edge.adapters.speech_espeak import EspeakSpeech

    times = []
    with tempfile.TemporaryDirectory(prefix="bench-speech-") as tmp:
        stamp = Path(tmp) / "first"
        player = [
            "sh",
            "-c",
            f"dd bs=1 count={WAV_HEADER + 1} of=/dev/null 2>/dev/null; "
            f"date +%s.%N > {stamp}; cat > /dev/null",
        ]
        speech = EspeakSpeech(enabled=True, volume=70, rate=150, player=player)
        speech.start()
        try:
            for text in texts:
                stamp.unlink(missing_ok=True)
                said = time.time()
                speech.say(text, "vi")
                if not speech.wait_idle(60):
                    raise BenchError("speech did not finish within 60 s")
                if not stamp.exists():
                    raise BenchError("no audio reached the player")
                times.append((float(stamp.read_text()) - said) * 1000)
        finally:
            speech.close()
    return times


@figure("speech time to first sound, p95 of 20 screen sentences", unit="ms", below=GOAL_MS)
def first_sound_p95() -> float:
    _require_espeak()
    return _percentile(first_sound_through_the_kiosk(sentences()), 0.95)


@figure("speech full synthesis, p95 of 20 screen sentences", unit="ms")
def synthesis_p95() -> float:
    _require_espeak()
    return _percentile([synthesis_times(t)[1] for t in sentences()], 0.95)


def main() -> int:
    _require_espeak()
    texts = sentences()
    synth = [synthesis_times(t) for t in texts]
    kiosk = first_sound_through_the_kiosk(texts)
    rows = [
        ("first audio byte out of espeak-ng --stdout", [s[0] for s in synth], "ms"),
        ("say() to first audio byte at the player", kiosk, "ms"),
        ("full synthesis of the sentence", [s[1] for s in synth], "ms"),
        ("audio length of the sentence", [s[2] for s in synth], "s"),
        ("sentence length", [float(len(t)) for t in texts], "chars"),
    ]
    print(f"espeak-ng, voice vi, rate 150, {len(texts)} Vietnamese screen sentences")
    print(f"{'figure':44} {'p50':>8} {'p95':>8} {'max':>8}  unit")
    for name, values, unit in rows:
        p50, p95 = statistics.median(values), _percentile(values, 0.95)
        print(f"{name:44} {p50:8.1f} {p95:8.1f} {max(values):8.1f}  {unit}")
    goal = _percentile(kiosk, 0.95) < GOAL_MS
    print(
        f"goal: time to first sound p95 < {GOAL_MS:.0f} ms on x86: {'met' if goal else 'NOT met'}"
    )
    return 0 if goal else 1


if __name__ == "__main__":
    sys.exit(main())
