"""Where the on-device models live and how they are opened: manifest look-up, sha256, lazy load."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from edge.errors import KioskError

logger = logging.getLogger(__name__)

# Same default as the config's [models] dir: the repository's models/ next to the package.
DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[2] / "models"

# Names of the entries in models/manifest.json that the face code uses.
FACE_DETECTOR = "blazeface-short-range"
FACE_LANDMARKS = "facemesh-landmarks"
FACE_SHAPE_5 = "dlib-shape-predictor-5"
FACE_EMBEDDING = "dlib-face-resnet-v1"

T = TypeVar("T")


class ModelUnavailable(KioskError, RuntimeError):
    """A model file is missing, altered, or its runtime cannot open it here."""

    code = "model_unavailable"


@dataclass(frozen=True, slots=True)
class ModelFile:
    name: str
    path: Path
    sha256: str
    licence: str


def model_file(name: str, models_dir: Path | None = None, *, verify: bool = True) -> ModelFile:
    """The manifest entry called name, its file checked to exist (and to match its sha256)."""
    folder = Path(models_dir) if models_dir is not None else DEFAULT_MODELS_DIR
    manifest_path = folder / "manifest.json"
    try:
        entries = json.loads(manifest_path.read_text(encoding="utf-8")).get("models", [])
    except (OSError, ValueError) as err:
        raise ModelUnavailable(f"cannot read the model manifest {manifest_path}: {err}") from err
    entry = next((e for e in entries if e.get("name") == name), None)
    if entry is None:
        raise ModelUnavailable(f"{manifest_path} lists no model called {name!r}")
    path = folder / entry["file"]
    if not path.is_file():
        raise ModelUnavailable(f"model {name!r} is missing: no file {path}")
    if verify:
        digest = _sha256(path)
        if digest != entry["sha256"]:
            raise ModelUnavailable(
                f"model {name!r} at {path} does not match its manifest sha256 "
                f"(got {digest[:12]}…, want {entry['sha256'][:12]}…): reinstall the models folder"
            )
    return ModelFile(name, path, entry["sha256"], entry.get("licence", ""))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def open_tflite(model: ModelFile, *, num_threads: int = 2) -> Any:
    """An allocated ai_edge_litert Interpreter for model; the runtime is imported only here."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as err:
        raise ModelUnavailable(
            f"cannot run {model.name}: the ai-edge-litert runtime is not installed ({err})"
        ) from err
    try:
        interpreter = Interpreter(model_path=str(model.path), num_threads=num_threads)
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as err:
        raise ModelUnavailable(f"ai-edge-litert cannot open {model.path}: {err}") from err
    return interpreter


def import_dlib() -> Any:
    try:
        import dlib
    except ImportError as err:
        raise ModelUnavailable(f"dlib is not installed (pip package dlib-bin): {err}") from err
    return dlib


class Lazy(Generic[T]):
    """Builds its value on first use, once, under a lock; later calls return the same object."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
        return self._value

    @property
    def loaded(self) -> bool:
        return self._value is not None
