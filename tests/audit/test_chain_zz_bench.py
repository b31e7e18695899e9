import time
import pytest
from audit.chain.outbox import outbox_process
from audit.models import ChainOutbox
from audit.chain.registry import bytes32_hex
from tests.contracts.fixtures import *  # noqa
from tests.contracts.fixtures import register, unique_id

@pytest.mark.django_db
def test_bench(provider, operator):
    register(provider, unique_id("warm"))
    t = time.monotonic()
    for _ in range(100):
        register(provider, unique_id("a"))
    seq = time.monotonic() - t
    rows = [ChainOutbox.objects.create(account=operator, contract="AuditAnchor", function="anchor",
            args=[i + 10**9, bytes32_hex(unique_id("r")), 5]) for i in range(100)]
    t = time.monotonic()
    outbox_process(outbox_id=rows[-1].pk)
    ob = time.monotonic() - t
    assert all(r.status == "confirmed" for r in ChainOutbox.objects.filter(pk__in=[r.pk for r in rows]))
    print(f"\nBENCH transaction_send sequential: {100/seq:.0f} tx/s; outbox 100 rows: {100/ob:.0f} rows/s")
