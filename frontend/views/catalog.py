"""The catalog (public) and a product's page with its quote form."""
from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from babel.numbers import get_currency_name, get_currency_symbol
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from compute.protocols.registry import PROTOCOLS, protocol_get
from frontend.forms import QuoteRequestForm, cents_of, form_error_from
from frontend.views.chain_reads import asset_registered
from frontend.views.membership import actor_of, member_organisation, rejected_status
from marketplace.exceptions import ApplicationError, NotFound
from marketplace.filters import PRICE_MAX_CENTS, ProductSearchInput, compute_type_choices, product_search_messages
from marketplace.formatting import babel_locale, number
from marketplace.models import Organisation, PrivacyBudget, Product
from marketplace.selectors import catalog_providers, dataset_list, product_get, product_search
from marketplace.selectors_catalog import COMPARE_MAX, COMPARE_MIN, privacy_budgets_of, quote_list
from marketplace.services.quotes import quote_request
from pricing.index import QUALITY_MEASURES

CATALOG_PAGE_SIZE = 12
CATALOG_FILTERS = ("q", "category", "tag", "compute_type", "provider", "price_min", "price_max", "ordering")
ORDERING_LABELS = {"newest": gettext_lazy("Newest first"), "oldest": gettext_lazy("Oldest first"),
                   "price": gettext_lazy("Price: low to high"), "-price": gettext_lazy("Price: high to low"),
                   "title": gettext_lazy("Title A–Z")}
STATUS_WORDS = {"draft": gettext_lazy("a draft"), "suspended": gettext_lazy("suspended"),
                "retired": gettext_lazy("retired"), "published": gettext_lazy("published")}
RECENT_QUOTES = 5  # the buyer's latest quotes on the product page
PRICE_FILTER_LABELS = {"price_min": gettext_lazy("Base price from"), "price_max": gettext_lazy("Base price to")}


def _currency_name() -> str:
    """The marketplace's currency in words, in the reader's language: "US dollars", "人民币"."""
    return str(get_currency_name(settings.MARKETPLACE_CURRENCY, count=2, locale=babel_locale()))


def _currency_symbol() -> str:
    return str(get_currency_symbol(settings.MARKETPLACE_CURRENCY, locale=babel_locale()))


def _cents(dollars: str) -> int | None:
    """ "12.5" → 1250; None unless a finite amount within what a price can be."""
    try:
        amount = Decimal(dollars)
    except ArithmeticError:  # decimal.InvalidOperation
        return None
    if not amount.is_finite() or not 0 <= amount <= Decimal(PRICE_MAX_CENTS) / 100:
        return None
    return cents_of(amount)


def _catalog_filters(query: QueryDict) -> tuple[dict[str, Any], list[str]]:
    """The valid filters of the GET form and a message for each invalid one (which is then left out).

    The form's prices are in the currency's units, as on the cards; the catalog filters on cents."""
    raw = {name: query.get(name, "").strip() for name in CATALOG_FILTERS}
    messages = []
    for name in ("price_min", "price_max"):
        if raw[name]:
            cents = _cents(raw[name])
            if cents is None:
                messages.append(_("%(field)s: enter an amount in %(currency)s from 0 to %(most)s, e.g. 12.50.") % {
                    "field": PRICE_FILTER_LABELS[name], "currency": _currency_name(),
                    "most": number(PRICE_MAX_CENTS // 100)})
            raw[name] = "" if cents is None else str(cents)
    data = {name: value for name, value in raw.items() if value}
    filters = ProductSearchInput(data=data)
    if not filters.is_valid():
        messages += product_search_messages(filters.errors)
        filters = ProductSearchInput(data={k: v for k, v in data.items() if k not in filters.errors})
        filters.is_valid()
    return dict(filters.validated_data) if not filters.errors else {}, messages


def _page_number(query: QueryDict, messages: list[str]) -> int:
    try:
        number = int(query.get("page", "1").strip() or "1")
    except ValueError:
        number = 0
    if number < 1:
        messages.append(_("page: a page number is a whole number from 1."))
        return 1
    return number


def catalog(request: HttpRequest) -> HttpResponse:
    """The public catalog: search, filters, sort and pages, all in the GET query string."""
    filters, messages = _catalog_filters(request.GET)
    page = Paginator(product_search(**filters), CATALOG_PAGE_SIZE).get_page(_page_number(request.GET, messages))
    context = {
        "page": page,
        "products": page.object_list,
        "values": {name: request.GET.get(name, "") for name in CATALOG_FILTERS},
        "filtered": any(name in filters for name in CATALOG_FILTERS if name != "ordering"),
        "messages_invalid": messages,
        "categories": Product.Category.choices,
        "compute_types": compute_type_choices(),
        "providers": catalog_providers(),
        "orderings": ORDERING_LABELS.items(),
        "currency_symbol": _currency_symbol(),
        "compare_min": COMPARE_MIN,
        "compare_max": COMPARE_MAX,
    }
    return render(request, "frontend/catalog.html", context, status=400 if messages else 200)


def _product(product_id: UUID, organisation: Organisation) -> Product:
    # Drafts and suspended products exist only for their providers; for anyone else they are a 404.
    try:
        return product_get(product_id=product_id, organisation=organisation)
    except NotFound as error:
        raise Http404(error.message) from error


def _contributions(product: Product) -> list[dict[str, Any]]:
    """Each contributing dataset with its provider, size, schema and quality, in contribution order."""
    rows = []
    for contribution in product.contributions.all():
        dataset = contribution.dataset
        table = dataset.table
        # Tables imported before validity, consistency and freshness were measured lack them: None ("—").
        rows.append({
            "dataset": dataset, "provider": dataset.organisation, "table": table,
            **{measure: table.quality.get(measure) for measure in QUALITY_MEASURES},
        })
    return rows


def _product_page(
    request: HttpRequest, organisation: Organisation, product: Product, form: QuoteRequestForm, *, status: int = 200
) -> HttpResponse:
    contributions = _contributions(product)
    providers = {row["provider"].id for row in contributions}
    budgets = privacy_budgets_of(buyer=organisation, products=[product])[product.id]
    chart = [
        {"label": _("%(dataset)s (%(provider)s)") % {"dataset": row["dataset"].name, "provider": row["provider"].name},
         **{measure: row[measure] for measure in QUALITY_MEASURES}}
        for row in contributions
    ]
    preview = product.sample_preview or []
    # The preview was made from the first dataset's schema; JSON objects lose key order, the schema keeps it.
    schema = [column["name"] for column in contributions[0]["table"].columns] if contributions else []
    keys = list(preview[0].keys()) if preview else []
    preview_columns = [name for name in schema if name in keys] + [name for name in keys if name not in schema]
    context = {
        "product": product,
        "form": form,
        "contributions": contributions,
        "providers_count": len(providers),
        "records": sum(row["table"].row_count for row in contributions),
        "quality_chart": chart,
        "chart_height": 70 + 96 * len(chart),  # five bars per dataset
        "preview_columns": preview_columns,
        "preview_rows": [[row.get(name, "") for name in preview_columns] for row in preview],
        "on_sale": product.status == Product.Status.PUBLISHED,
        "is_lead": product.provider_id == organisation.id,
        "is_contributor": organisation.id in providers,
        "registration": _registration(product),
        "budgets": budgets,
        "quote_budget": next((budget for budget in budgets if budget.kind == PrivacyBudget.Kind.QUOTE), None),
        "stats_budget": next((budget for budget in budgets if budget.kind == PrivacyBudget.Kind.STATS), None),
        "quote_epsilon": settings.QUOTE_EPSILON,
        "sells_statistics": any(protocol_get(kind).budgeted for kind in product.compute_types
                                if kind in PROTOCOLS),
        "quotes": list(quote_list(buyer=organisation, product=product)[:RECENT_QUOTES]),
    }
    return render(request, "frontend/product_detail.html", context, status=status)


def _registration(product: Product) -> str:
    """The product's chain registration: "registered" once its provider's node wrote it; "pending" while
    that write is open or the chain cannot be read; "" before the product was first published."""
    if not product.chain_asset_id:
        return ""
    return "registered" if asset_registered(product.chain_asset_id) else "pending"


def _quote_form(organisation: Organisation, product: Product, data: dict | None = None) -> QuoteRequestForm:
    # The columns a lookup may return or statistics may sum over: those common to every dataset.
    schemas = [{c["name"] for c in contribution.dataset.table.columns} - {contribution.dataset.table.id_column}
               for contribution in product.contributions.select_related("dataset__table")]
    common = sorted(set.intersection(*schemas)) if schemas else []
    return QuoteRequestForm(data, datasets=dataset_list(organisation=organisation), purposes=product.purposes,
                            compute_types=product.compute_types,
                            columns=common if "lookup" in product.compute_types else [], value_columns=common)


@login_required
def product_detail(request: HttpRequest, product_id: UUID) -> HttpResponse:
    organisation = member_organisation(request)
    product = _product(product_id, organisation)
    return _product_page(request, organisation, product, _quote_form(organisation, product))


@login_required
@require_POST
def quote_create(request: HttpRequest, product_id: UUID) -> HttpResponse:
    organisation = member_organisation(request)
    product = _product(product_id, organisation)
    form = _quote_form(organisation, product, request.POST)
    if product.status != Product.Status.PUBLISHED:
        # Its own providers can see a draft or suspended product, but nobody can quote it.
        form.add_error(None, _("This product is %(status)s: only published products can be quoted and bought.")
                       % {"status": STATUS_WORDS.get(product.status, product.status)})
        return _product_page(request, organisation, product, form, status=409)
    if not form.is_valid():
        return _product_page(request, organisation, product, form, status=400)
    try:
        quote = quote_request(
            buyer=organisation,
            product_id=str(product.id),
            dataset_id=str(form.cleaned_data["dataset"].id),
            purpose=form.cleaned_data["purpose"],
            compute_type=form.cleaned_data.get("compute_type") or "",
            params=form.params(),
            value_per_auc_point=form.declared_value() if "value_per_auc_point" in form.fields else None,
            actor=actor_of(request),
        )
    except ApplicationError as error:
        form_error_from(form, error)
        return _product_page(request, organisation, product, form, status=rejected_status(error))
    return redirect("quote-detail", quote_id=quote.id)
