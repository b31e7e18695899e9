"""Chain accounts (keys encrypted at rest) and the transactional outbox of chain writes."""
from __future__ import annotations

from django.db import models


class ChainAccount(models.Model):
    """An EVM account whose private key is held here, AES-GCM encrypted (see audit.chain.accounts)."""

    address = models.CharField(max_length=42, unique=True, help_text="EIP-55 checksum address")
    label = models.CharField(max_length=200, blank=True)
    key_ciphertext = models.BinaryField(help_text="nonce ‖ AES-GCM(private key), AAD = address")
    # The next nonce this database will hand out; the chain's pending count wins when it is higher.
    next_nonce = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.label or 'account'} {self.address}"


class ChainOutbox(models.Model):
    """One chain write, recorded in the same DB transaction as the business change that needs it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        CONFIRMED = "confirmed", "Confirmed"
        FAILED = "failed", "Failed"

    account = models.ForeignKey(ChainAccount, on_delete=models.PROTECT, related_name="outbox")
    contract = models.CharField(max_length=64)
    function = models.CharField(max_length=64)
    args = models.JSONField(default=list, help_text="bytes32 as 0x-hex, ints, checksum addresses")
    subject = models.CharField(max_length=200, db_index=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    nonce = models.BigIntegerField(null=True, blank=True)
    raw_tx = models.BinaryField(null=True, blank=True)
    tx_hash = models.CharField(max_length=66, blank=True, db_index=True)
    # When the node first took the current bytes; a receipt late past CHAIN_REPLACE_AFTER replaces them.
    sent_at = models.DateTimeField(null=True, blank=True)
    # Earlier signings of this write with the same nonce, replaced by a fee bump: any of them may
    # still be the one mined, so each is looked for until one is.
    replaced_hashes = models.JSONField(default=list, blank=True)
    block_number = models.BigIntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    event = models.JSONField(null=True, blank=True, help_text="decoded event of the receipt")
    # A worker owns the row until this instant (claimed by a conditional UPDATE); then anyone may.
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["account", "status", "id"], name="audit_outbox_acct_status")]

    def __str__(self) -> str:
        return f"{self.contract}.{self.function} [{self.status}] {self.subject}"
