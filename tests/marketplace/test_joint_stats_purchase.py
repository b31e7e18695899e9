"""Statistics across three providers bought through the API: one job over the three providers' nodes, the
buyer opens the totals per group equal to the plaintext group-by of the pooled records, every provider is
paid its share, and a run without one of the providers (its grant revoked) is refused: totals with and
without it would give its own numbers away."""
from __future__ import annotations

import pytest

from compute.models import Job
from marketplace.models import LedgerAccount, OrderGrant, OrderJob, PrivacyBudget
from tests.conftest import node_runtime, wait_for
from tests.marketplace.api_flow import buy_fulfilled, client_for, list_joint_product, quote_chosen, result_rows, upload
from tests.marketplace.data import consumer_csv

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]

PARAMS = {"value_column": "income", "group_column": "region", "groups": ["north", "south", "west"],
          "bounds": [0, 1000], "bins": [0, 500, 1000]}


def _table(offset: int, size: int) -> tuple[bytes, list[tuple[str, str, int]]]:
    rows = [(f"C{offset + n:04d}", ["north", "south", "east"][n % 3], (offset + n * 37) % 1200) for n in range(size)]
    return ("customer_id,region,income\n" + "".join(f"{i},{r},{v}\n" for i, r, v in rows)).encode(), rows


def test_statistics_across_three_providers_release_only_the_totals(make_party):
    lead, *partners = [make_party(f"js-prov{n}", provider=True) for n in range(3)]
    consumer = make_party("js-cons", provider=False, balance=1_000_000)
    buyer = client_for(consumer.token)
    pooled = []
    datasets = []
    for n, party in enumerate([lead, *partners]):
        data, rows = _table(100 * n, 30 + 10 * n)
        pooled += rows
        datasets.append(upload(client_for(party.token), f"incomes {n}", data)["id"])
    product = list_joint_product(client_for(lead.token), [client_for(p.token) for p in partners], datasets,
                                 compute_types=["joint_stats"], min_cohort=2, base_price=300, price_per_match=0)
    mine = upload(buyer, "anyone", consumer_csv(["C0001", "C0002", "C0003"]))

    order = buy_fulfilled(buyer, quote_chosen(buyer, product["id"], mine["id"], "joint_stats", PARAMS)["id"])

    links = OrderJob.objects.filter(order_id=order["id"])
    assert links.count() == 3 and len({link.job_id for link in links}) == 1  # one job under the three grants
    job = Job.objects.get(id=links.first().job_id)
    assert [party.role for party in job.parties.order_by("position")] == ["consumer", "provider", "provider",
                                                                           "provider"]
    opened = result_rows(buyer, order["id"]).opened
    assert opened["columns"] == ["region", "count", "sum", "mean", "[0, 500)", "[500, 1000]", "note"]
    truth = {}
    for label in PARAMS["groups"]:
        values = [min(v, 1000) for _, region, v in pooled if region == label]
        truth[label] = ([label, str(len(values)), str(sum(values)), f"{sum(values) / len(values):.4f}",
                         str(sum(v < 500 for v in values)), str(sum(v >= 500 for v in values)), ""]
                        if values else [label, "", "", "", "", "", "withheld"])
    assert {row[0]: row for row in opened["rows"]} == truth

    for party in (lead, *partners):  # each provider's share was paid
        balance = LedgerAccount.objects.get(organisation=party.organisation, kind="balance").balance
        assert balance > 0

    # A provider whose grant is revoked on chain (the marketplace not told) drops out mid-job: the job fails at
    # its step and nothing is released, although the providers before it had added their parts.
    second = OrderGrant.objects.get(order_id=order["id"], provider=partners[1].organisation)
    node_runtime(partners[1].organisation.node.slug).chain.revoke(grant_id=second.grant_id)
    assert buyer.post(f"/api/orders/{order['id']}/jobs/").status_code == 201
    failed = wait_for(lambda: Job.objects.filter(order_jobs__order_id=order["id"], order_jobs__run=2,
                                                 status=Job.Status.FAILED).first(), timeout=30)
    assert "revoked" in failed.error and failed.result_table is None

    # One partner revokes its grant: the next run would be the total of the other two; it is refused.
    assert client_for(partners[0].token).post(f"/api/orders/{order['id']}/revoke/").status_code == 200
    refused = buyer.post(f"/api/orders/{order['id']}/jobs/")
    assert refused.status_code == 400 and "every provider" in refused.json()["message"]
    assert OrderJob.objects.filter(order_id=order["id"]).count() == 6  # nothing more was started


def test_cross_table_statistics_across_two_providers_release_the_totals_and_charge_one_run(make_party):
    lead, partner = make_party("jc-prov0", provider=True), make_party("jc-prov1", provider=True)
    consumer = make_party("jc-cons", provider=False, balance=1_000_000)
    buyer = client_for(consumer.token)
    tables = [[(f"C{n:04d}", n * 3 % 200) for n in range(0, 40)], [(f"C{n:04d}", n % 50) for n in range(20, 60)]]
    datasets = [upload(client_for(party.token), f"values {n}",
                       ("customer_id,income\n" + "".join(f"{i},{v}\n" for i, v in rows)).encode())["id"]
                for n, (party, rows) in enumerate(zip((lead, partner), tables, strict=True))]
    product = list_joint_product(client_for(lead.token), [client_for(partner.token)], datasets,
                                 compute_types=["joint_cross_stats"], min_cohort=2, privacy_epsilon="100000")
    segments = {f"C{n:04d}": "even" if n % 2 else "odd" for n in range(10, 50)}
    mine = upload(buyer, "segments", ("customer_id,segment\n" + "".join(f"{i},{s}\n" for i, s in segments.items())
                                      ).encode())
    # ε 40,000: the two providers' noise (scale 0.01 on a sum of values in [0, 200]) is zero but for a
    # chance below 1e-40, so the totals can be checked exactly.
    params = {"value_column": "income", "group_column": "segment", "bounds": [0, 200], "epsilon": 40_000}
    order = buy_fulfilled(buyer, quote_chosen(buyer, product["id"], mine["id"], "joint_cross_stats", params)["id"])
    spent = PrivacyBudget.objects.get(buyer=consumer.organisation, product_id=product["id"], kind="stats")
    assert spent.epsilon_spent == 40_000  # one joint job: one release, one charge
    truth = {}
    for label in ("odd", "even"):
        values = [v for rows in tables for i, v in rows if segments.get(i) == label]
        truth[label] = [label, str(len(values)), str(sum(values))]
    opened = result_rows(buyer, order["id"]).opened
    assert {row[0]: row[:3] for row in opened["rows"]} == truth
