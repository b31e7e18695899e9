"""Invariants of the contracts under random sequences of calls, against a model: a root is anchored once
and never changes; only a grant's issuer consumes or revokes it; consumption never exceeds the quota and a
job is charged to a grant once; a revoked or expired grant never consumes. Each call's outcome (done or
reverted, and which error) must be the model's."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.chain.registry import (
    anchor_read,
    bytes32_hex,
    grant_consume,
    grant_is_charged,
    grant_revoke,
    grant_state,
)
from audit.chain.transactions import ChainRevert, transaction_send
from tests.contracts.fixtures import chain_now, chain_time_travel, grant, unique_id

pytestmark = [pytest.mark.chain, pytest.mark.django_db]

OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just("consume"), st.integers(0, 1), st.booleans(), st.integers(0, 3), st.integers(1, 4)),
    st.tuples(st.just("revoke"), st.integers(0, 1), st.booleans()),
    st.tuples(st.just("travel")),
    st.tuples(st.just("anchor"), st.integers(0, 2)),
), min_size=1, max_size=12)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_random_calls_keep_the_invariants(operations, operator, provider, consumer, registered_asset):
    now = chain_now()
    grants = [unique_id("grant"), unique_id("grant")]
    # The first expires at the first time travel, the second never here. The session's chain is shared:
    # travels are short (a test run moves its clock by minutes, not days).
    lifetimes = [60, 10**6]
    for grant_id, lifetime in zip(grants, lifetimes, strict=True):
        grant(provider, grant=grant_id, asset=registered_asset, grantee=consumer.address, quota=6, lifetime=lifetime)
    model = [{"used": 0, "revoked": False, "expires": now + lifetime} for lifetime in lifetimes]
    jobs = [unique_id("job") for _ in range(4)]
    charged: set[tuple[int, int]] = set()
    batches = [int.from_bytes(unique_id("batch")[:7], "big") for _ in range(3)]
    anchored: dict[int, bytes] = {}

    for operation in operations:
        kind = operation[0]
        if kind == "consume":
            _, which, by_issuer, job, units = operation
            state = model[which]
            expected = ("NotGrantIssuer" if not by_issuer else "GrantRevoked" if state["revoked"]
                        else "GrantExpired" if chain_now() >= state["expires"]
                        else "JobAlreadyCharged" if (which, job) in charged
                        else "QuotaExceeded" if units > 6 - state["used"] else None)
            outcome = _outcome(lambda: grant_consume(account=provider if by_issuer else consumer,  # noqa: B023
                                                     grant_id=grants[which], job_id=jobs[job], units=units))  # noqa: B023
            assert outcome == expected, operation
            if expected is None:
                state["used"] += units
                charged.add((which, job))
        elif kind == "revoke":
            _, which, by_issuer = operation
            expected = "NotGrantIssuer" if not by_issuer else "GrantAlreadyRevoked" if model[which]["revoked"] else None
            outcome = _outcome(lambda: grant_revoke(account=provider if by_issuer else consumer,  # noqa: B023
                                                    grant_id=grants[which]))  # noqa: B023
            assert outcome == expected, operation
            model[which]["revoked"] |= expected is None
        elif kind == "travel":
            chain_time_travel(90)
        else:
            batch = batches[operation[1]]
            root = unique_id("root")
            outcome = _outcome(lambda: transaction_send(account=operator, contract="AuditAnchor",  # noqa: B023
                                                        function="anchor", args=[batch, bytes32_hex(root), 3]))  # noqa: B023
            assert outcome == ("BatchAlreadyAnchored" if batch in anchored else None), operation
            anchored.setdefault(batch, root)
        for which, grant_id in enumerate(grants):  # after every call, the chain is the model
            on_chain = grant_state(grant_id)
            assert (on_chain.used, on_chain.revoked) == (model[which]["used"], model[which]["revoked"])
            assert on_chain.used <= on_chain.quota
            for job, job_id in enumerate(jobs):
                assert grant_is_charged(grant_id, job_id) == ((which, job) in charged)
        for batch, root in anchored.items():
            assert anchor_read(batch) == (root, 3)


def _outcome(call) -> str | None:
    try:
        call()
    except ChainRevert as revert:
        return revert.error
    return None
