"""A demo-scale marketplace for the journey and page-timing tests, seeded as the demo is
(marketplace/services/demo.py): two providers, a bank that buys, the operator and an auditor; products over
the providers' demo records, a quote measured and an order fulfilled on the organisations' nodes, funds
requests waiting for the operator, and the audit log sealed into a batch anchored on chain.

It runs with Celery eager (conftest.py): each organisation's node is a NodeRuntime in this process, so the
whole state takes seconds, not minutes. Call it where the database is unblocked and commits (a transactional
test, or a module fixture under ``django_db_blocker.unblock()``), with the session's Ganache running."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.test import override_settings

from audit.chain.outbox import outbox_process
from audit.models import ChainOutbox
from audit.services import audit_batch_seal
from config.celery import app as celery_app
from marketplace.models import Order, Organisation, Quote
from marketplace.services.catalog import product_create
from marketplace.services.demo import demo_csv
from marketplace.services.funding import funds_request_create
from marketplace.services.ledger import balance_top_up
from marketplace.services.orders import order_place
from marketplace.services.organisations import member_create, organisation_create
from marketplace.services.quotes import quote_request
from tests.conftest import TEST_QUOTE_BUDGET, TEST_QUOTE_EPSILON, dataset_on_node, node_runtime_start

PASSWORD = "pw-12345-long"  # noqa: S105 - test members only

# Each demo table's size: the demo's own (3,000 retail, 2,000 telecom and 1,000 bank rows) at scale 1.
DEMO_ROWS = {"acme": 3000, "beta": 2000, "bank": 1000}


@dataclass
class DemoState:
    """What the journeys open: who signs in (usernames), and the ids of what they look at."""

    provider: str
    partner: str
    consumer: str
    consumer_organisation: str  # the bank's slug
    switcher: str  # a second member of the bank, whose remembered language the switcher journey changes
    operator: str
    auditor: str
    products: dict[str, str] = field(default_factory=dict)  # title → id
    datasets: dict[str, str] = field(default_factory=dict)  # name → id
    quote: str = ""  # a ready quote the bank has not bought
    order: str = ""  # the bank's fulfilled order
    funds_requests: dict[str, int] = field(default_factory=dict)  # buyer's name → its pending request
    batch: int = 0


def _organisation(slug: str, name: str, username: str, *, node: bool = True, **roles: bool) -> Organisation:
    kinds = {"is_provider": False, "is_consumer": True} | roles
    organisation = organisation_create(slug=slug, name=name, **kinds)
    if node:
        node_runtime_start(organisation)
        organisation.refresh_from_db()
    member_create(organisation=organisation, username=username, password=PASSWORD, role="owner")
    return organisation


def _ids(start: int, count: int) -> list[str]:
    return [f"C{n:06d}" for n in range(start, start + count)]


def demo_seed(*, scale: float = 1.0, prefix: str = "jy") -> DemoState:
    """Seed the demo's marketplace (table sizes times ``scale``) and return what the journeys need."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        with override_settings(QUOTE_EPSILON=TEST_QUOTE_EPSILON, QUOTE_BUDGET_EPSILON=TEST_QUOTE_BUDGET):
            return _seed(scale=scale, prefix=prefix)
    finally:
        celery_app.conf.task_always_eager = previous


def _seed(*, scale: float, prefix: str) -> DemoState:
    rows = {key: max(30, int(count * scale)) for key, count in DEMO_ROWS.items()}
    state = DemoState(provider=f"{prefix}-alice", partner=f"{prefix}-bob", consumer=f"{prefix}-carol",
                      consumer_organisation=f"{prefix}-cobank", switcher=f"{prefix}-chen",
                      operator=f"{prefix}-olga", auditor=f"{prefix}-audrey")
    _organisation(f"{prefix}-operator", "Marketplace Operator", state.operator, node=False,
                  is_consumer=False, is_operator=True)
    _organisation(f"{prefix}-auditor", "Compliance Audit Office", state.auditor, node=False,
                  is_consumer=False, is_auditor=True)
    acme = _organisation(f"{prefix}-acme", "Acme Data Co.", state.provider, is_provider=True, is_consumer=False)
    beta = _organisation(f"{prefix}-beta", "Beta Insights", state.partner, is_provider=True, is_consumer=False)
    bank = _organisation(state.consumer_organisation, "Co-operative Bank", state.consumer)
    member_create(organisation=bank, username=state.switcher, password=PASSWORD)
    balance_top_up(organisation=bank, amount=1_000_000)

    retail_rows, telecom_rows, bank_rows = rows["acme"], rows["beta"], rows["bank"]
    retail = dataset_on_node(organisation=acme, name="Retail customers 2026", actor=f"user:{state.provider}",
                             data=demo_csv(ids=_ids(0, retail_rows), seed=1, kind="retail"),
                             description="Retail loyalty members with region, income band and a risk score.")
    telecom = dataset_on_node(organisation=beta, name="Telecom subscribers", actor=f"user:{state.partner}",
                              data=demo_csv(ids=_ids(retail_rows * 2 // 3, telecom_rows), seed=2, kind="telecom"))
    applicants = dataset_on_node(organisation=bank, name="Loan applicants Q4", actor=f"user:{state.consumer}",
                                 data=demo_csv(ids=_ids(retail_rows // 2, bank_rows), seed=3, kind="bank"))
    state.datasets = {dataset.name: str(dataset.id) for dataset in (retail, telecom, applicants)}

    retail_match = product_create(
        provider=acme, dataset_ids=[str(retail.id)], title="Retail customer match", publish=True,
        category="retail", tags=["customers", "retail"],
        description="Find which of your customers are known retail shoppers.",
        purposes=["risk_control", "marketing"], base_price=500, price_per_match=2, quota=5, validity_days=30,
        actor=f"user:{state.provider}")
    retail_segments = product_create(
        provider=acme, dataset_ids=[str(retail.id)], title="Retail income bands", publish=True,
        category="retail", tags=["income", "retail"],
        description="Income bands of retail shoppers among your customers, matched privately.",
        purposes=["risk_control", "research"], base_price=1200, price_per_match=4, quota=10, validity_days=90,
        actor=f"user:{state.provider}")
    telecom_match = product_create(
        provider=beta, dataset_ids=[str(telecom.id)], title="Telecom subscriber match", publish=True,
        category="telecom", tags=["subscribers", "telecom"],
        description="Check which of your applicants hold an active telecom subscription.",
        purposes=["risk_control", "research"], base_price=800, price_per_match=3, quota=40, validity_days=60,
        actor=f"user:{state.partner}")
    state.products = {product.title: str(product.id) for product in (retail_match, retail_segments, telecom_match)}

    # The bank buys the retail match (its job runs on the nodes at once, eager) and keeps a telecom quote.
    bought = quote_request(buyer=bank, product_id=str(retail_match.id), dataset_id=str(applicants.id),
                           purpose="risk_control", actor=f"user:{state.consumer}")
    bought.refresh_from_db()
    assert bought.status == Quote.Status.READY, bought.error
    order, _ = order_place(buyer=bank, quote_id=str(bought.id), idempotency_key=str(uuid.uuid4()),
                           actor=f"user:{state.consumer}")
    order.refresh_from_db()
    assert order.status == Order.Status.FULFILLED, order.failure_reason
    state.order = str(order.id)
    waiting = quote_request(buyer=bank, product_id=str(telecom_match.id), dataset_id=str(applicants.id),
                            purpose="risk_control", actor=f"user:{state.consumer}")
    waiting.refresh_from_db()
    assert waiting.status == Quote.Status.READY, waiting.error
    state.quote = str(waiting.id)

    # Two other buyers wait for their funds: the operator approves one in each language's journey.
    for slug, name, amount, note in (("harbour", "Harbour Insurance", 250_000, "Q1 data budget"),
                                     ("citycu", "City Credit Union", 120_000, "Model trial")):
        buyer = _organisation(f"{prefix}-{slug}", name, f"{prefix}-{slug}-owner", node=False)
        funds = funds_request_create(organisation=buyer, user=buyer.members.get().user, amount=amount, note=note)
        state.funds_requests[name] = funds.pk

    batch = audit_batch_seal()
    assert batch is not None and batch.outbox_id is not None
    anchored = outbox_process(outbox_id=batch.outbox_id)
    assert anchored.status == ChainOutbox.Status.CONFIRMED, anchored.last_error
    state.batch = batch.pk
    return state


def organisation_users(state: DemoState) -> dict[str, Any]:
    """The seeded users by role, for a test client."""
    from django.contrib.auth import get_user_model

    names = {"provider": state.provider, "consumer": state.consumer, "operator": state.operator,
             "auditor": state.auditor}
    users = {user.username: user for user in get_user_model().objects.filter(username__in=names.values())}
    return {role: users[name] for role, name in names.items()}
