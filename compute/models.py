"""Nodes (a party's compute agent), the tables in their vaults (metadata only) and compute jobs."""
from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.db import models


class Node(models.Model):
    """One organisation's compute agent: its own vault directory, sealing key pair and chain account.

    Secrets (vault key, sealing private key) live in the node's directory, wrapped with a key-encryption
    key; the database holds only the public half and the chain account (whose key is stored encrypted).
    """

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    sealing_public_key = models.CharField(max_length=64)
    chain_account = models.OneToOneField("audit.ChainAccount", on_delete=models.PROTECT, related_name="node")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.slug

    @property
    def queue(self) -> str:
        return f"node.{self.slug}"

    @property
    def directory(self) -> Path:
        return Path(settings.NODES_DIR) / self.slug


class StoredTable(models.Model):
    """A table held encrypted in a node's vault. Only its metadata is here; the rows never leave the node."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    node = models.ForeignKey(Node, on_delete=models.PROTECT, related_name="tables")
    name = models.CharField(max_length=200)
    id_column = models.CharField(max_length=100)
    columns = models.JSONField(default=list, blank=True)
    row_count = models.PositiveIntegerField()
    quality = models.JSONField(default=dict, blank=True)
    fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.node.slug}/{self.name}"


class Job(models.Model):
    """A privacy-preserving compute job between a consumer's node and a provider's node."""

    class Protocol(models.TextChoices):
        PSI = "psi", "Private set intersection"
        PSI_CARDINALITY = "psi_cardinality", "Private intersection size"

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    protocol = models.CharField(max_length=32, choices=Protocol.choices)
    consumer_table = models.ForeignKey(StoredTable, on_delete=models.PROTECT, related_name="+")
    provider_table = models.ForeignKey(StoredTable, on_delete=models.PROTECT, related_name="+")
    grant_id = models.CharField(max_length=66, blank=True)
    units = models.PositiveIntegerField(default=1)
    min_cohort = models.PositiveIntegerField(default=3, help_text="Release gate: smallest result released.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    step = models.PositiveSmallIntegerField(default=0)
    total_steps = models.PositiveSmallIntegerField(default=3)
    progress = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    result_cardinality = models.PositiveIntegerField(null=True, blank=True)
    result_table = models.ForeignKey(
        StoredTable, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    consume_tx_hash = models.CharField(max_length=66, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.protocol} {self.id}"

    @property
    def consumer_node(self) -> Node:
        return self.consumer_table.node

    @property
    def provider_node(self) -> Node:
        return self.provider_table.node

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.SUCCEEDED, self.Status.FAILED}
