"""What `kiosk`, `kiosk-ca` and `kiosk-fleet` do with an error: one line (or one JSON object) on
stderr and the error's exit code, never a traceback."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

from protocol.errors import EXIT_OK, KioskError

EXIT_INTERRUPTED = 130  # what a shell reports for Ctrl-C


def report(prog: str, err: KioskError, *, as_json: bool = False) -> int:
    """Say what went wrong on stderr; the exit code that goes with it."""
    if as_json:
        body: dict[str, Any] = {"code": err.code, "message": str(err)}
        problems = getattr(err, "problems", None)
        if problems:
            body["problems"] = [p.as_dict() for p in problems]
        for extra in ("rule", "message_vi"):  # CCCD refusals: which rule, and the citizen's text
            if getattr(err, extra, None):
                body[extra] = getattr(err, extra)
        print(json.dumps({"error": body}, ensure_ascii=False), file=sys.stderr)
    else:
        print(f"{prog}: {err}", file=sys.stderr)
    return err.exit_code


def run_command(prog: str, command: Callable[[], int], *, as_json: bool = False) -> int:
    """command()'s exit code; a KioskError it raises is reported, not shown as a traceback."""
    try:
        return command()
    except KioskError as err:
        return report(prog, err, as_json=as_json)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout closed early (`kiosk ... | head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
