"""The operator finds stalled jobs in the admin and fails one now: the buyer is refunded through the same
path as any failed job, nothing is released, and finished jobs are left alone. There is no "retry" of a
job (compute/admin.py says why)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory
from django.utils import timezone

from compute.models import Job
from compute.node.handlers import HANDLERS
from marketplace.models import Order
from marketplace.selectors import balance_of
from tests.marketplace.api_flow import buy, client_for, list_product, quote, upload
from tests.marketplace.data import consumer_csv, overlapping_ids, provider_csv

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]
CHANGELIST = "/admin/compute/job/"
BALANCE = 100_000


@pytest.fixture
def operator_client() -> Client:
    user = get_user_model().objects.create_superuser(username="job-operator", password="pw-12345-long")
    client = Client()
    client.force_login(user)
    return client


def stuck_order(make_party, name: str) -> tuple[Order, Job]:
    """A paid order whose job never starts: the node that runs its first step takes the request and
    never answers (the quote's own job ran before; tasks run inline, so the purchase is all done when
    buy() returns)."""
    provider = make_party(f"{name}-p", provider=True)
    consumer = make_party(f"{name}-c", provider=False, balance=BALANCE)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    provider_ids, consumer_ids = overlapping_ids(provider=20, consumer=10, overlap=6)
    product = list_product(seller, upload(seller, "Customers", provider_csv(provider_ids))["id"])
    priced = quote(buyer, product["id"], upload(buyer, "Applicants", consumer_csv(consumer_ids))["id"])
    start = HANDLERS["job.start"]
    HANDLERS["job.start"] = lambda node, message: []
    try:
        response = buy(buyer, priced["id"])
    finally:
        HANDLERS["job.start"] = start
    assert response.status_code == 201, response.content
    order = Order.objects.get(id=response.json()["id"])
    job = order.order_jobs.get().job
    assert order.status == Order.Status.FULFILLING and job.status == Job.Status.PENDING
    return order, job


def test_it_lists_jobs_that_have_not_moved_for_the_stall_time_as_stalled(make_party, operator_client, settings):
    _, stalled = stuck_order(make_party, "adm-stall")
    _, fresh = stuck_order(make_party, "adm-fresh")
    stalled_since = timezone.now() - timedelta(seconds=settings.JOB_STALL_SECONDS + 5)
    Job.objects.filter(id=stalled.id).update(updated_at=stalled_since)

    listed = operator_client.get(CHANGELIST, {"stalled": "yes"}).content.decode()

    assert str(stalled.id) in listed and str(fresh.id) not in listed
    finished = Job.objects.filter(status=Job.Status.SUCCEEDED).first()  # the quotes' measurements
    assert finished is not None
    assert str(finished.id) not in listed


def test_it_fails_a_job_now_and_refunds_its_buyer(make_party, operator_client):
    order, job = stuck_order(make_party, "adm-fail")
    finished = Job.objects.filter(status=Job.Status.SUCCEEDED).first()  # the quote's measurement
    assert finished is not None
    assert balance_of(organisation=order.buyer) == {"balance": BALANCE - order.price, "escrow": order.price}

    response = operator_client.post(CHANGELIST, {"action": "fail_and_refund", "index": 0,
                                                 "_selected_action": [str(job.id), str(finished.id)]}, follow=True)

    assert response.status_code == 200
    page = response.content.decode()
    assert "1 job(s) failed; the orders they serve are refunded." in page
    assert "1 finished job(s) left as they are." in page
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "Stopped by the platform operator (job-operator)" in job.error
    assert job.result_table is None
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED
    assert balance_of(organisation=order.buyer) == {"balance": BALANCE, "escrow": 0}
    assert Job.objects.get(id=finished.id).status == Job.Status.SUCCEEDED


def test_it_offers_failing_but_no_retry_of_a_job(operator_client):
    request = RequestFactory().get(CHANGELIST)
    request.user = get_user_model().objects.get(username="job-operator")

    assert set(admin.site._registry[Job].get_actions(request)) == {"fail_and_refund"}
