"""The provider console ("My data" for consumers): import datasets into the own node, list products over
them, move them through their lifecycle, and contribute datasets to other providers' draft products."""
from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from compute.protocols.ids import DEFAULT_ID_RULE
from frontend.forms import (
    DatasetImportForm,
    ProductContributeForm,
    ProductCreateForm,
    ProductTransitionForm,
    cents_of,
    form_error_from,
)
from frontend.views.membership import actor_of, member_organisation, rejected_status
from marketplace.exceptions import ApplicationError
from marketplace.models import Organisation, Product
from marketplace.selectors import (
    dataset_list,
    product_drafts_open,
    product_get,
    product_led_by,
    product_open_for_contribution,
    product_visible,
)
from marketplace.services.catalog import (
    product_contribute,
    product_contribution_decide,
    product_create,
    product_transition,
)

TRANSITION_DONE = {
    Product.Status.PUBLISHED: "is published: it is on sale and registered on chain under your account",
    Product.Status.SUSPENDED: "is suspended: nobody can quote or buy it until you resume it",
    Product.Status.RETIRED: "is retired for good; existing orders keep their terms",
}


def _own_products(organisation: Organisation) -> list[Product]:
    """Products the organisation leads or contributes a dataset to, whatever their status."""
    mine = Q(provider=organisation) | Q(contributions__dataset__organisation=organisation)
    return list(product_visible(organisation=organisation).filter(mine).distinct().order_by("-created_at"))


def _console(
    request: HttpRequest,
    organisation: Organisation,
    *,
    import_form: DatasetImportForm | None = None,
    product_form: ProductCreateForm | None = None,
    status: int = 200,
) -> HttpResponse:
    datasets = dataset_list(organisation=organisation)
    drafts: list[dict[str, Any]] = []
    if organisation.is_provider:
        open_drafts = product_drafts_open(organisation=organisation).prefetch_related(
            "contributions__dataset__organisation")
        for draft in open_drafts:
            contributed = {c.dataset_id for c in draft.contributions.all()}
            form = ProductContributeForm(
                datasets=datasets.exclude(id__in=contributed), auto_id=f"contribute-{draft.id}-%s"
            )
            drafts.append({"product": draft, "form": form})
    context: dict[str, Any] = {
        "organisation": organisation,
        "datasets": datasets,
        "products": _own_products(organisation),
        "drafts": drafts,
        "import_form": import_form or DatasetImportForm(),
        # The upload form seals the file to this key in the browser; the page never receives the file itself.
        "node_sealing_public_key": organisation.node.sealing_public_key if organisation.node_id else "",
        "product_form": product_form or ProductCreateForm(datasets=datasets),
    }
    return render(request, "frontend/console.html", context, status=status)


def _refused(request: HttpRequest, organisation: Organisation, error: ApplicationError) -> HttpResponse:
    """The console again, with the service's refusal on top and its 4xx status."""
    messages.error(request, error.message)
    return _console(request, organisation, status=rejected_status(error))


@login_required
def console(request: HttpRequest) -> HttpResponse:
    return _console(request, member_organisation(request))


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
            dataset_ids=[str(dataset.id) for dataset in data["datasets"]],
            publish=data["publish"],
            title=data["title"],
            description=data["description"],
            category=data["category"],
            tags=data["tags"],
            purposes=data["purposes"],
            base_price=cents_of(data["base_price"]),
            price_per_match=cents_of(data["price_per_match"]),
            quota=data["quota"],
            validity_days=data["validity_days"],
            min_cohort=data["min_cohort"],
            compute_types=data["compute_types"] or None,
            id_rule=data["id_rule"] or DEFAULT_ID_RULE,
            privacy_epsilon=data["privacy_epsilon"],
            price_policy=data.get("price_policy_record") or None,
            actor=actor_of(request),
        )
    except ApplicationError as error:
        form_error_from(form, error)
        return _console(request, organisation, product_form=form, status=rejected_status(error))
    if product.status == Product.Status.PUBLISHED:
        messages.success(request, f"Listed {product.title}; it is registered on chain under your account.")
    else:
        messages.success(request, f"Drafted {product.title}. Partner providers can now contribute their "
                                  "datasets; publish it from My data when it is complete.")
    return redirect("product-detail", product_id=product.id)


@login_required
@require_POST
def product_status(request: HttpRequest, product_id: UUID) -> HttpResponse:
    """A lifecycle button: publish, suspend, resume or retire (the service decides what is allowed)."""
    organisation = member_organisation(request)
    form = ProductTransitionForm(request.POST)
    try:
        product = product_get(product_id=product_id, organisation=organisation)
        if not form.is_valid():
            raise ApplicationError("Choose one of the lifecycle statuses.", {"field": "status"})
        product = product_transition(
            product=product, organisation=organisation, status=form.cleaned_data["status"], actor=actor_of(request)
        )
    except ApplicationError as error:
        return _refused(request, organisation, error)
    messages.success(request, f"{product.title} {TRANSITION_DONE[Product.Status(product.status)]}.")
    if request.POST.get("from") == "product":
        return redirect("product-detail", product_id=product.id)
    return redirect("console")


@login_required
@require_POST
def product_contribution_create(request: HttpRequest, product_id: UUID) -> HttpResponse:
    """A partner provider adds one of its datasets to another provider's draft (a joint product)."""
    organisation = member_organisation(request)
    form = ProductContributeForm(request.POST, datasets=dataset_list(organisation=organisation))
    try:
        product = product_open_for_contribution(product_id=product_id)
        if not form.is_valid():
            raise ApplicationError("Choose one of your datasets to contribute.", {"field": "dataset"})
        contribution = product_contribute(
            product=product, organisation=organisation, dataset_id=str(form.cleaned_data["dataset"].id),
            actor=actor_of(request),
        )
    except ApplicationError as error:
        return _refused(request, organisation, error)
    messages.success(
        request, f"{contribution.dataset.name} is proposed for {product.title}; once its lead provider accepts, "
                 f"you will share its revenue by your contribution."
    )
    return redirect("product-detail", product_id=product.id)


@login_required
@require_POST
def product_contribution_decide_view(request: HttpRequest, product_id: UUID, contribution_id: int) -> HttpResponse:
    """The lead provider accepts or rejects a partner's proposed dataset."""
    organisation = member_organisation(request)
    accept = request.POST.get("accept") == "1"
    try:
        product = product_led_by(organisation=organisation, product_id=product_id)
        product_contribution_decide(product=product, organisation=organisation, contribution_id=contribution_id,
                                    accept=accept, actor=actor_of(request))
    except ApplicationError as error:
        return _refused(request, organisation, error)
    messages.success(request, "Contribution accepted." if accept else "Contribution rejected and removed.")
    return redirect("console")
