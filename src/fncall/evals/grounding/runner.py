"""Runs the cases on each target, one target after another, cases with bounded concurrency, and scores them.

A target that cannot start is recorded as unavailable with the reason; a case that fails is recorded with
its reasons. Neither ends the run.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence

from fncall.evals.grounding.cases import GroundingCase
from fncall.evals.grounding.results import CaseResult, TargetRun
from fncall.evals.grounding.scoring import score_case
from fncall.evals.grounding.targets import CaseDriver, Target

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[CaseResult], None]


async def run_cases(
    target_name: str,
    driver: CaseDriver,
    cases: Sequence[GroundingCase],
    *,
    concurrency: int = 1,
    progress: ProgressCallback | None = None,
) -> list[CaseResult]:
    """Every case on one driver, at most `concurrency` at a time; results in case order."""
    slots = asyncio.Semaphore(max(1, concurrency))

    async def run_one(case: GroundingCase) -> CaseResult:
        async with slots:
            transcript = await driver.run_case(case)
        verdict = score_case(case, transcript)
        result = CaseResult(
            target=target_name,
            case_id=case.id,
            category=case.category,
            question=case.question,
            passed=verdict.passed,
            reasons=verdict.reasons,
            calls=transcript.calls,
            answer=transcript.answer,
            seconds=round(transcript.seconds, 3),
            error=transcript.error,
        )
        if progress is not None:
            progress(result)
        return result

    return list(await asyncio.gather(*(run_one(case) for case in cases)))


async def run_target(
    target: Target,
    cases: Sequence[GroundingCase],
    *,
    concurrency: int = 1,
    progress: ProgressCallback | None = None,
) -> TargetRun:
    """Open the target, run every case on it, close it."""
    run = TargetRun(name=target.name, description=target.description, load_before=_load_average())
    try:
        async with target.open() as driver:
            run.results = await run_cases(
                target.name, driver, cases, concurrency=concurrency, progress=progress
            )
    except Exception as error:  # a target that will not start is reported, and the others still run
        logger.warning("target %s is unavailable: %s", target.name, error)
        run.unavailable = f"{type(error).__name__}: {error}"
    run.load_after = _load_average()
    return run


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover - not available on this platform
        return None


async def run_evaluation(
    targets: Sequence[Target],
    cases: Sequence[GroundingCase],
    *,
    concurrency: int = 1,
    progress: ProgressCallback | None = None,
) -> list[TargetRun]:
    """Every target in turn (never two at once: they would share the CPU and distort the timings)."""
    return [await run_target(target, cases, concurrency=concurrency, progress=progress) for target in targets]
