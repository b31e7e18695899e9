"""What the compute layer tells upper layers, without importing them."""
from django.dispatch import Signal

# Sent after commit when a job reaches SUCCEEDED or FAILED; kwargs: job.
job_finished = Signal()
