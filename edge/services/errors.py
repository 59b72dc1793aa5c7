"""Errors of the citizen services: a Vietnamese message for the person, English for the log."""

from __future__ import annotations

from typing import Any

from edge.errors import BadInput


class ServiceError(BadInput):
    """A request the service cannot fulfil. message_vi is shown to the citizen (Vietnamese,
    with diacritics); message_en (also str()) goes to logs and technicians. Both are free of
    personal data. `code` is stable for the UI to branch on.
    """

    code = "service_error"

    def __init__(self, message_vi: str, message_en: str, **detail: Any) -> None:
        super().__init__(message_en)
        self.message_vi = message_vi
        self.message_en = message_en
        self.detail = detail

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message_vi": self.message_vi,
            "message_en": self.message_en,
            **self.detail,
        }
