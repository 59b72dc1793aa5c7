"""The procedure catalog: a versioned data file, validated, searched without diacritics or typos."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import threading
import tomllib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

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
BUNDLED_SYNONYMS = PACKAGE_DIR / "catalog" / "synonyms.toml"
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
    kind: str = "procedure"  # "procedure" | "referral" (handled elsewhere: where to go)
    aliases: tuple[str, ...] = ()
    code: str | None = None
    portal: str | None = None
    sources: tuple[str, ...] = ()

    @property
    def is_referral(self) -> bool:
        return self.kind == "referral"

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
            kind=d.get("kind", "procedure"),
            aliases=tuple(d.get("aliases", ())),
            code=d.get("code"),
            portal=d.get("portal"),
            sources=tuple(d.get("sources", ())),
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
            "kind": self.kind,
            "aliases": list(self.aliases),
            "code": self.code,
            "portal": self.portal,
            "sources": list(self.sources),
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
            "kind": p.kind,
            "score": round(self.score, 1),
        }


# Field weights: a match on the name beats the same match on an alias, which beats a keyword.
_NAME_WEIGHT = 1.0
_ALIAS_WEIGHT = 0.97
_KEYWORD_WEIGHT = 0.93


@dataclass(frozen=True)
class _Entry:
    procedure: Procedure
    name: str  # folded
    phrases: tuple[tuple[str, float], ...]  # folded name, aliases and keywords with their weight
    tokens: frozenset[str] = field(default_factory=frozenset)


class Synonyms:
    """What people type -> the catalog's words (edge/catalog/synonyms.toml), on folded text."""

    def __init__(self, groups: list[tuple[str, list[str]]]) -> None:
        table: dict[tuple[str, ...], tuple[str, ...]] = {}
        for canonical, variants in groups:
            target = tuple(fold(canonical).split())
            for v in (canonical, *variants):
                key = tuple(fold(v).split())
                if key:
                    table[key] = target
        self._table = table
        self._longest = max((len(k) for k in table), default=0)

    @classmethod
    def from_file(cls, path: Path) -> Synonyms:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return cls([(g["canonical"], list(g.get("variants", []))) for g in data.get("synonym", [])])

    def __len__(self) -> int:
        return len(self._table)

    def rewrite(self, words: list[str]) -> list[tuple[str, bool]]:
        """Words with the longest known variant at each place replaced by its canonical
        words; those are marked True (kept even when they are stop words)."""
        out: list[tuple[str, bool]] = []
        i = 0
        while i < len(words):
            for n in range(min(self._longest, len(words) - i), 0, -1):
                target = self._table.get(tuple(words[i : i + n]))
                if target is not None:
                    out.extend((w, True) for w in target)
                    i += n
                    break
            else:
                out.append((words[i], False))
                i += 1
        return out


_synonyms_cache: dict[Path, Synonyms] = {}


def load_synonyms(path: Path = BUNDLED_SYNONYMS) -> Synonyms:
    if path not in _synonyms_cache:
        _synonyms_cache[path] = Synonyms.from_file(path)
    return _synonyms_cache[path]


class Catalog:
    """An immutable, validated catalog with its search index."""

    def __init__(
        self,
        document: dict[str, Any],
        *,
        synonyms: Synonyms | None = None,
        validated: bool = False,
    ) -> None:
        if not validated:
            validate_document(document)
        self.synonyms = synonyms if synonyms is not None else load_synonyms()
        self.document = document
        self.version: str = document["version"]
        self.updated: str = document["updated"]
        self.procedures: tuple[Procedure, ...] = tuple(
            Procedure.from_dict(p) for p in document["procedures"]
        )
        self._by_id = {p.id: p for p in self.procedures}
        self._entries = []
        for p in self.procedures:
            weighted: dict[str, float] = {}
            for texts, weight in (
                ((p.name,), _NAME_WEIGHT),
                (p.aliases, _ALIAS_WEIGHT),
                (p.keywords, _KEYWORD_WEIGHT),
            ):
                for t in texts:
                    # The catalog's phrases go through what the query goes through.
                    f = " ".join(self._query_words(t))
                    if f and f not in weighted:
                        weighted[f] = weight
            phrases = tuple(weighted.items())
            tokens = frozenset(t for ph, _ in phrases for t in ph.split())
            self._entries.append(_Entry(p, fold(p.name), phrases, tokens))
        self._vocabulary = frozenset(t for e in self._entries for t in e.tokens)

    @classmethod
    def from_file(cls, path: Path) -> Catalog:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise CatalogInvalid([f"{path}: {err}"]) from err
        return cls(document)

    def __len__(self) -> int:
        return len(self.procedures)

    def in_force(self, day: dt.date) -> Catalog:
        """The entries that apply on `day` (valid_from <= day <= valid_to where given); self
        when that is all of them."""
        kept = [p for p in self.document["procedures"] if entry_in_force(p, day)]
        if len(kept) == len(self.procedures):
            return self
        return Catalog(
            {**self.document, "procedures": kept}, synonyms=self.synonyms, validated=True
        )

    def get(self, procedure_id: str) -> Procedure:
        try:
            return self._by_id[procedure_id.strip().upper()]
        except KeyError:
            raise ProcedureNotFound(procedure_id) from None

    def fields(self) -> list[str]:
        return list(dict.fromkeys(p.field for p in self.procedures))

    def in_field(self, name: str) -> list[Procedure]:
        """The procedures of one field (lĩnh vực), in catalog order; referrals last."""
        found = [p for p in self.procedures if p.field == name]
        return sorted(found, key=lambda p: p.is_referral)

    def _query_words(self, text: str) -> list[str]:
        """Folded words, synonyms rewritten, stop words dropped (unless part of a synonym)."""
        rewritten = self.synonyms.rewrite(fold(text).split())
        return [w for w, keep in rewritten if keep or w not in _STOPWORDS] or [
            w for w, _ in rewritten
        ]

    def search(self, query: str, *, limit: int = 10) -> list[SearchHit]:
        """Best matches first; accents, case, missing diacritics and small typos do not matter."""
        words = self._query_words(query)
        # Words the catalog never uses, even with a typo ("hàng xóm", "bỏ rơi"), say nothing
        # about which procedure is meant; they only lower every score.
        known = [w for w in words if _word_known(w, self._vocabulary)]
        words = known or words
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
    contained = 0.0
    padded = f" {q} "
    for phrase, weight in entry.phrases:
        if " " in phrase and f" {phrase} " in padded:
            # A name, alias or keyword of two words or more said whole inside a longer query
            # ("làm hộ chiếu đi xuất khẩu lao động"): strong evidence whatever else is said.
            contained = max(contained, (70.0 + 25.0 * len(phrase) / len(q)) * weight)
        # Whole query against the phrase: typos inside words are forgiven by the ratio, a
        # query that is part of a longer name by the partial ratio.
        whole = fuzz.ratio(q, phrase)
        part = fuzz.partial_ratio(q, phrase) if len(q) >= 4 else 0.0
        # All query words inside a long phrase (a name listing several procedures) is weaker
        # evidence than inside a short one: 0.85 falls to 0.75 over 60 extra characters.
        tokens = fuzz.token_set_ratio(q, phrase)
        extra = min(1.0, max(0.0, (len(phrase) - len(q)) / 60))
        score = max(whole, 0.9 * part, (0.85 - 0.1 * extra) * tokens) * weight
        best = max(best, score)
    # Every query word should be somewhere in the procedure (after typos): a coverage factor.
    covered = sum(_word_found(w, entry.tokens) for w in words) / len(words)
    return max(best * (0.6 + 0.4 * covered), contained)


def _word_found(word: str, tokens: frozenset[str]) -> float:
    if word in tokens:
        return 1.0
    # OSA distance: a swapped pair of letters ("hno") is one typo, as people make them.
    best = max((OSA.normalized_similarity(word, t) for t in tokens), default=0.0)
    return best if best >= 0.66 else 0.0


def _word_known(word: str, vocabulary: frozenset[str]) -> bool:
    """In the catalog's words, one letter short of one, or one typo away from one (words of
    4 letters or more: a 3-letter word one letter off is usually another word, "với" is not
    "nội")."""
    if word in vocabulary:
        return True
    if len(word) >= 3 and any(t.startswith(word) and len(t) == len(word) + 1 for t in vocabulary):
        return True  # the last letter not typed yet ("khai sin")
    if len(word) < 4:
        return False
    return max((OSA.normalized_similarity(word, t) for t in vocabulary), default=0.0) >= 0.75


def entry_in_force(entry: dict[str, Any], day: dt.date) -> bool:
    """valid_from and valid_to are inclusive days (YYYY-MM-DD sorts as a date does)."""
    iso = day.isoformat()
    return entry.get("valid_from", iso) <= iso <= entry.get("valid_to", iso)


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

    What it serves (search, browse, the guide pages) is the day's view: entries before their
    valid_from or after their valid_to, by the kiosk's local date, are hidden; the view is
    made again when the local day changes, without a restart.
    """

    def __init__(
        self,
        catalog_dir: Path,
        *,
        bundled: Path = BUNDLED_CATALOG,
        timezone: str = "Asia/Ho_Chi_Minh",
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.catalog_dir = catalog_dir
        self.bundled = bundled
        self.zone = ZoneInfo(timezone)
        self.now = now
        self._catalog: Catalog | None = None  # the whole installed document
        self._view: tuple[dt.date, Catalog, Catalog] | None = None  # (day, whole, in force)
        self._lock = threading.Lock()

    @property
    def current_path(self) -> Path:
        return self.catalog_dir / "current.json"

    @property
    def previous_path(self) -> Path:
        return self.catalog_dir / "previous.json"

    @property
    def whole(self) -> Catalog:
        """Every entry, in force or not (what update-catalog installed)."""
        if self._catalog is None:
            self.load()
        assert self._catalog is not None
        return self._catalog

    @property
    def today(self) -> dt.date:
        return self.now().astimezone(self.zone).date()

    @property
    def catalog(self) -> Catalog:
        """The entries in force today (local date), as citizens see them."""
        whole, day = self.whole, self.today
        view = self._view
        if view is None or view[0] != day or view[1] is not whole:
            view = (day, whole, whole.in_force(day))
            self._view = view
            if len(view[2]) != len(whole):
                logger.info(
                    "catalog entries out of their validity dates hidden",
                    extra={"day": day.isoformat(), "hidden": len(whole) - len(view[2])},
                )
        return view[2]

    @property
    def version(self) -> str:
        return self.whole.version

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
