"""The provider console ("My data" for consumers): import datasets into the own node, list products."""
from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from frontend.forms import DatasetImportForm, ProductCreateForm, cents_of, form_error_from
from frontend.views.membership import actor_of, member_organisation, rejected_status
from marketplace.exceptions import ApplicationError
from marketplace.models import Organisation
from marketplace.selectors import dataset_list, product_catalog
from marketplace.services.catalog import dataset_import, product_create


def _console(
    request: HttpRequest,
    organisation: Organisation,
    *,
    import_form: DatasetImportForm | None = None,
    product_form: ProductCreateForm | None = None,
    status: int = 200,
) -> HttpResponse:
    datasets = dataset_list(organisation=organisation)
    context: dict[str, Any] = {
        "organisation": organisation,
        "datasets": datasets,
        "products": product_catalog().filter(provider=organisation),
        "import_form": import_form or DatasetImportForm(),
        "product_form": product_form or ProductCreateForm(datasets=datasets),
    }
    return render(request, "frontend/console.html", context, status=status)


@login_required
def console(request: HttpRequest) -> HttpResponse:
    return _console(request, member_organisation(request))


@login_required
@require_POST
def dataset_create(request: HttpRequest) -> HttpResponse:
    organisation = member_organisation(request)
    form = DatasetImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _console(request, organisation, import_form=form, status=400)
    try:
        dataset = dataset_import(
            organisation=organisation,
            name=form.cleaned_data["name"],
            data=form.cleaned_data["file"].read(),
            id_column=form.cleaned_data["id_column"],
            description=form.cleaned_data["description"],
            actor=actor_of(request),
        )
    except ApplicationError as error:
        form_error_from(form, error)
        return _console(request, organisation, import_form=form, status=rejected_status(error))
    rows = dataset.table.row_count
    messages.success(request, f"Imported {dataset.name}: {rows:,} rows into your node's vault.")
    return redirect("console")


@login_required
@require_POST
def product_list_create(request: HttpRequest) -> HttpResponse:
    organisation = member_organisation(request)
    form = ProductCreateForm(request.POST, datasets=dataset_list(organisation=organisation))
    if not form.is_valid():
        return _console(request, organisation, product_form=form, status=400)
    data = form.cleaned_data
    try:
        product = product_create(
            provider=organisation,
            dataset_ids=[str(data["dataset"].id)],
            publish=True,
            title=data["title"],
            description=data["description"],
            purposes=data["purposes"],
            base_price=cents_of(data["base_price"]),
            price_per_match=cents_of(data["price_per_match"]),
            quota=data["quota"],
            validity_days=data["validity_days"],
            actor=actor_of(request),
        )
    except ApplicationError as error:
        form_error_from(form, error)
        return _console(request, organisation, product_form=form, status=rejected_status(error))
    messages.success(request, f"Listed {product.title}; it is registered on chain under your account.")
    return redirect("product-detail", product_id=product.id)
