"""Suite-wide fixtures: a throwaway Ganache chain for the session."""
from collections.abc import Iterator

import pytest
from django.conf import settings

from audit.chain.devnode import free_port, ganache_start, ganache_stop


@pytest.fixture(scope="session")
def ganache_url() -> Iterator[str]:
    """A fresh Ganache for this test session; settings point at it while it runs."""
    port = free_port()
    log_dir = settings.VAR_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    process = ganache_start(port=port, log_path=log_dir / "ganache-test.log")
    url = f"http://127.0.0.1:{port}"
    previous = settings.CHAIN_RPC_URL
    settings.CHAIN_RPC_URL = url
    try:
        yield url
    finally:
        settings.CHAIN_RPC_URL = previous
        ganache_stop(process)
