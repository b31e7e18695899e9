"""A job whose party's node does not answer fails after a bounded wait, naming the node and saying it is
offline, and releases nothing; a job that moves is left alone."""
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from compute.jobs.services import job_sweep
from compute.models import Job, Node
from tests.marketplace.api_flow import client_for, list_product, upload
from tests.marketplace.data import consumer_csv, overlapping_ids, provider_csv

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]


def test_it_fails_a_job_whose_node_is_offline_with_that_reason(make_party, monkeypatch):
    provider = make_party("sweep-p", provider=True)
    consumer = make_party("sweep-c", provider=False, balance=10_000)
    provider_ids, consumer_ids = overlapping_ids(provider=20, consumer=10, overlap=5)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    product = list_product(seller, upload(seller, "p", provider_csv(provider_ids))["id"])
    mine = upload(buyer, "c", consumer_csv(consumer_ids))
    # The consumer's node has gone (not heard from for an hour): what reaches its queue is never answered.
    monkeypatch.setattr("compute.node.runtime.NodeRuntime.handle", lambda self, document: None)
    Node.objects.filter(slug="sweep-c").update(last_seen=timezone.now() - timedelta(hours=1))
    response = buyer.post("/api/quotes/", {"product": product["id"], "dataset": mine["id"],
                                           "purpose": "risk_control"}, format="json")
    job = Job.objects.get(parties__role="provider", parties__table__node__slug="sweep-p")
    assert job.status == Job.Status.PENDING
    browser = Client()  # the quote page says which node the step waits for
    browser.force_login(consumer.user)
    assert "The node of sweep-c is offline" in browser.get(f"/quotes/{response.json()['id']}/").content.decode()

    assert job_sweep(stall_seconds=3600) == 0  # not stalled long enough yet
    Job.objects.filter(id=job.id).update(updated_at=timezone.now() - timedelta(seconds=200))
    assert job_sweep(stall_seconds=120) == 1

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "sweep-c (offline)" in job.error and "within 120 s" in job.error
    quote = buyer.get(f"/api/quotes/{response.json()['id']}/").json()
    assert quote["status"] == "failed" and quote["coverage"] is None
    assert job_sweep(stall_seconds=0) == 0  # finished jobs are left alone
