"""Several hosts, for real: the provider's and the consumer's nodes each run in a network namespace of their
own (a host) that reaches the shared broker and the chain RPC and nothing else: not the marketplace's
database. A purchase then runs end to end through the REST API, the broker and the chain.

    root namespace: PostgreSQL, Ganache (127.0.0.1 only), the test's Redis, the marketplace worker
      ├── veth 10.231.A.1/30 ── host "provider": its node   (broker redis://10.231.A.1, RPC via socat)
      └── veth 10.231.B.1/30 ── host "consumer": its node   (broker redis://10.231.B.1, RPC via socat)
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import kombu.pools
import pytest
import redis
from django.conf import settings
from django.db import connection

from audit.chain.client import web3_client
from audit.chain.contracts import contracts_deploy
from audit.chain.devnode import free_port
from audit.chain.registry import asset_owner, grant_state
from compute.models import Node
from config.celery import app as celery_app
from marketplace.models import Dataset
from tests.conftest import node_environment, wait_for
from tests.marketplace.api_flow import run_purchase
from tests.marketplace.data import overlapping_ids
from tests.marketplace.test_purchase_e2e import BrokerTap
from tests.netns import (
    Host,
    free_subnets,
    host_create,
    host_delete,
    listeners,
    netns_unavailable_reason,
    node_process_start,
    process_stop,
    stale_hosts_remove,
    tcp_probe,
)

pytestmark = [pytest.mark.e2e, pytest.mark.chain, pytest.mark.django_db(transaction=True)]

PROVIDER, CONSUMER = "prov-hosts", "cons-hosts"
STEP_TIMEOUT = 60  # each wait of the purchase path; the whole test takes well under two minutes


@dataclass
class Hosts:
    """The test's hosts, its broker (Redis with a password, bound to the hosts' veths and 127.0.0.1) and the
    chain RPC forwarders; what the test starts on them is stopped (by PID) before the hosts go."""

    hosts: dict[str, Host]
    broker_port: int
    broker_password: str
    rpc_port: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def broker_url(self, address: str = "127.0.0.1") -> str:
        return f"redis://:{self.broker_password}@{address}:{self.broker_port}/0"

    def rpc_url(self, slug: str) -> str:
        return f"http://{self.hosts[slug].host_address}:{self.rpc_port}"

    def node_start(self, slug: str, ganache_url: str) -> subprocess.Popen[bytes]:
        """Run the organisation's node on its own host, against the broker and chain as seen from there."""
        host = self.hosts[slug]
        env = node_environment(slug, self.rpc_url(slug)) | {"CELERY_BROKER_URL": self.broker_url(host.host_address)}
        process = node_process_start(Node.objects.get(slug=slug), env=env, prefix=host.prefix)
        self.processes.append(process)
        return process


class SenderTap(BrokerTap):
    """A BrokerTap that also notes, for each message pushed, the client address it came from and its queue."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.pushes: list[tuple[str, str]] = []

    def _listen(self) -> None:
        # A line MONITOR's parser cannot read (ValueError) costs that line, not the rest of the tap.
        for _ in range(1000):
            try:
                with self.client.monitor() as monitor:
                    for command in monitor.listen():
                        text = command.get("command", "")
                        if text.startswith("LPUSH "):
                            self.payloads.append(text)
                            self.pushes.append((command.get("client_address", ""), text.split(" ", 2)[1]))
            except ValueError:
                continue
            except (redis.ConnectionError, OSError):
                return


def _broker_use(url: str) -> None:
    """Point this process's Celery app (and the settings the worker fixture reads) at ``url``."""
    settings.CELERY_BROKER_URL = url
    os.environ["CELERY_BROKER_URL"] = url  # Celery reads the variable before its own setting
    celery_app.conf.broker_url = url
    # Forget pooled connections to the previous broker; the next send connects to the new one. kombu keeps
    # producer pools in a registry of its own too: reset it, or a later send gets a pool closed here.
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
    celery_app._pool = None
    amqp = celery_app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None
    kombu.pools.reset()


def _accepts(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=1).close()
    except OSError:
        return False
    return True


def _started(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as handle:
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture
def hosts(ganache_url: str) -> Iterator[Hosts]:
    """Two hosts (network namespaces) for the provider's and the consumer's nodes, this test's broker and the
    chain RPC forwarded onto each host's veth; all of it removed afterwards, whatever happened."""
    reason = netns_unavailable_reason()
    if reason:
        pytest.skip(f"several hosts need network namespaces: {reason}")
    for tool in ("redis-server", "socat"):
        if shutil.which(tool) is None:
            pytest.skip(f"several hosts need `{tool}` (the hosts' broker and chain RPC forwarder)")
    if connection.vendor != "postgresql":
        pytest.skip("several hosts need the marketplace on PostgreSQL (a server the hosts must not reach)")
    stale_hosts_remove()
    previous_broker, previous_variable = settings.CELERY_BROKER_URL, os.environ.get("CELERY_BROKER_URL")
    created: list[Host] = []
    network: Hosts | None = None
    try:
        for index, subnet in enumerate(free_subnets(2)):
            created.append(host_create(index, subnet))
        network = Hosts(hosts=dict(zip((PROVIDER, CONSUMER), created, strict=True)), broker_port=free_port(),
                        broker_password=secrets.token_hex(16), rpc_port=free_port())
        var = Path(settings.VAR_DIR)
        network.processes.append(_started(
            ["redis-server", "--bind", *[host.host_address for host in created], "127.0.0.1",
             "--port", str(network.broker_port), "--save", "", "--appendonly", "no",
             "--requirepass", network.broker_password],
            var / "redis-hosts-test.log"))
        ganache_port = str(urlparse(ganache_url).port)
        for host in created:
            network.processes.append(_started(
                ["socat", f"TCP-LISTEN:{network.rpc_port},bind={host.host_address},fork,reuseaddr",
                 f"TCP:127.0.0.1:{ganache_port}"],
                var / "socat-hosts-test.log"))
        for host in created:
            wait_for(lambda host=host: _accepts(host.host_address, network.broker_port)
                     and _accepts(host.host_address, network.rpc_port), timeout=15)
        _broker_use(network.broker_url())
        yield network
    finally:
        _broker_use(previous_broker)
        if previous_variable is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = previous_variable
        if network is not None:
            for process in reversed(network.processes):  # nodes first, then the forwarders and the broker
                process_stop(process)
        for host in created:
            host_delete(host)


def test_it_runs_a_purchase_between_nodes_on_their_own_hosts(hosts, ganache_url, make_party, celery_worker_process,
                                                             settings):
    settings.API_RATE_READ = settings.API_RATE_WRITE = None  # the flow polls the API while the nodes work
    provider = make_party(PROVIDER, provider=True)
    consumer = make_party(CONSUMER, provider=False, balance=1_000_000)

    # Each host reaches the broker and the chain RPC on its veth, and the database neither there nor on
    # its own loopback (PostgreSQL listens on the machine's 127.0.0.1 only).
    database_port = int(connection.settings_dict.get("PORT") or 5432)
    for slug, host in hosts.hosts.items():
        reached = tcp_probe(host, [("127.0.0.1", database_port), (host.host_address, database_port),
                                   (host.host_address, hosts.broker_port), (host.host_address, hosts.rpc_port)])
        assert list(reached.values()) == [False, False, True, True], (slug, reached)

    contracts_deploy()  # the operator's deployment record, which the nodes read (CHAIN_DEPLOYMENTS_DIR)
    tap = SenderTap(hosts.broker_url())
    tap.start()
    celery_worker_process([])  # the marketplace's worker, in the root namespace, on the test's broker
    nodes = {slug: hosts.node_start(slug, ganache_url) for slug in (PROVIDER, CONSUMER)}

    def enrolled() -> bool:
        for slug, process in nodes.items():
            assert process.poll() is None, f"node {slug} exited; see {settings.VAR_DIR}/node-{slug}-test.log"
        return Node.objects.filter(slug__in=nodes, status=Node.Status.ENROLLED).count() == len(nodes)

    wait_for(enrolled, timeout=60)
    for slug, host in hosts.hosts.items():
        assert listeners(host) == [], f"node {slug} opened a port: {listeners(host)}"  # it only connects out
    provider_ids, consumer_ids = overlapping_ids(provider=300, consumer=90, overlap=50)

    seen = run_purchase(provider.token, consumer.token, provider_ids, consumer_ids, timeout=STEP_TIMEOUT)

    truth = set(provider_ids) & set(consumer_ids)
    assert seen["quote"]["coverage"] == len(truth)
    assert seen["order"]["status"] == "fulfilled", seen["order"]
    assert sorted(seen["result"].opened["ids"]) == sorted(truth)

    # Each node's chain writes were signed by its own account, from its own host.
    provider_node, consumer_node = Node.objects.get(slug=PROVIDER), Node.objects.get(slug=CONSUMER)
    assert provider_node.chain_address != consumer_node.chain_address
    grant = grant_state(bytes.fromhex(seen["order"]["grants"][0]["grant_id"].removeprefix("0x")))
    assert grant.issuer == provider_node.chain_address
    consume_tx = seen["order"]["jobs"][0]["job"]["consume_tx_hash"]
    assert web3_client().eth.get_transaction(consume_tx)["from"] == provider_node.chain_address
    for dataset, node in ((seen["provider_dataset"], provider_node), (seen["consumer_dataset"], consumer_node)):
        table = Dataset.objects.select_related("table").get(id=dataset["id"]).table
        assert asset_owner(bytes.fromhex(table.chain_asset_id.removeprefix("0x")))[0] == node.chain_address

    # The nodes' messages crossed the broker from their own hosts: to the marketplace and to each other.
    pushes = set(tap.pushes)
    for slug, peer in ((PROVIDER, CONSUMER), (CONSUMER, PROVIDER)):
        address = hosts.hosts[slug].address
        assert (address, "celery") in pushes, (slug, sorted(pushes))
        assert (address, f"node.{peer}") in pushes, (slug, sorted(pushes))
