"""Citizen-facing text lives in the gettext catalogs, not in the domain code (issue 15)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from edge.services.post import PROVINCES
from edge.texts import TRANSLATIONS, Text, vietnamese

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = ("edge/vision", "edge/identity", "edge/services", "edge/copies", "edge/documents")
# A letter only Vietnamese writes (with its tone and vowel marks, and đ).
VIETNAMESE = re.compile(
    "[àáảãạăằắẳẵặâầấẩẫậèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵđ]", re.IGNORECASE
)

# Vietnamese that is data, not something the screen says; None: the whole file.
LEGITIMATE: dict[str, set[str] | None] = {
    # Province names, matched against what the card's QR says.
    "edge/identity/provinces.py": None,
    # The CCCD payload's own values for sex, and the texts that name them.
    "edge/identity/cccd.py": {"Nữ", "sex must be Nam or Nữ", "sex field is neither 'Nam' nor 'Nữ'"},
    # Today's province names, what a delivery address is written with; a print job title.
    "edge/services/post.py": {*PROVINCES, "Gửi kết quả qua bưu điện "},
    # Folding đ/Đ to d for search; the issuing authority as the card prints it (a field value).
    "edge/services/catalog.py": {"đ", "Đ"},
    "edge/documents/doctype.py": {"đĐ", "Cục Cảnh sát quản lý hành chính về trật tự xã hội"},
    # Paper, the same whatever the screen's language: the e-copy PDF and its signature are a
    # legal document in Vietnamese; the receipt, ticket, checklist and post slips are printed
    # layouts staff read too (the ticket and post slips already carry their English lines).
    "edge/copies/pdf.py": None,
    "edge/copies/sign.py": None,
    "edge/copies/receipt.py": None,
    # The labels central writes in a certified copy's PDF Subject, read back (a format).
    "edge/copies/verify.py": {"Số chứng thực", "Quyển số"},
    "edge/services/printouts.py": None,
    # Print job titles (the print queue, the technician's screen), named after their slip.
    "edge/services/tickets.py": {"Số thứ tự "},
    "edge/services/bundle.py": {"Giấy tờ cần chuẩn bị: "},
    "edge/services/ecopy.py": {
        "Xác nhận đồng ý",
        "Biên nhận chứng thực ",
        "Phiếu hẹn chứng thực",
        "Bản sao ",
    },
    "edge/copies/issue.py": {"Biên nhận bản sao "},
    # The consent text is evidence, not a translation: its hash is stored with every consent,
    # so it is versioned data in consent.py (CONSENT_TEXTS, both languages, each version
    # hashed), never looked up in a catalog that could be missing or re-worded. The rest is
    # the printed consent slip (paper, as the receipts above).
    "edge/services/consent.py": None,
}

# Citizen text still written in Vietnamese in the code: to move into the catalogs (issue 15),
# then off this list (test_not_yet_is_not_stale makes sure it only shrinks).
NOT_YET: set[str] = set()


def _vietnamese_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and VIETNAMESE.search(node.value)
    ]


def _domain_files() -> list[Path]:
    return sorted(p for d in DOMAIN for p in (ROOT / d).rglob("*.py"))


def _found() -> dict[str, list[tuple[int, str]]]:
    found = {}
    for path in _domain_files():
        name = path.relative_to(ROOT).as_posix()
        allowed = LEGITIMATE.get(name, set())
        if allowed is None:
            continue
        left = [(n, s) for n, s in _vietnamese_constants(path) if s not in allowed]
        if left:
            found[name] = left
    return found


def test_no_vietnamese_in_domain_code() -> None:
    """Domain code says what happened (a code, an English msgid marked N_(), parameters);
    the Vietnamese is in web_ui/translations/vi (python -m web_ui.catalog)."""
    found = {name: left for name, left in _found().items() if name not in NOT_YET}
    assert not found, "\n".join(
        f"{n}:{line}: {s!r}" for n, left in found.items() for line, s in left
    )


def test_not_yet_is_not_stale() -> None:
    assert set(_found()) >= NOT_YET, f"clean now, take off NOT_YET: {NOT_YET - set(_found())}"


def _marked(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "N_"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ]


def test_every_marked_text_has_its_vietnamese() -> None:
    """An N_() text without a translation would show English on the Vietnamese screen."""
    with (TRANSLATIONS / "vi" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = {m.id: m.string for m in read_po(f, locale="vi") if m.id and not m.fuzzy}
    marked = {m for p in sorted((ROOT / "edge").rglob("*.py")) for m in _marked(p)}
    assert len(marked) >= 50  # the scan sees them
    missing = sorted(m for m in marked if not catalog.get(m))
    assert not missing, f"run `python -m web_ui.catalog` and translate: {missing}"


def test_text_in_both_languages() -> None:
    text = Text("Not verified yet. Please try again (%(n)d tries left).", {"n": 2})
    assert text.en == "Not verified yet. Please try again (2 tries left)."
    assert text.vi == "Chưa xác minh được. Vui lòng thử lại (còn 2 lần)."
    assert vietnamese("Please blink") == "Vui lòng chớp mắt"
    assert vietnamese("no such msgid") == "no such msgid"


def test_vietnamese_from_the_po_without_a_compiled_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkout where nobody ran pybabel compile: the CLI still says it in Vietnamese."""
    import shutil

    from edge import texts

    po = tmp_path / "vi" / "LC_MESSAGES" / "messages.po"
    po.parent.mkdir(parents=True)
    shutil.copy(TRANSLATIONS / "vi" / "LC_MESSAGES" / "messages.po", po)
    monkeypatch.setattr(texts, "TRANSLATIONS", tmp_path)
    texts._vi.cache_clear()
    try:
        assert vietnamese("Please blink") == "Vui lòng chớp mắt"
        assert not po.with_suffix(".mo").exists()
    finally:
        monkeypatch.undo()
        texts._vi.cache_clear()
