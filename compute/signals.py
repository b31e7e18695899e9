"""What the compute layer tells upper layers, without importing them."""
from django.dispatch import Signal

# A job reached SUCCEEDED or FAILED (sent after commit); kwargs: job.
job_finished = Signal()
# A node imported a table (kwargs: table, request — the TableImport, or None for an import from the
# node's own host) or refused an import (kwargs: table=None, request with its error). Sent inside the
# transaction that records it, so what a receiver writes commits with it.
table_import_finished = Signal()
# A node answered a chain write request (sent after commit); kwargs: node, subject, ok (bool), tx_hash,
# asset_id, reason.
chain_write_reported = Signal()
