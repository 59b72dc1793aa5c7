"""What a scanned original is, from its OCR text: document type, key fields, and the name check.

Type: accent-insensitive keyword scoring that tolerates OCR errors (each phrase is searched as an
approximate substring, up to a quarter of its characters wrong), with layout cues: the title
phrases count more when they sit in the upper part of the page or on its tallest lines, and a
card-sized page (ID-1) favours the CCCD. Fields: regular expressions over the folded text (no
diacritics, lower case, one character for one character), whose spans are then cut from the
original text, so values keep their accents.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from edge.identity.provinces import PROVINCES
from edge.texts import N_, Text, vietnamese

OTHER = "other"
MIN_SCORE = 4.0  # below this nothing is recognised: "other" (a lone title phrase scores 4-6)
MIN_SIMILARITY = 0.75  # a phrase counts when at most a quarter of its characters are wrong

NameResult = Literal["match", "mismatch", "not_found"]


@dataclass(frozen=True, slots=True)
class DocType:
    code: str
    label: str  # English msgid (Vietnamese in the catalog, edge.texts)
    titles: tuple[str, ...]  # folded phrases of the printed title: weight 4, more when on top
    phrases: tuple[tuple[str, float], ...]  # folded phrases found in the body, with weights
    card: bool = False  # printed on an ID-1 card rather than a sheet

    @property
    def label_vi(self) -> str:
        return vietnamese(self.label)

    @property
    def label_en(self) -> str:
        return self.label


TYPES: tuple[DocType, ...] = (
    DocType(
        "cccd_front",
        N_("Citizen identity card (front)"),
        ("can cuoc cong dan", "can cuoc"),
        (
            ("full name", 2),
            ("date of birth", 1.5),
            ("place of origin", 2),
            ("place of residence", 2),
            ("co gia tri den", 1),
            ("quoc tich", 0.5),
        ),
        card=True,
    ),
    DocType(
        "cccd_back",
        N_("Citizen identity card (back)"),
        ("dac diem nhan dang",),
        (
            ("personal identification", 2),
            ("cuc canh sat quan ly hanh chinh", 3),
            ("ve trat tu xa hoi", 1.5),
            ("idvnm", 3),
            ("<<<<", 2),
            ("date, month, year", 1.5),
        ),
        card=True,
    ),
    DocType(
        "birth_certificate",
        N_("Birth certificate"),
        ("giay khai sinh",),
        (
            ("nguoi di khai sinh", 2),
            ("noi dang ky khai sinh", 2),
            ("ten nguoi me", 1.5),
            ("ten nguoi cha", 1.5),
            ("noi sinh", 1),
            ("dan toc", 0.5),
        ),
    ),
    DocType(
        "diploma",
        N_("Diploma / certificate of qualification"),
        ("bang tot nghiep", "chung chi"),
        (
            ("hieu truong", 1.5),
            ("xep loai", 2),
            ("hinh thuc dao tao", 2),
            ("so hieu", 1),
            ("so vao so cap", 1),
            ("truong dai hoc", 1),
            ("trung tam", 0.5),
        ),
    ),
    DocType(
        "land_use_certificate",
        N_("Land-use right certificate"),
        ("quyen su dung dat",),
        (
            ("tai san khac gan lien voi dat", 2),
            ("thua dat so", 2),
            ("to ban do so", 2),
            ("muc dich su dung", 1.5),
            ("thoi han su dung", 1.5),
            ("nguon goc su dung", 1.5),
            ("so vao so cap gcn", 1),
        ),
    ),
    DocType(
        "marriage_certificate",
        N_("Marriage certificate"),
        ("giay chung nhan ket hon",),
        (("ket hon", 1.5), ("ten vo", 2), ("ten chong", 2)),
    ),
    DocType(
        "residence_confirmation",
        N_("Confirmation of residence information"),
        ("giay xac nhan thong tin ve cu tru", "thong tin ve cu tru"),
        (
            ("noi tam tru", 1.5),
            ("noi o hien tai", 1.5),
            ("chu ho", 1.5),
            ("noi thuong tru", 0.5),
            ("cong an", 0.5),
        ),
    ),
)
BY_CODE = {t.code: t for t in TYPES}
OTHER_LABEL = N_("Other document")


class Line(Protocol):
    """An OCR line as edge.vision.ocr gives it (only what the layout cues use)."""

    # Read-only, so a frozen OcrLine fits.
    @property
    def text(self) -> str: ...
    @property
    def box(self) -> tuple[int, int, int, int]: ...  # x, y, w, h


@dataclass(frozen=True, slots=True)
class Recognition:
    """The recognised type with its score (0 for "other"), each type's score, and the fields."""

    doc_type: str
    label_vi: str
    label_en: str
    score: float
    scores: dict[str, float]
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Every person named as holder: the name, and parents or spouse where the type has them."""
        keys = ("name", "mother_name", "father_name", "spouse_name")
        return [self.fields[k] for k in keys if self.fields.get(k)]

    @property
    def label(self) -> Text:
        kind = BY_CODE.get(self.doc_type)
        return Text(kind.label if kind else OTHER_LABEL)

    def as_dict(self) -> dict[str, Any]:
        return {
            "doc_type": self.doc_type,
            "label_vi": self.label_vi,
            "label_en": self.label_en,
            "score": round(self.score, 2),
            "fields": dict(self.fields),
        }

    def __repr__(self) -> str:
        # Fields are a citizen's personal data; keep them out of logs and tracebacks.
        return (
            f"Recognition({self.doc_type!r}, score={self.score:.1f}, fields={sorted(self.fields)})"
        )


@dataclass(frozen=True, slots=True)
class NameCheck:
    """The name on the document against the identified citizen's."""

    result: NameResult
    message_vi: str
    message_en: str
    document_name: str | None = None  # the name that matched, or the document's first name

    @property
    def text(self) -> Text:
        return Text(_NAME_MESSAGES[self.result])

    def as_dict(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "message_vi": self.message_vi,
            "message_en": self.message_en,
            "document_name": self.document_name,
        }


# --- text folding and approximate search --------------------------------------------------


def fold(text: str) -> str:
    """NFC text without diacritics, lower case, đ as d: one character for one character, so a
    span found in the folded text is the same span in the NFC text."""
    out = []
    for ch in unicodedata.normalize("NFC", text):
        base = unicodedata.normalize("NFD", ch)[0] if ord(ch) > 127 else ch
        base = "d" if base in "đĐ" else base.lower()
        out.append(base if len(base) == 1 else ch)
    return "".join(out)


def _codes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insert, delete, substitute: 1 each); numpy, one row per character of
    the shorter string, so two A4 pages take a few tens of ms."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    return int(_last_row(b, a, anchored=True)[-1])


def _last_row(pattern: str, text: str, *, anchored: bool) -> np.ndarray:
    """The last row of the edit-distance table of pattern (rows) against text (columns).
    anchored=False lets the match start anywhere in text (approximate substring search)."""
    columns = np.arange(len(text) + 1, dtype=np.int64)
    row = columns.copy() if anchored else np.zeros(len(text) + 1, np.int64)
    codes = _codes(text)
    step = np.empty_like(row)
    for i, ch in enumerate(pattern, start=1):
        cost = codes != ord(ch)
        step[0] = i
        np.minimum(row[:-1] + cost, row[1:] + 1, out=step[1:])
        # Insertions along the row: row[j] = min over k <= j of step[k] + (j - k).
        row = np.minimum.accumulate(step - columns) + columns
    return row


def find_approx(pattern: str, text: str) -> tuple[float, int]:
    """Best approximate occurrence of pattern in text: (similarity 0..1, end index)."""
    if not pattern or not text:
        return 0.0, 0
    row = _last_row(pattern, text, anchored=False)
    end = int(np.argmin(row))
    return 1 - int(row[end]) / len(pattern), end


# --- type ---------------------------------------------------------------------------------


def recognise(
    text: str,
    *,
    lines: Sequence[Line] | None = None,
    page_size_mm: tuple[float, float] | None = None,
) -> Recognition:
    """The document type and key fields of an OCR'd page.

    lines (with boxes) let the title be found by size and position; page_size_mm (the scanned
    sheet, upright) tells a card from a sheet of paper.
    """
    folded = fold(text)
    top = _title_text(lines)
    card = _is_card(page_size_mm)
    scores: dict[str, float] = {}
    for kind in TYPES:
        score = 0.0
        for title in kind.titles:
            sim, end = find_approx(title, folded)
            if sim >= MIN_SIMILARITY:
                on_top = end <= 0.5 * len(folded) or bool(top and find_approx(title, top)[0] >= sim)
                score = max(score, 4 * sim * (1.5 if on_top else 1.0))
        for phrase, weight in kind.phrases:
            sim, _ = find_approx(phrase, folded)
            if sim >= MIN_SIMILARITY:
                score += weight * sim
        if card is not None:
            score *= 1.4 if card == kind.card else 0.6
        scores[kind.code] = round(score, 3)
    best = max(scores, key=lambda k: scores[k])
    if scores[best] < MIN_SCORE:
        label = Text(OTHER_LABEL)
        return Recognition(OTHER, label.vi, label.en, 0.0, scores, extract_fields(OTHER, text))
    kind = BY_CODE[best]
    return Recognition(
        best, kind.label_vi, kind.label_en, scores[best], scores, extract_fields(best, text)
    )


def _title_text(lines: Sequence[Line] | None) -> str:
    """The folded text of the lines printed larger than the body (the title), if lines given."""
    if not lines:
        return ""
    heights = sorted(line.box[3] for line in lines if line.text.strip())
    if not heights:
        return ""
    median = heights[len(heights) // 2]
    return " ".join(fold(line.text) for line in lines if line.box[3] >= 1.25 * median)


def _is_card(page_size_mm: tuple[float, float] | None) -> bool | None:
    if page_size_mm is None:
        return None
    long_side, short_side = max(page_size_mm), min(page_size_mm)
    return long_side < 120 and 1.45 < long_side / short_side < 1.75


# --- fields -------------------------------------------------------------------------------

_SEP = r"\s*[:;.,]?\s*"
_DATE = r"(\d{1,2})\s*[/.-]\s*(\d{1,2})\s*[/.-]\s*(\d{4})"
_LONG_DATE = r"ngay\s*(\d{1,2})\s*thang\s*(\d{1,2})\s*nam\s*(\d{4})"
_NAME_LABELS = [
    # (folded label regex, field)
    (r"ho\s*,?\s*chu\s*dem\s*,?\s*(?:va\s*)?ten\s*nguoi\s*me", "mother_name"),
    (r"ho\s*,?\s*chu\s*dem\s*,?\s*(?:va\s*)?ten\s*nguoi\s*cha", "father_name"),
    (r"ho\s*,?\s*chu\s*dem\s*,?\s*(?:va\s*)?ten\s*vo", "name"),
    (r"ho\s*,?\s*chu\s*dem\s*,?\s*(?:va\s*)?ten\s*chong", "spouse_name"),
    (r"ho\s*,?\s*chu\s*dem\s*,?\s*(?:va\s*)?ten(?!\s*(?:nguoi|vo|chong|chu ho))", "name"),
    (r"ho\s*va\s*ten", "name"),
    (r"(?:^|\n)\s*(?:cap\s*)?cho", "name"),
    (r"(?:^|\n)\s*(?:ong|ba)(?=\s*:)", "name"),
    (r"toi\s*ten\s*la", "name"),
]
# Words that start the next label on the same line: a name stops there.
_AFTER_NAME = re.compile(
    r"\s(?:nam\s*sinh|ngay\s*sinh|sinh\s*nam|sinh\s*ngay|gioi\s*tinh|dan\s*toc|quoc\s*tich)|[,;(]"
)
_BODY_WORDS = r"(?:uy\s*ban\s*nhan\s*dan|ubnd|cong\s*an|so|bo|cuc|truong|trung\s*tam|benh\s*vien)"
_JUNK = " \t_-|—.,:;'\"~"  # what OCR leaves at the ends of a heading line
_MOTTO = re.compile(r"c[o0]ng\s*h[o0]a|d[o0]c\s*l[a4]p|tu\s*do|hanh\s*phuc")


def extract_fields(doc_type: str, text: str) -> dict[str, str]:
    """Name(s), date of birth, document number, issuing body and issue date, where found.

    Dates come out as ISO (yyyy-mm-dd), or a bare year when only the year is printed.
    """
    nfc = unicodedata.normalize("NFC", text)
    folded = fold(nfc)
    fields: dict[str, str] = {}
    for label, key in _NAME_LABELS:
        if key in fields:
            continue
        name = _name_after(label, nfc, folded)
        if name:
            fields[key] = name
    if doc_type == "cccd_back":
        fields.pop("name", None)  # the MRZ spells the name without accents; the front has it
    dob = _date_after(
        r"(?:ngay\s*,?\s*thang\s*,?\s*nam\s*sinh|ngay\s*sinh|sinh\s*ngay|date\s*of\s*birth)",
        folded,
    )
    if dob:
        fields["date_of_birth"] = dob
    else:
        year = re.search(r"nam\s*sinh" + _SEP + r"(\d{4})\b", folded)
        if year:
            fields["date_of_birth"] = year.group(1)
    number = _number(doc_type, nfc, folded)
    if number:
        fields["number"] = number
    issuer = _issuer(doc_type, nfc, folded)
    if issuer:
        fields["issuer"] = issuer
    issued = _issue_date(folded)
    if issued:
        fields["issue_date"] = issued
    return fields


def _name_after(label: str, nfc: str, folded: str) -> str | None:
    for found in re.finditer(label, folded):
        start = found.end()
        # An English gloss after a slash ("/ Full name:", OCR: "/ Pull name:") is skipped.
        gloss = re.match(r"\s*/[^:\n]{0,20}:", folded[start:])
        if gloss:
            start += gloss.end()
        rest = folded[start:].lstrip(" \t:;.")
        start = len(folded) - len(rest)
        end = folded.find("\n", start)
        end = len(folded) if end < 0 else end
        if start == end:  # "Họ và tên / Full name:" with the name on the next line
            start = end + 1
            end = folded.find("\n", start)
            end = len(folded) if end < 0 else end
        cut = _AFTER_NAME.search(folded, start, end)
        value = nfc[start : cut.start() if cut else end]
        name = _clean_name(value)
        if name:
            return name
    return None


def _clean_name(value: str) -> str | None:
    words = [w for w in re.split(r"[\s.:]+", value) if w]
    words = [w for w in words if w.isalpha()]
    if not 2 <= len(words) <= 6:
        return None
    return " ".join(w[:1].upper() + w[1:].lower() for w in words)


def _iso(day: str, month: str, year: str) -> str | None:
    try:
        return dt.date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        return None


def _date_after(label: str, folded: str) -> str | None:
    for found in re.finditer(label + r"[^\d\n]{0,40}" + _DATE, folded):
        iso = _iso(*found.groups()[-3:])
        if iso:
            return iso
    return None


def _issue_date(folded: str) -> str | None:
    labelled = _date_after(
        r"(?:ngay\s*,?\s*thang\s*,?\s*nam\s*(?:dang\s*ky|cap)|ngay\s*cap|date\s*,?\s*month\s*,?\s*year)",
        folded,
    )
    if labelled:
        return labelled
    # The place-and-date line above the signature: the last long date not of a birth.
    for found in reversed(list(re.finditer(_LONG_DATE, folded))):
        if "sinh" in folded[max(0, found.start() - 12) : found.start()]:
            continue
        iso = _iso(*found.groups())
        if iso:
            return iso
    return None


def _number(doc_type: str, nfc: str, folded: str) -> str | None:
    if doc_type == "cccd_back":
        # ICAO TD1 line 1: IDVNM, the card number (9) and its check digit, then the ID (12).
        mrz = re.search(r"[a-z0-9]?dvnm\d{10}(\d{12})", folded.replace(" ", ""))
        if mrz:
            return _id_number(mrz.group(1))
    if doc_type.startswith("cccd"):
        found = re.search(r"(?<!\d)(\d{12})(?!\d)", folded.replace(" ", ""))
        return _id_number(found.group(1)) if found else None
    if doc_type == "land_use_certificate":
        found = re.search(r"(?<![a-z0-9])([a-z]{2})\s?(\d{6})(?!\d)", folded)
        if found:
            return f"{nfc[found.start(1) : found.end(1)].upper()} {found.group(2)}"
    if doc_type == "diploma":
        found = re.search(r"so\s*hieu" + _SEP + r"([0-9][\w/.-]*)", folded)
        if found:
            return nfc[found.start(1) : found.end(1)]
    found = re.search(r"(?:^|\n)[^\n]{0,40}?\bso\s*:\s*([0-9][\w/.-]*)", folded)
    if found:
        return nfc[found.start(1) : found.end(1)].rstrip(".")
    return None


def _id_number(digits: str) -> str:
    """A 12-digit personal ID opens with a province code (001-096); OCR reads its leading 0 as
    6 or 8 now and then: mend that one digit when it makes a real code."""
    if digits[:3] not in PROVINCES and f"0{digits[1:3]}" in PROVINCES and digits[0] in "689":
        return "0" + digits[1:]
    return digits


def _issuer(doc_type: str, nfc: str, folded: str) -> str | None:
    if doc_type == "cccd_back":
        if find_approx("cuc canh sat quan ly hanh chinh", folded)[0] >= MIN_SIMILARITY:
            return "Cục Cảnh sát quản lý hành chính về trật tự xã hội"
        return None
    if doc_type == "cccd_front":
        return None
    if doc_type == "diploma":
        found = re.search(r"(?:hieu\s*truong|giam\s*doc)\s+((?:truong|trung\s*tam)[^\n]+)", folded)
        return _upper(nfc[found.start(1) : found.end(1)]) if found else None
    if doc_type == "land_use_certificate":
        found = re.search(r"so\s*tai\s*nguyen\s*va\s*moi\s*truong[^\n]*", folded)
        if found:
            return _upper(nfc[found.start() : found.end()])
    # The heading's left column, above the title: the issuing unit, lowest level last.
    parts: list[str] = []
    offset = 0
    for line in folded.split("\n")[:8]:
        motto = _MOTTO.search(line)
        left = line[: motto.start()] if motto else line
        stripped = left.strip(_JUNK)
        if re.match(r"so\s*:", stripped) or (parts and not stripped and motto is None):
            break
        if stripped and (parts or re.match(_BODY_WORDS + r"\b", stripped)):
            start = offset + left.index(stripped)
            parts.append(nfc[start : start + len(stripped)])
        offset += len(line) + 1
    if not parts:
        return None
    units = [i for i, p in enumerate(parts) if re.match(_BODY_WORDS + r"\s+\S", fold(p))]
    generic = re.fullmatch(r"(?:uy\s*ban\s*nhan\s*dan|ubnd)", fold(parts[0]).strip())
    if generic or not units:
        return _upper(" ".join(parts[:2]))
    return _upper(parts[units[-1]])


def _upper(text: str) -> str:
    return " ".join(text.split()).upper().strip(_JUNK)


# --- the name check -----------------------------------------------------------------------


def _name_key(name: str) -> str:
    """Accents, case and whitespace do not count: 'NGUYỄN  VĂN AN' == 'nguyen van an'."""
    return re.sub(r"[^a-z]", "", fold(name))


def check_name(recognition: Recognition, citizen_name: str, *, text: str = "") -> NameCheck:
    """Compare the identified citizen's name with the names on the document.

    match: a holder name on the document (or, for types without a name field, the citizen's name
    anywhere in the OCR text) is the same ignoring accents, case and spacing; mismatch: the
    document names someone, but not the citizen; not_found: no name could be read.
    """
    wanted = _name_key(citizen_name)
    if not wanted:
        raise ValueError("the citizen's name is empty")
    names = recognition.names
    for name in names:
        if _name_key(name) == wanted:
            return _named("match", name)
    if text and wanted in _name_key(text):
        return _named("match", None)
    if names:
        return _named("mismatch", names[0])
    return _named("not_found", None)


_NAME_MESSAGES: dict[str, str] = {
    "match": N_("The name on the document matches the name on the citizen identity card."),
    "mismatch": N_("The name on the document differs from the name on the citizen identity card."),
    "not_found": N_("No name could be read on the document to compare with the identity card."),
}


def _named(result: NameResult, document_name: str | None) -> NameCheck:
    text = Text(_NAME_MESSAGES[result])
    return NameCheck(result, text.vi, text.en, document_name)
