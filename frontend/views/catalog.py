"""The catalog (public) and a product's page with its quote form."""
from __future__ import annotations

from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from frontend.forms import QuoteRequestForm, form_error_from
from frontend.views.membership import actor_of, member_organisation, rejected_status
from marketplace.exceptions import ApplicationError, NotFound
from marketplace.models import Organisation, Product
from marketplace.selectors import dataset_list, product_catalog, product_get
from marketplace.services.quotes import quote_request

SEARCH_MAX_CHARS = 200


def catalog(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:SEARCH_MAX_CHARS]
    products = product_catalog()
    if query:
        products = products.filter(Q(title__icontains=query) | Q(description__icontains=query))
    return render(request, "frontend/catalog.html", {"products": products, "query": query})


def _product(product_id: UUID) -> Product:
    try:
        return product_get(product_id=product_id)
    except NotFound as error:
        raise Http404(error.message) from error


def _product_page(
    request: HttpRequest, product: Product, form: QuoteRequestForm, *, status: int = 200
) -> HttpResponse:
    table = product.contributions.all()[0].dataset.table
    quality = {name: table.quality.get(name) for name in ("completeness", "uniqueness")}
    context = {"product": product, "table": table, "quality": quality, "form": form}
    return render(request, "frontend/product_detail.html", context, status=status)


def _quote_form(organisation: Organisation, product: Product, data: dict | None = None) -> QuoteRequestForm:
    return QuoteRequestForm(data, datasets=dataset_list(organisation=organisation), purposes=product.purposes)


@login_required
def product_detail(request: HttpRequest, product_id: UUID) -> HttpResponse:
    organisation = member_organisation(request)
    product = _product(product_id)
    return _product_page(request, product, _quote_form(organisation, product))


@login_required
@require_POST
def quote_create(request: HttpRequest, product_id: UUID) -> HttpResponse:
    organisation = member_organisation(request)
    product = _product(product_id)
    form = _quote_form(organisation, product, request.POST)
    if not form.is_valid():
        return _product_page(request, product, form, status=400)
    try:
        quote = quote_request(
            buyer=organisation,
            product_id=str(product.id),
            dataset_id=str(form.cleaned_data["dataset"].id),
            purpose=form.cleaned_data["purpose"],
            actor=actor_of(request),
        )
    except ApplicationError as error:
        form_error_from(form, error)
        return _product_page(request, product, form, status=rejected_status(error))
    return redirect("quote-detail", quote_id=quote.id)
