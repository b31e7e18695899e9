"""Reads of the audit log, filtered by who may see what."""
from __future__ import annotations

import operator
from collections.abc import Sequence
from functools import reduce

from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL

from audit.models import AuditBatch, AuditEntry


def _parties_filter(parties: Sequence[str]) -> Q:
    if connection.features.supports_json_field_contains:
        # PostgreSQL: jsonb containment, one term per party.
        return reduce(operator.or_, (Q(parties__contains=[party]) for party in parties))
    # SQLite (the embedded default) has no JSON containment: look inside the array with json_each.
    table = AuditEntry._meta.db_table
    marks = ", ".join(["%s"] * len(parties))
    # Only the table name and placeholders are formatted in; the slugs travel as parameters.
    query = f"SELECT e.id FROM {table} e, json_each(e.parties) p WHERE p.value IN ({marks})"  # noqa: S608
    return Q(pk__in=RawSQL(query, list(parties)))  # noqa: S611


def audit_entry_list(
    *, parties: Sequence[str] | None, subject: str | None = None, action: str | None = None
) -> QuerySet[AuditEntry]:
    """Entries newest first; `parties` None means all entries (operator, auditor), otherwise only
    those shared with at least one of the given organisation slugs."""
    entries = AuditEntry.objects.all()
    if parties is not None:
        if not parties:
            return entries.none()
        entries = entries.filter(_parties_filter(parties))
    if subject:
        entries = entries.filter(subject=subject)
    if action:
        entries = entries.filter(action=action)
    return entries.order_by("-id")


def audit_entry_get(*, entry_id: int, parties: Sequence[str] | None) -> AuditEntry | None:
    """The entry if it exists and is visible to `parties` (None: to everyone), else None."""
    return audit_entry_list(parties=parties).filter(pk=entry_id).select_related("batch").first()


def audit_batch_list() -> QuerySet[AuditBatch]:
    """Sealed batches, newest first, with their anchor transaction."""
    return AuditBatch.objects.select_related("outbox").order_by("-id")
