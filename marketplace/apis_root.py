"""The API's front door: GET /api/ names the schema, the interactive docs and the main collections (absolute
URLs), the currency amounts are counted in and how to authenticate; and every other /api/ URL that no endpoint
answers gets the API's own JSON 404, audited like every denial (marketplace/exception_handler.py)."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.formatting import money

# The collections the root links to, by URL name; a name no URL carries (an app that is not installed, an API
# not built yet) is left out rather than linked wrongly.
COLLECTIONS: tuple[tuple[str, str], ...] = (
    ("me", "api-me"),
    ("products", "api-product-list"),
    ("datasets", "api-dataset-list"),
    ("quotes", "api-quote-create"),
    ("orders", "api-order-list"),
    ("ledger_statement", "api-ledger-statement"),
    ("ledger_top_ups", "api-ledger-top-up"),
    ("funds_requests", "api-ledger-funds-requests"),
    ("notifications", "api-notification-list"),
    ("tokens", "api-token-list"),
    ("audit_entries", "api-audit-entry-list"),
    ("audit_batches", "api-audit-batch-list"),
    ("audit_bundle", "api-audit-bundle"),
)
EXAMPLE_CENTS = 12345


def amounts_note(currency: str) -> str:
    """The sentence that says what every amount of the API counts."""
    return _("Every amount (prices, amounts, balances, fees, shares) is an integer number of cents of %(currency)s: "
             "%(cents)s is %(money)s.") % {"currency": currency, "cents": EXAMPLE_CENTS,
                                           "money": money(EXAMPLE_CENTS, currency)}


def collection_links(request: Request) -> dict[str, str]:
    links = {}
    for key, name in COLLECTIONS:
        try:
            links[key] = request.build_absolute_uri(reverse(name))
        except NoReverseMatch:
            continue
    return links


class ApiRootApi(APIView):
    """Where to start: the schema, the docs, the collections, and the unit of every amount."""

    permission_classes = [AllowAny]

    class OutputSerializer(serializers.Serializer):
        title = serializers.CharField()
        version = serializers.CharField()
        currency = serializers.CharField(help_text="ISO 4217 code of the marketplace's one currency.")
        amounts = serializers.CharField(help_text="What every amount counts: integer cents of the currency.")
        authentication = serializers.CharField()
        refusals = serializers.CharField(help_text="The shape of every 4xx answer.")
        schema = serializers.URLField(help_text="The OpenAPI 3 schema.")
        docs = serializers.URLField(help_text="The interactive documentation (Swagger UI).")
        collections = serializers.DictField(child=serializers.URLField())

    @extend_schema(responses=OutputSerializer, summary="The API's root: its schema, docs and collections")
    def get(self, request: Request) -> Response:
        currency = settings.MARKETPLACE_CURRENCY
        spectacular = getattr(settings, "SPECTACULAR_SETTINGS", {})
        body: dict[str, Any] = {
            "title": str(spectacular.get("TITLE", "")),
            "version": str(spectacular.get("VERSION", "")),
            "currency": currency,
            "amounts": amounts_note(currency),
            "authentication": _("Send an API token as “Authorization: Token <secret>” (create one on the API tokens "
                                "page of the web UI), or use a signed-in browser session."),
            "refusals": _("A refusal answers a 4xx status with {\"message\": ..., \"extra\": {...}}."),
            "schema": request.build_absolute_uri(reverse("api-schema")),
            "docs": request.build_absolute_uri(reverse("api-docs")),
            "collections": collection_links(request),
        }
        return Response(self.OutputSerializer(body).data)


@extend_schema(exclude=True)
class ApiNotFoundApi(APIView):
    """Any /api/ URL that no endpoint answers, whatever the method (frontend.views.errors.unknown_url)."""

    permission_classes = [AllowAny]

    def _not_found(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise NotFound(_("No API endpoint at %(path)s. GET %(root)s lists the collections.")
                       % {"path": request.path, "root": reverse("api-root")})

    get = post = put = patch = delete = head = options = _not_found
