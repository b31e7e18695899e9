"""The audit log by name: subjects ("order:<uuid>", "product:<uuid>", ...) and actors shown as names and short
ids, the full id only in a title attribute and a copy button, resolved with one query per kind of subject;
the explorer, its batches and the grant timeline in the site's look, in both languages."""
from __future__ import annotations

import datetime as dt
import html
import re
import uuid
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.encoding import payload_digest_compute
from audit.models import AuditEntry
from compute.models import Job, StoredTable, TableImport
from marketplace.models import Dataset, Order, Organisation, Product, Quote
from marketplace.selectors_audit import audit_labels
from marketplace.services.organisations import member_create, organisation_create
from marketplace.services.tokens import api_token_create

PASSWORD = "pw-12345-long"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
AT = dt.datetime(2025, 4, 2, 9, 30, tzinfo=dt.UTC)


@dataclass
class Trade:
    provider: Organisation
    buyer: Organisation
    product: Product
    dataset: Dataset
    quote: Quote
    order: Order
    job: Job
    client: Client
    username: str


def recorded(*, actor: str, action: str, subject: str, parties: list[str]) -> int:
    return AuditEntry.objects.append(created_at=AT, actor=actor, action=action, subject=subject, parties=parties,
                                     payload={}, payload_digest=payload_digest_compute({}))


def _dataset(organisation: Organisation, name: str) -> Dataset:
    table = StoredTable.objects.create(node=organisation.node, name=name, id_column="id", row_count=10,
                                       fingerprint="ab" * 32)
    return Dataset.objects.create(id=table.id, organisation=organisation, table=table, name=name)


def trade(prefix: str, *, title: str = "Credit bureau enrichment") -> Trade:
    """A provider's product, a buyer's quote and order of it and a job: the rows the audit log names."""
    provider = organisation_create(slug=f"{prefix}-p", name=f"{prefix.title()} Provider Ltd", is_provider=True,
                                   is_consumer=False)
    buyer = organisation_create(slug=f"{prefix}-b", name=f"{prefix.title()} Bank", is_provider=False,
                                is_consumer=True)
    user, _ = member_create(organisation=buyer, username=f"{prefix}-dora", password=PASSWORD, role="owner")
    dataset = _dataset(buyer, "Applicants March")
    product = Product.objects.create(provider=provider, title=title, base_price=1000, price_per_match=5)
    quote = Quote.objects.create(product=product, buyer=buyer, buyer_dataset=dataset, purpose="risk_control")
    order = Order.objects.create(buyer=buyer, product=product, quote=quote, price=1500, idempotency_key="k",
                                 request_digest="d", grant_expires_at=AT + dt.timedelta(days=30))
    job = Job.objects.create(protocol="psi")
    client = Client()
    client.force_login(user)
    return Trade(provider, buyer, product, dataset, quote, order, job, client, user.username)


def visible_text(page: str) -> str:
    """What a reader sees: the page without its scripts, tags and attributes."""
    page = re.sub(r"<script\b.*?</script>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def entries_section(page: str) -> str:
    start = page.index('id="audit-entries-title"')
    return page[start:page.index("</table>", start)]


@pytest.mark.django_db
def test_the_audit_explorer_shows_names_and_short_ids_with_the_full_id_on_hover():
    world = trade("aun")
    parties = [world.buyer.slug, world.provider.slug]
    token = api_token_create(member=world.buyer.members.get(), name="nightly script", expires_in_days=30,
                             actor="test").token
    subjects = {
        "order": f"order:{world.order.id}", "run": f"order:{world.order.id}:run:2",
        "product": f"product:{world.product.id}", "quote": f"quote:{world.quote.id}", "job": f"job:{world.job.id}",
        "table": f"table:{world.dataset.id}", "organisation": f"organisation:{world.buyer.slug}",
        "token": f"token:{token.pk}", "denied": f"api:GET /api/orders/{uuid.uuid4()}/",
    }
    for kind, subject in subjects.items():
        recorded(actor=f"user:{world.username}", action=f"test.{kind}", subject=subject, parties=parties)
    recorded(actor=f"node:{world.provider.slug}", action="test.node", subject=f"job:{world.job.id}", parties=parties)

    response = world.client.get("/audit/", {"action": "test.order"})
    everything = world.client.get("/audit/")

    assert response.status_code == everything.status_code == 200
    table = entries_section(everything.content.decode())
    text = visible_text(table)
    assert not UUID.findall(text), UUID.findall(text)  # no raw UUID a reader has to read
    for name in ("Credit bureau enrichment", "Applicants March", "Aun Bank", "Private set intersection",
                 f"nightly script ({token.prefix}…)", world.username, "Aun Provider Ltd", "run 2"):
        assert name in text, name
    for thing in (world.order, world.product, world.quote, world.job):
        assert str(thing.id)[:8] in text
        assert f'data-copy="{thing.id}"' in table  # the full id, copyable
    for subject in subjects.values():
        assert f'title="{html.escape(subject)}"' in table, subject  # the full subject on hover
    assert f'title="node:{world.provider.slug}"' in table
    one = entries_section(response.content.decode())
    assert f'href="?subject=order:{world.order.id}"' in one  # the subject still filters the search


@pytest.mark.django_db
def test_the_names_take_one_query_per_kind_whatever_the_number_of_entries():
    few, many = trade("aqa"), trade("aqb", title="Telecom coverage")
    for world, copies in ((few, 1), (many, 6)):
        for _ in range(copies):
            for subject in (f"order:{world.order.id}", f"product:{world.product.id}", f"quote:{world.quote.id}",
                            f"job:{world.job.id}", f"table:{world.dataset.id}"):
                recorded(actor=f"node:{world.provider.slug}", action="test.seen", subject=subject,
                         parties=[world.buyer.slug])

    def queries(world: Trade) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert world.client.get("/audit/").status_code == 200
        return len(captured)

    queries(few)  # warm: sessions, the member's language
    assert queries(many) == queries(few)
    texts = [f"order:{few.order.id}", f"product:{few.product.id}", f"quote:{few.quote.id}", f"job:{few.job.id}",
             f"table:{few.dataset.id}", f"node:{few.provider.slug}", f"organisation:{few.buyer.slug}", "system"]
    with CaptureQueriesContext(connection) as captured:
        labels = audit_labels(texts * 20)
    assert len(captured) == 7  # order, product, quote, job, dataset, node, organisation
    assert labels[f"order:{few.order.id}"].name == "Credit bureau enrichment"
    assert labels["system"].kind_label == "System" and labels["system"].name == ""


@pytest.mark.django_db
def test_it_reads_the_parts_of_a_subject():
    run = audit_labels([f"order:{uuid.UUID(int=7)}:run:3", "audit-batch:12", "user:alice", "test:1",
                        "api:POST /api/orders/00000000-0000-4000-8000-000000000000/cancel/"])
    order = run[f"order:{uuid.UUID(int=7)}:run:3"]
    assert (order.kind, order.ident, order.short, order.detail, order.name) == (
        "order", str(uuid.UUID(int=7)), "00000000", "run 3", "")  # no such order: no name, the short id
    assert run["audit-batch:12"].short == "12" and run["audit-batch:12"].kind_label == "Audit batch"
    assert (run["user:alice"].name, run["user:alice"].short) == ("alice", "")
    assert run["test:1"].kind_label == "test"
    request = run["api:POST /api/orders/00000000-0000-4000-8000-000000000000/cancel/"]
    assert request.name == "POST /api/orders/00000000…/cancel/"  # never resolved: the path as recorded


@pytest.mark.django_db
def test_a_table_import_that_has_no_dataset_yet_is_named_by_its_import():
    organisation = organisation_create(slug="aimp", name="Aimp", is_provider=True, is_consumer=False)
    pending = TableImport.objects.create(node=organisation.node, name="Customers Q2", id_column="id")

    labels = audit_labels([f"table:{pending.id}"])

    assert labels[f"table:{pending.id}"].name == "Customers Q2"


@pytest.mark.django_db
def test_the_audit_pages_render_in_chinese_in_the_sites_look(client):
    world = trade("azh")
    recorded(actor="system", action="test.zh", subject=f"order:{world.order.id}", parties=[world.buyer.slug])

    explorer = world.client.get("/audit/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    batches = client.get("/audit/batches/", HTTP_ACCEPT_LANGUAGE="zh-hans")

    for response in (explorer, batches):
        page = response.content.decode()
        assert response.status_code == 200
        assert '<html lang="zh-hans"' in page
        assert "<style>" not in page  # the shared stylesheet, no page-local styles
        assert 'class="table table-stack' in page  # rows become cards on a phone
    assert 'class="audit-filters"' in explorer.content.decode() and "data-label=" in explorer.content.decode()
    assert "copy_id.js" in explorer.content.decode()


@pytest.mark.django_db
def test_the_empty_explorer_says_what_to_do_next():
    user = get_user_model().objects.create_user(username="aempty-user", password=PASSWORD)  # reads no party's entries
    client = Client()
    client.force_login(user)

    nothing = client.get("/audit/").content.decode()
    unmatched = client.get("/audit/", {"action": "no.such.action"}).content.decode()

    assert "No audit entries you may read yet." in nothing
    assert "No audit entries match the search. Widen the time range or clear a filter." in unmatched
