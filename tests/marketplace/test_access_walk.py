"""QUALITY 1, object-level access: walk every `/api/` route of Django's resolver and call it as another
organisation — with the victim's ids in the path or in the body — and require 404/403, nothing of the
victim in the answer, nothing written, and the denial in the audit log. Lists show only the caller's own.

New endpoints are picked up automatically: a route whose path parameters are all known here is walked
with every method its view has; a route with an unknown parameter, or without parameters and without a
rule below, fails `test_it_has_an_access_rule_for_every_api_route` until someone says how to attack it.
"""
from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse

from audit.models import AuditEntry
from marketplace.models import ApiToken, FundsRequest, Member, Notification, Organisation
from tests.marketplace.api_flow import client_for
from tests.marketplace.trading_world import (
    World,
    build_world,
    idempotency_key,
    project_routes,
    rows_snapshot,
    snapshot_diff,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]


@pytest.fixture(autouse=True)
def no_rate_limits(settings):
    # These tests send more requests per token than the API's rate limit allows; limits have their own tests.
    settings.API_RATE_READ = settings.API_RATE_WRITE = None

DENIED = {403, 404}


def _victim_members(world: World) -> Any:
    return Member.objects.filter(organisation__in=[world.consumer.organisation, world.provider.organisation])


def _victim_token_ids(world: World) -> list[tuple[str, Any]]:
    return [(f"token of {token.member.user.username}", token.pk)
            for token in ApiToken.objects.filter(member__in=_victim_members(world)).select_related("member__user")]


def _victim_member_ids(world: World) -> list[tuple[str, Any]]:
    return [(f"member {member.user.username}", member.pk) for member in _victim_members(world).select_related("user")]


def _victim_funds_request_ids(world: World) -> list[tuple[str, Any]]:
    organisation = world.consumer.organisation
    funds = FundsRequest.objects.filter(organisation=organisation).first() or FundsRequest.objects.create(
        organisation=organisation, requested_by=world.consumer.user, amount=4_321, note="victim's request")
    return [("funds request", funds.pk)]


def _victim_notification_ids(world: World) -> list[tuple[str, Any]]:
    """The notifications its trade brought the victim's members (a quote ready, a job finished)."""
    found = [(f"notification {kind}", pk) for pk, kind in Notification.objects.filter(
        user__member__in=_victim_members(world)).values_list("pk", "kind")[:2]]
    assert found, "the victim's trade brought its members no notification"
    return found


# Path parameter name → the victim's objects to put there, each with a label.
PARAM_OBJECTS: dict[str, Callable[[World], list[tuple[str, Any]]]] = {
    "dataset_id": lambda w: [("consumer dataset", w.consumer_dataset["id"]),
                             ("provider dataset", w.provider_dataset["id"])],
    "product_id": lambda w: [("draft product", w.draft["id"]), ("published product", w.product["id"])],
    "quote_id": lambda w: [("bought quote", w.quote["id"]), ("open quote", w.open_quote["id"])],
    "order_id": lambda w: [("order", w.order["id"])],
    "contribution_id": lambda w: [("draft contribution", w.draft["contributions"][0]["id"])],
    "entry_id": lambda w: [("audit entry", w.private_entry().id)],
    "entry_hash": lambda w: [("audit entry hash", w.private_entry().entry_hash or "0" * 64)],
    "token_id": _victim_token_ids,
    "member_id": _victim_member_ids,
    "notification_id": _victim_notification_ids,
    "funds_request_id": _victim_funds_request_ids,
}

# (route, method, object) a stranger may legitimately reach: a published product is the public catalog.
PUBLIC = {("api-product-detail", "get", "published product")}

# Joint products are open to contributions from any provider while they are drafts (catalog.py): a
# stranger provider may add ITS OWN dataset to the victim's draft. That design is tested apart below
# (it cannot take the victim's data and it is audited to the lead provider); the walk skips it.
OPEN_BY_DESIGN = {("api-product-contribute", "post", "draft product"),
                  # An entry's inclusion proof is public by the entry's hash: it holds none of the entry's
                  # contents (docs/audit.md; tests/audit/test_bundle_verifier.py checks what it shows).
                  ("api-audit-proof", "get", "audit entry hash")}

# A body that would pass the view's validation, so that the request reaches the object check.
BODIES: dict[str, Callable[[World], dict[str, Any]]] = {
    "api-product-status": lambda intruder: {"status": "retired"},
    "api-product-contribute": lambda intruder: {"dataset": intruder.provider_dataset["id"]},
    "api-product-contribution-decide": lambda intruder: {"accept": False},
}

# Routes without path parameters: what a stranger could do with them.
#   own     — a list or view of the caller's own data: none of the victim's private data may show
#   catalog — the public catalog: the victim's published product may show, nothing private
#   public  — the same for everyone (schema, docs, anchored batch roots)
#   create  — writes: attacked with the victim's ids in the body (FOREIGN_BODIES), if it takes ids
COLLECTION_RULES = {
    "api-me": "own",
    "api-node-mine": "own",
    "api-dataset-list": "own",
    "api-order-list": "own",
    "api-audit-entry-list": "own",
    "api-audit-bundle": "own",
    "api-ledger-statement": "own",
    "api-token-list": "own",
    "api-organisation-tokens": "own",
    "api-member-list": "own",
    "api-notification-list": "own",
    "api-product-list": "catalog",
    "api-audit-batch-list": "public",
    "api-schema": "public",
    "api-root": "public",
    "api-docs": "public",
    "api-dataset-import": "create",
    "api-product-create": "create",
    "api-quote-create": "create",
    "api-order-create": "create",
    "api-token-create": "create",
    "api-member-create": "create",
    "api-ledger-top-up": "create",
    "api-notification-read-all": "create",  # marks the caller's own read; takes no id
    "api-ledger-funds-requests": "own",
}

# Create routes that take ids in the body: the victim's ids there must be refused like a path id.
FOREIGN_BODIES: dict[str, list[tuple[str, Callable[[World, World], dict[str, Any]]]]] = {
    "api-product-create": [
        ("the victim's dataset", lambda victim, me: {
            "datasets": [victim.provider_dataset["id"]], "title": "Stolen", "purposes": ["research"],
            "base_price": 1, "price_per_match": 1, "publish": True}),
        ("the victim's dataset beside my own", lambda victim, me: {
            "datasets": [me.provider_dataset["id"], victim.consumer_dataset["id"]], "title": "Stolen",
            "purposes": ["research"], "base_price": 1, "price_per_match": 1}),
    ],
    "api-quote-create": [
        ("the victim's dataset as mine", lambda victim, me: {
            "product": me.product["id"], "dataset": victim.consumer_dataset["id"], "purpose": "risk_control"}),
        ("the victim's draft product", lambda victim, me: {
            "product": victim.draft["id"], "dataset": me.consumer_dataset["id"], "purpose": "risk_control"}),
    ],
    "api-order-create": [
        ("the victim's open quote", lambda victim, me: {"quote": victim.open_quote["id"]}),
    ],
    "api-ledger-top-up": [  # operator only: nobody else may credit anyone, the victim included
        ("a top-up of the victim", lambda victim, me: {"organisation": victim.consumer.organisation.slug,
                                                       "amount": 100}),
        ("a top-up of myself", lambda victim, me: {"organisation": me.consumer.organisation.slug, "amount": 100}),
    ],
}


@pytest.fixture
def worlds(make_party) -> tuple[World, World]:
    victim = build_world(make_party, "vic", base_price=987_654)
    intruder = build_world(make_party, "intr", base_price=123_457)
    # The intruding provider also buys, so that role checks let it through to the object checks.
    Organisation.objects.filter(pk=intruder.provider.organisation.pk).update(is_consumer=True)
    victim.secrets |= set(ApiToken.objects.filter(member__in=_victim_members(victim)).values_list("prefix", flat=True))
    return victim, intruder


def _leaks(body: bytes, words: set[str]) -> list[str]:
    text = body.decode(errors="replace")
    return sorted(word for word in words if word and word in text)


def _request(client: Any, method: str, path: str, body: dict[str, Any] | None) -> Any:
    return getattr(client, method)(path, data=json.dumps(body or {}) if method != "get" else None,
                                   content_type="application/json", HTTP_IDEMPOTENCY_KEY=idempotency_key())


def _intruders(intruder: World) -> list[tuple[str, Any]]:
    return [("intruding provider", intruder.provider), ("intruding consumer", intruder.consumer)]


class DenialCheck:
    """Calls made as a stranger: each must be refused, leak nothing, write nothing, and be audited."""

    def __init__(self, victim: World) -> None:
        self.victim = victim
        self.problems: list[str] = []

    def call(self, what: str, party: Any, method: str, path: str, body: dict[str, Any] | None,
             *, expect_denied: bool = True) -> None:
        before, last_entry = rows_snapshot(), AuditEntry.objects.order_by("-id").values_list("id", flat=True).first()
        response = _request(client_for(party.token), method, path, body)
        forbidden = self.victim.secrets if not expect_denied else self.victim.secrets | self.victim.public
        leaked = _leaks(response.content, forbidden)
        written = snapshot_diff(before, rows_snapshot())
        new_entries = list(AuditEntry.objects.filter(id__gt=last_entry or 0))
        label = f"{what}: {method.upper()} {path}"
        if expect_denied and response.status_code not in DENIED:
            self.problems.append(f"{label} answered {response.status_code}: {response.content[:200]!r}")
        if not expect_denied and response.status_code != 200:
            self.problems.append(f"{label} (public) answered {response.status_code}")
        if leaked:
            self.problems.append(f"{label} leaked {leaked}")
        if written:
            self.problems.append(f"{label} wrote {written}")
        if expect_denied and response.status_code in DENIED:
            denials = [e for e in new_entries if e.action == "access.denied"
                       and e.parties == [party.organisation.slug] and e.subject.endswith(path)]
            if len(denials) != 1:
                self.problems.append(f"{label} was denied without one access.denied audit entry")
        others = [e.action for e in new_entries if e.action != "access.denied"]
        if others:
            self.problems.append(f"{label} recorded {others}")


def test_it_has_an_access_rule_for_every_api_route():
    missing = []
    for route in project_routes("api/"):
        if route.params:
            unknown = [p for p in route.params if p not in PARAM_OBJECTS]
            if unknown:
                missing.append(f"{route.template} ({route.name}): no victim object for {unknown}")
        elif route.name not in COLLECTION_RULES:
            missing.append(f"{route.template} ({route.name}): no rule in COLLECTION_RULES")
    assert not missing, "routes the access walk does not know how to attack:\n" + "\n".join(missing)
    for name in (*FOREIGN_BODIES, *BODIES):
        assert name in {route.name for route in project_routes("api/")}, f"stale rule for {name}"


def test_it_refuses_every_object_route_with_another_organisations_ids(worlds):
    victim, intruder = worlds
    check = DenialCheck(victim)
    walked = 0
    for route in project_routes("api/"):
        if not route.params or any(p not in PARAM_OBJECTS for p in route.params):
            continue  # the rule test above fails for those
        candidates = [[(p, label, value) for label, value in PARAM_OBJECTS[p](victim)] for p in route.params]
        for combination, method, (who, party) in itertools.product(
                itertools.product(*candidates), route.methods, _intruders(intruder)):
            kwargs = {param: value for param, _, value in combination}
            labels = ", ".join(label for _, label, _ in combination)
            key = (route.name, method, labels)
            if key in OPEN_BY_DESIGN:
                continue
            path = reverse(route.name, kwargs=kwargs)
            body = BODIES[route.name](intruder) if route.name in BODIES else {}
            check.call(f"{who} on the victim's {labels}", party, method, path, body,
                       expect_denied=key not in PUBLIC)
            walked += 1
    assert walked >= 20, walked
    assert not check.problems, "\n".join(check.problems)


def test_it_refuses_the_victims_ids_in_the_body_of_every_create(worlds):
    victim, intruder = worlds
    check = DenialCheck(victim)
    for route in project_routes("api/"):
        for (label, body), (who, party) in itertools.product(FOREIGN_BODIES.get(route.name, []),
                                                             _intruders(intruder)):
            check.call(f"{who} with {label}", party, "post", reverse(route.name), body(victim, intruder))
    assert not check.problems, "\n".join(check.problems)


def test_it_shows_each_organisation_only_its_own_in_lists(worlds):
    victim, intruder = worlds
    problems = []
    own_markers = {
        "api-dataset-list": lambda me, party: [me.consumer_dataset["id"] if party is me.consumer
                                               else me.provider_dataset["id"]],
        "api-order-list": lambda me, party: [me.order["id"]],
        "api-me": lambda me, party: [party.organisation.slug],
        "api-audit-entry-list": lambda me, party: [party.organisation.slug],
        "api-product-list": lambda me, party: [me.product["id"]],
    }
    for route in project_routes("api/"):
        rule = COLLECTION_RULES.get(route.name)
        if rule not in {"own", "catalog", "public"} or "get" not in route.methods:
            continue
        for who, party in _intruders(intruder):
            before = rows_snapshot()
            response = client_for(party.token).get(reverse(route.name))
            label = f"{who}: GET {reverse(route.name)}"
            if response.status_code != 200:
                problems.append(f"{label} answered {response.status_code}")
                continue
            forbidden = victim.secrets | (victim.public if rule == "own" else set())
            if leaked := _leaks(response.content, forbidden):
                problems.append(f"{label} shows the victim's {leaked}")
            if rule != "public" and route.name in own_markers:
                missing = [m for m in own_markers[route.name](intruder, party) if m not in response.content.decode()]
                if missing:
                    problems.append(f"{label} does not even show the caller's own {missing}")
            if written := snapshot_diff(before, rows_snapshot()):
                problems.append(f"{label} wrote {written}")
    catalog = client_for(intruder.consumer.token).get(reverse("api-product-list")).content.decode()
    assert victim.product["id"] in catalog  # the walk above would pass vacuously on an empty catalog
    assert not problems, "\n".join(problems)


def test_it_records_a_denial_only_for_the_caller_and_never_as_an_existence_oracle(worlds):
    victim, intruder = worlds
    client = client_for(intruder.consumer.token)
    existing = client.get(f"/api/orders/{victim.order['id']}/")
    missing = client.get("/api/orders/00000000-0000-4000-8000-000000000000/")

    assert existing.status_code == missing.status_code == 404
    assert existing.json() == missing.json()
    denials = list(AuditEntry.objects.filter(action="access.denied").order_by("id"))
    assert [entry.parties for entry in denials] == [[intruder.consumer.organisation.slug]] * 2
    assert [entry.payload["status"] for entry in denials] == [404, 404]
    assert denials[0].actor == f"user:{intruder.consumer.user.username}"
    seen_by_victim = client_for(victim.consumer.token).get("/api/audit/entries/", {"action": "access.denied"})
    assert seen_by_victim.status_code == 200
    assert intruder.consumer.organisation.slug not in seen_by_victim.content.decode()


def test_it_lets_a_stranger_provider_add_only_its_own_data_to_a_draft_and_tells_the_lead(worlds):
    victim, intruder = worlds
    stranger = client_for(intruder.provider.token)
    path = f"/api/products/{victim.draft['id']}/contributions/"

    theirs = stranger.post(path, {"dataset": victim.provider_dataset["id"]}, format="json")
    as_consumer = client_for(intruder.consumer.token).post(path, {"dataset": intruder.consumer_dataset["id"]},
                                                           format="json")
    mine = stranger.post(path, {"dataset": intruder.provider_dataset["id"]}, format="json")

    assert theirs.status_code == 404 and as_consumer.status_code == 403
    assert mine.status_code == 201, mine.content
    entry = AuditEntry.objects.get(action="product.contributed", subject=f"product:{victim.draft['id']}")
    assert victim.provider.organisation.slug in entry.parties
    assert not _leaks(mine.content, victim.secrets - {victim.draft["id"], victim.draft["title"]})
