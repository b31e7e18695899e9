"""A run's progress and time left (marketplace.progress): pure functions of its jobs' state, checked on
unsaved jobs, no database."""
from __future__ import annotations

import datetime as dt

import pytest
from django.utils import translation

from compute.models import Job
from marketplace.progress import duration_text, eta_seconds, eta_text, run_progress

NOW = dt.datetime(2025, 6, 15, 12, 0, 0, tzinfo=dt.UTC)


def job(protocol: str = "psi", *, step: int = 0, total: int = 3, status: str = Job.Status.RUNNING,
        started: float = 30, finished: float | None = None, **fields: object) -> Job:
    """A job started `started` seconds before NOW (and finished `finished` seconds before NOW)."""
    return Job(protocol=protocol, step=step, total_steps=total, status=status,
               created_at=NOW - dt.timedelta(seconds=started),
               finished_at=None if finished is None else NOW - dt.timedelta(seconds=finished), **fields)


def test_it_projects_the_pace_so_far_over_what_is_left():
    assert eta_seconds(done=2, total=6, elapsed=30, typical=None) == 60
    assert eta_seconds(done=2, total=6, elapsed=30, typical=5) == 60  # the run's own pace wins once known
    assert eta_seconds(done=6, total=6, elapsed=30, typical=None) == 0


def test_it_uses_the_typical_time_before_anything_is_done():
    assert eta_seconds(done=0, total=6, elapsed=30, typical=100) == 70
    assert eta_seconds(done=0, total=6, elapsed=130, typical=100) is None  # past the typical time: unknown
    assert eta_seconds(done=0, total=6, elapsed=30, typical=None) is None
    assert eta_seconds(done=0, total=0, elapsed=30, typical=100) is None


def test_it_counts_the_steps_of_every_job_of_a_run():
    jobs = [job(step=3, status=Job.Status.SUCCEEDED, started=40, finished=10), job(step=1, started=40)]
    progress = run_progress(jobs, now=NOW, typical_seconds={})
    assert (progress.unit, progress.done, progress.total, progress.finished) == ("steps", 4, 6, False)
    assert progress.percent == 66
    assert progress.eta_seconds == pytest.approx(20)  # 40 s for 4 steps: 2 more take 20 s
    assert progress.done_text == "4 of 6 steps"
    assert progress.time_text == "about 20 seconds left"


def test_it_estimates_a_run_with_nothing_done_from_the_typical_time_of_its_protocol():
    progress = run_progress([job(step=0, started=15)], now=NOW, typical_seconds={"psi": 75.0})
    assert progress.eta_seconds == pytest.approx(60)
    assert progress.time_text == "about 60 seconds left"
    unknown = run_progress([job(step=0, started=15)], now=NOW, typical_seconds={"lookup": 75.0})
    assert unknown.eta_seconds is None and unknown.time_text == "estimating the time left…"


def test_it_says_how_long_a_finished_run_took_and_whether_it_stopped():
    done = run_progress([job(step=3, status=Job.Status.SUCCEEDED, started=50, finished=8)], now=NOW,
                        typical_seconds={})
    assert (done.finished, done.failed, done.percent, done.eta_seconds) == (True, False, 100, None)
    assert done.time_text == "finished in 42 seconds"
    failed = run_progress([job(step=1, status=Job.Status.FAILED, started=50, finished=20)], now=NOW,
                          typical_seconds={})
    assert (failed.finished, failed.failed, failed.percent) == (True, True, 33)
    assert failed.time_text == "stopped after 30 seconds"


def test_it_counts_a_training_in_epochs():
    setup = job("vfl_lr", step=5, total=5, status=Job.Status.SUCCEEDED, started=100, finished=90,
                params={"max_epochs": 10}, result={"next": {"iteration": 0}})
    epochs = [job("vfl_lr_epoch", step=7, total=7, status=Job.Status.SUCCEEDED, started=90 - 10 * n,
                  finished=80 - 10 * n, result={"next": {"iteration": n + 1}}) for n in range(2)]
    running = job("vfl_lr_epoch", step=3, total=7, started=70)
    progress = run_progress([running, *epochs, setup], now=NOW, typical_seconds={})
    assert (progress.unit, progress.total, progress.epochs_done, progress.finished) == ("epochs", 11, 2, False)
    assert progress.done == pytest.approx(3 + 3 / 7)
    assert progress.eta_seconds == pytest.approx(100 / (3 + 3 / 7) * (11 - 3 - 3 / 7))
    assert progress.done_text == "epoch 2 of 10"


def test_it_ends_a_training_that_stopped_early_or_was_cut_short():
    setup = job("vfl_lr", step=5, total=5, status=Job.Status.SUCCEEDED, started=100, finished=90,
                params={"max_epochs": 30})
    last = job("vfl_lr_epoch", step=7, total=7, status=Job.Status.SUCCEEDED, started=90, finished=80,
               result={"done": True})
    stopped = run_progress([setup, last], now=NOW, typical_seconds={})
    assert stopped.finished and not stopped.failed and stopped.percent == 100
    asks_more = job("vfl_lr_epoch", step=7, total=7, status=Job.Status.SUCCEEDED, started=90, finished=5,
                    result={"next": {"iteration": 1}})
    assert not run_progress([setup, asks_more], now=NOW, typical_seconds={}).finished  # the next epoch is coming
    later = NOW + dt.timedelta(minutes=5)
    assert run_progress([setup, asks_more], now=later, typical_seconds={}).finished  # none came: cut short


def test_it_estimates_a_training_not_started_from_its_set_up_and_epochs():
    setup = job("vfl_lr", step=0, total=5, started=10, params={"max_epochs": 4})
    progress = run_progress([setup], now=NOW, typical_seconds={"vfl_lr": 20.0, "vfl_lr_epoch": 5.0})
    assert progress.eta_seconds == pytest.approx(20 + 4 * 5 - 10)


@pytest.mark.parametrize(("seconds", "text"), [
    (0.2, "about 1 second left"),
    (7.4, "about 8 seconds left"),
    (42, "about 45 seconds left"),
    (59.5, "about 60 seconds left"),
    (88, "about 85 seconds left"),
    (95, "about 2 minutes left"),
    (30 * 60, "about 30 minutes left"),
    (3 * 3600, "about 3 hours left"),
])
def test_it_rounds_the_time_left_to_words(seconds, text):
    assert eta_text(seconds) == text


def test_it_writes_durations_in_words_in_the_active_language():
    assert duration_text(1) == "1 second" and duration_text(125) == "2 minutes"
    assert duration_text(12_345 * 3600) == "12,345 hours"  # the locale's grouping
    with translation.override("zh-hans"):
        assert "30" in eta_text(30 * 60) and "12,345" in duration_text(12_345 * 3600)
