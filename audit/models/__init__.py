"""Audit models: the hash-chained log and its Merkle batches (log.py), chain accounts and the
transaction outbox (chain.py)."""
from audit.models.chain import ChainAccount, ChainOutbox  # noqa: F401
from audit.models.log import AuditBatch, AuditEntry  # noqa: F401
