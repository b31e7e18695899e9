"""The provider console ("My data" for consumers): import datasets into the own node, see each dataset's quality
and a synthetic preview drawn from its published profile, list products over them with a live preview of
their terms and an example price, move them through their lifecycle, and contribute datasets to other
providers' draft products."""
from __future__ import annotations

from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from compute.protocols.ids import DEFAULT_ID_RULE
from frontend.forms import (
    DatasetImportForm,
    ProductContributeForm,
    ProductCreateForm,
    ProductTransitionForm,
    cents_of,
    form_error_from,
)
from frontend.forms_provider import PriceExampleForm
from frontend.views.membership import actor_of, member_organisation, rejected_status
from marketplace.exceptions import ApplicationError, NotFound
from marketplace.formatting import money
from marketplace.models import Organisation, Product
from marketplace.selectors import (
    dataset_get,
    dataset_list,
    product_drafts_open,
    product_get,
    product_led_by,
    product_open_for_contribution,
)
from marketplace.selectors_provider import (
    dataset_columns,
    dataset_products,
    product_price_example,
    provider_products,
)
from marketplace.services.catalog import (
    product_contribute,
    product_contribution_decide,
    product_create,
    product_price_policy_check,
    product_transition,
)
from marketplace.synthetic import synthetic_rows
from pricing.policies import UtilityBased, policy_from_record
from pricing.policy import policy_terms

TRANSITION_DONE = {
    Product.Status.PUBLISHED: gettext_lazy(
        "%(title)s is published: it is on sale and registered on chain under your account."),
    Product.Status.SUSPENDED: gettext_lazy("%(title)s is suspended: nobody can quote or buy it until you resume it."),
    Product.Status.RETIRED: gettext_lazy("%(title)s is retired for good; existing orders keep their terms."),
}
DATASET_PREVIEW_ROWS = 8
# The product form's fields that price it: the live preview shows their errors and no other field's.
PRICE_FIELDS = ("base_price", "price_per_match", "price_policy", "price_tiers", "price_epsilon_rate",
                "price_epsilon_exponent", "price_floor", "price_ceiling", "compute_types", "privacy_epsilon")


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
    product_form = product_form or ProductCreateForm(datasets=datasets)
    example_form = PriceExampleForm(_example_data(request.POST if product_form.is_bound else QueryDict()))
    context: dict[str, Any] = {
        "organisation": organisation,
        "datasets": datasets,
        "products": list(provider_products(organisation=organisation).prefetch_related(
            "contributions__dataset__organisation")),
        "drafts": drafts,
        "import_form": import_form or DatasetImportForm(),
        # The upload form seals the file to this key in the browser; the page never receives the file itself.
        "node_sealing_public_key": organisation.node.sealing_public_key if organisation.node_id else "",
        "product_form": product_form,
        "example_form": example_form,
        "preview": _terms_preview(organisation, product_form.data if product_form.is_bound
                                  else _initial_data(product_form), example_form.data),
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
def dataset_detail(request: HttpRequest, dataset_id: UUID) -> HttpResponse:
    """One of the organisation's datasets: its quality per column, what its node published of each column's
    distribution, a synthetic preview drawn from that alone, and the products it contributes to."""
    organisation = member_organisation(request)
    try:
        dataset = dataset_get(organisation=organisation, dataset_id=dataset_id)
    except NotFound as error:
        raise Http404(error.message) from error
    table = dataset.table
    columns = dataset_columns(table=table)
    completeness = {column["name"]: float(column["quality"].get("completeness", 1.0)) for column in columns}
    preview = synthetic_rows(table.columns, id_column=table.id_column, rows=DATASET_PREVIEW_ROWS,
                             seed=table.fingerprint, completeness=completeness)
    names = [column["name"] for column in columns]
    return render(request, "frontend/provider_dataset.html", {
        "organisation": organisation,
        "dataset": dataset,
        "table": table,
        "quality": table.quality or {},
        "columns": columns,
        "profiled": any(column["profile"] is not None for column in columns),
        "preview_columns": names,
        "preview_rows": [[row.get(name, "") for name in names] for row in preview],
        "products": dataset_products(dataset=dataset),
    })


def _initial_data(form: Any) -> QueryDict:
    """A form's initial values as submitted data, so the preview of an untouched form is the one it shows."""
    data = QueryDict(mutable=True)
    for name, field in form.fields.items():
        value = form.get_initial_for_field(field, name)
        if value is None or value is False:
            continue
        if isinstance(value, list | tuple):
            data.setlist(name, [str(item) for item in value])
        else:
            data[name] = "on" if value is True else str(value)
    return data


def _example_data(source: Any) -> QueryDict:
    """The example purchase as sent, its missing fields at their initial values."""
    data = _initial_data(PriceExampleForm())
    for name in PriceExampleForm.base_fields:
        if name in source:
            data[name] = source[name]
    return data


def _terms_preview(organisation: Organisation, product_data: Any, example_data: Any) -> dict[str, Any]:
    """The product editor's preview: the price terms in words and an example quote, or the errors that stop
    them (the form's own, then the service's refusal of the policy), in the shape the partial renders."""
    datasets = dataset_list(organisation=organisation)
    form = ProductCreateForm(product_data, datasets=datasets)
    example = PriceExampleForm(_example_data(example_data))
    form.is_valid()
    example.is_valid()
    errors = [str(error) for name in ("__all__", *PRICE_FIELDS) for error in form.errors.get(name, [])]
    errors += [str(error) for errors_of in example.errors.values() for error in errors_of]
    data = form.cleaned_data
    if errors or "price_policy_record" not in data:
        return {"errors": errors or [_("Give the base price and the price per matched record.")]}
    base, per_match = cents_of(data["base_price"]), cents_of(data["price_per_match"])
    try:
        record = product_price_policy_check(record=data["price_policy_record"] or None,
                                            compute_types=data.get("compute_types") or None,
                                            privacy_epsilon=data.get("privacy_epsilon"))
    except ApplicationError as error:
        return {"errors": [error.message]}
    preview: dict[str, Any] = {"errors": [], "terms": policy_terms(record, base_price=base, price_per_match=per_match,
                                                                 money=money),
                               "matched": example.cleaned_data["example_matched"],
                               "ids": example.cleaned_data["example_ids"]}
    chosen = data.get("datasets") or []
    if not chosen:
        preview["hint"] = _("Choose the product's datasets to see an example price: it depends on their quality.")
        return preview
    policy = policy_from_record(record) if record else None
    utility = None
    if isinstance(policy, UtilityBased):
        utility = example.utility()
        preview.update(trial_price=policy.floor, uplift=example.cleaned_data.get("example_uplift"),
                       value_per_point=utility["value_per_auc_point"])
    try:
        quote, _inputs = product_price_example(
            datasets=list(chosen), base_price=base, price_per_match=per_match, policy=record or None,
            matched=preview["matched"], query_size=preview["ids"],
            epsilon=example.cleaned_data.get("example_epsilon"), utility=utility)
    except ValueError as error:
        return {**preview, "errors": [str(error)]}
    fee = quote.total * settings.PLATFORM_FEE_BPS // 10_000
    preview.update(total=quote.total, lines=quote.lines, fee=fee, net=quote.total - fee,
                   fee_rate=settings.PLATFORM_FEE_BPS / 10_000, datasets=len(chosen),
                   epsilon=example.cleaned_data.get("example_epsilon") if policy and policy.kind == "noisy" else None)
    return preview


@login_required
@require_GET
def product_terms_preview(request: HttpRequest) -> HttpResponse:
    """The product editor's live preview (htmx): the terms and an example price for the form as it stands."""
    organisation = member_organisation(request)
    return render(request, "frontend/partials/product_terms_preview.html",
                  {"preview": _terms_preview(organisation, request.GET, request.GET)})


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
        messages.success(request, _("Published %(title)s: it is on sale, and your node registers it on chain under "
                                    "your account.") % {"title": product.title})
    else:
        messages.success(request, _("Drafted %(title)s. Partner providers can now contribute their datasets; "
                                    "publish it from My data when it is complete.") % {"title": product.title})
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
            raise ApplicationError(_("Choose one of the lifecycle statuses."), {"field": "status"})
        product = product_transition(
            product=product, organisation=organisation, status=form.cleaned_data["status"], actor=actor_of(request)
        )
    except ApplicationError as error:
        return _refused(request, organisation, error)
    messages.success(request, TRANSITION_DONE[Product.Status(product.status)] % {"title": product.title})
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
            raise ApplicationError(_("Choose one of your datasets to contribute."), {"field": "dataset"})
        contribution = product_contribute(
            product=product, organisation=organisation, dataset_id=str(form.cleaned_data["dataset"].id),
            actor=actor_of(request),
        )
    except ApplicationError as error:
        return _refused(request, organisation, error)
    messages.success(request, _(
        "%(dataset)s is proposed for %(title)s; once its lead provider accepts, you will share its revenue by "
        "your contribution.") % {"dataset": contribution.dataset.name, "title": product.title})
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
    messages.success(request, _("Contribution accepted.") if accept else _("Contribution rejected and removed."))
    return redirect("console")
