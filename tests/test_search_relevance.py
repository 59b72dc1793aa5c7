"""Search relevance on the query set citizens type (tests/data/search_queries.tsv):
top-1 >= 95 %, top-3 >= 99 %. The misses are printed (pytest -s, or on failure)."""

from __future__ import annotations

from edge.services.catalog import BUNDLED_CATALOG, Catalog
from edge.services.search_eval import evaluate, load_queries


def test_query_set_is_large_and_points_at_real_entries() -> None:
    catalog = Catalog.from_file(BUNDLED_CATALOG)
    pairs = load_queries()
    assert len(pairs) >= 150
    assert len({q.casefold() for q, _ in pairs}) == len(pairs), "duplicate queries"
    unknown = [(q, pid) for q, pid in pairs if pid not in {p.id for p in catalog.procedures}]
    assert not unknown
    # Every entry that people look for is in the set at least once.
    assert {pid for _, pid in pairs} == {p.id for p in catalog.procedures}


def test_top1_and_top3_meet_the_thresholds() -> None:
    result = evaluate(Catalog.from_file(BUNDLED_CATALOG), load_queries())
    report = "\n".join(f"  {q!r}: expected {exp}, got {got}" for q, exp, got in result.misses)
    print(
        f"\nsearch relevance: {result.total} queries, top-1 {result.top1_rate:.1%}, "
        f"top-3 {result.top3_rate:.1%}, p50 {result.percentile_ms(0.5):.2f} ms, "
        f"p95 {result.percentile_ms(0.95):.2f} ms\nmisses (top-1):\n{report}"
    )
    assert result.top1_rate >= 0.95, report
    assert result.top3_rate >= 0.99, report
