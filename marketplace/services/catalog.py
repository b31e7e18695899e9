"""Datasets (imported into the organisation's own node) and products listed on the marketplace."""
from __future__ import annotations

from django.db import transaction

from audit.chain.outbox import outbox_enqueue
from audit.chain.registry import asset_id
from audit.services import audit_record
from compute.exceptions import DataImportError
from compute.services import table_import
from marketplace.exceptions import ApplicationError, NotFound, PermissionDenied
from marketplace.models import Dataset, Organisation, Product

MAX_UPLOAD_BYTES = 50 * 1024 * 1024


@transaction.atomic
def dataset_import(
    *, organisation: Organisation, name: str, data: bytes, id_column: str, description: str = "", actor: str
) -> Dataset:
    """Import a CSV into the organisation's own node vault; the marketplace keeps only its metadata."""
    if not name.strip():
        raise ApplicationError("A dataset needs a name.", {"field": "name"})
    if len(data) > MAX_UPLOAD_BYTES:
        raise ApplicationError(f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
    try:
        table = table_import(node=organisation.node, name=name, data=data, id_column=id_column, actor=actor)
    except DataImportError as exc:
        raise ApplicationError(exc.message, {"field": "file"}) from exc
    dataset = Dataset.objects.create(organisation=organisation, table=table, name=name, description=description)
    return dataset


@transaction.atomic
def product_create(
    *,
    provider: Organisation,
    dataset_id: str,
    title: str,
    description: str,
    purposes: list[str],
    base_price: int,
    price_per_match: int,
    quota: int,
    validity_days: int,
    actor: str,
) -> Product:
    """List and publish a product over one of the provider's datasets, and register it on chain
    under the provider's account (through the outbox)."""
    if not provider.is_provider:
        raise PermissionDenied("Only provider organisations can list products.")
    dataset = Dataset.objects.filter(id=dataset_id, organisation=provider).select_related("table").first()
    if dataset is None:
        raise NotFound("Dataset not found.", {"field": "dataset"})
    if not purposes or any(p not in Product.Purpose.values for p in purposes):
        raise ApplicationError(
            "Choose at least one purpose from the allowed list.", {"allowed": list(Product.Purpose.values)}
        )
    if quota < 1 or validity_days < 1:
        raise ApplicationError("Quota and validity must be at least 1.")
    product = Product(
        provider=provider,
        dataset=dataset,
        title=title,
        description=description,
        compute_types=["psi"],
        purposes=sorted(set(purposes)),
        base_price=base_price,
        price_per_match=price_per_match,
        quota=quota,
        validity_days=validity_days,
        status=Product.Status.PUBLISHED,
    )
    product.full_clean()
    product.save()
    product.chain_asset_id = "0x" + asset_id(f"product:{product.id}").hex()
    product.save(update_fields=["chain_asset_id"])
    outbox_enqueue(
        account=provider.node.chain_account,
        contract="DataRegistry",
        function="register",
        args=[product.chain_asset_id, "0x" + dataset.table.fingerprint],
        subject=f"product:{product.id}",
    )
    audit_record(
        actor=actor,
        action="product.published",
        subject=f"product:{product.id}",
        payload={"dataset": str(dataset.id), "fingerprint": dataset.table.fingerprint, "quota": quota},
        parties=[provider.slug],
    )
    return product
