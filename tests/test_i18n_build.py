"""The compiled message catalogs are build artefacts: the build puts them into the wheel, the app
only reads them (never writes into its package), and a missing or stale one is said plainly."""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo

from edge import config as cfg
from edge.app import App
from tests.conftest import REPO
from tests.web_ui_helpers import LoopbackClient, kiosk_config
from web_ui import create_app, i18n

WEB_UI = REPO / "web_ui"
HELLO_VI = "Xin chào! Bạn cần làm gì?"  # from the vi catalog
HELLO_EN = "Welcome! What would you like to do?"  # the source string


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under root (bytecode caches aside): mtime and content hash."""
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture
def services(tmp_path: Path) -> App:
    """A simulated kiosk, not started: create_app needs only its config."""
    path = kiosk_config(tmp_path / "kiosk")
    return App(cfg.load(path), config_path=path)


@pytest.fixture
def translations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the catalogs, compiled, which the app reads instead of its package's."""
    folder = tmp_path / "translations"
    shutil.copytree(WEB_UI / "translations", folder, ignore=shutil.ignore_patterns("*.mo"))
    i18n.compile_catalogs(folder)
    monkeypatch.setattr(i18n, "TRANSLATIONS", folder)
    yield folder


def client(services: App):
    app = create_app(services=services, test_config={"WTF_CSRF_ENABLED": False})
    app.test_client_class = LoopbackClient  # the kiosk answers only at its own address
    return app.test_client()


def test_the_app_writes_nothing_into_its_package_and_speaks_the_compiled_catalogs(
    services: App,
) -> None:
    assert not i18n.catalog_problems(), f"run `{i18n.COMPILE_COMMAND}` (bootstrap.sh does)"
    before = snapshot(WEB_UI)
    web = client(services)
    assert HELLO_VI in web.get("/").get_data(as_text=True)  # the vi .mo was read
    web.post("/lang", data={"lang": "en", "back": "/"})
    assert HELLO_EN in web.get("/").get_data(as_text=True)
    assert snapshot(WEB_UI) == before


def test_compiled_catalogs_hold_every_translation_of_their_po(translations: Path) -> None:
    assert i18n.catalog_problems(translations) == []
    with (translations / "vi/LC_MESSAGES/messages.mo").open("rb") as f:
        vi = {m.id: m.string for m in read_mo(f) if m.id}
    assert vi["Welcome! What would you like to do?"] == HELLO_VI
    assert len(vi) > 200


@pytest.mark.parametrize("fault", ["missing", "stale"])
def test_a_missing_or_stale_catalog_is_logged_with_the_fix_and_english_is_served(
    services: App, translations: Path, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    po = translations / "vi/LC_MESSAGES/messages.po"
    mo = po.with_suffix(".mo")
    if fault == "missing":
        mo.unlink()
    else:  # a translation changed in the .po after the .mo was compiled
        text = po.read_text(encoding="utf-8")
        po.write_text(text.replace(f'"{HELLO_VI}"', '"Xin chào!"'), encoding="utf-8")
    before = snapshot(translations)
    with caplog.at_level(logging.ERROR, logger="web_ui.i18n"):
        web = client(services)
    (record,) = [r for r in caplog.records if r.name == "web_ui.i18n"]
    assert record.levelno == logging.ERROR
    assert "pybabel compile -d web_ui/translations" in record.getMessage()
    assert str(mo) in record.getMessage()
    html = web.get("/").get_data(as_text=True)
    assert HELLO_EN in html and 'lang="vi"' in html  # Vietnamese asked, the source strings shown
    assert snapshot(translations) == before  # not compiled behind the operator's back


@pytest.mark.slow
def test_the_wheel_carries_the_compiled_catalogs(tmp_path: Path) -> None:
    """What `pip install .` (setup-pi.sh) and an update bundle's venv get: a wheel built from a
    tree without any .mo holds them, equal to what compile_catalogs (= pybabel compile) makes."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.mo", "*.egg-info")
    for package in ("edge", "web_ui", "provisioning", "fleet", "bench"):
        shutil.copytree(REPO / package, src / package, ignore=skip)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("kiosk_edge-*.whl")
    expected = tmp_path / "expected"
    shutil.copytree(WEB_UI / "translations", expected, ignore=skip)
    i18n.compile_catalogs(expected)
    with zipfile.ZipFile(wheel) as whl:
        for lang in i18n.LANGUAGES:
            name = f"web_ui/translations/{lang}/LC_MESSAGES/messages.mo"
            assert whl.read(name) == (expected / lang / "LC_MESSAGES/messages.mo").read_bytes()
