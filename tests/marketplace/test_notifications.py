"""Notifications from the order pipeline's events: a quote ready, a run of an order's jobs finished or failed, a
grant revoked or about to expire. Every member of the buyer's organisation gets one notification per event and,
with an address, one e-mail in their own language, however often the event is delivered.

The pipeline's real services run against the session's chain and the parties' in-process nodes; only the
outcome of each compute job is set instead of run (as tests/marketplace/test_ledger_invariants.py does).
Each test runs in a transaction that never commits: the after-commit work (notifying, the e-mail task, which
runs inline in eager mode) is run with `django_capture_on_commit_callbacks(execute=True)` where a commit
would have run it.
"""
from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.test import TestCase
from django.utils import timezone, translation

from compute.jobs.services import job_fail
from compute.models import Job
from compute.signals import job_finished
from config.celery import app as celery_app
from marketplace.formatting import money
from marketplace.models import Member, Notification, Order, Quote
from marketplace.services import notifications
from marketplace.services.catalog import product_create
from marketplace.services.notifications import (
    grant_expiry_notify,
    notification_email_send,
    notification_text,
    quote_ready_notify,
)
from marketplace.services.orders import (
    order_cancel,
    order_grant_confirmed,
    order_grant_failed,
    order_grant_revoke,
    order_grant_revoked,
    order_job_start,
    order_place,
)
from marketplace.services.organisations import member_create
from marketplace.services.quotes import quote_request
from marketplace.tasks import grant_expiry_notify_task, notification_email_task
from tests.conftest import dataset_on_node
from tests.marketplace.data import consumer_csv, provider_csv

pytestmark = [pytest.mark.django_db, pytest.mark.chain]

IDS = [f"N{n:03d}" for n in range(30)]
PASSWORD = "pw-12345-long"


@pytest.fixture
def trade(make_party: Any) -> SimpleNamespace:
    """A provider with a published product; a buyer organisation with three members: its owner (English, with
    an address), a member who chose Chinese (with an address) and one without an address."""
    tag = uuid.uuid4().hex[:6]
    provider = make_party(f"ntf-p-{tag}", provider=True)
    buyer = make_party(f"ntf-c-{tag}", provider=False, balance=100_000)
    owner = buyer.user
    owner.email = "owner@buyer.example"
    owner.save(update_fields=["email"])
    chinese, _ = member_create(organisation=buyer.organisation, username=f"ntf-zh-{tag}", password=PASSWORD)
    chinese.email = "zh@buyer.example"
    chinese.save(update_fields=["email"])
    Member.objects.filter(user=chinese).update(language="zh-hans")
    silent, _ = member_create(organisation=buyer.organisation, username=f"ntf-silent-{tag}", password=PASSWORD)
    provider_data = dataset_on_node(organisation=provider.organisation, name="customers",
                                    data=provider_csv(IDS[:20]), actor="test")
    buyer_data = dataset_on_node(organisation=buyer.organisation, name="applicants",
                                 data=consumer_csv(IDS[5:17]), actor="test")
    product = product_create(provider=provider.organisation, dataset_ids=[str(provider_data.id)],
                             title="Customer match", description="", purposes=["risk_control"], base_price=500,
                             price_per_match=7, quota=3, validity_days=30, actor="test", publish=True)
    mail.outbox.clear()
    return SimpleNamespace(provider=provider, buyer=buyer, owner=owner, chinese=chinese, silent=silent,
                           members={owner.pk, chinese.pk, silent.pk}, product=product, dataset=buyer_data)


def _deliver(job_id: Any, times: int = 2) -> None:
    """The compute layer's announcement that a job finished, delivered `times` times, each committed."""
    for _ in range(times):
        with TestCase.captureOnCommitCallbacks(execute=True):
            job_finished.send(sender=Job, job=Job.objects.get(id=job_id))


def _job_succeeds(job_id: Any, *, cardinality: int) -> None:
    Job.objects.filter(id=job_id).update(status=Job.Status.SUCCEEDED, step=3, result_cardinality=cardinality,
                                         finished_at=timezone.now(), result={})


def _ready_quote(t: SimpleNamespace) -> Quote:
    quote = quote_request(buyer=t.buyer.organisation, product_id=str(t.product.id), dataset_id=str(t.dataset.id),
                          purpose="risk_control", actor="test")
    job_id = quote.measurements.first().job_id
    _job_succeeds(job_id, cardinality=12)
    _deliver(job_id)
    quote.refresh_from_db()
    assert quote.status == Quote.Status.READY, quote.error
    return quote


def _fulfilling_order(t: SimpleNamespace) -> Order:
    quote = _ready_quote(t)
    order, _ = order_place(buyer=t.buyer.organisation, quote_id=str(quote.id), idempotency_key=str(uuid.uuid4()),
                           actor="test")
    for grant in order.grants.all():
        order_grant_confirmed(order_grant_id=grant.id)
    order.refresh_from_db()
    assert order.status == Order.Status.FULFILLING
    return order


def _of(kind: str, subject: str) -> list[Notification]:
    return list(Notification.objects.filter(kind=kind, subject=subject).select_related("user"))


def test_it_notifies_each_member_once_when_a_quote_is_ready_even_when_told_twice(
        trade, django_capture_on_commit_callbacks):
    quote = _ready_quote(trade)  # the job's announcement was delivered twice
    with django_capture_on_commit_callbacks(execute=True):
        quote_ready_notify(quote=quote)  # and the event itself once more

    sent = _of(Notification.Kind.QUOTE_READY, f"quote:{quote.id}")
    assert sorted(n.user_id for n in sent) == sorted(trade.members)
    assert {n.url for n in sent} == {f"/quotes/{quote.id}/"}
    with translation.override("en"):
        title, body = notification_text(sent[0])
    assert title == "Quote ready" and "Customer match" in body and money(quote.price) in body
    # One e-mail per member with an address; the one without has the in-app notification only.
    assert sorted(address for message in mail.outbox for address in message.to) == [
        "owner@buyer.example", "zh@buyer.example"]
    assert all(n.emailed_at is not None for n in sent if n.user.email)
    assert [n.emailed_at for n in sent if not n.user.email] == [None]
    assert notification_email_send(notification_ids=[n.pk for n in sent]) == 0  # never twice
    assert len(mail.outbox) == 2


def test_it_writes_each_members_email_in_their_language(trade, monkeypatch):
    languages = []
    real = notifications.notification_text

    def recording(notification: Notification) -> tuple[str, str]:
        languages.append((notification.user_id, translation.get_language()))
        return real(notification)

    monkeypatch.setattr(notifications, "notification_text", recording)
    _ready_quote(trade)

    by_address = {message.to[0]: message for message in mail.outbox}
    assert by_address["zh@buyer.example"].extra_headers["Content-Language"] == "zh-hans"
    assert by_address["owner@buyer.example"].extra_headers["Content-Language"] == "en"
    assert (trade.chinese.pk, "zh-hans") in languages and (trade.owner.pk, "en") in languages
    assert by_address["owner@buyer.example"].subject == "[Data marketplace] Quote ready"
    assert "http://" in by_address["owner@buyer.example"].body and "/quotes/" in by_address["owner@buyer.example"].body


def test_it_notifies_a_finished_and_a_failed_run_once_each_with_the_product_and_the_reason(
        trade, django_capture_on_commit_callbacks):
    order = _fulfilling_order(trade)
    mail.outbox.clear()
    first = order.order_jobs.get(run=1)
    _job_succeeds(first.job_id, cardinality=7)
    _deliver(first.job_id)
    order.refresh_from_db()
    assert order.status == Order.Status.FULFILLED

    done = _of(Notification.Kind.JOB_SUCCEEDED, f"order:{order.id}:run:1")
    assert sorted(n.user_id for n in done) == sorted(trade.members)
    assert {n.url for n in done} == {f"/orders/{order.id}/"}
    with translation.override("en"):
        assert "Customer match" in notification_text(done[0])[1]
    assert len(mail.outbox) == 2

    order_job_start(order=order, organisation=trade.buyer.organisation, actor="test")
    second = order.order_jobs.get(run=2)
    job_fail(job_id=str(second.job_id), reason="The provider's node refused the job.")
    _deliver(second.job_id)

    failed = _of(Notification.Kind.JOB_FAILED, f"order:{order.id}:run:2")
    assert sorted(n.user_id for n in failed) == sorted(trade.members)
    with translation.override("en"):
        title, body = notification_text(failed[0])
    assert title == "Job failed" and "Customer match" in body and "The provider's node refused the job." in body
    assert len(mail.outbox) == 4
    assert not Notification.objects.filter(kind=Notification.Kind.JOB_FAILED, subject__endswith=":run:1").exists()


def test_it_tells_the_buyer_when_an_order_fails_before_its_job(trade, django_capture_on_commit_callbacks):
    quote = _ready_quote(trade)
    order, _ = order_place(buyer=trade.buyer.organisation, quote_id=str(quote.id),
                           idempotency_key=str(uuid.uuid4()), actor="test")
    with django_capture_on_commit_callbacks(execute=True):
        order_grant_failed(order_grant_id=order.grants.first().id, reason="reverted")

    failed = _of(Notification.Kind.JOB_FAILED, f"order:{order.id}:run:1")
    assert sorted(n.user_id for n in failed) == sorted(trade.members)
    with translation.override("en"):
        assert "reverted" in notification_text(failed[0])[1]


def test_it_notifies_a_revocation_once_with_the_providers_reason(trade, django_capture_on_commit_callbacks):
    order = _fulfilling_order(trade)
    mail.outbox.clear()
    order_grant_revoke(order=order, organisation=trade.provider.organisation, actor="test",
                       reason="The customer withdrew consent.")  # its node writes the revocation after commit
    grant = order.grants.get()
    for _ in range(2):  # the node's report of the revocation on chain, delivered twice
        with django_capture_on_commit_callbacks(execute=True):
            order_grant_revoked(order_grant_id=grant.id, tx_hash="0x" + "ab" * 32, ok=True, reason="")

    revoked = _of(Notification.Kind.GRANT_REVOKED, f"order:{order.id}:grant:{grant.id}")
    assert sorted(n.user_id for n in revoked) == sorted(trade.members)
    with translation.override("en"):
        title, body = notification_text(revoked[0])
    assert title == "Grant revoked"
    assert trade.provider.organisation.name in body and "The customer withdrew consent." in body
    assert {n.url for n in revoked} == {f"/orders/{order.id}/"}
    assert len(mail.outbox) == 2


def test_it_says_nothing_of_the_revocations_that_follow_a_cancellation(trade, django_capture_on_commit_callbacks):
    quote = _ready_quote(trade)
    order, _ = order_place(buyer=trade.buyer.organisation, quote_id=str(quote.id),
                           idempotency_key=str(uuid.uuid4()), actor="test")
    order_cancel(order=order, organisation=trade.buyer.organisation, actor="test")
    with django_capture_on_commit_callbacks(execute=True):
        order_grant_revoked(order_grant_id=order.grants.get().id, tx_hash="0x" + "cd" * 32, ok=True, reason="")
    assert not Notification.objects.filter(kind=Notification.Kind.GRANT_REVOKED).exists()


def test_the_expiry_task_notifies_each_grant_once(trade, django_capture_on_commit_callbacks, settings):
    settings.GRANT_EXPIRY_NOTICE_DAYS = 7
    soon = _fulfilling_order(trade)
    later = _fulfilling_order(trade)
    revoked = _fulfilling_order(trade)
    Order.objects.filter(id__in=[soon.id, revoked.id]).update(grant_expires_at=timezone.now() + timedelta(days=3))
    Order.objects.filter(id=later.id).update(grant_expires_at=timezone.now() + timedelta(days=20))
    revoked.grants.update(revoked=True)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        first = grant_expiry_notify_task.delay().get()
    with django_capture_on_commit_callbacks(execute=True):
        second = grant_expiry_notify()

    assert (first, second) == (1, 0)
    expiring = Notification.objects.filter(kind=Notification.Kind.GRANT_EXPIRING)
    assert sorted(expiring.values_list("user_id", flat=True)) == sorted(trade.members)
    assert set(expiring.values_list("subject", flat=True)) == {f"order:{soon.id}"}
    with translation.override("en"):
        body = notification_text(expiring.first())[1]
    assert "Customer match" in body and "expires on" in body
    assert len(mail.outbox) == 2
    assert "grant-expiry-notice" in settings.CELERY_BEAT_SCHEDULE
    assert settings.CELERY_BEAT_SCHEDULE["grant-expiry-notice"]["task"] == grant_expiry_notify_task.name


def test_a_failure_to_notify_never_undoes_the_transition(trade, monkeypatch, caplog):
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("notification store away")

    monkeypatch.setattr(notifications, "notify_organisation", broken)
    with caplog.at_level(logging.ERROR, logger="marketplace.services.notifications"):
        quote = _ready_quote(trade)
    assert Quote.objects.get(id=quote.id).status == Quote.Status.READY
    assert not Notification.objects.exists() and not mail.outbox
    assert "Could not notify" in caplog.text and "notification store away" in caplog.text


@pytest.fixture
def eager_retries() -> Any:
    """Eager tasks that retry as a worker would: Celery re-applies a retried eager task only when its errors
    are not propagated (a worker's retry waits its backoff; eagerly it runs at once)."""
    previous = celery_app.conf.task_eager_propagates
    celery_app.conf.task_eager_propagates = False
    yield
    celery_app.conf.task_eager_propagates = previous


class FlakyBackend(EmailBackend):
    """A mail server that refuses the first `failures` messages, then accepts."""

    failures = 0

    def send_messages(self, messages: Any) -> int:
        if FlakyBackend.failures > 0:
            FlakyBackend.failures -= 1
            raise ConnectionRefusedError("mail server away")
        return super().send_messages(messages)


def test_the_email_task_retries_a_refused_email_and_sends_it_once(trade, settings, eager_retries):
    settings.EMAIL_BACKEND = f"{__name__}.FlakyBackend"
    FlakyBackend.failures = 1
    quote = _ready_quote(trade)  # the first e-mail is refused once: the task's retry sends it

    sent = _of(Notification.Kind.QUOTE_READY, f"quote:{quote.id}")
    assert FlakyBackend.failures == 0
    assert sorted(address for message in mail.outbox for address in message.to) == [
        "owner@buyer.example", "zh@buyer.example"]
    assert all(n.emailed_at is not None for n in sent if n.user.email)

    notification_email_task.delay([n.pk for n in sent])  # a repeated task sends nothing
    assert len(mail.outbox) == 2


def test_an_email_the_server_keeps_refusing_stays_unsent_and_the_task_fails_after_its_retries(
        trade, settings, eager_retries):
    settings.EMAIL_BACKEND = f"{__name__}.FlakyBackend"
    FlakyBackend.failures = 10_000
    try:
        quote = _ready_quote(trade)
        sent = _of(Notification.Kind.QUOTE_READY, f"quote:{quote.id}")
        result = notification_email_task.delay([n.pk for n in sent])
        attempts_left = FlakyBackend.failures
    finally:
        FlakyBackend.failures = 0
    assert result.failed() and isinstance(result.result, notifications.NotificationEmailFailed)
    # Each try (the first and its 8 retries) was refused both e-mails: twice from the quote's, twice here.
    assert 10_000 - attempts_left == 2 * 2 * (1 + notification_email_task.max_retries)
    assert not mail.outbox
    assert not Notification.objects.filter(emailed_at__isnull=False).exists()
