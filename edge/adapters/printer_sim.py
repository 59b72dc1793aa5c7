"""The simulated printer: each job's raw ESC/POS bytes become one file; sensors are a JSON file."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import cast

from edge.errors import PrinterError
from edge.ports.printer import Paper, PrinterStatus, PrinterTransport

logger = logging.getLogger(__name__)

SENSORS_FILE = "sensors.json"  # {"paper": "ok|near-end|out", "cover_open": false}


class SimulatedPrinter(PrinterTransport):
    """Writes <output_dir>/<time>-<job>.bin atomically; unplugged when the folder is unusable."""

    kind = "simulated"

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir

    def describe(self) -> str:
        return f"simulated:{self.output_dir}"

    def plug_in(self) -> None:
        """Create the output folder the first time, as connecting a printer would."""
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            logger.warning("simulated printer folder unusable: %s", err)

    def send(self, data: bytes, *, job_id: str) -> None:
        status = self.status()
        if not status.online:
            raise PrinterError(status.detail)
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{job_id}.bin"
        try:
            fd, tmp = tempfile.mkstemp(dir=self.output_dir, prefix=".job-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.output_dir / name)
        except OSError as err:
            raise PrinterError(
                f"simulated printer cannot write to {self.output_dir}: {err}"
            ) from err

    def status(self) -> PrinterStatus:
        if not self.output_dir.is_dir():
            return PrinterStatus(
                online=False, detail=f"{self.output_dir} is not a folder (unplugged)"
            )
        try:
            with tempfile.TemporaryFile(dir=self.output_dir):
                pass
        except OSError as err:
            return PrinterStatus(online=False, detail=f"{self.output_dir} is not writable: {err}")
        sensors = self._sensors()
        return PrinterStatus(
            online=True,
            paper=cast(Paper, sensors.get("paper", "ok")),  # _sensors() keeps only valid ones
            cover_open=bool(sensors.get("cover_open", False)),
        )

    def set_sensors(self, *, paper: str = "ok", cover_open: bool = False) -> None:
        """Developer panel and tests: what the paper and cover sensors read."""
        if paper not in ("ok", "near-end", "out"):
            raise ValueError(f"paper must be ok, near-end or out, not {paper!r}")
        (self.output_dir / SENSORS_FILE).write_text(
            json.dumps({"paper": paper, "cover_open": cover_open})
        )

    def _sensors(self) -> dict[str, object]:
        try:
            data = json.loads((self.output_dir / SENSORS_FILE).read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            logger.warning("simulated printer sensor file unreadable; assuming ok")
            return {}
        if data.get("paper") not in ("ok", "near-end", "out"):
            data.pop("paper", None)
        return data
