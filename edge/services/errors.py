"""Errors of the citizen services: a text for the person (edge.texts), English for the log."""

from __future__ import annotations

from typing import Any

from edge.errors import BadInput
from edge.texts import Text


class ServiceError(BadInput):
    """A request the service cannot fulfil. `text` is what the citizen is told (an English
    msgid, Vietnamese in the catalog; message_vi is it in Vietnamese); message_en (also str())
    goes to logs and technicians. All are free of personal data. `code` is stable for the UI
    to branch on.
    """

    code = "service_error"

    def __init__(self, text: Text, message_en: str, **detail: Any) -> None:
        super().__init__(message_en)
        self.text = text
        self.message_vi = text.vi
        self.message_en = message_en
        self.detail = detail

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message_vi": self.message_vi,
            "message_en": self.message_en,
            **self.detail,
        }
