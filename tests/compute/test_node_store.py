"""The node's local store: idempotency records that are kept as long as a replay could matter."""
from compute.node.store import NodeStore


def test_the_store_forgets_only_what_is_too_old_to_be_replayed(tmp_path):
    store = NodeStore(tmp_path / "node.sqlite3")
    store.processed_add("old", "job.step")
    store.outputs_put("job.step:old", [{"queue": "celery", "envelope": {}}])
    assert store.prune(older_than=3600) == 0
    assert store.prune(older_than=-1) == 2
    assert not store.processed("old") and store.outputs_get("job.step:old") is None
