"""Demo data for the embedded mode: two providers, one consumer, the operator, an auditor, a few products,
synthetic records.

Seeding has two halves, because the records go into the organisations' own nodes (which the marketplace
cannot write to): ``demo_organisations`` creates the organisations, members and balances; the embedded
runner then imports ``demo_files`` on each node from the node's own host; once the nodes have reported
their tables, ``demo_products`` lists the products over them.
"""
from __future__ import annotations

import hashlib
import math
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
# The platform's own staff and an outside auditor: they hold no data, so the demo imports nothing for them.
DEMO_STAFF = (
    ("marketplace-ops", "Marketplace Operations", "olivia", "operator"),
    ("audit-partners", "Audit Partners", "dave", "auditor"),
)


def _latent(value: str) -> float:
    """A customer's hidden credit risk (standard normal), the same wherever the customer is known: the telecom's
    late payments and the bank's defaults both follow it, so that a joint model has something to find."""
    digest = hashlib.sha256(value.encode()).digest()
    first = (int.from_bytes(digest[:8], "big") + 1) / 2**64
    second = int.from_bytes(digest[8:16], "big") / 2**64
    return math.sqrt(-2 * math.log(first)) * math.cos(2 * math.pi * second)


def demo_csv(*, ids: list[str], seed: int, kind: str) -> bytes:
    """Synthetic records: "retail" and "telecom" (a provider's features), "bank" (the buyer's: two features of
    its own and whether the loan defaulted, the label of a joint model), "ids" (ids only)."""
    rng = random.Random(seed)  # noqa: S311 - synthetic demo records
    if kind == "ids":
        return ("customer_id\n" + "\n".join(ids) + "\n").encode()
    lines = {"retail": ["customer_id,region,income_band,risk_score"],
             "telecom": ["customer_id,region,income_band,risk_score,late_payments,tenure_months"],
             "bank": ["customer_id,income,age,defaulted"]}[kind]
    for value in ids:
        risk = _latent(value)
        if kind == "bank":
            income = max(8.0, rng.gauss(42, 12) - 4 * risk)
            odds = 1.8 * risk - 0.04 * (income - 42) - 1.2
            defaulted = int(rng.random() < 1 / (1 + math.exp(-odds)))
            lines.append(f"{value},{income:.1f},{rng.randint(21, 70)},{defaulted}")
            continue
        region = rng.choice(["north", "south", "east", "west", ""])
        row = f"{value},{region},{rng.randint(1, 9)},{rng.random():.4f}"
        if kind == "telecom":
            late = max(0, round(1.5 + 1.4 * risk + rng.gauss(0, 0.8)))
            row += f",{late},{max(1, round(rng.gauss(36, 14) - 6 * risk))}"
        lines.append(row)
    return ("\n".join(lines) + "\n").encode()


def demo_files() -> dict[str, tuple[str, bytes]]:
    """For each demo organisation: (dataset name, CSV) to import on its node."""
    return {
        "acme-data": ("Retail customers 2026",
                      demo_csv(ids=[f"C{n:06d}" for n in range(0, 3000)], seed=1, kind="retail")),
        "beta-insights": ("Telecom subscribers",
                          demo_csv(ids=[f"C{n:06d}" for n in range(2000, 4000)], seed=2, kind="telecom")),
        "cobank": ("Loan applicants Q4",
                   demo_csv(ids=[f"C{n:06d}" for n in range(1500, 2500)], seed=3, kind="bank")),
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
    for slug, name, username, role in DEMO_STAFF:
        organisation = organisation_create(slug=slug, name=name, is_provider=False, is_consumer=False,
                                           is_operator=role == "operator", is_auditor=role == "auditor")
        _, token = member_create(organisation=organisation, username=username, password=DEMO_PASSWORD, role="owner")
        logins.append((username, DEMO_PASSWORD, token.secret))
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
                   description="Check which of your applicants hold an active telecom subscription, or train a "
                               "joint risk model on your labels with our late-payment and tenure features.",
                   purposes=["risk_control", "research"], base_price=800, price_per_match=3, quota=40,
                   validity_days=60, compute_types=["psi", "vfl_lr", "vfl_trial"], actor="user:bob")
    return 2
