"""Audit models: the hash-chained log and its Merkle batches (log.py), chain accounts and the
transaction outbox (chain.py)."""
