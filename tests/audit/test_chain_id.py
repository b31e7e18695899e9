"""A deployment set for one chain refuses an endpoint of another: nothing is written, writes wait in the
outbox as for a chain that is down, and they drain once the endpoint is right."""
import pytest

from audit.chain import client
from audit.chain.client import ChainMisconfigured, chain_id
from audit.chain.errors import ChainUnavailable
from audit.chain.outbox import outbox_process
from audit.models import ChainOutbox
from tests.audit.test_chain_outbox import enqueue_anchor, fresh_batch_id
from tests.contracts.fixtures import *  # noqa: F403 - the chain fixtures
from tests.contracts.fixtures import unique_id

pytestmark = [pytest.mark.chain, pytest.mark.django_db]


def test_a_wrong_chain_id_is_refused_and_writes_wait(operator, settings, monkeypatch):
    actual = chain_id()
    monkeypatch.setattr(client, "_chain_ids", {})
    settings.CHAIN_ID = actual + 1
    with pytest.raises(ChainMisconfigured, match=f"is chain {actual}; this deployment is set for chain {actual + 1}"):
        chain_id()
    assert issubclass(ChainMisconfigured, ChainUnavailable)

    monkeypatch.setattr(client, "_chain_ids", {})
    row = enqueue_anchor(operator, fresh_batch_id(), unique_id("root"))
    with pytest.raises(ChainUnavailable):
        outbox_process(outbox_id=row.pk)
    row.refresh_from_db()
    assert row.status == ChainOutbox.Status.PENDING and "CHAIN_ID" in row.last_error

    settings.CHAIN_ID = actual
    monkeypatch.setattr(client, "_chain_ids", {})
    assert outbox_process(outbox_id=row.pk).status == ChainOutbox.Status.CONFIRMED
