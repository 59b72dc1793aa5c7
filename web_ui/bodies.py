"""JSON request bodies checked for type, size and nesting before any view uses them."""

from __future__ import annotations

import json
from typing import Any

from flask import request
from flask_babel import gettext as _

from edge.errors import BadInput

MAX_BYTES = 4096
MAX_DEPTH = 4


def too_deep(data: bytes, limit: int) -> bool:
    """Arrays and objects nested deeper than `limit` (outside strings), without parsing: the
    parser itself would recurse once per level."""
    depth = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


def json_object(*, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """The body as a JSON object, or BadInput (400) with a short message that says why."""
    if request.mimetype != "application/json":
        raise BadInput(_("The request must be JSON (Content-Type: application/json)."))
    data = request.get_data(cache=True)
    if len(data) > max_bytes or too_deep(data, max_depth):
        raise BadInput(_("The request body is too large or too deeply nested."))
    try:
        value = json.loads(data)
    except ValueError as err:  # bad JSON or bytes that are not UTF-8
        raise BadInput(_("The request body is not valid JSON.")) from err
    if not isinstance(value, dict):
        raise BadInput(_("The request body must be a JSON object."))
    return value


def optional_str(body: dict[str, Any], key: str, *, max_len: int) -> str:
    """A text field of the body; missing is empty, anything but a string is refused."""
    value = body.get(key, "")
    if not isinstance(value, str):
        raise BadInput(_("%(field)s must be text.", field=key))
    return value[:max_len]
