"""A small Python client of the marketplace's REST API, and a command line over it.

The standard library and PyNaCl (libsodium) alone: a provider can script listing and a consumer can script
buying from any Python 3.11. Data never goes to the marketplace in the clear: an import is sealed here to
your own node's key, and a result is sealed by your node to a key made here for the purpose.

    client = MarketplaceClient("http://127.0.0.1:8000", token)
    dataset = client.dataset_import("applicants.csv", name="Applicants", id_column="customer_id")
    quote = client.quote(product_id, dataset["id"], "risk_control")       # waits until priced
    order = client.wait_order(client.buy(quote["id"])["id"])
    ids = client.result(order["id"])["ids"]

    python -m marketplace.client --url http://127.0.0.1:8000 --token $TOKEN products --q bank
    python -m marketplace.client buy <quote id>        # MARKETPLACE_URL / MARKETPLACE_TOKEN also work

Every API error raises ClientError(status, message, extra); on the command line it is one line on
stderr and exit status 1.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib import error, parse, request

FINISHED_ORDER_STATUSES = frozenset({"fulfilled", "failed", "refunded", "cancelled"})


class ClientError(Exception):
    """The API refused a request (status ≥ 400), or could not be reached (status 0)."""

    def __init__(self, status: int, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message
        self.extra = extra or {}


class MarketplaceClient:
    """The REST API for one member's token. Methods return the API's JSON, decoded."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 30, poll_interval: float = 0.5) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ClientError(0, f"The URL must start with http:// or https://, not {base_url!r}.")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.poll_interval = poll_interval

    # -- transport -------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        raw: bool = False,
    ) -> Any:
        """Send one request to `/api/<path>`; the decoded JSON (or the bytes, with `raw=True`)."""
        url = f"{self.base_url}/api/{path.lstrip('/')}"
        pairs = {key: value for key, value in (query or {}).items() if value is not None and value != ""}
        if pairs:
            url += "?" + parse.urlencode(pairs)
        sent = {"Authorization": f"Token {self.token}", "Accept": "application/json", **(headers or {})}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent["Content-Type"] = "application/json"
        call = request.Request(url, data=body, method=method, headers=sent)  # noqa: S310 - http(s) checked above
        try:
            with request.urlopen(call, timeout=self.timeout) as response:  # noqa: S310
                payload = response.read()
        except error.HTTPError as refused:
            raise _client_error(refused.code, refused.read()) from None
        except (error.URLError, TimeoutError, ConnectionError) as down:
            reason = getattr(down, "reason", down)
            raise ClientError(0, f"Cannot reach {self.base_url}: {reason}") from None
        if raw:
            return payload
        return json.loads(payload) if payload else None

    def _wait(self, fetch: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool],
              timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            value = fetch()
            if done(value):
                return value
            if time.monotonic() >= deadline:
                raise ClientError(0, f"{what} did not finish within {timeout:.0f} s (last status: "
                                     f"{value.get('status')}).")
            time.sleep(self.poll_interval)

    # -- who am I --------------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        return self.request("GET", "me/")

    # -- datasets and products (providers) ----------------------------------------------------------

    def datasets(self) -> list[dict[str, Any]]:
        return _results(self.request("GET", "datasets/"))

    def dataset_import(self, path: str | os.PathLike[str], name: str, id_column: str,
                       description: str = "", *, wait: bool = True) -> dict[str, Any]:
        """Seal a CSV to your own node's key and hand it over; your node imports it into its vault and the
        marketplace keeps its metadata. With `wait`, poll until the node has imported it (or refused it:
        ClientError with the node's reason)."""
        from nacl.public import PublicKey, SealedBox

        file = Path(path)
        try:
            content = file.read_bytes()
        except OSError as unreadable:
            raise ClientError(0, f"Cannot read {file}: {unreadable.strerror}") from None
        node = self.request("GET", "nodes/mine/")
        sealed = SealedBox(PublicKey(bytes.fromhex(node["sealing_public_key"]))).encrypt(content)
        asked = self.request("POST", "datasets/import/", json_body={
            "name": name, "id_column": id_column, "description": description,
            "sealed_file": base64.b64encode(sealed).decode()})
        if not wait:
            return asked
        done = self._wait(lambda: self.request("GET", f"datasets/{asked['id']}/"),
                          lambda body: body.get("status") != "importing", timeout=300, what="The import")
        if done.get("status") == "failed":
            raise ClientError(400, f"Your node refused the file: {done.get('error')}")
        return done

    def product_create(self, *, datasets: Sequence[str], title: str, purposes: Sequence[str], base_price: int,
                       price_per_match: int, publish: bool = False, **terms: Any) -> dict[str, Any]:
        """List a product over your datasets; `terms` are the API's other fields (description, category,
        tags, quota, validity_days, min_cohort)."""
        body = {"datasets": list(datasets), "title": title, "purposes": list(purposes), "base_price": base_price,
                "price_per_match": price_per_match, "publish": publish, **terms}
        return self.request("POST", "products/create/", json_body=body)

    def product_publish(self, product_id: str) -> dict[str, Any]:
        return self.request("POST", f"products/{product_id}/status/", json_body={"status": "published"})

    def products(self, **filters: Any) -> list[dict[str, Any]]:
        """The catalog; filters are the list endpoint's query parameters (q, category, tag, limit, ...)."""
        return _results(self.request("GET", "products/", query=filters))

    def product(self, product_id: str) -> dict[str, Any]:
        return self.request("GET", f"products/{product_id}/")

    # -- buying (consumers) ----------------------------------------------------------------------

    def quote(self, product: str, dataset: str, purpose: str, *, wait: bool = True,
              timeout: float = 120) -> dict[str, Any]:
        """Ask for a price over one of your datasets; with `wait`, poll until it is ready or failed."""
        asked = self.request("POST", "quotes/", json_body={"product": product, "dataset": dataset,
                                                           "purpose": purpose})
        if not wait:
            return asked
        return self._wait(lambda: self.request("GET", f"quotes/{asked['id']}/"),
                          lambda body: body["status"] != "measuring", timeout, f"Quote {asked['id']}")

    def buy(self, quote_id: str, idempotency_key: str | None = None) -> dict[str, Any]:
        """Buy at a ready quote. Reuse `idempotency_key` to retry safely: the same order comes back."""
        key = idempotency_key or str(uuid.uuid4())
        return self.request("POST", "orders/create/", json_body={"quote": quote_id},
                            headers={"Idempotency-Key": key})

    def orders(self, **filters: Any) -> list[dict[str, Any]]:
        return _results(self.request("GET", "orders/", query=filters))

    def order(self, order_id: str) -> dict[str, Any]:
        return self.request("GET", f"orders/{order_id}/")

    def wait_order(self, order_id: str, *, timeout: float = 300) -> dict[str, Any]:
        """Poll until the order is fulfilled, failed, refunded or cancelled."""
        return self._wait(lambda: self.order(order_id), lambda body: body["status"] in FINISHED_ORDER_STATUSES,
                          timeout, f"Order {order_id}")

    def result(self, order_id: str) -> dict[str, Any]:
        """The order's latest result, sealed by your node to a key made here and opened here:
        `{"order": ..., "columns": [...], "rows": [[...]], "ids": [...]}`."""
        from nacl.public import PrivateKey, SealedBox

        private = PrivateKey.generate()
        self.request("POST", f"orders/{order_id}/result/", json_body={"public_key": bytes(private.public_key).hex()})
        body = self._wait(lambda: self.request("GET", f"orders/{order_id}/result/"),
                          lambda answer: answer["status"] != "sealing", timeout=300, what="Sealing the result")
        if body["status"] != "ready":
            raise ClientError(409, f"Your node could not seal the result: {body.get('error') or body['status']}")
        opened = json.loads(SealedBox(private).decrypt(base64.b64decode(body["sealed"])))
        return {"order": order_id, "columns": opened["columns"], "rows": opened["rows"],
                "ids": [row[0] for row in opened["rows"]]}

    def cancel(self, order_id: str) -> dict[str, Any]:
        return self.request("POST", f"orders/{order_id}/cancel/")

    # -- money -----------------------------------------------------------------------------------

    def statement(self, *, limit: int | None = None, offset: int | None = None) -> dict[str, Any]:
        """One page of your organisation's statement (newest first) with its balances."""
        return self.request("GET", "ledger/statement/", query={"limit": limit, "offset": offset})

    def statement_csv(self) -> str:
        """The whole statement as CSV text (oldest first)."""
        payload = self.request("GET", "ledger/statement/", query={"format": "csv"},
                               headers={"Accept": "text/csv"}, raw=True)
        return payload.decode()

    def top_up(self, organisation: str, amount: int, idempotency_key: str | None = None) -> dict[str, Any]:
        """Operator only: credit an organisation (a payment provider stand-in), amount in cents."""
        return self.request("POST", "ledger/top-ups/", json_body={"organisation": organisation, "amount": amount},
                            headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())})


def _results(body: Any) -> list[dict[str, Any]]:
    """A list endpoint's items, whether it answers a bare list or a page `{"results": [...]}`."""
    return body["results"] if isinstance(body, dict) and "results" in body else body


def _client_error(status: int, payload: bytes) -> ClientError:
    try:
        body = json.loads(payload)
    except ValueError:
        text = payload.decode(errors="replace").strip()
        return ClientError(status, text.splitlines()[0][:200] if text else f"HTTP {status}")
    if isinstance(body, dict) and "message" in body:
        return ClientError(status, str(body["message"]), body.get("extra") or {})
    return ClientError(status, json.dumps(body)[:200])


# -- command line ------------------------------------------------------------------------------------


def _json_object(text: str) -> dict[str, Any]:
    """An argument that is a JSON object (argparse turns the ValueError into one line and exit 2)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from error
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("a JSON object is expected")
    return value

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m marketplace.client",
                                     description="Script the data marketplace's REST API.")
    parser.add_argument("--url", default=os.environ.get("MARKETPLACE_URL", "http://127.0.0.1:8000"),
                        help="the marketplace (default $MARKETPLACE_URL or http://127.0.0.1:8000)")
    parser.add_argument("--token", default=os.environ.get("MARKETPLACE_TOKEN"),
                        help="your API token (default $MARKETPLACE_TOKEN)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    commands.add_parser("me", help="who you are, your organisation and balances")
    commands.add_parser("datasets", help="your datasets")
    imported = commands.add_parser("import", help="import a CSV into your node")
    imported.add_argument("path")
    imported.add_argument("--name", required=True)
    imported.add_argument("--id-column", required=True)
    imported.add_argument("--description", default="")

    created = commands.add_parser("create-product", help="list a product over your datasets")
    created.add_argument("--dataset", action="append", required=True, dest="datasets", help="repeat for several")
    created.add_argument("--title", required=True)
    created.add_argument("--purpose", action="append", required=True, dest="purposes", help="repeat for several")
    created.add_argument("--base-price", type=int, required=True, help="cents")
    created.add_argument("--price-per-match", type=int, required=True, help="cents")
    created.add_argument("--description")
    created.add_argument("--category")
    created.add_argument("--tag", action="append", dest="tags")
    created.add_argument("--quota", type=int)
    created.add_argument("--validity-days", type=int)
    created.add_argument("--min-cohort", type=int)
    created.add_argument("--price-policy", type=_json_object, metavar="JSON",
                         help='e.g. \'{"kind": "tiered", "base": 500, "tiers": [[1000, "3"], [null, "1"]]}\' (cents)')
    created.add_argument("--publish", action="store_true")
    published = commands.add_parser("publish", help="publish a draft product")
    published.add_argument("product")

    listed = commands.add_parser("products", help="search the catalog")
    for name in ("q", "category", "tag", "compute_type", "provider", "price_min", "price_max", "ordering",
                 "limit", "offset"):
        listed.add_argument(f"--{name.replace('_', '-')}", dest=name)

    quoted = commands.add_parser("quote", help="ask for a price over one of your datasets")
    quoted.add_argument("product")
    quoted.add_argument("dataset")
    quoted.add_argument("--purpose", required=True)
    quoted.add_argument("--no-wait", action="store_true", help="return at once, while it is measured")
    bought = commands.add_parser("buy", help="buy at a ready quote")
    bought.add_argument("quote")
    bought.add_argument("--idempotency-key", help="reuse to retry safely (default: a fresh one)")
    for name, text in (("order", "an order"), ("wait", "wait until an order finishes"),
                       ("result", "the matched ids of an order"), ("cancel", "cancel an order before it runs")):
        command = commands.add_parser(name, help=text)
        command.add_argument("order")

    stated = commands.add_parser("statement", help="your organisation's statement")
    stated.add_argument("--csv", action="store_true", help="the whole statement as CSV")
    stated.add_argument("--limit", type=int)
    stated.add_argument("--offset", type=int)
    topped = commands.add_parser("top-up", help="operator: credit an organisation (payment provider stand-in)")
    topped.add_argument("organisation")
    topped.add_argument("amount", type=int, help="cents")
    topped.add_argument("--idempotency-key")
    return parser


def _run(client: MarketplaceClient, args: argparse.Namespace) -> Any:
    command = args.command
    if command == "me":
        return client.me()
    if command == "datasets":
        return client.datasets()
    if command == "import":
        return client.dataset_import(args.path, args.name, args.id_column, args.description)
    if command == "create-product":
        optional = {name: getattr(args, name) for name in ("description", "category", "tags", "quota",
                                                          "validity_days", "min_cohort", "price_policy")}
        return client.product_create(
            datasets=args.datasets, title=args.title, purposes=args.purposes, base_price=args.base_price,
            price_per_match=args.price_per_match, publish=args.publish,
            **{name: value for name, value in optional.items() if value is not None},
        )
    if command == "publish":
        return client.product_publish(args.product)
    if command == "products":
        names = ("q", "category", "tag", "compute_type", "provider", "price_min", "price_max", "ordering",
                 "limit", "offset")
        return client.products(**{name: getattr(args, name) for name in names})
    if command == "quote":
        return client.quote(args.product, args.dataset, args.purpose, wait=not args.no_wait)
    if command == "buy":
        return client.buy(args.quote, args.idempotency_key)
    if command == "order":
        return client.order(args.order)
    if command == "wait":
        return client.wait_order(args.order)
    if command == "result":
        return client.result(args.order)
    if command == "cancel":
        return client.cancel(args.order)
    if command == "statement":
        return client.statement_csv() if args.csv else client.statement(limit=args.limit, offset=args.offset)
    if command == "top-up":
        return client.top_up(args.organisation, args.amount, args.idempotency_key)
    raise AssertionError(f"unhandled command {command}")  # argparse accepts only the commands above


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: prints the API's JSON (or CSV); on an error one line on stderr and exit 1."""
    args = _parser().parse_args(argv)
    if not args.token:
        print("error: no API token: pass --token or set MARKETPLACE_TOKEN", file=sys.stderr)
        return 2
    try:
        output = _run(MarketplaceClient(args.url, args.token), args)
    except ClientError as refused:
        print(f"error: {refused}", file=sys.stderr)
        return 1
    sys.stdout.write(output if isinstance(output, str) else json.dumps(output, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
