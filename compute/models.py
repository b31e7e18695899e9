"""The marketplace's view of compute: nodes (public keys only), the tables in their vaults (metadata only),
relayed imports and sealed result exports, and jobs, updated from the nodes' signed messages."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext

from compute.protocols.ids import DEFAULT_ID_RULE
from compute.protocols.registry import PROTOCOLS


class Node(models.Model):
    """An organisation's compute agent as the marketplace knows it: public keys and a chain address.

    The node runs at the organisation, generates its own secrets and keeps them; it enrols with a one-time
    token (only its digest is stored here) by sending its public keys, signed with its signing key.
    """

    class Status(models.TextChoices):
        AWAITING = "awaiting", "Awaiting enrolment"
        ENROLLED = "enrolled", "Enrolled"

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.AWAITING)
    sealing_public_key = models.CharField(max_length=64, blank=True)
    signing_public_key = models.CharField(max_length=64, blank=True)
    chain_address = models.CharField(max_length=42, blank=True)
    enrol_token_digest = models.CharField(max_length=64, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.slug

    @property
    def queue(self) -> str:
        return f"node.{self.slug}"

    @property
    def is_online(self) -> bool:
        """Heard from within settings.NODE_OFFLINE_SECONDS (nodes say hello every ~20 s)."""
        if self.status != self.Status.ENROLLED or self.last_seen is None:
            return False
        return (timezone.now() - self.last_seen).total_seconds() <= settings.NODE_OFFLINE_SECONDS


class StoredTable(models.Model):
    """A table held encrypted in a node's vault. Only its metadata is here; the rows never leave the node."""

    class Kind(models.TextChoices):
        IMPORTED = "imported"
        RESULT = "result"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False, help_text="Given by the node.")
    node = models.ForeignKey(Node, on_delete=models.PROTECT, related_name="tables")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.IMPORTED)
    name = models.CharField(max_length=200)
    id_column = models.CharField(max_length=100)
    columns = models.JSONField(default=list, blank=True)
    row_count = models.PositiveIntegerField()
    quality = models.JSONField(default=dict, blank=True)
    fingerprint = models.CharField(max_length=64)
    chain_asset_id = models.CharField(max_length=66, blank=True, help_text="Owner-bound id in DataRegistry.")
    register_tx = models.CharField(max_length=66, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.node.slug}/{self.name}"


class TableImport(models.Model):
    """A file sealed to a node by its uploader, relayed to the node to import (the marketplace cannot open
    it). Its id becomes the table's id (and the dataset's) once the node reports the import."""

    class Status(models.TextChoices):
        IMPORTING = "importing"
        IMPORTED = "imported"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    node = models.ForeignKey(Node, on_delete=models.PROTECT, related_name="imports")
    name = models.CharField(max_length=200)
    id_column = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    actor = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.IMPORTING)
    error = models.TextField(blank=True)
    table = models.OneToOneField(StoredTable, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"import {self.id} ({self.status})"


class ResultExport(models.Model):
    """Result tables of a node, sealed by that node to a public key its buyer holds: the marketplace keeps
    and relays the sealed bytes and cannot open them."""

    class Status(models.TextChoices):
        SEALING = "sealing"
        READY = "ready"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    node = models.ForeignKey(Node, on_delete=models.PROTECT, related_name="exports")
    subject = models.CharField(max_length=200, db_index=True, help_text="What the export is of, e.g. order:<id>.")
    tables = models.JSONField(default=list)
    public_key = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SEALING)
    sealed = models.BinaryField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"export {self.id} of {self.subject} ({self.status})"


class NodeMessage(models.Model):
    """Each message the marketplace accepted from a node, once: a redelivered one is recognised here."""

    nonce = models.CharField(max_length=32, unique=True)
    sender = models.CharField(max_length=50)
    kind = models.CharField(max_length=32)
    job = models.CharField(max_length=36, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.kind} from {self.sender}"


class Job(models.Model):
    """A privacy-preserving compute job among the nodes of its parties (``JobParty``: a role and a table
    each), running a protocol of the registry (``compute.protocols.registry``)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    class Caller(models.TextChoices):
        """Who asked for the job, so that its end is routed back by a typed key."""

        QUOTE = "quote", "A quote's measurement"
        ORDER = "order", "An order's run"
        OTHER = "other", "Other"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    protocol = models.CharField(max_length=32, help_text="A name in the protocol registry.")
    params = models.JSONField(default=dict, blank=True, help_text="The protocol's parameters, as it checked them.")
    caller = models.CharField(max_length=16, choices=Caller.choices, default=Caller.OTHER)
    units = models.PositiveIntegerField(default=1)
    min_cohort = models.PositiveIntegerField(default=3, help_text="Release gate: smallest result released.")
    id_rule = models.CharField(max_length=16, default=DEFAULT_ID_RULE, help_text="How both nodes normalise ids.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    step = models.PositiveSmallIntegerField(default=0)
    total_steps = models.PositiveSmallIntegerField(default=3)
    progress = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True, help_text="What the protocol makes public of its result.")
    result_cardinality = models.PositiveIntegerField(null=True, blank=True)
    result_table = models.ForeignKey(
        StoredTable, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    consume_tx_hash = models.CharField(max_length=66, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.protocol} {self.id}"

    @property
    def protocol_label(self) -> str:
        spec = PROTOCOLS.get(self.protocol)
        return gettext(spec.label) if spec is not None else self.protocol

    def party_list(self) -> list[JobParty]:
        """The parties in their order (prefetch ``parties__table__node`` to read them without queries)."""
        return sorted(self.parties.all(), key=lambda party: party.position)

    def tables_of(self, role: str) -> list[StoredTable]:
        return [party.table for party in self.party_list() if party.role == role]

    def table_of(self, role: str) -> StoredTable:
        """The table of the one party of ``role`` (the first, for a role of many)."""
        tables = self.tables_of(role)
        if not tables:
            raise LookupError(f"job {self.id} has no {role}")
        return tables[0]

    @property
    def nodes(self) -> list[Node]:
        return list({party.table.node_id: party.table.node for party in self.party_list()}.values())

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.SUCCEEDED, self.Status.FAILED}


class JobParty(models.Model):
    """One party of a job: the role it plays in the protocol, the table it brings, and the grant (issued
    by that table's node) under which the table is used."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="parties")
    position = models.PositiveSmallIntegerField()
    role = models.CharField(max_length=32)
    table = models.ForeignKey(StoredTable, on_delete=models.PROTECT, related_name="+")
    grant_id = models.CharField(max_length=66, blank=True)

    class Meta:
        ordering = ["job", "position"]
        constraints = [models.UniqueConstraint(fields=["job", "position"], name="job_party_position_once")]

    def __str__(self) -> str:
        return f"{self.role} {self.table_id} of job {self.job_id}"

    @property
    def node(self) -> Node:
        return self.table.node
