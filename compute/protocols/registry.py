"""Which role runs each step of a protocol: the node runs the steps of the roles it holds, and the
marketplace sends a job's first step to the party of the first step's role."""
from __future__ import annotations

PROTOCOLS: dict[str, dict[int, str]] = {
    # ECDH PSI (compute.protocols.psi): the consumer blinds, the provider answers, the consumer matches.
    "psi": {1: "consumer", 2: "provider", 3: "consumer"},
    "psi_cardinality": {1: "consumer", 2: "provider", 3: "consumer"},
}
STEP_NAMES: dict[str, dict[int, str]] = {
    "psi": {1: "blind the consumer's ids", 2: "provider answers", 3: "intersect and release"},
    "psi_cardinality": {1: "blind the consumer's ids", 2: "provider answers", 3: "count and release"},
}


def protocol_steps(protocol: str) -> dict[int, str]:
    try:
        return PROTOCOLS[protocol]
    except KeyError:
        raise ValueError(f"unknown protocol {protocol!r}") from None


def protocol_step_role(protocol: str, step: int) -> str:
    return protocol_steps(protocol)[step]
