"""What the joint-modelling protocols (``vfl.py``, ``vfl_predict.py``) share: the payload of named parts that
travels from step to step, each part sealed to the one party it is for (so that a provider a payload passes
through on its way reads none of it), and each party's model part kept in its own node's vault."""
from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from compute.exceptions import ComputeError
from compute.protocols.spec import StepInput
from compute.vfl.ckks import Message
from compute.vfl.lr import BuyerParty, ProviderParty
from compute.vfl.state import party_from_bytes, party_to_bytes

CONSUMER, PROVIDER = "consumer", "provider"


def parts(payload: bytes) -> dict[str, bytes]:
    if not payload:
        return {}
    try:
        message = Message.from_bytes(payload)
    except (ValueError, KeyError) as exc:
        raise ComputeError(f"Not a joint-modelling message: {exc}") from exc
    return {name: items[0] for name, items in message.ciphertexts.items()}


def payload(named: dict[str, bytes]) -> bytes:
    return Message("payload", 0, "parts", "", ciphertexts={name: [blob] for name, blob in named.items()}).to_bytes()


def _key(inputs: StepInput, other: int) -> AESGCM:
    if inputs.pair_secret is None:
        raise ComputeError("This protocol needs the engine's pair secrets.")
    return AESGCM(inputs.pair_secret(other))


def seal_to(inputs: StepInput, other: int, data: bytes, label: str) -> bytes:
    """``data`` for the party at ``other`` only: AES-GCM under the secret the two share for this job."""
    nonce = secrets.token_bytes(12)
    return nonce + _key(inputs, other).encrypt(nonce, data, f"{inputs.job}/{label}".encode())


def open_from(inputs: StepInput, other: int, blob: bytes | None, label: str) -> bytes:
    if blob is None:
        raise ComputeError(f"The message lacks its part {label!r}; nothing is released.")
    try:
        return _key(inputs, other).decrypt(blob[:12], blob[12:], f"{inputs.job}/{label}".encode())
    except (InvalidTag, ValueError) as exc:
        raise ComputeError(f"The part {label!r} was not sealed for this party by its peer.") from exc


def consumer_position(inputs: StepInput) -> int:
    return inputs.party_roles.index(CONSUMER)


def provider_positions(inputs: StepInput) -> list[int]:
    return [i for i, role in enumerate(inputs.party_roles) if role == PROVIDER]


def ordinal(inputs: StepInput) -> int:
    """This provider's place among the job's providers (0 for the first)."""
    return provider_positions(inputs).index(inputs.party)


def model_id(value: Any) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as exc:
        raise ComputeError("The job names no valid model.") from exc


@dataclass
class ModelPart:
    """A party's part of a model as its node keeps it: the party (weights, keys, standardisation, its
    aligned rows) and what the part is bound to: the model, the buyer's node, the providers' tables."""

    model: str
    consumer_node: str
    provider_tables: list[str]
    columns: list[str]  # this party's feature columns, in the model's order
    party: BuyerParty | ProviderParty
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the buyer's label column and aligned count

    def to_bytes(self) -> bytes:
        return Message(self.model, 0, "model-part", self.consumer_node, scalars={
            "provider_tables": self.provider_tables, "columns": self.columns, "extra": self.extra},
            ciphertexts={"party": [party_to_bytes(self.party)]}).to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelPart:
        message = Message.from_bytes(data)
        return cls(model=message.run, consumer_node=message.sender,
                   provider_tables=list(message.scalars["provider_tables"]), columns=list(message.scalars["columns"]),
                   party=party_from_bytes(message.ciphertexts["party"][0]), extra=dict(message.scalars["extra"]))


def part_name(model: str, inputs: StepInput) -> str:
    """The vault name of this party's part: the buyer's by the model alone (it predicts on other tables of its
    own), a provider's by the model and its table."""
    if inputs.party_roles[inputs.party] == CONSUMER:
        return f"vfl-{model}-consumer"
    return f"vfl-{model}-provider-{inputs.job_tables[PROVIDER][ordinal(inputs)]}"


def part_keep(inputs: StepInput, part: ModelPart) -> None:
    inputs.data.keep(part_name(part.model, inputs), part.to_bytes())


def part_load(inputs: StepInput, model: str) -> ModelPart:
    """This party's part of ``model``, checked against the job: the same buyer's node and the same providers'
    tables as the training that made it (a model bought by one buyer serves no other)."""
    data = inputs.data.kept(part_name(model, inputs))
    if data is None:
        raise ComputeError("This node holds no part of the model the job names (it was never trained here, or "
                           "under other tables).")
    part = ModelPart.from_bytes(data)
    consumer = inputs.party_nodes[consumer_position(inputs)] if inputs.party_nodes else ""
    if part.model != model or part.consumer_node != consumer:
        raise ComputeError("The model the job names was trained for another buyer.")
    if part.provider_tables != list(inputs.job_tables.get(PROVIDER, ())):
        raise ComputeError("The job's providers are not the providers the model was trained with.")
    return part
