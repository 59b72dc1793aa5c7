"""The mypy baseline checker (firmware_scripts/mypy_baseline.py): counts, limits, only lowering."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "firmware_scripts" / "mypy_baseline.py"
_spec = importlib.util.spec_from_file_location("mypy_baseline", SCRIPT)
assert _spec and _spec.loader
mb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mb)

OUTPUT = """\
edge/app.py:31: error: Item "None" of "X | None" has no attribute "y"  [union-attr]
edge/app.py:40:5: error: Incompatible types in assignment  [assignment]
edge/app.py:40: note: See https://mypy.rtfd.io/
fleet/store.py:7: error: Missing return statement  [return]
Found 3 errors in 2 files (checked 181 source files)
"""


def test_errors_are_counted_per_file_and_notes_are_not():
    assert mb.count_errors(OUTPUT) == Counter({"edge/app.py": 2, "fleet/store.py": 1})


def test_a_file_over_its_count_or_missing_from_the_baseline_fails():
    counts = Counter({"edge/app.py": 3, "edge/new.py": 1, "fleet/store.py": 1})
    baseline = {"edge/app.py": 2, "fleet/store.py": 4}
    assert mb.over_baseline(counts, baseline) == {"edge/app.py": (3, 2), "edge/new.py": (1, 0)}


def test_update_only_lowers_and_drops_fixed_files():
    counts = Counter({"edge/app.py": 5, "edge/new.py": 2, "fleet/store.py": 1})
    baseline = {"edge/app.py": 3, "fleet/store.py": 4, "web_ui/api.py": 2}
    assert mb.lowered(counts, baseline) == {"edge/app.py": 3, "fleet/store.py": 1}


@pytest.fixture
def fake_mypy(monkeypatch):
    def use(output: str) -> None:
        monkeypatch.setattr(mb, "run_mypy", lambda args: output)

    return use


def test_check_fails_above_the_baseline_and_update_never_raises_it(tmp_path, fake_mypy, capsys):
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({"edge/app.py": 1, "fleet/store.py": 3}))
    fake_mypy(OUTPUT)

    assert mb.main(["--baseline", str(path)]) == 1
    assert "edge/app.py: 2 errors, the baseline allows 1" in capsys.readouterr().out
    assert mb.main(["--baseline", str(path), "--update"]) == 1
    assert json.loads(path.read_text()) == {"edge/app.py": 1, "fleet/store.py": 1}


def test_first_update_writes_the_baseline_then_the_check_passes(tmp_path, fake_mypy):
    path = tmp_path / "baseline.json"
    fake_mypy(OUTPUT)

    assert mb.main(["--baseline", str(path), "--update"]) == 0
    assert json.loads(path.read_text()) == {"edge/app.py": 2, "fleet/store.py": 1}
    assert mb.main(["--baseline", str(path)]) == 0
