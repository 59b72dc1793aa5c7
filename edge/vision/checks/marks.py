"""forbidden_marks: the marks that forbid certifying a copy of an original (Decree 23/2015/ND-CP
Art. 22 cl. 3: a secrecy stamp, or "not to be copied" written on it), found in its OCR text.

How a mark is told from ordinary words:
  * the text is compared letter by letter after removing diacritics (NFD, marks dropped, đ -> d,
    capitals), so OCR that loses a tone or a hat still matches; but where OCR kept a mark it
    must be one the word can carry: "MẶT" (face), "MẤT" (lost) and "MÁT" (cool) are not "MẬT";
  * the secrecy degrees (MẬT, TỐI MẬT, TUYỆT MẬT) are stamps, always in capitals: lower-case
    "tối mật" or "bí mật" in running text never fires. A bare "MẬT" must also stand on a short
    line: alone (a stamp's frame may add one-letter noise) or as "TÀI LIỆU MẬT", so that
    neither a compound ("MẬT KHẨU", "MẬT ĐỘ", "BÍ MẬT") nor a name ("NGUYỄN VĂN MẬT") fires;
  * "không được sao (chụp)", "không sao chụp", "cấm sao chụp" fire in any case: nothing else on
    an original says that. "KHÔNG SAO" alone ("no problem" in speech) needs capitals and a
    short line, like the stamps;
  * long words (4 letters or more: KHONG, DUOC, TUYET, CHUP) may differ by one letter (OCR noise:
    KH0NG, DUQC), and a word may carry a wrong tone mark ("TỔI" for "TỐI") when another word of
    the mark is read with every mark ("TÔI MẤT", lost, does not fire); a bare "MẬT" may miss
    marks but carry no wrong one.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import cv2
import numpy as np

from edge.texts import Text
from edge.vision.checks.common import DPI, MESSAGES, WORK_DPI, Flag, at_work_scale

# The marks, written decomposed (NFD: base letter then its combining marks) so that the
# diacritics can be compared one by one. (name, words, stamp: capitals and a short line needed)
_MARKS: tuple[tuple[str, str, bool], ...] = (
    ("tuyet_mat", "TUYE\u0302\u0323T MA\u0302\u0323T", True),
    ("toi_mat", "TO\u0302\u0301I MA\u0302\u0323T", True),
    ("khong_duoc_sao", "KHO\u0302NG DU\u031bO\u031b\u0323C SAO", False),
    ("khong_sao_chup", "KHO\u0302NG SAO CHU\u0323P", False),
    ("cam_sao", "CA\u0302\u0301M SAO CHU\u0323P", False),
    ("khong_sao", "KHO\u0302NG SAO", True),
    ("mat", "MA\u0302\u0323T", True),
)
SHORT_LINE = 4  # words on a stamp's line
MIN_STAMP_SATURATION = 60  # max - min channel: coloured ink (paper and black print: under 25)
_WORD = re.compile(r"[^\W\d_]+|\d+", re.UNICODE)
# Tone marks (grave, acute, tilde, hook above, dot below): OCR confuses them more than the
# vowel shapes (circumflex, breve, horn), which tell words apart ("MẬT" and "MẶT").
_TONES = frozenset("\u0300\u0301\u0303\u0309\u0323")
_D_STROKE = (0x111, 0x110)  # the letter d with a stroke, small and capital: folds to D
_OCR_DIGITS = str.maketrans({"0": "O", "1": "I", "5": "S", "8": "B"})


@dataclass(frozen=True, slots=True)
class _Word:
    base: str  # capitals, no diacritics, đ -> D
    marks: tuple[frozenset[str], ...]  # the combining marks on each letter
    upper: bool  # written in capitals
    line: int
    line_words: int


def _letters(word: str) -> tuple[str, tuple[frozenset[str], ...]]:
    base: list[str] = []
    marks: list[set[str]] = []
    for ch in unicodedata.normalize("NFD", word):
        if unicodedata.combining(ch):
            if marks:
                marks[-1].add(ch)
            continue
        base.append("D" if ord(ch) in _D_STROKE else ch.upper())
        marks.append(set())
    return "".join(base).translate(_OCR_DIGITS), tuple(frozenset(m) for m in marks)


def _words(text: str) -> list[_Word]:
    out = []
    for n, line in enumerate(unicodedata.normalize("NFC", text).splitlines()):
        found = _WORD.findall(line)
        # A word of OCR'd letters with a digit stuck in (KH0NG) is one word.
        merged = re.findall(r"[^\W_]+", line, re.UNICODE) if found else []
        for word in merged:
            letters = [c for c in word if c.isalpha()]
            base, marks = _letters(word)
            upper = bool(letters) and all(c.isupper() for c in letters)
            out.append(_Word(base, marks, upper, n, len(merged)))
    return out


def _distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _word_matches(found: _Word, want: _Word) -> tuple[float, bool] | None:
    """None when found is not the word; else the share of the word's marks OCR kept, and
    whether it is a strict match (every mark OCR kept is one the word carries). A loose match
    has a wrong tone mark only (OCR reads "TỔI" for "TỐI") or one letter off on a long word."""
    if found.base == want.base:
        strict = True
        for got, allowed in zip(found.marks, want.marks, strict=True):
            if not got <= allowed:
                if not (got - _TONES) <= allowed:
                    return None  # a vowel shape this word has not: another word ("MẶT")
                strict = False
        total = sum(len(m) for m in want.marks)
        kept = sum(len(m & a) for m, a in zip(found.marks, want.marks, strict=True))
        return (kept / total if total else 1.0), strict
    if len(want.base) >= 4 and _distance(found.base, want.base) <= 1:
        return 0.5, False  # one letter off: OCR noise on a long, distinctive word
    return None


_WANTED = [(name, _words(words), stamp) for name, words, stamp in _MARKS]


def forbidden_marks(ocr_text: str) -> list[Flag]:
    """A Flag for each kind of Art. 22 cl. 3 mark found (page 0: the text of the whole
    original); score is the share of the mark's diacritics OCR read (1.0 all, 0 none)."""
    words = _words(ocr_text)
    found: dict[str, float] = {}
    taken: set[int] = set()  # words already part of a longer mark
    for name, want, stamp in _WANTED:
        for i in range(len(words) - len(want) + 1):
            span = words[i : i + len(want)]
            if any(i + k in taken for k in range(len(want))):
                continue
            matched = [_word_matches(w, x) for w, x in zip(span, want, strict=True)]
            scores = [m for m in matched if m is not None]
            if len(scores) < len(want):
                continue
            exact = any(strict and share == 1.0 for share, strict in scores)
            if not exact and not all(strict for _, strict in scores):
                continue  # a wrong tone is forgiven only next to a word read exactly
            if stamp and not (
                all(w.upper for w in span) and span[0].line_words <= SHORT_LINE + len(want) - 1
            ):
                continue
            if name == "mat" and not _lone_mat(words, i):
                continue
            if len(want) == 1 and not scores[0][1]:
                continue
            score = sum(share for share, _ in scores) / len(scores)
            found[name] = max(found.get(name, 0.0), score)
            taken.update(range(i, i + len(want)))
    flags = []
    for name, want_words, _ in _MARKS:
        if name in found:
            mark = unicodedata.normalize("NFC", want_words)
            flags.append(
                Flag(
                    "forbidden_mark",
                    0,
                    round(found[name], 3),
                    {"mark": name},
                    Text(MESSAGES["forbidden_mark"], {"mark": mark}),
                )
            )
    return flags


def _lone_mat(words: list[_Word], i: int) -> bool:
    """MẬT alone on its line (besides one-letter OCR noise from the stamp's frame), or as
    "TÀI LIỆU MẬT": not part of a compound, not a name ("NGUYỄN VĂN MẬT")."""
    here = words[i]
    others = [w.base for k, w in enumerate(words) if w.line == here.line and k != i]
    others = [b for b in others if len(b) > 1]
    return not others or others == ["TAI", "LIEU"]


def stamp_text(page: np.ndarray, *, dpi: float = DPI) -> str:
    """The text of the coloured ink on a page (BGR), read on its own.

    The kiosk's OCR copy lifts coloured stamps to white on purpose (edge.vision.page.ocr_gray:
    seals read as garbage letters), so a red "MẬT" stamp never reaches the page's OCR text.
    Here only the saturated ink is kept, black on white, and read in sparse-text mode (psm 11;
    about 0.1 s a page): the seal's ring letters come out as noise, the secrecy stamp as words.
    """
    from edge.vision.ocr import shared_ocr

    work = at_work_scale(page, dpi)
    low, high = work.min(axis=2).astype(np.int16), work.max(axis=2).astype(np.int16)
    ink = (high - low) > MIN_STAMP_SATURATION
    if not ink.any():
        return ""
    layer = cv2.GaussianBlur(np.where(ink, 0, 255).astype(np.uint8), (3, 3), 0)
    return shared_ocr().read(layer, psm=11, dpi=WORK_DPI).text
