"""Decode revert data (custom errors, Error(string), Panic(uint256)) with the contracts' ABIs."""
from __future__ import annotations

from functools import cache
from typing import Any

from eth_abi import decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from audit.chain.errors import ChainRevert
from contracts.compile import CONTRACT_NAMES, artefact_load

ERROR_STRING = bytes.fromhex("08c379a0")
PANIC = bytes.fromhex("4e487b71")


def _abi_type(item: dict[str, Any]) -> str:
    kind = str(item["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(component) for component in item["components"])
        return f"({inner}){kind[len('tuple'):]}"
    return kind


@cache
def error_table() -> dict[bytes, tuple[str, list[str], list[str]]]:
    """selector → (error name, argument names, argument types) over every contract's ABI."""
    table: dict[bytes, tuple[str, list[str], list[str]]] = {}
    for name in CONTRACT_NAMES:
        for item in artefact_load(name)["abi"]:
            if item["type"] != "error":
                continue
            types = [_abi_type(arg) for arg in item["inputs"]]
            selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
            table[selector] = (item["name"], [arg["name"] for arg in item["inputs"]], types)
    return table


def abi_value_to_json(value: Any, abi_type: str) -> Any:
    """bytes → 0x-hex, addresses → checksum; the JSON form used in outbox args and events."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if abi_type == "address":
        return to_checksum_address(value)
    if isinstance(value, list | tuple):
        return [abi_value_to_json(item, "") for item in value]
    return value


def revert_from_data(data: str, *, message: str = "") -> ChainRevert:
    """The ChainRevert for hex revert `data`; unknown or missing data keeps the node's message."""
    raw = bytes.fromhex(data[2:] if data.startswith("0x") else data) if data else b""
    selector, body = raw[:4], raw[4:]
    if selector in error_table():
        name, arg_names, types = error_table()[selector]
        values = decode(types, body)
        args = {arg: abi_value_to_json(value, kind) for arg, value, kind in zip(arg_names, values, types, strict=True)}
        return ChainRevert(name, args, data=data)
    if selector == ERROR_STRING:
        return ChainRevert("Error", {"message": decode(["string"], body)[0]}, data=data)
    if selector == PANIC:
        return ChainRevert("Panic", {"code": decode(["uint256"], body)[0]}, data=data)
    return ChainRevert("Revert", {"message": message or "reverted without reason"}, data=data)
