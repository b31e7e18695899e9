"""Two organisations' worth of trading data for the access, fuzzing and money tests, and the tools
those tests share: every API route of the project, a snapshot of every stored row, ledger checks.

A *world* is one provider and one consumer that traded through the API (Celery eager): datasets, a
published and a draft product, a bought quote with its fulfilled order, job and result, and an open
quote nobody bought. `secrets` are strings of the world that no other organisation may ever see.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db.models import Sum
from django.urls import URLPattern, URLResolver, get_resolver

from audit.models import AuditEntry
from marketplace.models import LedgerAccount, LedgerEntry, LedgerTransaction
from tests.marketplace.api_flow import buy, client_for, list_product, quote, result_rows, upload, wait_order
from tests.marketplace.data import consumer_csv, provider_csv

UNSAFE_METHODS = ("post", "put", "patch", "delete")
HTTP_METHODS = ("get", *UNSAFE_METHODS)
# Rows that legitimately change when someone merely calls the API (audit log and its chain head,
# a token's last use), left out of "nothing was written" snapshots; the audit log is checked apart.
SNAPSHOT_APPS = {"marketplace", "compute", "audit", "auth", "authtoken"}
SNAPSHOT_SKIPPED_MODELS = {"audit.auditentry", "audit.auditchainhead", "sessions.session"}
SNAPSHOT_SKIPPED_FIELDS = {"last_used_at", "last_login"}


@dataclass
class World:
    provider: Any
    consumer: Any
    provider_dataset: dict[str, Any]
    consumer_dataset: dict[str, Any]
    product: dict[str, Any]
    draft: dict[str, Any]
    quote: dict[str, Any]
    open_quote: dict[str, Any]
    order: dict[str, Any]
    result_ids: list[str]
    secrets: set[str] = field(default_factory=set)
    public: set[str] = field(default_factory=set)

    def private_entry(self) -> AuditEntry:
        """An audit entry of this world that only its own organisations may read."""
        return AuditEntry.objects.filter(subject=f"order:{self.order['id']}", action="order.placed").get()


def build_world(make_party: Callable[..., Any], name: str, *, base_price: int, balance: int = 10_000_000) -> World:
    """Provider `<name>-prov` and consumer `<name>-cons` trade once through the API (Celery eager)."""
    provider = make_party(f"{name}-prov", provider=True)
    consumer = make_party(f"{name}-cons", provider=False, balance=balance)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    provider_ids = [f"{name.upper()}-{n:04d}" for n in range(40)]
    consumer_ids = provider_ids[:12] + [f"{name.upper()}-Z{n:03d}" for n in range(8)]

    provider_dataset = upload(seller, f"{name} provider customers", provider_csv(provider_ids))
    consumer_dataset = upload(buyer, f"{name} applicants", consumer_csv(consumer_ids))
    product = list_product(seller, provider_dataset["id"], title=f"{name} customer match", base_price=base_price)
    draft = list_product(seller, provider_dataset["id"], title=f"{name} draft match", publish=False,
                         base_price=base_price + 1)
    bought = quote(buyer, product["id"], consumer_dataset["id"])
    response = buy(buyer, bought["id"])
    assert response.status_code == 201, response.content
    order = wait_order(buyer, response.json()["id"], {"fulfilled"})
    result = result_rows(buyer, order["id"])
    assert result.status_code == 202, result.content
    open_quote = quote(buyer, product["id"], consumer_dataset["id"])
    world = World(
        provider=provider, consumer=consumer, provider_dataset=provider_dataset, consumer_dataset=consumer_dataset,
        product=product, draft=draft, quote=bought, open_quote=open_quote, order=order,
        result_ids=result.opened["ids"],
    )
    entry = world.private_entry()
    # The catalog shows a published product with its contributing datasets' ids and fingerprints.
    world.public = {product["id"], product["title"], provider.organisation.slug, provider_dataset["id"],
                    provider_dataset["table"]["fingerprint"]}
    world.secrets = {
        consumer.organisation.slug, provider_dataset["name"], consumer_dataset["id"],
        consumer_dataset["name"], consumer_dataset["table"]["fingerprint"],
        draft["id"], draft["title"], bought["id"], open_quote["id"], order["id"], str(order["price"]),
        str(open_quote["price"]), entry.payload_digest,
        *(grant["grant_id"] for grant in order["grants"]), *(job["job"]["id"] for job in order["jobs"]),
        *(m["job"]["id"] for m in bought["measurements"]), *world.result_ids,
    }
    return world


@dataclass
class Route:
    """One URL pattern of the project: its name, template, path parameters and view methods."""

    name: str
    template: str
    params: list[str]
    methods: list[str]
    callback: Any


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def project_routes(prefix: str = "") -> list[Route]:
    """Every URL pattern under `prefix` (e.g. "api/"), found by walking Django's resolver."""
    routes = []
    for template, pattern in _walk(get_resolver().url_patterns):
        if not template.startswith(prefix):
            continue
        view_class = getattr(pattern.callback, "view_class", None)
        if view_class is not None:
            allowed = [m for m in HTTP_METHODS if hasattr(view_class, m) and m in view_class.http_method_names]
        else:  # a function view: which methods it refuses is its own business; try them all
            allowed = list(HTTP_METHODS)
        routes.append(Route(name=pattern.name or template, template=template,
                            params=list(pattern.pattern.converters), methods=allowed, callback=pattern.callback))
    return routes


def rows_snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every stored row of the project's apps (and users/tokens), to show that a request wrote nothing."""
    snapshot = {}
    for config in apps.get_app_configs():
        if config.label not in SNAPSHOT_APPS:
            continue
        for model in config.get_models():
            label = model._meta.label_lower
            if label in SNAPSHOT_SKIPPED_MODELS:
                continue
            fields = [f.attname for f in model._meta.concrete_fields if f.attname not in SNAPSHOT_SKIPPED_FIELDS]
            snapshot[label] = list(model.objects.order_by("pk").values(*fields))
    return snapshot


def snapshot_diff(before: dict[str, list[dict[str, Any]]], after: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Human-readable differences between two snapshots (empty when nothing was written)."""
    problems = []
    for label in sorted(set(before) | set(after)):
        old, new = before.get(label, []), after.get(label, [])
        if old != new:
            added = [row for row in new if row not in old]
            removed = [row for row in old if row not in new]
            problems.append(f"{label}: +{added[:2]} -{removed[:2]}")
    return problems


def ledger_problems() -> list[str]:
    """Double-entry invariants: each transaction sums to zero, each account equals the sum of its
    entries, no organisation account is negative, and all money together sums to zero."""
    problems = []
    for record in LedgerTransaction.objects.annotate(total=Sum("entries__amount")):
        if (record.total or 0) != 0:
            problems.append(f"transaction {record.id} ({record.memo}) sums to {record.total}")
    for account in LedgerAccount.objects.annotate(total=Sum("entries__amount")):
        if account.balance != (account.total or 0):
            problems.append(f"{account} holds {account.balance} but its entries sum to {account.total}")
        if account.kind != LedgerAccount.Kind.EXTERNAL and account.balance < 0:
            problems.append(f"{account} is negative: {account.balance}")
    total = LedgerEntry.objects.aggregate(total=Sum("amount"))["total"] or 0
    if total != 0:
        problems.append(f"all entries sum to {total}")
    return problems


def idempotency_key() -> str:
    return str(uuid.uuid4())
