"""What the outbox tells upper layers: sent with sender=ChainOutbox and kwarg `outbox` (the row)."""
from django.dispatch import Signal

# The row's chain write is final (mined with enough confirmations, or found already on chain).
outbox_confirmed = Signal()
# The chain rejected the write for good; `row.last_error` holds the reason.
outbox_failed = Signal()
