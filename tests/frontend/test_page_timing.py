"""Every main page rendered at demo scale through Django's test client, as the role that uses it: a table of
server time and query count per page (shown with `pytest -s`). Times are printed, never asserted (they depend
on the machine); what is asserted is that each page answers 200 within a fixed number of queries, which
catches a query per row (N+1) as the demo's state grows."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.frontend.journeys import DemoState, demo_seed, organisation_users

WARM_RUNS = 3


@dataclass(frozen=True)
class Page:
    label: str
    role: str  # who opens it: provider, consumer, operator, auditor
    url: Callable[[DemoState], str]
    max_queries: int


def _product(state: DemoState) -> str:
    return state.products["Retail customer match"]


PAGES = [
    Page("catalog", "consumer", lambda s: reverse("catalog"), 20),
    Page("catalog search", "consumer", lambda s: reverse("catalog") + "?q=retail&category=retail", 20),
    Page("compare", "consumer", lambda s: reverse("product-compare") + "?" + "&".join(
        f"id={value}" for value in s.products.values()), 20),
    Page("product", "consumer", lambda s: reverse("product-detail", args=[_product(s)]), 30),
    Page("quote", "consumer", lambda s: reverse("quote-detail", args=[s.quote]), 25),
    Page("orders", "consumer", lambda s: reverse("orders"), 25),
    Page("order detail (buyer)", "consumer", lambda s: reverse("order-detail", args=[s.order]), 30),
    Page("order detail (provider)", "provider", lambda s: reverse("order-detail", args=[s.order]), 30),
    Page("statement", "consumer", lambda s: reverse("statement"), 20),
    Page("notifications", "consumer", lambda s: reverse("notifications"), 20),
    Page("console", "provider", lambda s: reverse("console"), 30),
    Page("provider sales", "provider", lambda s: reverse("provider-sales"), 20),
    Page("dataset", "provider", lambda s: reverse("dataset-detail", args=[s.datasets["Retail customers 2026"]]), 20),
    Page("audit explorer", "auditor", lambda s: reverse("audit"), 30),
    Page("audit batches", "auditor", lambda s: reverse("audit-batches"), 15),
    Page("grant timeline", "auditor", lambda s: reverse("audit-grant-timeline", args=[s.order]), 25),
    Page("operator dashboard", "operator", lambda s: reverse("operator-dashboard"), 35),
    Page("operator top-ups", "operator", lambda s: reverse("operator-top-ups"), 20),
    Page("API tokens", "consumer", lambda s: reverse("account-tokens"), 15),
]


def _timed_get(client: Client, url: str, language: str = "en") -> tuple[int, float, int]:
    """(status, server time in ms, queries) of one request, in the language the browser asks for."""
    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        response = client.get(url, HTTP_ACCEPT_LANGUAGE=language)
        elapsed = (time.perf_counter() - started) * 1000
    return response.status_code, elapsed, len(captured)


@pytest.mark.chain
@pytest.mark.django_db(transaction=True)
def test_it_prints_each_pages_server_time_and_queries_at_demo_scale(ganache_url, capsys):
    state = demo_seed(prefix="tm")
    users = organisation_users(state)
    clients: dict[str, Client] = {}
    for role, user in users.items():
        clients[role] = Client()
        clients[role].force_login(user)

    rows, problems = [], []
    for page in PAGES:
        url = page.url(state)
        client = clients[page.role]
        status, first_ms, _ = _timed_get(client, url)  # the first render compiles the templates
        warm = [_timed_get(client, url) for _ in range(WARM_RUNS)]
        chinese = [_timed_get(client, url, "zh-hans") for _ in range(WARM_RUNS)]
        statuses = {status} | {run[0] for run in warm + chinese}
        queries = max(run[2] for run in warm + chinese)
        warm_ms = statistics.median(run[1] for run in warm)
        chinese_ms = statistics.median(run[1] for run in chinese)
        rows.append((page.label, page.role, first_ms, warm_ms, chinese_ms, queries, page.max_queries))
        if statuses != {200}:
            problems.append(f"{page.label} ({url}) answered {sorted(statuses)}")
        if queries > page.max_queries:
            problems.append(f"{page.label} ({url}) ran {queries} queries (at most {page.max_queries})")

    with capsys.disabled():
        print(f"\n{'page':<26}{'role':<10}{'first ms':>10}{'en ms':>8}{'zh ms':>8}{'queries':>9}{'bound':>7}")
        for label, role, first_ms, warm_ms, chinese_ms, queries, bound in rows:
            print(f"{label:<26}{role:<10}{first_ms:>10.1f}{warm_ms:>8.1f}{chinese_ms:>8.1f}{queries:>9}{bound:>7}")
    assert not problems, "\n".join(problems)
