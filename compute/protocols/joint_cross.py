"""Cross-table statistics across providers (`joint_cross_stats`): the count, sum and mean of a column the
providers of a joint product hold, over their records whose ids the buyer holds, per group of the buyer's
column — as totals across the providers only. The cross-table protocol (`stats.py`) run with each provider at
once, composed under encryption so that the buyer decrypts the totals and never one provider's part:

    1. consumer:    as in cross-table statistics: C = c·G and (a·H(x), g), sorted
    2. provider i:  (each in turn) as in cross-table statistics with its own b_i, p_i and K_i = C + p_i·G;
                    passes the consumer's message and every answer so far on
    3. consumer:    re-blinds and re-randomises each provider's answer under its K_i
    4. provider i:  (each in turn) matches its own answer; per group its (noisy) count and sum; withholds a
                    group below the minimum cohort (then adds nothing but the shifts); removes its share of
                    K_i, which leaves its sum encrypted under C alone, encrypts its count under C, and adds
                    both to the running encrypted totals it passes on
    5. consumer:    decrypts the totals per group (bounded discrete logarithm) and releases count, sum, mean

Every provider adds the same public shifts whether or not it withholds a group, so the buyer cannot tell a
withheld part from a part of zero. Leakage: the buyer learns the released totals per group (noisy when ε is
set, with each provider's own noise), which groups were withheld, and |Y_i| of each provider; provider i
learns what it learns in cross-table statistics (|X|, the buyer's group sizes, its own exact count of shared
ids per group) and nothing of the other providers (their answers are blinded and encrypted under keys it
does not hold; the running totals are encrypted under C). Neither side learns which ids are shared.
Semi-honest parties; DDH on secp256k1.
"""
from __future__ import annotations

import dataclasses
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from django.utils.translation import gettext_noop

from compute.crypto import elgamal
from compute.crypto.secp256k1 import InvalidPoint
from compute.exceptions import ComputeError
from compute.protocols import stats
from compute.protocols.spec import ProtocolSpec, Role, Step, StepInput, StepOutput, TableSchema

_LIST = struct.Struct(">4sI")  # magic, items
_LENGTH = struct.Struct(">I")
_PART = 2 * elgamal.CIPHERTEXT_SIZE  # a group's encrypted count and sum


def _pack(magic: bytes, items: Sequence[bytes]) -> bytes:
    return _LIST.pack(magic, len(items)) + b"".join(_LENGTH.pack(len(item)) + item for item in items)


def _unpack(magic: bytes, message: bytes) -> list[bytes]:
    try:
        got, count = _LIST.unpack_from(message)
        offset, items = _LIST.size, []
        for _ in range(count):
            (size,) = _LENGTH.unpack_from(message, offset)
            if offset + 4 + size > len(message):
                raise struct.error("item beyond the message")
            items.append(message[offset + 4 : offset + 4 + size])
            offset += 4 + size
    except struct.error as exc:
        raise ComputeError("The statistics message is truncated.") from exc
    if got != magic or offset != len(message):
        raise ComputeError("Not the expected statistics message.")
    return items


def _providers(inputs: StepInput) -> int:
    return inputs.party_roles.count("provider")


def _offer_step(inputs: StepInput) -> StepOutput:
    output = stats.offer_step(inputs)
    assert output.message is not None
    return StepOutput(message=_pack(b"DXL1", [output.message]), state=output.state)


def _answer_step(inputs: StepInput) -> StepOutput:
    items = _unpack(b"DXL1", inputs.payload)
    if not items:
        raise ComputeError("The statistics message lacks the buyer's ids.")
    output = stats.answer_step(dataclasses.replace(inputs, payload=items[0]))
    assert output.message is not None
    return StepOutput(message=_pack(b"DXL1", [*items, output.message]), state=output.state)


def _reblind_step(inputs: StepInput) -> StepOutput:
    saved = stats.consumer_state(inputs.state)
    if saved is None:
        raise ComputeError("The consumer's state of this job is gone (the job was ended); nothing is released.")
    key, share, _, labels = saved
    items = _unpack(b"DXL1", inputs.payload)
    if len(items) != _providers(inputs) + 1:
        raise ComputeError("The providers' answers do not match the job's providers; nothing is released.")
    reblinded, sent = [], 0
    for answer in items[1:]:
        message, count = stats.stats_reblind(answer, key=key, share=share)
        reblinded.append(message)
        sent += count
    return StepOutput(message=_pack(b"DXL2", [*reblinded, b""]),
                      state=stats.consumer_state_bytes(key, share, sent, labels))


def _contribute_step(inputs: StepInput) -> StepOutput:
    if inputs.state is None or len(inputs.state) < 64:
        raise ComputeError("The provider's state of this job is gone (the job was ended); nothing is released.")
    items = _unpack(b"DXL2", inputs.payload)
    if len(items) != _providers(inputs) + 1:
        raise ComputeError("The statistics message does not match the job's providers; nothing is released.")
    ordinal = inputs.party_roles[: inputs.party].count("provider")
    share, kept = inputs.state[32:64], stats.Kept.from_bytes(inputs.state[64:])
    encoding = stats.Encoding.from_params(inputs.params)
    parts = []
    for ciphertexts in stats.stats_match(items[ordinal], kept):
        count, total = stats.noisy_group(ciphertexts, encoding=encoding, public=kept.joint)
        if count < inputs.min_cohort:  # withheld: only the shifts every provider adds, under C
            count_ct, sum_ct = elgamal.encrypt_many([encoding.count_shift, encoding.shift], kept.consumer)
        else:
            [count_ct] = elgamal.encrypt_many([count + encoding.count_shift], kept.consumer)
            sum_ct = elgamal.partial_decrypt(total, share)  # now encrypted under C alone
        parts.append(count_ct + sum_ct)
    running = items[-1]
    if running:
        if len(running) != len(parts) * _PART:
            raise ComputeError("The running totals do not cover the buyer's groups; nothing is released.")
        try:
            parts = [_add(running[i * _PART : (i + 1) * _PART], part) for i, part in enumerate(parts)]
        except InvalidPoint:
            raise ComputeError("The running totals hold an invalid ciphertext; nothing is released.") from None
    items[ordinal] = b""  # spent: the providers after this one do not need it
    items[-1] = b"".join(parts)
    return StepOutput(message=_pack(b"DXL2", items), state=None)


def _add(first: bytes, second: bytes) -> bytes:
    size = elgamal.CIPHERTEXT_SIZE
    return (elgamal.add_many([first[:size], second[:size]]) + elgamal.add_many([first[size:], second[size:]]))


def _finish_step(inputs: StepInput) -> StepOutput:
    saved = stats.consumer_state(inputs.state)
    if saved is None:
        raise ComputeError("The consumer's state of this job is gone (the job was ended); nothing is released.")
    _, share, sent, labels = saved
    items = _unpack(b"DXL2", inputs.payload)
    running, providers = items[-1], _providers(inputs)
    if len(items) != providers + 1 or len(running) != len(labels) * _PART:
        raise ComputeError("The providers' totals do not cover this buyer's groups; nothing is released.")
    encoding = stats.Encoding.from_params(inputs.params)
    size = elgamal.CIPHERTEXT_SIZE
    results = []
    for index, label in enumerate(labels):
        part = running[index * _PART : (index + 1) * _PART]
        try:
            count = elgamal.decrypt(part[:size], share, bound=sent + 2 * providers * encoding.count_shift + 1)
            code = elgamal.decrypt(part[size:], share, bound=encoding.bound(sent) + 2 * providers * encoding.shift)
        except (InvalidPoint, elgamal.DecryptionError) as exc:
            raise ComputeError(f"The providers' totals for a group do not decrypt: {exc}") from None
        count = max(count - providers * encoding.count_shift, 0)
        total = encoding.decode_sum(code - providers * encoding.shift, count)
        results.append(stats.GroupResult(group=label, released=True, count=count, total=total))
    release = stats.grouped_release(results, inputs, encoding)
    release.public["providers"] = providers
    return StepOutput(release=release)


def _params(raw: Mapping[str, Any], schemas: Mapping[str, Sequence[TableSchema]]) -> dict[str, Any]:
    return stats.cross_params(raw, schemas, joint=True)


SPEC = ProtocolSpec(
    name="joint_cross_stats",
    label=gettext_noop("Cross-table statistics across providers"),
    roles=(
        Role("consumer", "holds the ids and the groups; learns the totals per group"),
        Role("provider", "holds values; applies the release gate to its own part", many=True, granted=True),
    ),
    steps=(
        Step("consumer", "blind the consumer's ids with their groups", _offer_step),
        Step("provider", "blind the provider's ids and encrypt its values", _answer_step),
        Step("consumer", "re-blind and re-randomise each provider's answer", _reblind_step),
        Step("provider", "sum its part per group, gate, add noise, add to the encrypted totals", _contribute_step),
        Step("consumer", "decrypt the totals and release", _finish_step),
    ),
    release_to="consumer",
    releases="The buyer learns count, sum and mean per group of its own over the ids the providers share with it, "
             "as totals across the providers only (noisy when ε is set); each provider learns its own exact count "
             "per group; no one learns which ids are shared.",
    params=_params,
    budgeted=True,
)
