"""The marketplace's users under load. A consumer quotes a product against its own dataset, buys at the
quote with an Idempotency-Key (and sends the same request again, as a client whose answer was lost does),
follows its order, reads the catalog and the usage of its grants on chain; a provider reads its datasets
and the catalog.

Every request is bounded (``REQUEST_TIMEOUT``) and every wait loop has a deadline, so a user never hangs on
a dependency that stopped answering. ``RequestLog`` keeps what the API promised and broke: an answer past
the bound, a connection that failed, a 5xx other than a 503, an error without ``{"message", "extra"}``, an
idempotent replay that gave another order.

From a test: ``user_classes(plan)`` (tests/load/test_load_with_cuts.py). From the command line, against a
running stack whose product and buyer's dataset exist already::

    LOAD_CONSUMER_TOKEN=... LOAD_PROVIDER_TOKEN=... LOAD_PRODUCT=<uuid> LOAD_DATASET=<uuid> \\
        locust -f tests/load/locustfile.py --headless -u 8 -r 4 -t 60s -H http://127.0.0.1:8000
"""
from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gevent
from locust import FastHttpUser, between, task
from locust.exception import CatchResponseError

# No request may take longer: a dependency that stops answering must give an answer, not a hung client.
REQUEST_TIMEOUT = 30.0
QUOTE_WAIT = 20.0  # seconds a consumer follows a quote being measured before it moves on
ORDER_WAIT = 15.0  # seconds a consumer follows its order before it moves on (the order goes on without it)
POLL_SECONDS = 1.0
FINAL_ORDER_STATUSES = frozenset({"fulfilled", "refunded", "failed", "cancelled"})
PURPOSE = "risk_control"


@dataclass(frozen=True)
class LoadPlan:
    """Who the users are and what they trade: API tokens, the product on sale, the buyer's dataset."""

    consumer_token: str
    provider_token: str
    product: str
    dataset: str

    @classmethod
    def from_environment(cls) -> LoadPlan:
        return cls(consumer_token=os.environ["LOAD_CONSUMER_TOKEN"], provider_token=os.environ["LOAD_PROVIDER_TOKEN"],
                   product=os.environ["LOAD_PRODUCT"], dataset=os.environ["LOAD_DATASET"])


@dataclass
class RequestLog:
    """Every answer the users got, by name and status, with the slowest and each broken promise.

    Listen with ``environment.events.request.add_listener(log.record)``. A 4xx is a clear refusal (a quote
    that failed, a conflict) and is fine when it says why; a 503 is fine when it says why too.
    """

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    slowest_ms: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    bound_ms: float = REQUEST_TIMEOUT * 1000

    def record(self, *, request_type: str, name: str, response_time: float | None = None, response: Any = None,
               exception: BaseException | None = None, **_: Any) -> None:
        status = int(getattr(response, "status_code", 0) or 0)
        elapsed = float(response_time or 0.0)
        self.statuses[(name, status)] += 1
        self.slowest_ms[name] = max(self.slowest_ms.get(name, 0.0), elapsed)
        where = f"{request_type} {name}"
        if elapsed > self.bound_ms:
            self.problems.append(f"{where} took {elapsed / 1000:.1f} s (bound {self.bound_ms / 1000:.0f} s)")
        if status == 0:
            self.problems.append(f"{where} got no answer: {exception!r}")
            return
        if isinstance(exception, CatchResponseError) and status < 400:
            self.problems.append(f"{where} answered {status} but broke its contract: {exception}")
        if status >= 500 and status != 503:
            self.problems.append(f"{where} answered {status}: {_text(response)[:300]}")
        if status >= 400 and not _is_error_body(response):
            self.problems.append(f"{where} answered {status} without {{message, extra}}: {_text(response)[:300]}")
        if status == 503 and not _header(response, "Retry-After"):
            self.problems.append(f"{where} answered 503 without Retry-After")

    def count(self, predicate: Callable[[int], bool]) -> int:
        return sum(n for (_, status), n in self.statuses.items() if predicate(status))


def _text(response: Any) -> str:
    try:
        return str(response.text or "")
    except Exception:  # noqa: BLE001 - a body that cannot be read is reported as empty
        return ""


def _header(response: Any, name: str) -> str:
    headers = getattr(response, "headers", None) or {}
    return str(headers.get(name) or headers.get(name.lower()) or "")


def _is_error_body(response: Any) -> bool:
    try:
        body = json.loads(_text(response))
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("message"), str) and bool(body["message"]) and "extra" in body


def _json(response: Any) -> dict[str, Any] | None:
    try:
        body = json.loads(_text(response))
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


class MarketplaceUser(FastHttpUser):
    abstract = True
    wait_time = between(1.0, 3.0)
    network_timeout = REQUEST_TIMEOUT
    connection_timeout = REQUEST_TIMEOUT
    plan: ClassVar[LoadPlan | None] = None

    def on_start(self) -> None:
        self.load_plan = self.plan or LoadPlan.from_environment()

    def token(self) -> str:
        raise NotImplementedError

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Token {self.token()}", **(extra or {})}

    def get_json(self, path: str, *, name: str) -> dict[str, Any] | None:
        response = self.client.get(path, name=name, headers=self.headers())
        return _json(response) if response.status_code == 200 else None

    def post_json(self, path: str, body: dict[str, Any], *, name: str,
                  headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        response = self.client.post(path, json=body, name=name, headers=self.headers(headers))
        return response.status_code, _json(response) or {}

    def follow(self, path: str, *, name: str, done: Callable[[dict[str, Any]], bool],
               within: float) -> dict[str, Any] | None:
        """GET ``path`` every POLL_SECONDS until ``done(body)``, for at most ``within`` seconds."""
        deadline = time.monotonic() + within
        body = None
        while time.monotonic() < deadline:
            body = self.get_json(path, name=name)
            if body is not None and done(body):
                return body
            gevent.sleep(POLL_SECONDS)
        return body

    @task(2)
    def catalog(self) -> None:
        self.client.get("/api/products/?limit=20", name="catalog", headers=self.headers())


class ConsumerUser(MarketplaceUser):
    weight = 3

    def on_start(self) -> None:
        super().on_start()
        self.orders: list[str] = []

    def token(self) -> str:
        return self.load_plan.consumer_token

    @task(3)
    def quote_and_buy(self) -> None:
        plan = self.load_plan
        status, quote = self.post_json("/api/quotes/", {"product": plan.product, "dataset": plan.dataset,
                                                         "purpose": PURPOSE}, name="quote")
        if status != 201:
            return
        priced = self.follow(f"/api/quotes/{quote['id']}/", name="quote [follow]",
                             done=lambda body: body["status"] != "measuring", within=QUOTE_WAIT)
        if priced is None or priced["status"] != "ready":
            return
        key = str(uuid.uuid4())
        status, order = self.post_json("/api/orders/create/", {"quote": quote["id"]}, name="buy",
                                       headers={"Idempotency-Key": key})
        if status != 201:
            return
        self.orders.append(order["id"])
        # The same request again (a client whose answer was lost): the same order, nothing bought twice.
        with self.client.post("/api/orders/create/", json={"quote": quote["id"]}, name="buy [same key]",
                              headers=self.headers({"Idempotency-Key": key}), catch_response=True) as again:
            body = _json(again) or {}
            if again.status_code == 200 and body.get("id") != order["id"]:
                again.failure(f"the same Idempotency-Key gave order {body.get('id')}, not {order['id']}")
            elif again.status_code == 201:
                again.failure("the same Idempotency-Key created a second order")
        self.follow(f"/api/orders/{order['id']}/", name="order [follow]",
                    done=lambda body: body["status"] in FINAL_ORDER_STATUSES, within=ORDER_WAIT)

    @task(2)
    def my_orders(self) -> None:
        self.client.get("/api/orders/?limit=20", name="orders", headers=self.headers())
        if self.orders:
            # Usage is read from the chain: a 503 with Retry-After while the chain does not answer.
            self.client.get(f"/api/orders/{random.choice(self.orders)}/grants/", name="grants (chain read)",
                            headers=self.headers())


class ProviderUser(MarketplaceUser):
    weight = 1

    def token(self) -> str:
        return self.load_plan.provider_token

    @task(3)
    def datasets(self) -> None:
        self.client.get("/api/datasets/?limit=20", name="datasets", headers=self.headers())


def user_classes(plan: LoadPlan) -> list[type[MarketplaceUser]]:
    """The user classes bound to ``plan`` (subclasses: the module's classes stay as they are)."""
    return [type(f"{cls.__name__}ForPlan", (cls,), {"plan": plan}) for cls in (ConsumerUser, ProviderUser)]
