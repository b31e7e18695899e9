"""Private set intersection over a direct link between the two nodes, for volume: the same roles, the same
release and the same result as ``psi`` (compute/protocols/psi.py), computed by SecretFlow's OT-based PSI
engine (RR22, in .venv-spu) instead of ECDH messages relayed through the broker.

    1. consumer:  (guarded first, as every step that touches data) listens on its direct-link host for the
                  job's one peer, with a fresh session key, and sends the rendezvous (address, key, the size
                  of its set) to the provider, sealed like every step message
    2. provider:  (guarded first: its grant is consumed on chain before it dials) dials, proves the key and
                  checks the consumer's proof, runs the engine as the sender; answers that it is done
    3. consumer:  takes the intersection its engine received and releases it exactly as ``psi`` does

Only the rendezvous and the provider's "done" travel through the broker; the PSI's own messages go over the
link (docs/protocols.md, "PSI over a direct link"). RR22 gives the receiver (the consumer) the intersection
and each side the other's set size, like ``psi``. A set that is empty on either side is not given to the
engine (it cannot take one): the other side learns it is empty, as the relay's set sizes tell it too.

This module also holds the parameter that chooses between the two transports for a ``psi`` purchase,
``psi_transport`` ("auto", "relay" or "direct"); the marketplace resolves it per job
(marketplace/services/psi_transport.py).
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from django.utils.translation import gettext_noop

from compute.direct import session
from compute.direct.config import direct_config, engine_available
from compute.direct.engine import EngineError
from compute.exceptions import ComputeError
from compute.protocols import psi
from compute.protocols.spec import (
    ParamsError,
    ProtocolSpec,
    Release,
    Step,
    StepInput,
    StepOutput,
    TableSchema,
    cohort_check,
    party_ids,
)

TRANSPORTS = ("auto", "relay", "direct")
_VERSION = 1


def psi_transport_params(params: Mapping[str, Any], schemas: Mapping[str, Sequence[TableSchema]] | None = None,
                         ) -> dict[str, Any]:
    """A PSI's one parameter: ``psi_transport``, how the buyer wants it run ("auto" by default: direct for
    large sets when the engine is installed, else the relay). "direct" needs the engine on this host."""
    unknown = sorted(set(params) - {"psi_transport"})
    if unknown:
        raise ParamsError(f"This protocol takes no parameters other than psi_transport (got {', '.join(unknown)}).")
    if "psi_transport" not in params:
        return {}
    transport = params["psi_transport"]
    if transport not in TRANSPORTS:
        raise ParamsError(f"psi_transport must be one of {', '.join(TRANSPORTS)} (got {str(transport)[:40]!r}).")
    if transport == "direct" and not engine_available():
        raise ParamsError("psi_transport 'direct' needs the PSI engine for direct links, which this marketplace "
                          "does not have installed (.venv-spu); use 'relay' or 'auto'.")
    return {"psi_transport": transport}


def _message(**fields: Any) -> bytes:
    return json.dumps({"v": _VERSION, **fields}, sort_keys=True).encode()


def _message_read(payload: bytes) -> dict[str, Any]:
    try:
        message = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError("Not a psi_direct message.") from exc
    if not isinstance(message, dict) or message.get("v") != _VERSION:
        raise ValueError("Not a psi_direct message of this version.")
    return message


def _open_step(inputs: StepInput) -> StepOutput:
    """Step 1 (consumer): listen for the provider's node and tell it where, sealed."""
    if inputs.state is not None:  # a redelivered step: the run it started is still the job's
        state = json.loads(inputs.state)
        return StepOutput(message=_message(**state["message"]), state=inputs.state)
    ids = party_ids(inputs.data)
    distinct = len(set(ids))
    cohort_check(distinct, inputs.min_cohort)
    if not distinct:
        fields: dict[str, Any] = {"empty": True, "count": 0}
        return StepOutput(message=_message(**fields), state=json.dumps({"message": fields}).encode())
    try:
        rendezvous, run = session.consumer_start(ids)
    except EngineError as exc:
        raise ComputeError(str(exc)) from exc
    fields = {"rendezvous": rendezvous.to_dict()}
    state = {"message": fields, "workdir": run.workdir, "pid": run.pid}
    return StepOutput(message=_message(**fields), state=json.dumps(state).encode())


def _run_step(inputs: StepInput) -> StepOutput:
    """Step 2 (provider): dial, authenticate, run the engine as the sender; only "done" goes back."""
    message = _message_read(inputs.payload)
    if message.get("empty"):
        return StepOutput(message=_message(done=True, empty=False, skipped=True))
    rendezvous = session.Rendezvous.from_dict(message.get("rendezvous") or {})
    cohort_check(rendezvous.count, inputs.min_cohort)  # the consumer's set size, which RR22 reveals anyway
    ids = party_ids(inputs.data)
    if not ids:
        return StepOutput(message=_message(done=True, empty=True, skipped=True))
    try:
        session.provider_run(rendezvous, ids)
    except EngineError as exc:
        raise ComputeError(str(exc)) from exc
    return StepOutput(message=_message(done=True, empty=False, skipped=False))


def _release_step(inputs: StepInput) -> StepOutput:
    """Step 3 (consumer): the intersection its engine received, released as ``psi`` releases it."""
    if inputs.state is None:
        raise ComputeError("The consumer's state of this job is gone (the job was ended); nothing is released.")
    message = _message_read(inputs.payload)
    state = json.loads(inputs.state)
    matched: set[bytes] = set()
    if "workdir" in state:
        run = session.ConsumerRun(workdir=str(state["workdir"]), pid=int(state["pid"]))
        if message.get("skipped"):  # the provider has no ids: its side never dialled
            session.consumer_abandon(run)
        else:
            try:
                matched = session.consumer_collect(run, timeout=direct_config().timeout_seconds)
            except EngineError as exc:
                raise ComputeError(str(exc)) from exc
    normal = {item.decode() for item in matched}
    ids = inputs.data.ids()
    normal.intersection_update(ids)  # only the buyer's own ids count (the engine found them among them)
    result = psi.matched_table(inputs.data.table(), ids, normal)  # released exactly as psi releases it
    cardinality = len(normal)
    return StepOutput(release=Release(cohort=cardinality, public={"cardinality": cardinality}, table=result))


def _forget(state: bytes) -> None:
    """The job ended unfinished: stop the consumer's background side, if it started one, and delete its files."""
    saved = json.loads(state)
    if isinstance(saved, dict) and "workdir" in saved:
        session.consumer_abandon(session.ConsumerRun(workdir=str(saved["workdir"]), pid=int(saved["pid"])))


SPEC = ProtocolSpec(
    name="psi_direct",
    label=gettext_noop("Private set intersection (direct link)"),
    roles=psi.SPEC.roles,
    steps=(
        Step("consumer", "open the direct link", _open_step),
        Step("provider", "run the PSI engine over the link", _run_step),
        Step("consumer", "intersect and release", _release_step),
    ),
    release_to="consumer",
    releases="The consumer learns which of its ids the provider holds; each learns the other's set size "
             "(the same as psi; the PSI runs over an authenticated, encrypted direct link).",
    params=psi_transport_params,
    sold=False,  # a transport of "psi", which the product sells: the buyer or the set sizes choose it
    forget=_forget,
)

# The relay PSI, as registered: psi.SPEC taking the transport choice as its parameter.
RELAY_SPEC = dataclasses.replace(psi.SPEC, params=psi_transport_params)
