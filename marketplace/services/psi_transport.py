"""Which transport a PSI job of an order runs on: the relay (``psi``: sealed messages through the broker, no
inbound port at any party; the default) or a direct link between the two nodes (``psi_direct``:
SecretFlow's OT-based engine, for volume). Both release the same result to the buyer.

The buyer's quote may carry ``psi_transport``: "relay" or "direct" decide; "auto" (or nothing) runs direct
when both sides hold at least ``PSI_DIRECT_MIN_ROWS`` rows and the engine is installed, else the relay.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _

from compute.direct.config import engine_available
from compute.protocols.psi_direct import TRANSPORTS
from marketplace.exceptions import ApplicationError

RELAY, DIRECT = "psi", "psi_direct"


def psi_transport_choose(*, protocol: str, params: Mapping[str, Any], consumer_rows: int,
                         provider_rows: Sequence[int]) -> tuple[str, dict[str, Any]]:
    """The protocol and parameters a job runs with: for ``psi``, the transport chosen (the choice itself is
    not a parameter of the job); any other protocol unchanged. ApplicationError (400) for an unknown
    transport, or "direct" where the engine is not installed."""
    if protocol != RELAY:
        return protocol, dict(params)
    rest = {name: value for name, value in params.items() if name != "psi_transport"}
    transport = params.get("psi_transport", "auto")
    if transport not in TRANSPORTS:
        raise ApplicationError(_("psi_transport must be one of %(transports)s.") % {
            "transports": ", ".join(TRANSPORTS)}, {"field": "params", "allowed": list(TRANSPORTS)})
    if transport == "relay":
        return RELAY, rest
    available = engine_available()
    if transport == "direct":
        if not available:
            raise ApplicationError(_("psi_transport 'direct' needs the PSI engine for direct links, which is not "
                                     "installed here (.venv-spu); use 'relay' or 'auto'."), {"field": "params"})
        return DIRECT, rest
    minimum = int(settings.PSI_DIRECT_MIN_ROWS)
    large = consumer_rows >= minimum and bool(provider_rows) and min(provider_rows) >= minimum
    return (DIRECT if available and large else RELAY), rest
