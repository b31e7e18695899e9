"""How far an order's run has come and about how long it still takes: pure functions of its jobs' state.

A run is the jobs started together under an order's grants (one per provider, or one joint job). Its
progress is the protocol steps its jobs have done out of all their steps; a training counts in epochs
instead (its set-up job, then one job per epoch up to the order's `max_epochs`, or fewer when it stops
early). The time left is the pace so far applied to what is left; before anything is done, the median
time recent runs of the same protocol took (see `selectors_orders.job_typical_seconds`), less the time
already spent.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils.translation import gettext, ngettext

from compute.models import Job
from compute.protocols.registry import PROTOCOLS
from marketplace.formatting import number

# A training's job that asks for the next epoch is followed by it within moments (after its commit); once
# this long has passed without one, the training was cut short (a grant revoked) and the run is over.
NEXT_EPOCH_GRACE_SECONDS = 60.0


@dataclass(frozen=True)
class RunProgress:
    """`done` of `total` units (steps, or epochs of a training); `epochs_done` the whole epochs finished."""

    unit: str  # "steps" | "epochs"
    done: float
    total: int
    finished: bool
    failed: bool
    elapsed_seconds: float
    eta_seconds: float | None
    epochs_done: int = 0

    @property
    def fraction(self) -> float:
        if self.finished and not self.failed:
            return 1.0
        return min(max(self.done / self.total, 0.0), 1.0) if self.total else 0.0

    @property
    def percent(self) -> int:
        return math.floor(self.fraction * 100)

    @property
    def steps_done(self) -> int:
        return math.floor(self.done)

    @property
    def done_text(self) -> str:
        """"epoch 3 of 30", "4 of 6 steps" in the active language."""
        if self.unit == "epochs":
            return gettext("epoch %(done)s of %(total)s") % {"done": number(self.epochs_done),
                                                            "total": number(self.total - 1)}
        return ngettext("%(done)s of %(total)s step", "%(done)s of %(total)s steps", self.total) % {
            "done": number(self.steps_done), "total": number(self.total)}

    @property
    def time_text(self) -> str:
        """The time left while the run goes on; how long it took once it has ended."""
        if not self.finished:
            return eta_text(self.eta_seconds)
        took = duration_text(self.elapsed_seconds)
        if self.failed:
            return gettext("stopped after %(duration)s") % {"duration": took}
        return gettext("finished in %(duration)s") % {"duration": took}


def eta_seconds(*, done: float, total: float, elapsed: float, typical: float | None) -> float | None:
    """Seconds left: the pace so far (elapsed / done) over what is left once anything is done; before that,
    a typical run's time less the time already spent. None when neither tells (nothing done and no typical
    time, or the typical time is already past)."""
    if total <= 0:
        return None
    if done >= total:
        return 0.0
    if done > 0 and elapsed > 0:
        return elapsed / done * (total - done)
    if typical is not None and typical > elapsed:
        return typical - elapsed
    return None


def eta_text(seconds: float | None) -> str:
    """"about 40 seconds left", "about 3 minutes left", "about 2 hours left" in the active language."""
    if seconds is None:
        return gettext("estimating the time left…")
    if seconds < 90:
        count = max(1, math.ceil(seconds))
        if count > 10:
            count = min(85, 5 * math.ceil(count / 5))  # steadier than every second on a page that refreshes
        return ngettext("about %(count)s second left", "about %(count)s seconds left", count) % {
            "count": number(count)}
    if seconds < 90 * 60:
        count = max(1, round(seconds / 60))
        return ngettext("about %(count)s minute left", "about %(count)s minutes left", count) % {
            "count": number(count)}
    count = max(1, round(seconds / 3600))
    return ngettext("about %(count)s hour left", "about %(count)s hours left", count) % {"count": number(count)}


def duration_text(seconds: float) -> str:
    """"12 seconds", "3 minutes", "2 hours" in the active language (how long a finished run took)."""
    if seconds < 60:
        count = max(1, round(seconds))
        return ngettext("%(count)s second", "%(count)s seconds", count) % {"count": number(count)}
    if seconds < 90 * 60:
        count = max(1, round(seconds / 60))
        return ngettext("%(count)s minute", "%(count)s minutes", count) % {"count": number(count)}
    count = max(1, round(seconds / 3600))
    return ngettext("%(count)s hour", "%(count)s hours", count) % {"count": number(count)}


def run_progress(jobs: Sequence[Job], *, now: datetime, typical_seconds: Mapping[str, float]) -> RunProgress:
    """The progress of one run from its jobs (in any order) at `now`; `typical_seconds` maps a protocol to
    the median time its recent jobs took (the protocols it lacks have no typical time yet)."""
    if not jobs:
        return RunProgress(unit="steps", done=0, total=0, finished=False, failed=False, elapsed_seconds=0,
                           eta_seconds=None)
    started = min(job.created_at for job in jobs)
    elapsed = max((now - started).total_seconds(), 0.0)
    # A training's set-up job names the protocol of its epochs (an epoch names its own: the next epoch).
    setup = next((job for job in jobs if _spec_continued_by(job.protocol) not in {"", job.protocol}), None)
    if setup is not None:
        return _training_progress(setup, jobs, now=now, elapsed=elapsed, typical_seconds=typical_seconds)
    done = float(sum(min(job.step, job.total_steps) for job in jobs))
    total = sum(job.total_steps for job in jobs)
    finished = all(job.is_finished for job in jobs)
    failed = finished and all(job.status == Job.Status.FAILED for job in jobs)
    protocol = jobs[0].protocol
    eta = None if finished else eta_seconds(done=done, total=total, elapsed=elapsed,
                                            typical=typical_seconds.get(protocol))
    return RunProgress(unit="steps", done=done, total=total, finished=finished, failed=failed,
                       elapsed_seconds=_elapsed_until_end(jobs, started, elapsed, finished), eta_seconds=eta)


def _spec_continued_by(protocol: str) -> str:
    spec = PROTOCOLS.get(protocol)
    return spec.continued_by if spec is not None else ""


def _training_progress(setup: Job, jobs: Sequence[Job], *, now: datetime, elapsed: float,
                       typical_seconds: Mapping[str, float]) -> RunProgress:
    """A training: its set-up counts as one unit, then each epoch one, up to `max_epochs`."""
    epoch_protocol = _spec_continued_by(setup.protocol)
    epochs = sorted((job for job in jobs if job.protocol == epoch_protocol), key=lambda job: job.created_at)
    max_epochs = int((setup.params or {}).get("max_epochs") or max(len(epochs), 1))
    total = 1 + max_epochs
    ordered = [setup, *epochs]
    done = sum(_job_fraction(job) for job in ordered)
    last = ordered[-1]
    failed = any(job.status == Job.Status.FAILED for job in ordered)
    asks_more = last.status == Job.Status.SUCCEEDED and "next" in (last.result or {})
    waited = (now - last.finished_at).total_seconds() if last.finished_at else 0.0
    finished = failed or (last.is_finished and (not asks_more or waited > NEXT_EPOCH_GRACE_SECONDS))
    epochs_done = sum(1 for job in epochs if job.status == Job.Status.SUCCEEDED)
    typical = None
    if setup.protocol in typical_seconds and epoch_protocol in typical_seconds:
        typical = typical_seconds[setup.protocol] + max_epochs * typical_seconds[epoch_protocol]
    eta = None if finished else eta_seconds(done=done, total=total, elapsed=elapsed, typical=typical)
    started = setup.created_at
    return RunProgress(unit="epochs", done=done, total=total, finished=finished, failed=failed,
                       elapsed_seconds=_elapsed_until_end(ordered, started, elapsed, finished), eta_seconds=eta,
                       epochs_done=epochs_done)


def _job_fraction(job: Job) -> float:
    if job.status == Job.Status.SUCCEEDED:
        return 1.0
    return min(job.step, job.total_steps) / job.total_steps if job.total_steps else 0.0


def _elapsed_until_end(jobs: Sequence[Job], started: datetime, elapsed: float, finished: bool) -> float:
    """Time taken so far, or, for a finished run, from its first job's start to its last job's end."""
    ends = [job.finished_at for job in jobs if job.finished_at is not None]
    if finished and ends:
        return max((max(ends) - started).total_seconds(), 0.0)
    return elapsed
