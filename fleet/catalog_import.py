"""Keeping the procedure catalog current: a province's published list (XLSX/CSV) merged into the
catalog by official code, the diff before install, and the packed update-catalog arguments."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import gzip
import io
import json
import logging
import re
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from protocol.errors import BadInput
from protocol.files import write_atomic
from protocol.schemas import load_schema

logger = logging.getLogger(__name__)

HEADER_SEARCH_ROWS = 40  # the title block above the header row is a dozen rows at most
# What the kiosk accepts in one update-catalog envelope (edge/fleet/commands.py
# MAX_BYTES_BY_COMMAND) less room for the envelope's other fields.
MAX_PACKED_CHARS = 1024 * 1024 - 4096

# Header spellings, folded (no accents, lower case, letters and digits): the longest spelling a
# header cell starts with names its column.
COLUMNS: dict[str, tuple[str, ...]] = {
    "stt": ("stt", "so tt", "so thu tu", "tt"),
    "code": (
        "ma thu tuc",
        "ma thu tuc hanh chinh",
        "ma tthc",
        "ma so",
        "ma so tthc",
        "ma so thu tuc",
        "ma",
    ),
    "name": ("ten thu tuc", "ten thu tuc hanh chinh", "ten tthc", "thu tuc hanh chinh"),
    "field": ("linh vuc",),
    "level": ("cap thuc hien", "cap giai quyet", "cap co tham quyen"),
    "agency": (
        "co quan thuc hien",
        "co quan giai quyet",
        "co quan co tham quyen",
        "don vi thuc hien",
    ),
    "time": ("thoi han giai quyet", "thoi gian giai quyet", "thoi han"),
    "fee": ("phi le phi", "phi", "le phi", "muc phi le phi"),
    "legal": ("can cu phap ly", "can cu", "van ban quy dinh"),
    "online": (
        "muc do dvc",
        "muc do dich vu cong",
        "muc do dvctt",
        "dich vu cong truc tuyen",
        "dvc truc tuyen",
        "muc do",
    ),
}
REQUIRED_COLUMNS = ("code", "name")
# The codes seen in the national database, e.g. 2.000815 (the issue; protocol/schemas/catalog.json
# allows [0-9A-Za-z.]): one digit, a dot, six digits, then optional dotted parts (local codes).
CODE = re.compile(r"^[0-9]\.[0-9]{6}(\.[0-9A-Za-z]+)*$")
SECTION = re.compile(r"^\s*(?:[IVXLC]+|[A-Z]|[0-9]+)\s*[.)/-]\s*(.+)$")
NOTE = re.compile(r"^\s*(\*|\(\*+\)|ghi chu|luu y|chu thich|tong|nguon)", re.IGNORECASE)


class CatalogImportError(BadInput):
    """The list or the catalog cannot be used; nothing was written."""

    code = "catalog_import"

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        more = [f"... and {len(reasons) - 50} more"] if len(reasons) > 50 else []
        super().__init__("nothing written:\n  " + "\n  ".join([*reasons[:50], *more]))


def fold(text: str) -> str:
    """Lower case, no diacritics (đ -> d), letters and digits only, single spaces."""
    text = unicodedata.normalize("NFD", text.casefold().replace("đ", "d"))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.findall(r"[a-z0-9]+", text))


# --- reading the list ------------------------------------------------------------------------


def read_rows(path: Path, *, sheet: str | None = None) -> list[tuple[int, list[str]]]:
    """(row number as the spreadsheet shows it, cell texts) of an XLSX sheet or a CSV file."""
    data = path.read_bytes()
    if data[:4] == b"PK\x03\x04":
        return _xlsx_rows(data, path, sheet)
    if sheet is not None:
        raise CatalogImportError([f"{path.name}: --sheet is for XLSX files; this is not one"])
    if b"\0" in data[:4096] or data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise CatalogImportError(
            [f"{path.name}: not a CSV or XLSX file (an old .xls? save it as .xlsx)"]
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise CatalogImportError(
            [f"{path.name}: a CSV must be UTF-8 (with or without BOM): {err}"]
        ) from err
    try:
        dialect: Any = csv.Sniffer().sniff(text[:8192], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return [
        (n, [c.strip() for c in row])
        for n, row in enumerate(csv.reader(io.StringIO(text), dialect), start=1)
    ]


def _xlsx_rows(data: bytes, path: Path, sheet: str | None) -> list[tuple[int, list[str]]]:
    try:
        import openpyxl
    except ImportError as err:  # a kiosk install: the central extra is not there
        raise CatalogImportError(
            ["openpyxl is not installed: pip install 'kiosk-edge[central]'"]
        ) from err
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as err:
        raise CatalogImportError([f"{path.name}: not a readable XLSX file: {err}"]) from err
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise CatalogImportError(
                [f"{path.name}: no sheet {sheet!r}; sheets: {', '.join(book.sheetnames)}"]
            )
        ws = book[sheet] if sheet is not None else book.worksheets[0]
        return [
            (n, [_cell_text(v) for v in row])
            for n, row in enumerate(ws.iter_rows(values_only=True), start=1)
        ]
    finally:
        book.close()


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        # A code typed as a number (2.000815) is a float: six decimals keep its trailing zeros.
        return f"{value:.6f}" if not value.is_integer() else str(int(value))
    if isinstance(value, dt.datetime | dt.date):
        return value.strftime("%d/%m/%Y")
    return str(value).strip()


def find_header(rows: list[tuple[int, list[str]]], source: str) -> tuple[int, dict[str, int]]:
    """The index in rows of the header row and column -> cell index."""
    for index, (_, cells) in enumerate(rows[:HEADER_SEARCH_ROWS]):
        columns = _header_columns(cells)
        if all(c in columns for c in REQUIRED_COLUMNS):
            return index, columns
    raise CatalogImportError(
        [
            f"{source}: no header row in the first {HEADER_SEARCH_ROWS} rows "
            "(looked for the columns 'Mã thủ tục' / 'Mã TTHC' / 'Mã số' and "
            "'Tên thủ tục hành chính')"
        ]
    )


def _header_columns(cells: list[str]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for i, cell in enumerate(cells):
        folded = fold(cell)
        best: tuple[int, str] | None = None
        for column, spellings in COLUMNS.items():
            for s in spellings:
                if (folded == s or folded.startswith(s + " ")) and (
                    best is None or len(s) > best[0]
                ):
                    best = (len(s), column)
        if best is not None and best[1] not in columns:
            columns[best[1]] = i
    return columns


@dataclass
class ListEntry:
    """One procedure row of the published list, in the catalog's terms."""

    row: int
    code: str
    name: str
    field: str | None = None
    level: str | None = None
    agency: str | None = None
    time_text: str | None = None
    fee_text: str | None = None
    legal_basis: list[str] | None = None
    online: str | None = None
    level_text: str = ""
    online_text: str = ""
    abolished: bool = False  # listed under a part of procedures the decision abolishes


@dataclass
class ParsedList:
    entries: list[ListEntry]
    ignored: list[str]  # notes and footnotes, for the report


def parse_list(path: Path, *, sheet: str | None = None) -> ParsedList:
    """The procedure rows of a published list; every problem at once, naming its row."""
    rows = read_rows(path, sheet=sheet)
    header, columns = find_header(rows, path.name)
    entries: list[ListEntry] = []
    problems: list[str] = []
    ignored: list[str] = []
    section_field: str | None = None
    section_level: str | None = None
    abolished = False  # under a part "… bị bãi bỏ": those procedures end
    seen: dict[str, int] = {}

    def cell(cells: list[str], column: str) -> str:
        i = columns.get(column)
        return cells[i].strip() if i is not None and i < len(cells) else ""

    for number, cells in rows[header + 1 :]:
        texts = list(dict.fromkeys(c for c in cells if c.strip()))  # merged cells repeat
        if not texts:
            continue
        code, name = cell(cells, "code"), cell(cells, "name")
        if len(texts) == 1 and not CODE.match(texts[0]) and not _lone_name(texts[0], name):
            text = texts[0]
            if NOTE.match(fold(text)) or NOTE.match(text):
                ignored.append(f"row {number}: note: {text[:80]}")
                continue
            if all(re.fullmatch(r"\(?[0-9]+\)?", t) for t in texts):
                continue
            section = SECTION.match(text)
            body = section.group(1) if section else text
            folded, level = fold(body), _level(body)
            if "linh vuc" in folded or "thu tuc" not in folded:
                section_field = _field_name(body)  # "I. LĨNH VỰC HỘ TỊCH"
            else:  # a part: "A. THỦ TỤC CẤP XÃ", "B. DANH MỤC TTHC BỊ BÃI BỎ"
                abolished = "bai bo" in folded
                section_field = None
                section_level = level or section_level
            continue
        if all(re.fullmatch(r"\(?[0-9]+\)?", t) for t in texts):
            continue  # the column numbers row under the header: (1) (2) (3) ...
        if not code:
            problems.append(f"row {number}: no procedure code ({name[:60] or texts[0][:60]!r})")
            continue
        if not CODE.match(code):
            problems.append(
                f"row {number}: {code!r} is not a procedure code like 2.000815 "
                "(the national database's)"
            )
            continue
        if not name:
            problems.append(f"row {number}: procedure {code} has no name")
            continue
        if code in seen:
            problems.append(f"row {number}: code {code} is already on row {seen[code]}")
            continue
        seen[code] = number
        level_text, online_text = cell(cells, "level"), cell(cells, "online")
        legal = cell(cells, "legal")
        entries.append(
            ListEntry(
                row=number,
                code=code,
                name=_one_line(name),
                field=_field_name(cell(cells, "field")) or section_field,
                level=_level(level_text) if level_text else section_level,
                agency=_one_line(cell(cells, "agency")) or None,
                time_text=_one_line(cell(cells, "time")) or None,
                fee_text=_one_line(cell(cells, "fee")) or None,
                legal_basis=_acts(legal) or None,
                online=_online(online_text),
                level_text=level_text,
                online_text=online_text,
                abolished=abolished,
            )
        )
    if problems:
        raise CatalogImportError(problems)
    if not entries:
        raise CatalogImportError([f"{path.name}: the header row is there but no procedure rows"])
    return ParsedList(entries, ignored)


def _lone_name(text: str, name: str) -> bool:
    """A procedure name alone in its column (a row that lost its code), not a section title."""
    return (
        text == name
        and SECTION.match(text) is None
        and "linh vuc" not in fold(text)
        and not text.isupper()
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())[:1000]


def _field_name(text: str) -> str | None:
    """'I. LĨNH VỰC HỘ TỊCH' -> 'Hộ tịch'; 'Hộ tịch' stays."""
    text = _one_line(text)
    section = SECTION.match(text)
    if section:
        text = section.group(1)
    # "Thủ tục hành chính lĩnh vực Đất đai" -> "Đất đai"
    text = re.sub(r"^.*?(lĩnh vực|linh vuc)\s*:?\s*", "", text, flags=re.IGNORECASE).strip()
    text = re.sub(r"\s*\(\s*[0-9]+\s*(thủ tục|TTHC)?\s*\)\s*$", "", text, flags=re.IGNORECASE)
    if not text:
        return None
    if text.isupper():
        text = text[0] + text[1:].lower()
    return text


def _level(text: str) -> str | None:
    """'Cấp xã' -> commune; none or several levels named -> None (the catalog's is kept)."""
    folded = f" {fold(text)} "
    found = set()
    if any(w in folded for w in (" cap xa ", " xa ", " phuong ", " dac khu ")):
        found.add("commune")
    if any(w in folded for w in (" cap tinh ", " tinh ")):
        found.add("province")
    if any(w in folded for w in (" trung uong ", " cap bo ", " bo ")):
        found.add("central")
    return found.pop() if len(found) == 1 else None


def _online(text: str) -> str | None:
    folded = fold(text)
    if "toan trinh" in folded:
        return "full"
    if "mot phan" in folded:
        return "partial"
    return None


def _acts(text: str) -> list[str]:
    """One act per line or per ';', list marks dropped."""
    parts = re.split(r"[\n;]+", text)
    acts = [_one_line(re.sub(r"^\s*[-+•*]\s*", "", p)) for p in parts]
    return [a.rstrip(".,") for a in acts if a][:20]


def _working_days(text: str) -> float | None:
    """The first "N ngày làm việc" (0.5 written 0,5), 0 for "trong ngày", else None."""
    plain = unicodedata.normalize("NFD", text.casefold().replace("đ", "d"))
    plain = " ".join("".join(c for c in plain if not unicodedata.combining(c)).split())
    m = re.search(r"([0-9]+(?:[.,][0-9]+)?)\s*ngay lam viec", plain)
    if m is not None:
        days = float(m.group(1).replace(",", "."))
        return int(days) if days.is_integer() else days
    if re.search(r"\btrong ngay\b", plain):
        return 0
    return None


def _fee_amount(text: str) -> int | str | None:
    """0 when free, the amount when the text names exactly one, "keep" otherwise."""
    folded = fold(text)
    if re.match(r"^(mien|khong)\b", folded):
        return 0
    amounts = re.findall(r"([0-9]{1,3}(?:[.][0-9]{3})+|[0-9]+)\s*(?:đồng|d\b|vnd|vnđ)", text)
    if len(set(amounts)) == 1:
        return int(amounts[0].replace(".", ""))
    return "keep"


# --- merging ---------------------------------------------------------------------------------


@dataclass
class ImportReport:
    updated: list[tuple[str, str]] = field(default_factory=list)  # (id, code)
    new: list[ListEntry] = field(default_factory=list)
    missing: list[tuple[str, str, str]] = field(default_factory=list)  # (id, code, name)
    abolished: list[ListEntry] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)  # ids given valid_to
    uncoded: list[str] = field(default_factory=list)  # catalog procedures without a code
    warnings: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{len(self.updated)} procedures updated from the list"]
        if self.new:
            out.append(f"{len(self.new)} new in the list: needs its papers before it can be shown")
            out += [f"  + {e.code} {e.name} (row {e.row})" for e in self.new]
        if self.abolished:
            out.append(f"{len(self.abolished)} listed as abolished (bãi bỏ): not updated")
            out += [f"  x {e.code} {e.name} (row {e.row})" for e in self.abolished]
        if self.missing:
            out.append(f"{len(self.missing)} in the catalog but not in the list, or abolished")
            out += [
                f"  - {pid} {code} {name}" + (" (valid_to set)" if pid in self.expired else "")
                for pid, code, name in self.missing
            ]
        if self.uncoded:
            out.append(
                f"{len(self.uncoded)} catalog procedures have no code and cannot be matched: "
                + ", ".join(self.uncoded)
            )
        out += [f"warning: {w}" for w in self.warnings]
        out += [f"ignored {i}" for i in self.ignored]
        return out


def merge(
    base: dict[str, Any],
    parsed: ParsedList,
    *,
    today: dt.date,
    version: str | None = None,
    expire_missing: dt.date | None = None,
    source: str | None = None,
) -> tuple[dict[str, Any], ImportReport]:
    """The base catalog with the list's facts for each code both have (a new document)."""
    document = json.loads(json.dumps(base))  # a deep copy: base is left as it was
    report = ImportReport(ignored=list(parsed.ignored))
    by_code: dict[str, list[dict[str, Any]]] = {}
    for entry in document["procedures"]:
        if entry.get("code"):
            by_code.setdefault(entry["code"], []).append(entry)
        elif entry.get("kind", "procedure") == "procedure":
            report.uncoded.append(entry["id"])
    listed = {e.code: e for e in parsed.entries if not e.abolished}
    for item in parsed.entries:
        if item.abolished:
            report.abolished.append(item)
            continue
        targets = by_code.get(item.code)
        if not targets:
            report.new.append(item)
            continue
        for entry in targets:
            _apply(entry, item, today=today, source=source, warnings=report.warnings)
            report.updated.append((entry["id"], item.code))
    levels = {e.level for e in parsed.entries if e.level}
    for entry in document["procedures"]:
        code = entry.get("code")
        if not code or code in listed or entry.get("kind", "procedure") != "procedure":
            continue
        if levels and entry.get("level") and entry["level"] not in levels:
            continue  # a list of commune procedures says nothing of the province's
        report.missing.append((entry["id"], code, entry["name"]))
        if expire_missing is not None:
            day = expire_missing.isoformat()
            if entry.get("valid_to", day) >= day:
                entry["valid_to"] = day
                report.expired.append(entry["id"])
    document["updated"] = today.isoformat()
    document["version"] = version or _next_version(base["version"], today)
    problems = schema_problems(document)
    if problems:
        raise CatalogImportError([f"the merged catalog is not valid: {p}" for p in problems])
    return document, report


def _apply(
    entry: dict[str, Any],
    item: ListEntry,
    *,
    today: dt.date,
    source: str | None,
    warnings: list[str],
) -> None:
    where = f"row {item.row} ({item.code}, {entry['id']})"
    entry["name"] = item.name
    if item.field:
        entry["field"] = item.field
    if item.level:
        entry["level"] = item.level
    elif item.level_text:
        warnings.append(f"{where}: level {item.level_text!r} not understood; kept")
    if item.agency:
        entry["agency"] = item.agency
    if item.time_text:
        entry["processing_time"] = {
            "text": item.time_text,
            "working_days": _working_days(item.time_text),
        }
    if item.fee_text:
        amount = _fee_amount(item.fee_text)
        if amount == "keep":
            warnings.append(
                f"{where}: fee amount not one figure in {item.fee_text[:60]!r}; "
                f"kept {entry['fee']['amount_vnd']}"
            )
            amount = entry["fee"]["amount_vnd"]
        entry["fee"] = {"amount_vnd": amount, "text": item.fee_text}
    if item.legal_basis:
        entry["legal_basis"] = item.legal_basis
    if item.online:
        entry["online"] = item.online
    elif item.online_text:
        warnings.append(f"{where}: online level {item.online_text!r} not understood; kept")
    if source and source not in entry.get("sources", []):
        entry["sources"] = [*entry.get("sources", []), source][:20]
    entry["checked"] = today.isoformat()


def _next_version(previous: str, today: dt.date) -> str:
    version = today.strftime("%Y.%m.%d")
    return version if version != previous else f"{version}.1"


def schema_problems(document: Any) -> list[str]:
    """What the kiosk would refuse (edge/services/catalog.py validate_document does the same)."""
    validator = jsonschema.Draft202012Validator(load_schema("catalog"))
    problems = [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:200]}"
        for e in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    ]
    if not problems:
        ids = [p["id"] for p in document["procedures"]]
        problems += [
            f"procedures: duplicate id {i}" for i in sorted({i for i in ids if ids.count(i) > 1})
        ]
    return problems


def load_catalog(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CatalogImportError([f"{path}: not a readable catalog: {err}"]) from err
    problems = schema_problems(document)
    if problems:
        raise CatalogImportError([f"{path}: {p}" for p in problems])
    return document


def write_catalog(path: Path, document: dict[str, Any]) -> None:
    """Whole or not at all (a temp file renamed over the target)."""
    problems = schema_problems(document)
    if problems:
        raise CatalogImportError(problems)
    write_atomic(path, (json.dumps(document, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))


# --- the diff --------------------------------------------------------------------------------


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Readable lines: the document's version and date, then entries added, removed, changed."""
    out = [
        f"{key}: {old.get(key)} -> {new.get(key)}"
        for key in ("version", "updated")
        if old.get(key) != new.get(key)
    ]
    before = {p["id"]: p for p in old["procedures"]}
    after = {p["id"]: p for p in new["procedures"]}
    for pid in after:
        if pid not in before:
            out.append(f"+ {pid} {after[pid]['name']} (added)")
    for pid in before:
        if pid not in after:
            out.append(f"- {pid} {before[pid]['name']} (removed)")
    for pid, entry in after.items():
        if pid not in before or before[pid] == entry:
            continue
        out.append(f"~ {pid} {entry['name']}")
        previous = before[pid]
        for key in dict.fromkeys([*previous, *entry]):
            a, b = previous.get(key), entry.get(key)
            if a != b:
                out += [f"    {line}" for line in _changed(key, a, b)]
    return out


def _changed(key: str, a: Any, b: Any) -> Iterator[str]:
    if isinstance(a, list) and isinstance(b, list):
        yield f"{key}:"
        for item in a:
            if item not in b:
                yield f"  - {_show(item)}"
        for item in b:
            if item not in a:
                yield f"  + {_show(item)}"
        if [i for i in a if i in b] != [i for i in b if i in a]:
            yield "  (order changed)"
    else:
        yield f"{key}: {_show(a)} -> {_show(b)}"


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 160 else text[:157] + "..."


# --- distribution ----------------------------------------------------------------------------


def packed_args(document: dict[str, Any]) -> dict[str, str]:
    """update-catalog's args: {"catalog_gzip_b64": ...} (compact JSON, gzip, base64)."""
    raw = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    packed = base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode("ascii")
    if len(packed) > MAX_PACKED_CHARS:
        raise CatalogImportError(
            [
                f"the packed catalog is {len(packed)} characters; a kiosk accepts "
                f"{MAX_PACKED_CHARS} in one update-catalog"
            ]
        )
    return {"catalog_gzip_b64": packed}


def parse_day(text: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as err:
        raise CatalogImportError([f"{what}: {text!r} is not a date YYYY-MM-DD"]) from err


def prepare_import(
    list_path: Path,
    base_path: Path,
    *,
    today: dt.date,
    sheet: str | None = None,
    version: str | None = None,
    expire_missing: dt.date | None = None,
    source: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any], ImportReport]:
    """Read and merge, nothing written: (base, new document, report); write_catalog() next."""
    base = load_catalog(base_path)
    parsed = parse_list(list_path, sheet=sheet)
    document, report = merge(
        base, parsed, today=today, version=version, expire_missing=expire_missing, source=source
    )
    logger.info(
        "catalog list merged",
        extra={"list": list_path.name, "version": document["version"], "new": len(report.new)},
    )
    return base, document, report
