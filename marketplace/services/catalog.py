"""Datasets (imported into the organisation's own node) and products listed over them.

A product is drafted by its lead provider over its own datasets; partner providers may contribute
their datasets while it is a draft (a joint product, whose revenue is shared); publishing registers
the product's fingerprint on chain. Draft → published ⇄ suspended → retired; only published products sell.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit.chain.registry import asset_id, owned_asset_id
from audit.merkle import leaf_hash, merkle_root
from audit.services import audit_record
from compute.exceptions import ComputeError
from compute.jobs.services import chain_write_request, table_import_request
from compute.models import Node, StoredTable, TableImport
from compute.protocols.ids import DEFAULT_ID_RULE, ID_RULES
from compute.protocols.registry import protocol_get, protocols_sold
from marketplace.chain_subjects import Subject, SubjectKind
from marketplace.exceptions import ApplicationError, Conflict, NotFound, PermissionDenied
from marketplace.models import Dataset, Organisation, Product, ProductDataset
from marketplace.services.modelling import MODELLING
from marketplace.synthetic import synthetic_rows
from pricing.policies import PolicyError
from pricing.policy import policy_check

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_TAGS = 10
TRANSITIONS = {
    Product.Status.DRAFT: {Product.Status.PUBLISHED, Product.Status.RETIRED},
    Product.Status.PUBLISHED: {Product.Status.SUSPENDED, Product.Status.RETIRED},
    Product.Status.SUSPENDED: {Product.Status.PUBLISHED, Product.Status.RETIRED},
    Product.Status.RETIRED: set(),
}


@transaction.atomic
def dataset_import(
    *, organisation: Organisation, name: str, sealed_file: bytes, id_column: str, description: str = "", actor: str
) -> TableImport:
    """Relay a file that its uploader sealed to the organisation's node key: the marketplace cannot open
    it; the node imports it into its vault and reports the metadata, which becomes the dataset (with the
    import's id), or reports why it refused the file."""
    if not name.strip():
        raise ApplicationError(_("A dataset needs a name."), {"field": "name"})
    if len(sealed_file) > MAX_UPLOAD_BYTES + 48:
        raise ApplicationError(_("The file is larger than %(megabytes)s MB.") % {
            "megabytes": MAX_UPLOAD_BYTES // (1024 * 1024)}, {"field": "file"})
    try:
        # Only a provider's table is profiled (its products' synthetic preview); a buyer's publishes no profile.
        return table_import_request(node=organisation.node, name=name, id_column=id_column, sealed_file=sealed_file,
                                    description=description, actor=actor, profiled=organisation.is_provider)
    except ComputeError as exc:
        raise ApplicationError(exc.message, {"field": "sealed_file"}) from exc


def dataset_from_import(*, table: StoredTable, request: TableImport | None) -> Dataset | None:
    """The dataset of a table a node imported (uploaded through the marketplace, or from the node's host)."""
    organisation = Organisation.objects.filter(node=table.node).first()
    if organisation is None or table.kind != StoredTable.Kind.IMPORTED:
        return None
    existing = Dataset.objects.filter(table=table).first()
    if existing is not None:
        return existing
    return Dataset.objects.create(
        id=request.id if request is not None else table.id, organisation=organisation, table=table,
        name=request.name if request is not None else table.name,
        description=request.description if request is not None else "",
    )


def sample_preview(table: StoredTable, *, rows: int = 3) -> list[dict[str, Any]]:
    """Synthetic rows drawn from the table's published column profiles (``marketplace/synthetic.py``): never
    from a real row, which the marketplace does not hold; the same table gives the same rows."""
    completeness = {str(column["name"]): float(column.get("completeness", 1.0))
                    for column in (table.quality or {}).get("columns", [])}
    return synthetic_rows(table.columns, id_column=table.id_column, rows=rows, seed=table.fingerprint,
                          completeness=completeness)


def _clean_terms(*, purposes: list[str], tags: list[str], quota: int, validity_days: int, min_cohort: int) -> None:
    if not purposes or any(p not in Product.Purpose.values for p in purposes):
        raise ApplicationError(
            _("Choose at least one purpose from the allowed list."), {"allowed": list(Product.Purpose.values)}
        )
    if len(tags) > MAX_TAGS or any(not tag.strip() or len(tag) > 40 for tag in tags):
        raise ApplicationError(_("Up to %(count)s tags of 1-40 characters.") % {"count": MAX_TAGS}, {"field": "tags"})
    if quota < 1 or validity_days < 1 or min_cohort < 1:
        raise ApplicationError(_("Quota, validity and minimum cohort must be at least 1."))


def _clean_compute_types(compute_types: list[str] | None) -> list[str]:
    """The protocols a product sells: names of sold protocols in the registry (by default those offered
    unless a product says otherwise: a private set intersection)."""
    sold = [spec.name for spec in protocols_sold()]
    if compute_types is None:
        return [spec.name for spec in protocols_sold() if spec.default_offer]
    chosen = list(dict.fromkeys(compute_types))
    unknown = [name for name in chosen if name not in sold]
    if not chosen or unknown:
        raise ApplicationError(
            _("Not a compute type this marketplace sells: %(names)s.") % {"names": ", ".join(unknown)} if unknown
            else _("Choose at least one compute type."), {"field": "compute_types", "allowed": sold})
    return chosen


def _clean_price_policy(record: dict[str, Any] | None, *, compute_types: list[str],
                        privacy_epsilon: Decimal | None) -> dict[str, Any]:
    """The product's price policy as recorded (`Policy.as_record`), or {} for the default one."""
    if not record:
        return {}
    if not isinstance(record, dict):
        raise ApplicationError(_("The price policy is an object with a \"kind\"."), {"field": "price_policy"})
    budgeted = privacy_epsilon is not None and all(protocol_get(name).budgeted for name in compute_types)
    try:
        return policy_check(record, budgeted=budgeted, trialled=set(compute_types) == set(MODELLING)).as_record()
    except PolicyError as error:
        raise ApplicationError(_("Price policy: %(problem)s.") % {"problem": error.translated()},
                               {"field": "price_policy"}) from error
    except (ValueError, ArithmeticError) as error:
        raise ApplicationError(_("Price policy: %(problem)s.") % {"problem": error},
                               {"field": "price_policy"}) from error


def product_price_policy_check(*, record: dict[str, Any] | None, compute_types: list[str] | None,
                               privacy_epsilon: Decimal | None) -> dict[str, Any]:
    """The price policy a product with these terms would be created with, refused as `product_create` refuses
    it (the product editor's preview says so before the provider submits)."""
    return _clean_price_policy(record, compute_types=_clean_compute_types(compute_types),
                               privacy_epsilon=privacy_epsilon)


@transaction.atomic
def product_create(
    *,
    provider: Organisation,
    dataset_ids: list[str],
    title: str,
    description: str,
    purposes: list[str],
    base_price: int,
    price_per_match: int,
    quota: int,
    validity_days: int,
    actor: str,
    category: str = Product.Category.OTHER,
    tags: list[str] | None = None,
    min_cohort: int = 3,
    compute_types: list[str] | None = None,
    id_rule: str = DEFAULT_ID_RULE,
    privacy_epsilon: Decimal | None = None,
    price_policy: dict[str, Any] | None = None,
    publish: bool = False,
) -> Product:
    """Draft a product over some of the provider's own datasets (and publish it at once if asked)."""
    if not provider.is_provider:
        raise PermissionDenied(gettext_lazy("Only provider organisations can list products."))
    tags = sorted({tag.strip().lower() for tag in (tags or [])})
    _clean_terms(purposes=purposes, tags=tags, quota=quota, validity_days=validity_days, min_cohort=min_cohort)
    compute_types = _clean_compute_types(compute_types)
    if id_rule not in ID_RULES:
        raise ApplicationError(_("Unknown id rule %(rule)s.") % {"rule": repr(id_rule)},
                               {"field": "id_rule", "allowed": list(ID_RULES)})
    if category not in Product.Category.values:
        raise ApplicationError(_("Unknown category."), {"allowed": list(Product.Category.values)})
    if privacy_epsilon is not None and not Decimal("0.001") <= Decimal(privacy_epsilon) <= Decimal(100_000):
        raise ApplicationError(_("The privacy budget ε is from 0.001 to 100,000 (or none)."),
                               {"field": "privacy_epsilon"})
    price_policy = _clean_price_policy(price_policy, compute_types=compute_types, privacy_epsilon=privacy_epsilon)
    if not dataset_ids:
        raise ApplicationError(_("A product needs at least one dataset."), {"field": "datasets"})
    datasets = list(Dataset.objects.filter(id__in=dataset_ids, organisation=provider).select_related("table"))
    if len(datasets) != len(set(map(str, dataset_ids))):
        raise NotFound(gettext_lazy("Dataset not found among your datasets."), {"field": "datasets"})
    first = datasets[0].table
    product = Product(
        provider=provider,
        title=title,
        description=description,
        category=category,
        tags=tags,
        compute_types=compute_types,
        id_rule=id_rule,
        privacy_epsilon=privacy_epsilon,
        purposes=sorted(set(purposes)),
        base_price=base_price,
        price_per_match=price_per_match,
        price_policy=price_policy,
        quota=quota,
        validity_days=validity_days,
        min_cohort=min_cohort,
        sample_preview=sample_preview(first),
    )
    product.full_clean()
    product.save()
    for dataset in datasets:
        ProductDataset.objects.create(product=product, dataset=dataset, accepted=True)
    audit_record(
        actor=actor, action="product.drafted", subject=f"product:{product.id}",
        payload={"datasets": sorted(str(d.id) for d in datasets)}, parties=[provider.slug],
    )
    if publish:
        # The published product, as the transition saved it, so the caller sees its real status.
        product = product_transition(product=product, organisation=provider, status=Product.Status.PUBLISHED,
                                     actor=actor)
    return product


@transaction.atomic
def product_contribute(*, product: Product, organisation: Organisation, dataset_id: str, actor: str) -> ProductDataset:
    """A partner provider proposes one of its own datasets for a draft product (a joint product); it
    counts, and shares revenue, only once the lead provider accepts it."""
    product = Product.objects.select_for_update().get(id=product.id)
    if not organisation.is_provider:
        raise PermissionDenied(gettext_lazy("Only providers can contribute datasets."))
    if product.status != Product.Status.DRAFT:
        raise Conflict(_("Datasets can be added only while the product is a draft."))
    dataset = Dataset.objects.filter(id=dataset_id, organisation=organisation).first()
    if dataset is None:
        raise NotFound(gettext_lazy("Dataset not found among your datasets."), {"field": "dataset"})
    if ProductDataset.objects.filter(product=product, dataset=dataset).exists():
        raise Conflict(_("This dataset already contributes to the product."))
    contribution = ProductDataset.objects.create(product=product, dataset=dataset, accepted=False)
    audit_record(
        actor=actor, action="product.contributed", subject=f"product:{product.id}",
        payload={"dataset": str(dataset.id), "provider": organisation.slug},
        parties=sorted({product.provider.slug, organisation.slug}),
    )
    return contribution


@transaction.atomic
def product_contribution_decide(
    *, product: Product, organisation: Organisation, contribution_id: int, accept: bool, actor: str
) -> ProductDataset | None:
    """The lead provider accepts a proposed contribution to its draft, or rejects (removes) it."""
    product = Product.objects.select_for_update().get(id=product.id)
    if product.provider_id != organisation.id:
        raise PermissionDenied(gettext_lazy("Only the product's lead provider decides on contributions."))
    if product.status != Product.Status.DRAFT:
        raise Conflict(_("Contributions are decided while the product is a draft."))
    contribution = product.contributions.select_related("dataset__organisation").filter(id=contribution_id).first()
    if contribution is None:
        raise NotFound(gettext_lazy("Contribution not found."), {"field": "contribution"})
    partner = contribution.dataset.organisation.slug
    if accept:
        contribution.accepted = True
        contribution.save(update_fields=["accepted"])
    else:
        if contribution.dataset.organisation_id == organisation.id:
            raise Conflict(_("Your own datasets are part of the product; draft a new product to change them."))
        contribution.delete()
    audit_record(
        actor=actor, action="product.contribution_accepted" if accept else "product.contribution_rejected",
        subject=f"product:{product.id}", payload={"dataset": str(contribution.dataset_id), "provider": partner},
        parties=sorted({organisation.slug, partner}),
    )
    return contribution if accept else None


def product_fingerprint(product: Product) -> str:
    """Merkle root over the fingerprints of the contributing datasets, in contribution order."""
    fingerprints = [bytes.fromhex(c.dataset.table.fingerprint) for c in product.contributions.select_related(
        "dataset__table")]
    return merkle_root([leaf_hash(value) for value in fingerprints]).hex()


@transaction.atomic
def product_transition(*, product: Product, organisation: Organisation, status: str, actor: str) -> Product:
    """Move a product through its lifecycle; publishing the first time registers it on chain."""
    product = Product.objects.select_for_update(of=("self",)).select_related("provider__node").get(id=product.id)
    if product.provider_id != organisation.id:
        raise PermissionDenied(gettext_lazy("Only the product's lead provider can change its status."))
    if status not in TRANSITIONS.get(Product.Status(product.status), set()):
        raise Conflict(_("A %(current)s product cannot become %(status)s.") % {"current": product.status,
                                                                             "status": status})
    if status == Product.Status.PUBLISHED and product.contributions.filter(accepted=False).exists():
        raise Conflict(_("Accept or reject the pending contributions before publishing."))
    if status == Product.Status.PUBLISHED and not product.chain_asset_id:
        if product.provider.node.status != Node.Status.ENROLLED:
            raise Conflict(_("Your node has not enrolled yet: start it with its enrolment token, then publish."))
        # The provider's node registers the product under its own account (asset ids are owner-bound).
        node = product.provider.node
        local_text = f"product:{product.id}"
        product.chain_asset_id = "0x" + owned_asset_id(node.chain_address, asset_id(local_text)).hex()
        chain_write_request(node=node, kind="asset.register",
                            subject=str(Subject(SubjectKind.PRODUCT, str(product.id))),
                            body={"local_text": local_text, "fingerprint": product_fingerprint(product)})
    previous = product.status
    product.status = status
    product.save(update_fields=["status", "chain_asset_id", "updated_at"])
    providers = sorted({c.dataset.organisation.slug for c in product.contributions.select_related(
        "dataset__organisation")})
    audit_record(
        actor=actor, action=f"product.{status}", subject=f"product:{product.id}",
        payload={"from": previous, "to": status}, parties=providers,
    )
    return product
