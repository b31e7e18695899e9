"""The compute engine runs any protocol of the registry: plans expand over a job's parties (a role of
many runs at each of its parties in turn), parties and parameters are checked before a job exists, and the
nodes run the steps with the engine's guards whatever the protocol."""
from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from compute.exceptions import ComputeError
from compute.jobs.services import PartyRequest, job_create
from compute.models import Job
from compute.protocols import registry
from compute.protocols.spec import (
    ParamsError,
    ProtocolSpec,
    Release,
    Role,
    Step,
    StepInput,
    StepOutput,
    no_params,
    parties_check,
    protocol_plan,
)
from tests.conftest import dataset_on_node, wait_for

MASK = 2**64


def _mask(inputs: StepInput) -> StepOutput:
    mask = secrets.randbelow(MASK).to_bytes(8, "big")
    return StepOutput(message=mask, state=mask)


def _add_rows(inputs: StepInput) -> StepOutput:
    running = int.from_bytes(inputs.payload, "big")
    return StepOutput(message=((running + len(set(inputs.data.table().ids()))) % MASK).to_bytes(8, "big"))


def _unmask(inputs: StepInput) -> StepOutput:
    assert inputs.state is not None
    total = (int.from_bytes(inputs.payload, "big") - int.from_bytes(inputs.state, "big")) % MASK
    return StepOutput(release=Release(cohort=total, public={"rows": total}))


def _peek(inputs: StepInput) -> StepOutput:
    inputs.data.table()  # a step that said it touches no data
    return StepOutput(message=b"x")


# A masked ring sum: each provider adds its distinct id count to a running value the consumer masked.
RING = ProtocolSpec(
    name="ring_rows",
    label="Rows across providers",
    roles=(Role("consumer", "masks and unmasks"), Role("provider", "adds its row count", many=True, granted=True)),
    steps=(Step("consumer", "mask", _mask, touches_data=False), Step("provider", "add", _add_rows),
           Step("consumer", "unmask", _unmask, touches_data=False)),
    release_to="consumer",
    releases="The consumer learns the providers' total; each provider a masked running value.",
    grant_required=False,
)
PEEKING = ProtocolSpec(
    name="peeking", label="Peeks", roles=RING.roles,
    steps=(Step("consumer", "peek", _peek, touches_data=False), Step("provider", "add", _add_rows),
           Step("consumer", "unmask", _unmask, touches_data=False)),
    release_to="consumer", releases="-", grant_required=False,
)


@pytest.fixture
def toy_protocols(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(registry.PROTOCOLS, RING.name, RING)
    monkeypatch.setitem(registry.PROTOCOLS, PEEKING.name, PEEKING)
    yield


def test_a_role_of_many_runs_at_each_of_its_parties_in_the_jobs_order():
    plan = protocol_plan(RING, ["provider", "consumer", "provider", "provider"])
    assert [(p.number, p.step.name, p.party) for p in plan] == [
        (1, "mask", 1), (2, "add", 0), (3, "add", 2), (4, "add", 3), (5, "unmask", 1)]


@pytest.mark.parametrize(("roles", "message"), [
    (["consumer"], "needs at least one party as provider"),
    (["consumer", "consumer", "provider"], "needs exactly one party as consumer"),
    (["consumer", "provider", "auditor"], "has no role auditor"),
])
def test_parties_that_do_not_fit_the_spec_are_refused(roles, message):
    with pytest.raises(ParamsError, match=message):
        parties_check(RING, roles)


def test_registry_lists_what_it_runs_and_refuses_the_rest():
    assert {spec.name for spec in registry.protocols_sold()} == {
        "psi", "lookup", "cross_stats", "joint_stats", "joint_cross_stats", "vfl_lr", "vfl_trial"}
    assert registry.protocol_get("psi_cardinality").grant_required is False
    with pytest.raises(registry.UnknownProtocol) as error:
        registry.protocol_get("telepathy")
    assert ("runs coverage_dp, coverage_overlap, cross_stats, joint_cross_stats, joint_stats, lookup, psi, "
            "psi_cardinality" in error.value.message)
    with pytest.raises(ParamsError, match="takes no parameters"):
        no_params({"epsilon": 1})


@pytest.fixture
def three_nodes(make_party):
    consumer = make_party("eng-cons", provider=False)
    providers = [make_party(f"eng-prov-{i}", provider=True) for i in range(2)]
    query = dataset_on_node(organisation=consumer.organisation, name="q",
                            data=b"customer_id\n" + b"".join(f"c{i}\n".encode() for i in range(5)))
    tables = []
    for k, (party, rows) in enumerate(zip(providers, (7, 11), strict=True)):
        data = b"customer_id\n" + b"".join(f"p{k}-{i}\n".encode() for i in range(rows))
        tables.append(dataset_on_node(organisation=party.organisation, name="t", data=data).table)
    return query.table, tables


@pytest.mark.chain
@pytest.mark.django_db(transaction=True)
def test_a_job_spans_several_providers_nodes_and_releases_only_the_total(three_nodes, toy_protocols):
    query, (first, second) = three_nodes
    job = job_create(protocol="ring_rows", parties=[PartyRequest("consumer", query), PartyRequest("provider", first),
                                                    PartyRequest("provider", second)], actor="test")
    assert job.total_steps == 4
    job = wait_for(lambda: Job.objects.filter(id=job.id, status=Job.Status.SUCCEEDED).first(), timeout=30)
    assert job.result == {"rows": 18} and job.result_table is None
    done = [entry for entry in job.progress if entry["event"] == "done"]
    assert [entry["name"] for entry in done] == ["mask", "add", "add", "unmask"]
    assert {node.slug for node in job.nodes} == {"eng-cons", "eng-prov-0", "eng-prov-1"}


@pytest.mark.chain
@pytest.mark.django_db(transaction=True)
def test_a_step_that_declared_no_data_gets_none(three_nodes, toy_protocols):
    query, (first, _) = three_nodes
    job = job_create(protocol="peeking", parties=[PartyRequest("consumer", query), PartyRequest("provider", first)],
                     actor="test")
    job = wait_for(lambda: Job.objects.filter(id=job.id, status=Job.Status.FAILED).first(), timeout=30)
    assert "declared it touches no data" in job.error


@pytest.mark.chain
@pytest.mark.django_db(transaction=True)
def test_a_job_is_checked_before_it_exists(three_nodes):
    query, (first, second) = three_nodes
    cases = [
        ("telepathy", [PartyRequest("consumer", query), PartyRequest("provider", first)], {}, "Unknown protocol"),
        ("psi", [PartyRequest("consumer", query), PartyRequest("provider", first)], {}, "needs a grant"),
        ("psi", [PartyRequest("consumer", query), PartyRequest("provider", first, "0x1"),
                 PartyRequest("provider", second, "0x2")], {}, "exactly one party as provider"),
        ("psi_cardinality", [PartyRequest("consumer", query), PartyRequest("provider", first)], {"k": 1},
         "takes no parameters"),
    ]
    for protocol, parties, params, message in cases:
        with pytest.raises(ComputeError, match=message):
            job_create(protocol=protocol, parties=parties, params=params, actor="test")
    assert not Job.objects.exists()
