"""The procedure catalog: a versioned data file, validated, searched without diacritics or typos."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA

from edge.services.errors import ServiceError
from edge.texts import N_, Text, vietnamese
from protocol.files import fsync_dir, write_atomic
from protocol.schemas import load_schema

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent.parent
BUNDLED_CATALOG = PACKAGE_DIR / "catalog" / "procedures.json"
CATALOG_SCHEMA = "catalog/1"
MIN_SCORE = (
    70.0  # below this a hit is noise (tests/test_catalog.py: the table passes, noise does not)
)

# Words that say nothing about which procedure is meant ("thủ tục làm ... như thế nào").
_STOPWORDS = frozenset(
    [
        "thu",
        "tuc",
        "lam",
        "the",
        "nao",
        "nhu",
        "can",
        "gi",
        "nhung",
        "o",
        "dau",
        "xin",
        "hoi",
        "muon",
        "toi",
        "minh",
        "va",
        "cho",
        "cua",
    ]
)


class CatalogInvalid(ServiceError):
    """A catalog document that must not replace the current one."""

    code = "catalog_invalid"

    def __init__(self, problems: list[str]) -> None:
        summary = "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else "")
        super().__init__(
            Text(N_("The procedure catalog is not valid.")),
            f"catalog refused: {summary}",
        )
        self.problems = problems


class ProcedureNotFound(ServiceError):
    code = "procedure_not_found"

    def __init__(self, procedure_id: str) -> None:
        super().__init__(
            Text(N_("This procedure was not found in the catalog.")),
            f"no procedure {procedure_id!r} in the catalog",
        )


def fold(text: str) -> str:
    """Lower case, no diacritics (đ -> d), letters and digits only, single spaces."""
    text = unicodedata.normalize("NFD", text.casefold().replace("đ", "d").replace("Đ", "d"))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.findall(r"[a-z0-9]+", text))


@dataclass(frozen=True, slots=True)
class Paper:
    name: str
    original: int
    copy: int
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "original": self.original, "copy": self.copy, "note": self.note}


@dataclass(frozen=True, slots=True)
class Procedure:
    """One administrative procedure, as the citizen reads it."""

    id: str
    name: str
    field: str
    area: str
    papers: tuple[Paper, ...]
    fee_vnd: int | None
    fee_text: str
    time_text: str
    working_days: float | None
    where: str
    online: str  # "full" | "partial"
    legal_basis: tuple[str, ...]
    result: str | None
    keywords: tuple[str, ...]

    @property
    def online_vi(self) -> str:
        return vietnamese(N_("Fully online") if self.online == "full" else N_("Partly online"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Procedure:
        return cls(
            id=d["id"],
            name=d["name"],
            field=d["field"],
            area=d["area"],
            papers=tuple(
                Paper(p["name"], p["original"], p["copy"], p.get("note")) for p in d["papers"]
            ),
            fee_vnd=d["fee"]["amount_vnd"],
            fee_text=d["fee"]["text"],
            time_text=d["processing_time"]["text"],
            working_days=d["processing_time"]["working_days"],
            where=d["where"],
            online=d["online"],
            legal_basis=tuple(d["legal_basis"]),
            result=d.get("result"),
            keywords=tuple(d.get("keywords", ())),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "field": self.field,
            "area": self.area,
            "papers": [p.as_dict() for p in self.papers],
            "fee": {"amount_vnd": self.fee_vnd, "text": self.fee_text},
            "processing_time": {"text": self.time_text, "working_days": self.working_days},
            "where": self.where,
            "online": self.online,
            "online_vi": self.online_vi,
            "legal_basis": list(self.legal_basis),
            "result": self.result,
            "keywords": list(self.keywords),
        }


@dataclass(frozen=True, slots=True)
class SearchHit:
    procedure: Procedure
    score: float

    def as_dict(self) -> dict[str, Any]:
        p = self.procedure
        return {
            "id": p.id,
            "name": p.name,
            "field": p.field,
            "area": p.area,
            "score": round(self.score, 1),
        }


@dataclass(frozen=True)
class _Entry:
    procedure: Procedure
    name: str  # folded
    phrases: tuple[str, ...]  # folded name and keywords
    tokens: frozenset[str] = field(default_factory=frozenset)


class Catalog:
    """An immutable, validated catalog with its search index."""

    def __init__(self, document: dict[str, Any]) -> None:
        validate_document(document)
        self.document = document
        self.version: str = document["version"]
        self.updated: str = document["updated"]
        self.procedures: tuple[Procedure, ...] = tuple(
            Procedure.from_dict(p) for p in document["procedures"]
        )
        self._by_id = {p.id: p for p in self.procedures}
        self._entries = []
        for p in self.procedures:
            phrases = tuple(dict.fromkeys(fold(t) for t in (p.name, *p.keywords) if fold(t)))
            tokens = frozenset(t for ph in phrases for t in ph.split())
            self._entries.append(_Entry(p, fold(p.name), phrases, tokens))

    @classmethod
    def from_file(cls, path: Path) -> Catalog:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise CatalogInvalid([f"{path}: {err}"]) from err
        return cls(document)

    def __len__(self) -> int:
        return len(self.procedures)

    def get(self, procedure_id: str) -> Procedure:
        try:
            return self._by_id[procedure_id.strip().upper()]
        except KeyError:
            raise ProcedureNotFound(procedure_id) from None

    def fields(self) -> list[str]:
        return list(dict.fromkeys(p.field for p in self.procedures))

    def search(self, query: str, *, limit: int = 10) -> list[SearchHit]:
        """Best matches first; accents, case, missing diacritics and small typos do not matter."""
        q = fold(query)
        words = [w for w in q.split() if w not in _STOPWORDS] or q.split()
        if not words:
            return []
        q = " ".join(words)
        hits = []
        for entry in self._entries:
            score = _score(q, words, entry)
            if score >= MIN_SCORE:
                hits.append(SearchHit(entry.procedure, score))
        # Ties: the shorter name is the more specific match ("Đăng ký khai sinh" before
        # "Đăng ký lại khai sinh" for "khai sinh").
        hits.sort(key=lambda h: (-h.score, len(h.procedure.name), h.procedure.id))
        return hits[:limit]


def _score(q: str, words: list[str], entry: _Entry) -> float:
    best = 0.0
    for phrase in entry.phrases:
        # Whole query against the phrase: typos inside words are forgiven by the ratio, a
        # query that is part of a longer name by the partial ratio.
        whole = fuzz.ratio(q, phrase)
        part = fuzz.partial_ratio(q, phrase) if len(q) >= 4 else 0.0
        tokens = fuzz.token_set_ratio(q, phrase)
        score = max(whole, 0.9 * part, 0.85 * tokens)
        best = max(best, score)
    # Every query word should be somewhere in the procedure (after typos): a coverage factor.
    covered = sum(_word_found(w, entry.tokens) for w in words) / len(words)
    return best * (0.6 + 0.4 * covered)


def _word_found(word: str, tokens: frozenset[str]) -> float:
    if word in tokens:
        return 1.0
    # OSA distance: a swapped pair of letters ("hno") is one typo, as people make them.
    best = max((OSA.normalized_similarity(word, t) for t in tokens), default=0.0)
    return best if best >= 0.66 else 0.0


def validate_document(document: Any) -> None:
    """Raise CatalogInvalid with every problem: the schema, then unique ids."""
    validator = jsonschema.Draft202012Validator(load_schema("catalog"))
    problems = [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    ]
    if not problems:
        seen: set[str] = set()
        for p in document["procedures"]:
            if p["id"] in seen:
                problems.append(f"procedures: duplicate id {p['id']}")
            seen.add(p["id"])
    if problems:
        raise CatalogInvalid(problems)


class CatalogService:
    """The catalog the kiosk serves: the installed update if there is one, else the bundled file.

    update() validates a new document, writes it atomically as `current.json` under
    `<state_dir>/catalog/`, keeps the one it replaces as `previous.json`, then swaps it in.
    """

    def __init__(self, catalog_dir: Path, *, bundled: Path = BUNDLED_CATALOG) -> None:
        self.catalog_dir = catalog_dir
        self.bundled = bundled
        self._catalog: Catalog | None = None
        self._lock = threading.Lock()

    @property
    def current_path(self) -> Path:
        return self.catalog_dir / "current.json"

    @property
    def previous_path(self) -> Path:
        return self.catalog_dir / "previous.json"

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self.load()
        return self._catalog

    @property
    def version(self) -> str:
        return self.catalog.version

    def load(self) -> Catalog:
        """The installed update, or the bundled catalog when there is none or it is unusable."""
        with self._lock:
            catalog = None
            if self.current_path.exists():
                try:
                    catalog = Catalog.from_file(self.current_path)
                except CatalogInvalid as err:
                    logger.error("installed catalog unusable, using the bundled one: %s", err)
            if catalog is None:
                catalog = Catalog.from_file(self.bundled)
            self._catalog = catalog
        logger.info(
            "catalog loaded", extra={"version": catalog.version, "procedures": len(catalog)}
        )
        return catalog

    def search(self, query: str, *, limit: int = 10) -> list[SearchHit]:
        """Ranked matches for what the citizen typed (see Catalog.search)."""
        return self.catalog.search(query, limit=limit)

    def get(self, procedure_id: str) -> Procedure:
        return self.catalog.get(procedure_id)

    def update(self, document: dict[str, Any]) -> dict[str, Any]:
        """Validate, then install atomically; the replaced file is kept as previous.json."""
        new = Catalog(document)  # raises CatalogInvalid before anything is touched
        with self._lock:
            old = self._catalog
            self.catalog_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            if self.current_path.exists():
                os.replace(self.current_path, self.previous_path)
            elif old is not None:
                _write_atomic(self.previous_path, old.document)
            _write_atomic(self.current_path, document)
            self._catalog = new
        logger.warning(
            "catalog updated",
            extra={"version": new.version, "previous": old.version if old else None},
        )
        return {
            "version": new.version,
            "previous": old.version if old else None,
            "procedures": len(new),
        }

    def rollback(self) -> dict[str, Any]:
        """Back to previous.json (it becomes current; the current one becomes previous)."""
        if not self.previous_path.exists():
            raise CatalogInvalid(["no previous catalog to go back to"])
        previous = Catalog.from_file(self.previous_path)
        with self._lock:
            old = self._catalog
            tmp = self.catalog_dir / "swap.json"
            if self.current_path.exists():
                os.replace(self.current_path, tmp)
            os.replace(self.previous_path, self.current_path)
            if tmp.exists():
                os.replace(tmp, self.previous_path)
            fsync_dir(self.catalog_dir)
            self._catalog = previous
        return {
            "version": previous.version,
            "previous": old.version if old else None,
            "procedures": len(previous),
        }


def _write_atomic(path: Path, document: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8"))
