"""Readable names for the audit log's subjects and actors ("order:<uuid>", "node:acme", "user:alice").

The audit app records generic "kind:id" texts and knows nothing of products or orders; the marketplace, above
it, names them: an order by its product's title, a job by its protocol, an organisation by its name. One query
per kind found, whatever the number of entries. Only the entries a reader may already read are named, and
`api:` subjects (the path of a refused request) are shown as recorded, never resolved, so the names are no
oracle for other parties' ids."""
from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from compute.models import Job, Node, TableImport
from marketplace.models import ApiToken, Dataset, Order, Organisation, Product, Quote

SHORT_ID = 8
UUID_IN_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)

KIND_LABELS = {
    "api": gettext_lazy("API request"),
    "audit-batch": gettext_lazy("Audit batch"),
    "job": gettext_lazy("Job"),
    "node": gettext_lazy("Node"),
    "operator": gettext_lazy("Operator"),
    "order": gettext_lazy("Order"),
    "organisation": gettext_lazy("Organisation"),
    "product": gettext_lazy("Product"),
    "quote": gettext_lazy("Quote"),
    "system": gettext_lazy("System"),
    "table": gettext_lazy("Dataset"),
    "token": gettext_lazy("API token"),
    "usage-receipt": gettext_lazy("Usage receipt"),
    "user": gettext_lazy("User"),
}
# Kinds whose id is shown as the name itself (a username, a request line): nothing to look up.
NAMED_BY_ID = frozenset({"api", "operator", "user"})


@dataclass(frozen=True)
class AuditLabel:
    """How a subject or an actor is shown: its kind, its name, a short id; the full text stays at hand for the
    page's title attribute and copy button."""

    raw: str
    kind: str
    kind_label: str
    name: str = ""
    ident: str = ""
    short: str = ""
    detail: str = ""


def _as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def short_id(ident: str) -> str:
    """The first characters of an id that is long (a UUID, a hash); a short one as it is."""
    if _as_uuid(ident) is not None:
        return ident[:SHORT_ID]
    if ident.startswith("0x") and len(ident) > 12:
        return ident[:10] + "…"
    return ident if len(ident) <= 16 else ident[:14] + "…"


def _parse(raw: str) -> tuple[str, str, str]:
    """(kind, id, detail): "order:<uuid>:run:2" → ("order", "<uuid>", "run 2"); "system" → ("system", "", "")."""
    kind, separator, rest = raw.partition(":")
    if not separator:
        return raw, "", ""
    if kind in NAMED_BY_ID:
        return kind, rest, ""
    ident, _sep, tail = rest.partition(":")
    detail = ""
    if tail:
        name, _sep, number = tail.partition(":")
        detail = _("run %(number)s") % {"number": number} if name == "run" and number else tail
    return kind, ident, detail


def _uuids(idents: Iterable[str]) -> list[uuid.UUID]:
    return [found for found in map(_as_uuid, idents) if found is not None]


def _orders(idents: set[str]) -> dict[str, str]:
    return {str(i): t for i, t in Order.objects.filter(id__in=_uuids(idents)).values_list("id", "product__title")}


def _products(idents: set[str]) -> dict[str, str]:
    return {str(i): t for i, t in Product.objects.filter(id__in=_uuids(idents)).values_list("id", "title")}


def _quotes(idents: set[str]) -> dict[str, str]:
    return {str(i): t for i, t in Quote.objects.filter(id__in=_uuids(idents)).values_list("id", "product__title")}


def _jobs(idents: set[str]) -> dict[str, str]:
    return {str(job.id): job.protocol_label for job in Job.objects.filter(id__in=_uuids(idents)).only("id", "protocol")}


def _tables(idents: set[str]) -> dict[str, str]:
    """A dataset takes its import's id: the dataset's name once imported, the import's while it runs or failed."""
    ids = _uuids(idents)
    names = {str(i): n for i, n in Dataset.objects.filter(id__in=ids).values_list("id", "name")}
    rest = [i for i in ids if str(i) not in names]
    if rest:
        names |= {str(i): n for i, n in TableImport.objects.filter(id__in=rest).values_list("id", "name")}
    return names


def _organisations(idents: set[str]) -> dict[str, str]:
    return dict(Organisation.objects.filter(slug__in=idents).values_list("slug", "name"))


def _nodes(idents: set[str]) -> dict[str, str]:
    return dict(Node.objects.filter(slug__in=idents).values_list("slug", "name"))


def _tokens(idents: set[str]) -> dict[str, str]:
    numbers = [int(ident) for ident in idents if ident.isdigit()]
    return {str(pk): f"{name} ({prefix}…)"
            for pk, name, prefix in ApiToken.objects.filter(pk__in=numbers).values_list("pk", "name", "prefix")}


RESOLVERS: dict[str, Callable[[set[str]], dict[str, str]]] = {
    "order": _orders, "product": _products, "quote": _quotes, "job": _jobs, "table": _tables,
    "organisation": _organisations, "node": _nodes, "token": _tokens,
}
# Kinds named from another kind's rows: a usage receipt is a job's.
NAMED_AS = {"usage-receipt": "job"}


def audit_labels(texts: Iterable[str]) -> dict[str, AuditLabel]:
    """Each distinct subject or actor text with its label; one query per kind that needs a name looked up."""
    parsed = {raw: _parse(raw) for raw in set(texts)}
    wanted: dict[str, set[str]] = defaultdict(set)
    for kind, ident, _detail in parsed.values():
        source = NAMED_AS.get(kind, kind)
        if source in RESOLVERS and ident:
            wanted[source].add(ident)
    names: dict[str, dict[str, str]] = defaultdict(dict)
    for kind, idents in wanted.items():
        names[kind] = RESOLVERS[kind](idents)
    labels = {}
    for raw, (kind, ident, detail) in parsed.items():
        label = KIND_LABELS.get(kind)
        if kind in NAMED_BY_ID:  # shown as recorded, each UUID in it shortened (the full text is the title)
            name = UUID_IN_TEXT.sub(lambda found: found.group()[:SHORT_ID] + "…", ident)
        else:
            name = names[NAMED_AS.get(kind, kind)].get(ident, "")
        labels[raw] = AuditLabel(raw=raw, kind=kind, kind_label=str(label) if label is not None else kind, name=name,
                                 ident="" if kind in NAMED_BY_ID else ident,
                                 short="" if kind in NAMED_BY_ID else short_id(ident), detail=detail)
    return labels
