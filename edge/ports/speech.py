"""The speech port: spoken guidance that never blocks the caller and a newer sentence interrupts."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Literal

Language = Literal["vi", "en"]
MAX_CHARS = 600  # one screen's instruction; longer text is cut (at a word) before synthesis


@dataclass(frozen=True, slots=True)
class SpeechStatus:
    adapter: str
    available: bool  # the voice and its audio output can be used here
    enabled: bool  # the technician's (or config's) on/off
    volume: int  # 0-100
    detail: str = ""  # why unavailable, for technicians; never the spoken text
    spoken: int = 0  # utterances finished since start
    interrupted: int = 0  # utterances cut short by a newer one or stop()
    failed: int = 0  # utterances the voice or the audio device failed on

    @property
    def ok(self) -> bool:
        """Healthy as a part: off on purpose is fine, on but unable to speak is not."""
        return self.available or not self.enabled or self.adapter == "off"

    def as_dict(self) -> dict[str, object]:
        return asdict(self) | {"ok": self.ok}


class Speech(ABC):
    """Speaks short texts aloud. say() returns at once; a worker thread does the speaking."""

    kind: str = "speech"

    @abstractmethod
    def start(self) -> None:
        """Check the voice and the audio output (one log line if unusable) and start the worker."""

    @abstractmethod
    def say(self, text: str, lang: Language, *, queue: bool = False) -> None:
        """Speak text in lang, cutting off whatever is being said; with queue, after what is
        being said and what waits instead (a screen's text longer than MAX_CHARS, said in
        parts: the consent). Never raises, never blocks."""

    @abstractmethod
    def stop(self) -> None:
        """Silence: cut off what is being said and drop what waits."""

    @abstractmethod
    def close(self) -> None:
        """stop() and end the worker thread; say() does nothing afterwards."""

    @abstractmethod
    def configure(self, *, enabled: bool | None = None, volume: int | None = None) -> None:
        """Change on/off or the volume (0-100) while running; takes effect at the next say()."""

    @abstractmethod
    def status(self) -> SpeechStatus:
        """How speech is doing; never raises."""

    def describe(self) -> str:
        return self.kind


def clip(text: str, limit: int = MAX_CHARS) -> str:
    """Whitespace collapsed, cut at a word boundary to at most limit characters."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit // 2 else cut
