"""The explorer's search on GET /api/audit/entries/ (product, order, organisation, time) and its reads: within what
the caller may see, through the subject index, and clear 400s for bad filters."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.contrib.auth.models import User
from django.db import connection
from rest_framework.test import APIClient

from audit.encoding import payload_digest_compute
from audit.models import AuditEntry
from audit.selectors import audit_entry_list, audit_usage_by_day, batch_confirmations

pytestmark = pytest.mark.django_db

MEMBERSHIPS = {"alice": ["acme"], "bob": ["globex"], "nobody": []}  # anyone else: an auditor
PRODUCT, ORDER, OTHER_ORDER = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
DAY = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)


def parties_of(user) -> list[str] | None:
    return MEMBERSHIPS.get(user.username)


@pytest.fixture(autouse=True)
def party_resolver(settings):
    settings.AUDIT_PARTY_RESOLVER = "tests.audit.test_audit_explorer_api.parties_of"


def recorded(*, action: str, subject: str, parties: list[str], at: dt.datetime, payload: dict | None = None) -> int:
    """An entry recorded at a chosen time (the log's own insert, as audit_record makes it)."""
    payload = payload or {}
    return AuditEntry.objects.append(created_at=at, actor="test", action=action, subject=subject, parties=parties,
                                     payload=payload, payload_digest=payload_digest_compute(payload))


@pytest.fixture
def entries() -> dict[str, int]:
    return {
        "listed": recorded(action="product.published", subject=f"product:{PRODUCT}", parties=["acme"], at=DAY),
        "placed": recorded(action="order.placed", subject=f"order:{ORDER}", parties=["acme", "globex"],
                           at=DAY + dt.timedelta(days=1)),
        "charged": recorded(action="privacy.charged", subject=f"order:{ORDER}:run:1", parties=["acme", "globex"],
                            at=DAY + dt.timedelta(days=1, hours=1)),
        "other": recorded(action="order.placed", subject=f"order:{OTHER_ORDER}", parties=["globex"],
                          at=DAY + dt.timedelta(days=2)),
        "lookalike": recorded(action="order.placed", subject=f"order:{ORDER}x", parties=["acme", "globex"],
                              at=DAY + dt.timedelta(days=2)),
    }


def client_for(username: str) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=User.objects.create_user(username=username, password="pw-12345-long"))
    return client


def ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_it_finds_a_products_and_an_orders_entries_with_their_runs(entries):
    auditor = client_for("auditor")
    assert ids(auditor.get("/api/audit/entries/", {"product": str(PRODUCT)})) == {entries["listed"]}
    assert ids(auditor.get("/api/audit/entries/", {"order": str(ORDER)})) == {entries["placed"], entries["charged"]}
    assert ids(auditor.get("/api/audit/entries/", {"order": str(ORDER), "action": "order.placed"})) == {
        entries["placed"]}


def test_it_finds_an_organisations_entries_within_what_the_caller_sees(entries):
    assert ids(client_for("auditor").get("/api/audit/entries/", {"organisation": "globex"})) == {
        entries["placed"], entries["charged"], entries["other"], entries["lookalike"]}
    # alice sees acme's entries only: globex's own are not hers, however she searches.
    alice = client_for("alice")
    assert ids(alice.get("/api/audit/entries/", {"organisation": "globex"})) == {
        entries["placed"], entries["charged"], entries["lookalike"]}
    assert ids(alice.get("/api/audit/entries/", {"order": str(OTHER_ORDER)})) == set()
    assert ids(client_for("nobody").get("/api/audit/entries/", {"product": str(PRODUCT)})) == set()


def test_it_finds_entries_in_a_time_range(entries):
    auditor = client_for("auditor")
    since, until = DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)
    assert ids(auditor.get("/api/audit/entries/", {"since": since.isoformat(), "until": until.isoformat()})) == {
        entries["placed"], entries["charged"]}
    assert ids(auditor.get("/api/audit/entries/", {"since": (DAY + dt.timedelta(days=2)).isoformat()})) == {
        entries["other"], entries["lookalike"]}
    assert ids(auditor.get("/api/audit/entries/", {"until": "2025-03-10T12:00:00Z"})) == set()


@pytest.mark.parametrize(("query", "field"), [
    ({"product": "not-a-uuid"}, "product"),
    ({"order": "12345"}, "order"),
    ({"organisation": "no spaces!"}, "organisation"),
    ({"since": "yesterday"}, "since"),
    ({"until": "2025-13-45"}, "until"),
    ({"since": "2025-03-12T00:00:00Z", "until": "2025-03-11T00:00:00Z"}, "until"),
    ({"product": str(PRODUCT), "order": str(ORDER)}, "order"),
    ({"subject": "x" * 201}, "subject"),
])
def test_it_answers_400_for_a_bad_filter(entries, query, field):
    response = client_for("auditor").get("/api/audit/entries/", query)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["message"] and field in body["extra"]["fields"], body


def test_it_documents_the_new_filters_in_the_openapi_schema():
    paths = client_for("auditor").get("/api/schema/", {"format": "json"}).json()["paths"]
    names = {parameter["name"] for parameter in paths["/api/audit/entries/"]["get"]["parameters"]}
    assert names >= {"subject", "action", "product", "order", "organisation", "since", "until", "limit", "offset"}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_it_finds_an_orders_entries_through_the_subject_index(entries):
    query = audit_entry_list(parties=None, subject_trees=[f"order:{ORDER}"])
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table would be scanned whatever its indexes
        plan = query.explain()
    assert "Seq Scan" not in plan and "Index Cond: ((subject)" in plan, plan


def test_it_counts_usage_per_day_with_zeros_between():
    step = {"sent_bytes": 10, "consume_tx": "0x" + "ab" * 32}
    recorded(action="job.created", subject="job:1", parties=["acme"], at=DAY)
    recorded(action="job.step1.done", subject="job:1", parties=["acme"], at=DAY, payload=step)
    recorded(action="job.step2.done", subject="job:1", parties=["acme"], at=DAY, payload={"sent_bytes": 5})
    recorded(action="job.succeeded", subject="job:1", parties=["acme"], at=DAY + dt.timedelta(hours=1))
    recorded(action="job.created", subject="job:2", parties=["acme"], at=DAY + dt.timedelta(days=2))
    recorded(action="job.failed", subject="job:2", parties=["acme"], at=DAY + dt.timedelta(days=2))
    recorded(action="job.created", subject="job:3", parties=["globex"], at=DAY)

    mine = audit_usage_by_day(parties=["acme"], since=DAY.date(), until=DAY.date() + dt.timedelta(days=2))
    everyone = audit_usage_by_day(parties=None, since=DAY.date(), until=DAY.date())

    assert mine == {"days": ["2025-03-10", "2025-03-11", "2025-03-12"], "started": [1, 0, 1], "succeeded": [1, 0, 0],
                    "failed": [0, 0, 1], "charges": [1, 0, 0]}
    assert everyone["started"] == [2]
    with pytest.raises(ValueError, match="at most"):
        audit_usage_by_day(parties=None, since=DAY.date(), until=DAY.date() + dt.timedelta(days=400))


def test_it_counts_confirmations_from_the_head():
    assert batch_confirmations(block_number=10, head=10) == 1
    assert batch_confirmations(block_number=10, head=14) == 5
    assert batch_confirmations(block_number=None, head=14) is None
    assert batch_confirmations(block_number=10, head=None) is None
    assert batch_confirmations(block_number=10, head=9) is None


@pytest.mark.chain
def test_it_finds_a_block_mined_before_a_moment_less_the_clock_margin(ganache_url):
    from audit.chain.client import web3_client
    from audit.selectors import CHAIN_CLOCK_MARGIN, chain_block_before, chain_head

    def mined_at(number: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(web3_client().eth.get_block(number)["timestamp"], tz=dt.UTC)

    now = dt.datetime.now(tz=dt.UTC)
    for moment in (now, now + dt.timedelta(hours=2), now - dt.timedelta(days=400)):
        found = chain_block_before(moment)
        assert found == 0 or mined_at(found) < moment - CHAIN_CLOCK_MARGIN
        if found < chain_head():  # the next block is at or after it: nothing later was skipped
            assert mined_at(found + 1) >= moment - CHAIN_CLOCK_MARGIN - dt.timedelta(minutes=1)
    assert chain_block_before(now + dt.timedelta(hours=2)) == chain_head()
