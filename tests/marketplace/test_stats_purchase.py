"""Cross-table statistics bought through the API: the buyer chooses its group column and the provider's
value column, buys, and opens count, sum and mean per group equal to the plaintext group-by over the
shared ids, with a group below the cohort withheld. The run's ε is charged to the buyer's statistics budget
on the product before anything runs, given back when the run releases nothing, and refused when spent."""
from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import ChainOutbox
from compute.models import Job
from marketplace.models import PrivacyBudget, PrivacyCharge
from tests.conftest import node_runtime, wait_for
from tests.marketplace.api_flow import buy, client_for, list_product, result_rows, upload, wait_order

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]

# ε 40,000 per run: noise of scale 0.00005 on a count and 0.005 on a sum of values in [0, 10] at one decimal is
# zero but for a chance below 1e-80, so the answer can be checked exactly; the budget arithmetic is the same
# at any ε.
PARAMS = {"value_column": "score", "group_column": "segment", "bounds": [0, 10], "decimals": 1, "epsilon": 40_000}


def _tables() -> tuple[bytes, bytes, dict[str, list[str]]]:
    scores = {f"P{n:04d}": f"{(n * 37) % 100 / 10:.1f}" for n in range(60)}
    provider = "customer_id,region,score\n" + "".join(f"{key},r{n % 3},{value}\n"
                                                      for n, (key, value) in enumerate(scores.items()))
    segments = {"gold": [f"P{n:04d}" for n in range(0, 8)] + ["X0001", "X0002"],
                "silver": [f"P{n:04d}" for n in range(8, 13)] + ["X0003"],
                "tin": ["P0013", "X0004", "X0005"]}  # one shared id: below the cohort of 2
    consumer = "customer_id,segment\n" + "".join(f"{key},{label}\n" for label, keys in segments.items()
                                                  for key in keys)
    truth = {}
    for label, keys in segments.items():
        values = [float(scores[key]) for key in keys if key in scores]
        truth[label] = [label, str(len(values)), f"{sum(values):.1f}", f"{sum(values) / len(values):.5f}", ""]
    truth["tin"] = ["tin", "", "", "", "withheld"]
    return provider.encode(), consumer.encode(), truth


def _quote(buyer, product_id: str, dataset_id: str, params: dict):
    return buyer.post("/api/quotes/", {"product": product_id, "dataset": dataset_id, "purpose": "risk_control",
                                       "compute_type": "cross_stats", "params": params}, format="json")


def _spent(consumer, product_id: str) -> Decimal:
    return PrivacyBudget.objects.get(buyer=consumer.organisation, product_id=product_id, kind="stats").epsilon_spent


def test_cross_table_statistics_per_group_with_the_budget_charged_refunded_and_refused(make_party):
    provider = make_party("st-prov", provider=True)
    consumer = make_party("st-cons", provider=False, balance=1_000_000)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    provider_data, consumer_data, truth = _tables()
    product = list_product(seller, upload(seller, "scores", provider_data)["id"], compute_types=["cross_stats"],
                           min_cohort=2, privacy_epsilon="100000")
    assert product["privacy_epsilon"] == "100000.000"
    mine = upload(buyer, "segments", consumer_data)

    refused = _quote(buyer, product["id"], mine["id"], {**PARAMS, "epsilon": None})
    assert refused.status_code == 400 and "only with differential-privacy noise" in refused.json()["message"]
    refused = _quote(buyer, product["id"], mine["id"], {**PARAMS, "group_column": "region"})
    assert refused.status_code == 400 and "no column region to group by" in refused.json()["message"]
    refused = _quote(buyer, product["id"], mine["id"], {**PARAMS, "epsilon": 150_000})
    assert refused.status_code == 403 and refused.json()["extra"]["budget"] == "stats"

    asked = _quote(buyer, product["id"], mine["id"], PARAMS)
    assert asked.status_code == 201, asked.content
    quoted = wait_for(lambda: (body := buyer.get(f"/api/quotes/{asked.json()['id']}/").json())["status"] != "measuring"
                      and body, timeout=60)
    assert quoted["status"] == "ready" and quoted["compute_type"] == "cross_stats"
    response = buy(buyer, quoted["id"])
    assert response.status_code == 201, response.content
    assert _spent(consumer, product["id"]) == 40_000  # charged with the order, before anything ran
    order = wait_order(buyer, response.json()["id"], {"fulfilled", "refunded", "failed"})
    assert order["status"] == "fulfilled", order
    job = order["jobs"][0]["job"]
    assert job["protocol"] == "cross_stats" and job["total_steps"] == 5

    opened = result_rows(buyer, order["id"]).opened
    assert opened["columns"] == ["segment", "count", "sum", "mean", "note"]
    assert {row[0]: row for row in opened["rows"]} == truth

    # The use left a receipt on chain that the marketplace's records reproduce; a record changed
    # afterwards no longer does.
    receipt = wait_for(lambda: ChainOutbox.objects.filter(subject=f"usage-receipt:{job['id']}",
                                                          status=ChainOutbox.Status.CONFIRMED).first(), timeout=30)
    out = io.StringIO()
    call_command("usage_reconcile", job=[job["id"]], stdout=out)
    assert "reconciled: 1 job(s), 1 charge(s), 1 receipt(s)" in out.getvalue(), receipt.last_error
    Job.objects.filter(id=job["id"]).update(params={**PARAMS, "epsilon": 1})
    with pytest.raises(CommandError, match="1 difference"):
        call_command("usage_reconcile", job=[job["id"]], stdout=io.StringIO())
    Job.objects.filter(id=job["id"]).update(params=PARAMS)

    # A run that releases nothing gives its ε back: the grant revoked on chain stops the next run.
    grant = order["grants"][0]["grant_id"]
    node_runtime(provider.organisation.node.slug).chain.revoke(grant_id=grant)
    assert buyer.post(f"/api/orders/{order['id']}/jobs/").status_code == 201
    wait_for(lambda: PrivacyCharge.objects.filter(subject=f"order:{order['id']}:run:2", status="refunded").first(),
             timeout=30)
    assert _spent(consumer, product["id"]) == 40_000

    # 60,000 left: a quote whose run would cost 70,000 is refused before anything runs.
    refused = _quote(buyer, product["id"], mine["id"], {**PARAMS, "epsilon": 70_000})
    assert refused.status_code == 403 and "60000 of 100000 is left" in refused.json()["message"]
