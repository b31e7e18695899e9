"""Demo data for the embedded mode: two providers, one consumer, a few products, synthetic records.

Seeding has two halves, because the records go into the organisations' own nodes (which the marketplace
cannot write to): ``demo_organisations`` creates the organisations, members and balances; the embedded
runner then imports ``demo_files`` on each node from the node's own host; once the nodes have reported
their tables, ``demo_products`` lists the products over them.
"""
from __future__ import annotations

import random

from django.db import transaction

from marketplace.models import Dataset, Organisation, Product
from marketplace.services.catalog import product_create
from marketplace.services.ledger import balance_top_up
from marketplace.services.organisations import member_create, organisation_create

DEMO_PASSWORD = "demo-pass-2026"  # noqa: S105 - printed for the local demo only
DEMO_ORGANISATIONS = (
    ("acme-data", "Acme Data Co.", True, "alice"),
    ("beta-insights", "Beta Insights", True, "bob"),
    ("cobank", "Co-operative Bank", False, "carol"),
)


def demo_csv(*, ids: list[str], seed: int, with_features: bool) -> bytes:
    rng = random.Random(seed)  # noqa: S311 - synthetic demo records
    if not with_features:
        return ("customer_id\n" + "\n".join(ids) + "\n").encode()
    lines = ["customer_id,region,income_band,risk_score"]
    for value in ids:
        region = rng.choice(["north", "south", "east", "west", ""])
        lines.append(f"{value},{region},{rng.randint(1, 9)},{rng.random():.4f}")
    return ("\n".join(lines) + "\n").encode()


def demo_files() -> dict[str, tuple[str, bytes]]:
    """For each demo organisation: (dataset name, CSV) to import on its node."""
    return {
        "acme-data": ("Retail customers 2026",
                      demo_csv(ids=[f"C{n:06d}" for n in range(0, 3000)], seed=1, with_features=True)),
        "beta-insights": ("Telecom subscribers",
                          demo_csv(ids=[f"C{n:06d}" for n in range(2000, 4000)], seed=2, with_features=True)),
        "cobank": ("Loan applicants Q4",
                   demo_csv(ids=[f"C{n:06d}" for n in range(1500, 2500)], seed=3, with_features=False)),
    }


@transaction.atomic
def demo_organisations() -> list[tuple[str, str, str]]:
    """Create the demo organisations (their nodes still to enrol), owners and the bank's balance; returns
    (user, password, token), or nothing when the demo exists already."""
    if Organisation.objects.exists():
        return []
    logins = []
    for slug, name, provider, username in DEMO_ORGANISATIONS:
        organisation = organisation_create(slug=slug, name=name, is_provider=provider, is_consumer=not provider)
        _, token = member_create(organisation=organisation, username=username, password=DEMO_PASSWORD, role="owner")
        logins.append((username, DEMO_PASSWORD, token.secret))
        if not provider:
            balance_top_up(organisation=organisation, amount=1_000_000)
    return logins


def demo_datasets_ready() -> bool:
    return Dataset.objects.filter(organisation__slug__in=[slug for slug, *_ in DEMO_ORGANISATIONS]).count() >= len(
        DEMO_ORGANISATIONS)


@transaction.atomic
def demo_products() -> int:
    """List the demo products over the imported demo datasets (once); returns how many were created."""
    if Product.objects.exists():
        return 0
    acme = Organisation.objects.get(slug="acme-data")
    beta = Organisation.objects.get(slug="beta-insights")
    acme_data = Dataset.objects.filter(organisation=acme).earliest("created_at")
    beta_data = Dataset.objects.filter(organisation=beta).earliest("created_at")
    product_create(provider=acme, dataset_ids=[str(acme_data.id)], title="Retail customer match", publish=True,
                   category="retail", tags=["customers", "retail"],
                   description="Find which of your customers are known retail shoppers.",
                   purposes=["risk_control", "marketing"], base_price=500, price_per_match=2, quota=5,
                   validity_days=30, actor="user:alice")
    product_create(provider=beta, dataset_ids=[str(beta_data.id)], title="Telecom subscriber match", publish=True,
                   category="telecom", tags=["subscribers", "telecom"],
                   description="Check which of your applicants hold an active telecom subscription.",
                   purposes=["risk_control", "research"], base_price=800, price_per_match=3, quota=10,
                   validity_days=60, actor="user:bob")
    return 2
