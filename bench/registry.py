"""The figures the bench knows: name, unit, product target, and a callable giving one sample."""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

Sample = Callable[[], float]


class BenchError(Exception):
    """A figure could not be measured (the daemon misbehaved, a step timed out)."""


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    unit: str
    sample: Sample
    below: float | None = None  # product spec target (§10): the figure must stay under it


@dataclass(slots=True)
class Result:
    figure: Figure
    samples: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples and not self.error else None

    @property
    def within_target(self) -> bool | None:
        if self.figure.below is None or self.median is None:
            return None
        return self.median < self.figure.below


FIGURES: list[Figure] = []


def figure(name: str, *, unit: str, below: float | None = None) -> Callable[[Sample], Sample]:
    """Register a function returning one sample of a figure (decorator)."""

    def register(sample: Sample) -> Sample:
        FIGURES.append(Figure(name, unit, sample, below))
        return sample

    return register


def measure(fig: Figure, *, runs: int, deadline: float) -> Result:
    """Take `runs` samples; the first failure, or passing the deadline, fails the figure."""
    result = Result(fig)
    for run in range(1, runs + 1):
        if time.monotonic() > deadline:
            result.error = "bench time budget used up"
            break
        try:
            value = fig.sample()
        except BenchError as err:
            result.error = str(err)
            break
        logger.info("%s: run %d/%d = %.3f %s", fig.name, run, runs, value, fig.unit)
        result.samples.append(value)
    if result.error:
        logger.error("%s: FAILED: %s", fig.name, result.error)
    return result
