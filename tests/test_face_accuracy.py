"""bench/face_accuracy.py: the FAR/FRR/EER arithmetic on synthetic scores, the folder layout, and
one run through the real verifier on the committed photos (counts only: these numbers say nothing
about how well the kiosk recognises faces; see docs/face.md, "Accuracy: the threshold is
provisional")."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import cv2
import pytest

from bench import face_accuracy as fa

FACES = Path(__file__).parent / "data" / "faces"

GENUINE = [0.1, 0.3, 0.5, 0.7]
IMPOSTOR = [0.4, 0.6, 0.8, 0.9]


def test_rates_count_accepts_and_rejects_with_the_verifiers_rule():
    r = fa.rates([0.2, 0.4, 0.6, None], [0.5, 0.7, 0.9, None], 0.5)
    # l2: accept when distance <= threshold; a missing face is never accepted
    assert (r.false_accepts, r.impostor_pairs, r.false_rejects, r.genuine_pairs) == (1, 4, 2, 4)
    assert r.far == 0.25 and r.frr == 0.5


def test_cosine_accepts_from_the_threshold_up():
    r = fa.rates([0.2, 0.4, 0.6, None], [0.5, 0.7, 0.9, None], 0.5, metric="cosine")
    assert (r.false_accepts, r.false_rejects) == (3, 3)
    assert fa.accepted(0.94, 0.94, "cosine") and not fa.accepted(0.9399, 0.94, "cosine")
    assert fa.accepted(0.53, 0.53, "l2") and not fa.accepted(0.5301, 0.53, "l2")


def test_rates_without_pairs_are_nan_not_zero():
    r = fa.rates([], [0.3], 0.5)
    assert math.isnan(r.frr) and r.far == 1.0


def test_table_is_monotonic_in_the_threshold():
    rows = fa.table(GENUINE, IMPOSTOR, fa.thresholds_between(0.0, 1.0, 0.1))
    assert [r.threshold for r in rows][:3] == [0.0, 0.1, 0.2] and rows[-1].threshold == 1.0
    assert [r.false_accepts for r in rows] == sorted(r.false_accepts for r in rows)
    assert [r.false_rejects for r in rows] == sorted((r.false_rejects for r in rows), reverse=True)
    assert (rows[0].far, rows[0].frr) == (0.0, 1.0) and (rows[-1].far, rows[-1].frr) == (1.0, 0.0)


def test_eer_where_the_curves_cross():
    e = fa.eer(GENUINE, IMPOSTOR)
    assert e.threshold == 0.5 and e.far == 0.25 and e.frr == 0.25 and e.rate == 0.25


def test_eer_of_separated_scores_is_zero_at_the_strictest_separating_threshold():
    e = fa.eer([0.1, 0.2, 0.3], [0.6, 0.7])
    assert (e.threshold, e.rate) == (0.3, 0.0)
    c = fa.eer([0.99, 0.97, 0.96], [0.90, 0.86], metric="cosine")
    assert (c.threshold, c.rate) == (0.96, 0.0)


def test_eer_of_inverted_scores_is_total_failure():
    # every impostor scores closer than every genuine pair: the curves meet at 100%
    e = fa.eer([0.8, 0.9], [0.1, 0.2])
    assert (e.threshold, e.far, e.frr, e.rate) == (0.2, 1.0, 1.0, 1.0)


def test_eer_needs_both_kinds_of_pair():
    with pytest.raises(ValueError):
        fa.eer([], [0.5])
    with pytest.raises(ValueError):
        fa.eer([None], [None])


def test_closest_impostor():
    assert fa.closest_impostor([0.8, None, 0.61, 0.9]) == 0.61
    assert fa.closest_impostor([0.8, 0.91], metric="cosine") == 0.91
    assert fa.closest_impostor([None]) is None


def test_upper_bound_95():
    assert fa.upper_bound_95(0, 100) == pytest.approx(1 - 0.05 ** (1 / 100))
    assert fa.upper_bound_95(0, 100) < 3 / 100  # the rule of three is the rounded-up form
    assert fa.upper_bound_95(5, 100) == pytest.approx(0.0992, abs=5e-4)  # Wilson, z = 1.645
    assert fa.upper_bound_95(10, 10) == 1.0
    assert math.isnan(fa.upper_bound_95(0, 0))


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_folder_layout_and_pairs(tmp_path):
    for name in ("a/card.jpg", "a/live1.jpg", "a/live2.JPG", "b/x.jpg", "b/y.png", "c/z.png"):
        _touch(tmp_path / name)
    _touch(tmp_path / "b" / "notes.txt")
    _touch(tmp_path / "b" / ".hidden.jpg")
    (tmp_path / "empty").mkdir()
    people = fa.load_folder(tmp_path)
    assert len(people) == 3
    a, b, c = people
    assert [p.name for p in a.card] == ["card.jpg"]
    assert [p.name for p in a.live] == ["live1.jpg", "live2.JPG"]
    assert a.card[0] not in a.live  # a card-side photo is never used as a live frame
    assert [p.name for p in b.card] == [p.name for p in b.live] == ["x.jpg", "y.png"]
    assert c.card == c.live and len(c.card) == 1
    genuine, impostor = fa.pairs(people)
    # a: card vs live1, live2; b: x-y both ways; c: one photo, no genuine pair
    assert len(genuine) == 4 and all(card != live for card, live in genuine)
    assert all(card.parent == live.parent for card, live in genuine)
    # a's card x (b 2 + c 1); b's 2 cards x (a 2 + c 1); c's card x (a 2 + b 2)
    assert len(impostor) == 3 + 6 + 4
    assert all(card.parent != live.parent for card, live in impostor)


def test_folder_needs_two_people(tmp_path):
    _touch(tmp_path / "only" / "one.jpg")
    with pytest.raises(ValueError):
        fa.load_folder(tmp_path)
    with pytest.raises(ValueError):
        fa.load_folder(tmp_path / "missing")


def test_degrade_looks_like_a_small_printed_portrait():
    image = cv2.imread(str(FACES / "obama.jpg"))
    small = fa.degrade(image)
    assert small.shape[0] == 160 and small.dtype == image.dtype
    assert abs(small.shape[1] / 160 - image.shape[1] / image.shape[0]) < 0.01
    back = cv2.resize(small, (image.shape[1], image.shape[0]))
    assert float(abs(back.astype(int) - image.astype(int)).mean()) > 1.0  # it did change


@pytest.fixture
def person_folders(tmp_path):
    """The committed photos as one folder per person, under invented Vietnamese-style names."""
    layout = {
        "nguyen_van_a": ["obama.jpg", "obama2.jpg", "obama3.jpg"],
        "tran_thi_b": ["biden.jpg"],
        "le_van_c": ["grace_hopper.jpg"],
        "pham_thi_d": ["astronaut.jpg"],
    }
    for person, files in layout.items():
        (tmp_path / person).mkdir()
        for name in files:
            shutil.copy(FACES / name, tmp_path / person / name)
    return tmp_path


def test_real_verifier_run_counts_every_pair_and_prints_no_names(person_folders, capsys):
    before = sorted(p.relative_to(person_folders) for p in person_folders.rglob("*"))
    people = fa.load_folder(person_folders)
    scored = fa.score_set(people)
    assert len(scored.genuine) == 6 and len(scored.impostor) == 24 and scored.no_face == 0
    assert all(s is not None and 0.0 <= s <= 2.0 for s in scored.genuine + scored.impostor)

    assert fa.main([str(person_folders), "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)
    assert report["people"] == 4 and len(report["results"]) == 2
    plain, degraded = report["results"]
    assert plain["genuine_pairs"] == degraded["genuine_pairs"] == 6
    assert plain["impostor_pairs"] == 24
    at = fa.rates(scored.genuine, scored.impostor, plain["current_threshold"]["threshold"])
    assert plain["current_threshold"]["false_accepts"] == at.false_accepts
    assert plain["current_threshold"]["false_rejects"] == at.false_rejects
    for name in ("nguyen", "tran_thi", "le_van", "pham", "obama", "biden"):
        assert name not in out.lower()
    # nothing written next to the photos
    assert sorted(p.relative_to(person_folders) for p in person_folders.rglob("*")) == before


def test_unreadable_photo_is_reported_without_its_name(tmp_path, capsys):
    (tmp_path / "nguyen_van_e").mkdir()
    (tmp_path / "nguyen_van_e" / "card.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "tran_thi_f").mkdir()
    shutil.copy(FACES / "biden.jpg", tmp_path / "tran_thi_f" / "x.jpg")
    assert fa.main([str(tmp_path), "--no-degrade"]) == 2
    err = capsys.readouterr().err
    assert "cannot read card-side image" in err
    assert "nguyen" not in err and "tran" not in err and "card.jpg" not in err
