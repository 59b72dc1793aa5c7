"""No speech: [speech] adapter = "off" (a kiosk without a loudspeaker)."""

from __future__ import annotations

from edge.ports.speech import Language, Speech, SpeechStatus


class SilentSpeech(Speech):
    kind = "off"

    def __init__(self, *, volume: int = 0) -> None:
        self._volume = volume

    def start(self) -> None:
        pass

    def say(self, text: str, lang: Language, *, queue: bool = False) -> None:
        pass

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass

    def configure(self, *, enabled: bool | None = None, volume: int | None = None) -> None:
        if volume is not None:
            self._volume = max(0, min(100, volume))

    def status(self) -> SpeechStatus:
        return SpeechStatus(
            adapter="off", available=False, enabled=False, volume=self._volume, detail="off"
        )
