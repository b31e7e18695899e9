"""Demo data for the embedded mode: two providers, one consumer, a few products, synthetic records."""
from __future__ import annotations

import random

from django.db import transaction

from marketplace.models import Organisation
from marketplace.services.catalog import dataset_import, product_create
from marketplace.services.ledger import balance_top_up
from marketplace.services.organisations import member_create, organisation_create

DEMO_PASSWORD = "demo-pass-2026"  # noqa: S105 - printed for the local demo only


def demo_csv(*, ids: list[str], seed: int, with_features: bool) -> bytes:
    rng = random.Random(seed)
    if not with_features:
        return ("customer_id\n" + "\n".join(ids) + "\n").encode()
    lines = ["customer_id,region,income_band,risk_score"]
    for value in ids:
        region = rng.choice(["north", "south", "east", "west", ""])
        lines.append(f"{value},{region},{rng.randint(1, 9)},{rng.random():.4f}")
    return ("\n".join(lines) + "\n").encode()


@transaction.atomic
def demo_seed() -> list[tuple[str, str, str]]:
    """Create the demo organisations, users, datasets and products; returns (user, password, token)."""
    if Organisation.objects.exists():
        return []
    logins = []
    acme = organisation_create(slug="acme-data", name="Acme Data Co.", is_provider=True, is_consumer=False)
    beta = organisation_create(slug="beta-insights", name="Beta Insights", is_provider=True, is_consumer=False)
    bank = organisation_create(slug="cobank", name="Co-operative Bank", is_provider=False, is_consumer=True)
    for organisation, username in ((acme, "alice"), (beta, "bob"), (bank, "carol")):
        _, token = member_create(organisation=organisation, username=username, password=DEMO_PASSWORD, role="owner")
        logins.append((username, DEMO_PASSWORD, token.secret))
    acme_ids = [f"C{n:06d}" for n in range(0, 3000)]
    beta_ids = [f"C{n:06d}" for n in range(2000, 4000)]
    bank_ids = [f"C{n:06d}" for n in range(1500, 2500)]
    acme_data = dataset_import(organisation=acme, name="Retail customers 2026", id_column="customer_id",
                               data=demo_csv(ids=acme_ids, seed=1, with_features=True), actor="user:alice")
    beta_data = dataset_import(organisation=beta, name="Telecom subscribers", id_column="customer_id",
                               data=demo_csv(ids=beta_ids, seed=2, with_features=True), actor="user:bob")
    dataset_import(organisation=bank, name="Loan applicants Q4", id_column="customer_id",
                   data=demo_csv(ids=bank_ids, seed=3, with_features=False), actor="user:carol")
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
    balance_top_up(organisation=bank, amount=1_000_000)
    return logins
