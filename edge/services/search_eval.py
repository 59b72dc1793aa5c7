"""The search relevance set (tests/data/search_queries.tsv): top-1, top-3 and per-query latency.

Used by tests/test_search_relevance.py (thresholds) and the bench (figures).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from edge.services.catalog import Catalog

QUERY_SET = Path(__file__).resolve().parents[2] / "tests" / "data" / "search_queries.tsv"


def load_queries(path: Path = QUERY_SET) -> list[tuple[str, str]]:
    """(query, expected procedure id) pairs; '#' lines and the header are skipped."""
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#") or line.startswith("query\t"):
            continue
        query, expected = line.split("\t")
        pairs.append((query, expected.strip()))
    return pairs


@dataclass
class Evaluation:
    total: int = 0
    top1: int = 0
    top3: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    misses: list[tuple[str, str, list[str]]] = field(default_factory=list)  # query, expected, got

    @property
    def top1_rate(self) -> float:
        return self.top1 / self.total if self.total else 0.0

    @property
    def top3_rate(self) -> float:
        return self.top3 / self.total if self.total else 0.0

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def evaluate(catalog: Catalog, pairs: list[tuple[str, str]]) -> Evaluation:
    result = Evaluation()
    for query, expected in pairs:
        start = time.perf_counter()
        hits = catalog.search(query, limit=10)
        result.latencies_ms.append((time.perf_counter() - start) * 1000)
        ids = [h.procedure.id for h in hits]
        result.total += 1
        if ids[:1] == [expected]:
            result.top1 += 1
        if expected in ids[:3]:
            result.top3 += 1
        if ids[:1] != [expected]:
            result.misses.append((query, expected, ids[:3]))
    return result
