"""Quotes are no longer a free membership oracle. Tried as an attacker would, through the API: two quotes
that differ by one person used to differ in coverage by exactly one. Now the provider's node counts (the
buyer's node never holds the exact number), adds OpenDP's discrete Laplace noise of scale 1/ε, and each
quote is charged ε to the buyer's budget on the product, taken by a conditional UPDATE that concurrent
requests cannot overspend; when it is spent, quoting stops with a clear 403. A failed quote gives its ε
back. A node refuses an ε above its operator's cap."""
from __future__ import annotations

import statistics
import threading
from decimal import Decimal

import pytest
from django.db import connection

from audit.models import AuditEntry
from compute.protocols import coverage
from compute.protocols.noise import count_mechanism, noisy_count
from marketplace.models import PrivacyBudget, PrivacyCharge
from marketplace.services.privacy import BudgetExhausted, privacy_charge
from tests.marketplace.api_flow import client_for, list_product, upload
from tests.marketplace.data import consumer_csv, provider_csv

EPSILON, BUDGET = 0.5, 5.0


def test_the_noise_is_opendps_discrete_laplace_calibrated_to_epsilon():
    assert count_mechanism(EPSILON).map(1) <= EPSILON + 1e-9  # OpenDP's own privacy map: ε for a count
    draws = [noisy_count(100, epsilon=EPSILON) for _ in range(4000)]
    assert all(isinstance(value, int) for value in draws)
    # Discrete Laplace of scale t = 2: mean 0, variance 2e^(-1/t)/(1-e^(-1/t))^2 ≈ 7.84.
    assert abs(statistics.fmean(draws) - 100) < 0.5 and 6.0 < statistics.pvariance(draws) < 10.0


@pytest.fixture
def deployed_privacy(settings, monkeypatch):
    settings.QUOTE_EPSILON, settings.QUOTE_BUDGET_EPSILON = EPSILON, BUDGET
    monkeypatch.setenv("NODE_QUOTE_EPSILON_MAX", "1.0")


def _ask(buyer, product_id: str, dataset_id: str):
    return buyer.post("/api/quotes/", {"product": product_id, "dataset": dataset_id, "purpose": "risk_control"},
                      format="json")


@pytest.mark.chain
@pytest.mark.django_db(transaction=True)
def test_the_quote_probing_attack_is_bounded_by_the_budget(make_party, deployed_privacy):
    provider, attacker = make_party("qp-prov", provider=True), make_party("qp-att", provider=False)
    seller, buyer = client_for(provider.token), client_for(attacker.token)
    held = [f"H{n}" for n in range(20)] + ["TARGET"]
    product = list_product(seller, upload(seller, "customers", provider_csv(held))["id"])
    base = upload(buyer, "base", consumer_csv(["H1", "H2", "H3", "X1", "X2"]))
    probe = upload(buyer, "base and target", consumer_csv(["H1", "H2", "H3", "X1", "X2", "TARGET"]))

    answered = []
    for attempt in range(int(BUDGET / EPSILON)):
        response = _ask(buyer, product["id"], (base if attempt % 2 else probe)["id"])
        assert response.status_code == 201, response.content
        answered.append(response.json()["id"])
    refused = _ask(buyer, product["id"], probe["id"])
    assert refused.status_code == 403
    assert "privacy budget on this product is spent" in refused.json()["message"]

    budget = PrivacyBudget.objects.get(buyer=attacker.organisation, kind=PrivacyBudget.Kind.QUOTE)
    assert budget.epsilon_spent == budget.epsilon_total == Decimal("5")  # never more than the stated ε
    assert AuditEntry.objects.filter(action="privacy.charged", subject__in=[f"quote:{q}" for q in answered]
                                     ).count() == len(answered)
    quotes = [buyer.get(f"/api/quotes/{quote_id}/").json() for quote_id in answered]
    assert all(quote["status"] == "ready" and 0 <= quote["coverage"] <= 6 for quote in quotes)
    # The exact count was never at the buyer's node: the job released at the provider's.
    from compute.models import Job

    for quote in quotes:
        job = Job.objects.get(id=quote["measurements"][0]["job"]["id"])
        assert job.protocol == "coverage_dp" and job.result["epsilon"] == EPSILON
        released = [entry for entry in job.progress if entry.get("name") == "count, add noise and release"]
        assert released


@pytest.mark.chain
@pytest.mark.django_db(transaction=True)
def test_a_failed_quote_gives_its_epsilon_back_and_a_node_refuses_an_epsilon_above_its_cap(
        make_party, deployed_privacy, settings, monkeypatch):
    provider, consumer = make_party("qp2-prov", provider=True), make_party("qp2-cons", provider=False)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    product = list_product(seller, upload(seller, "customers", provider_csv([f"H{n}" for n in range(20)]))["id"])
    mine = upload(buyer, "mine", consumer_csv(["H1", "H2", "H3", "X1"]))
    settings.QUOTE_EPSILON = 2.0  # more than the provider's node grants (1.0)
    response = _ask(buyer, product["id"], mine["id"])
    assert response.status_code == 201
    failed = buyer.get(f"/api/quotes/{response.json()['id']}/").json()
    assert failed["status"] == "failed" and "ε ≤ 1.0" in failed["error"]
    charge = PrivacyCharge.objects.get(subject=f"quote:{failed['id']}")
    assert charge.status == PrivacyCharge.Status.REFUNDED and charge.budget.epsilon_spent == 0
    assert AuditEntry.objects.filter(action="privacy.refunded", subject=f"quote:{failed['id']}").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", [PrivacyBudget.Kind.QUOTE, PrivacyBudget.Kind.STATS])
def test_concurrent_charges_never_overspend(make_party, settings, kind):
    # Quotes' total is the marketplace's setting, statistics' the product's terms: 2 either way.
    settings.QUOTE_BUDGET_EPSILON = 2.0
    provider, consumer = make_party(f"qp3-prov-{kind}", provider=True), make_party(f"qp3-cons-{kind}", provider=False)
    from marketplace.models import Product

    product = Product.objects.create(provider=provider.organisation, title="p", purposes=["risk_control"],
                                     base_price=1, price_per_match=1, privacy_epsilon=Decimal("2"))
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def charge(index: int) -> None:
        barrier.wait()
        try:
            privacy_charge(buyer=consumer.organisation, product=product, kind=kind,
                           epsilon=0.5, subject=f"test:{index}", actor="test")
            outcomes.append("charged")
        except BudgetExhausted:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=charge, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["charged"] * 4 + ["refused"] * 4
    budget = PrivacyBudget.objects.get(buyer=consumer.organisation, product=product)
    assert budget.epsilon_spent == Decimal("2") and PrivacyCharge.objects.filter(budget=budget).count() == 4
    assert coverage.SPEC.grant_required is False  # quotes need no grant: the budget is their bound
