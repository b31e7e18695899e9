"""Compile the Solidity contracts into one JSON artefact per contract.

`python -m contracts.compile [--force]` writes `<Name>.json` (abi, bytecode, sources hash) into
`settings.CONTRACTS_BUILD_DIR` with the pinned solc-js 0.8.28 from npm, driven through py-solc-x's
`solc_binary=` by the Node wrapper `contracts/solc.js`. Nothing is recompiled while the sources,
the compiler settings and the npm package versions are unchanged.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CONTRACT_NAMES = ("DataRegistry", "AccessRegistry", "AuditAnchor", "UsageReceipts")
# Ganache 7 rejects opcodes newer than Shanghai (MCOPY, TSTORE), so the target is pinned.
COMPILER_SETTINGS: dict[str, Any] = {
    "evmVersion": "shanghai",
    "optimizer": {"enabled": True, "runs": 200},
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}
# Imported sources live in node_modules; their pinned versions are part of the build identity.
PINNED_PACKAGES = ("solc", "@openzeppelin/contracts")


class ContractCompileError(RuntimeError):
    """The sources did not compile; the message is the compiler's first error."""


@dataclass(frozen=True)
class CompilePaths:
    source_dir: Path
    build_dir: Path
    solc_binary: Path


def compile_paths() -> CompilePaths:
    """Paths from Django settings when they are configured, else relative to the repository."""
    try:
        from django.conf import settings

        return CompilePaths(
            source_dir=Path(settings.CONTRACTS_SOURCE_DIR),
            build_dir=Path(settings.CONTRACTS_BUILD_DIR),
            solc_binary=Path(settings.SOLC_BINARY),
        )
    except Exception:  # noqa: BLE001 - Django absent or unconfigured: fall back to the repository
        return CompilePaths(
            source_dir=REPO_ROOT / "contracts",
            build_dir=REPO_ROOT / "var" / "build" / "contracts",
            solc_binary=REPO_ROOT / "contracts" / "solc.js",
        )


def sources_read(source_dir: Path) -> dict[str, str]:
    """Every `.sol` file of the source directory, keyed by file name (the solc source unit name)."""
    return {path.name: path.read_text() for path in sorted(source_dir.glob("*.sol"))}


def sources_hash(sources: dict[str, str]) -> str:
    """SHA-256 over the sources, the compiler settings and the pinned npm package versions."""
    digest = hashlib.sha256()
    for name, text in sorted(sources.items()):
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    digest.update(json.dumps(COMPILER_SETTINGS, sort_keys=True).encode())
    for package in PINNED_PACKAGES:
        manifest = REPO_ROOT / "node_modules" / package / "package.json"
        version = json.loads(manifest.read_text()).get("version", "") if manifest.exists() else ""
        digest.update(f"{package}@{version}".encode())
    return digest.hexdigest()


def artefact_path(build_dir: Path, name: str) -> Path:
    return build_dir / f"{name}.json"


def build_is_current(build_dir: Path, digest: str) -> bool:
    for name in CONTRACT_NAMES:
        path = artefact_path(build_dir, name)
        try:
            if json.loads(path.read_text()).get("sourcesHash") != digest:
                return False
        except (OSError, ValueError):
            return False
    return True


def contracts_compile(*, paths: CompilePaths | None = None, force: bool = False) -> dict[str, Path]:
    """Compile when the sources changed (or `force`); return {contract name: artefact path}."""
    import solcx
    from solcx.exceptions import SolcError

    paths = paths or compile_paths()
    sources = sources_read(paths.source_dir)
    digest = sources_hash(sources)
    written = {name: artefact_path(paths.build_dir, name) for name in CONTRACT_NAMES}
    if not force and build_is_current(paths.build_dir, digest):
        return written

    standard_input = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": COMPILER_SETTINGS,
    }
    try:
        output = solcx.compile_standard(standard_input, solc_binary=paths.solc_binary)
    except SolcError as error:
        first = next((e for e in error.error_dict or [] if e.get("severity") == "error"), None)
        message = (first or {}).get("formattedMessage") or str(error)
        raise ContractCompileError(message.strip().splitlines()[0]) from error

    compiled = {
        contract_name: (unit, data)
        for unit, contracts_of_unit in output.get("contracts", {}).items()
        for contract_name, data in contracts_of_unit.items()
    }
    paths.build_dir.mkdir(parents=True, exist_ok=True)
    for name in CONTRACT_NAMES:
        if name not in compiled:
            raise ContractCompileError(f"contract {name} is missing from the compiler output")
        unit, data = compiled[name]
        artefact = {
            "contractName": name,
            "sourceUnit": unit,
            "abi": data["abi"],
            "bytecode": "0x" + data["evm"]["bytecode"]["object"],
            "deployedBytecode": "0x" + data["evm"]["deployedBytecode"]["object"],
            "sourcesHash": digest,
            "compilerSettings": COMPILER_SETTINGS,
        }
        # Write then rename, so a reader never sees half an artefact.
        target = written[name]
        temporary = target.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(artefact, indent=1))
        temporary.replace(target)
    return written


def artefact_load(name: str) -> dict[str, Any]:
    """The artefact of contract `name`, compiling first when the build is missing or stale."""
    paths = compile_paths()
    return json.loads(contracts_compile(paths=paths)[name].read_text())


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(REPO_ROOT))
    try:
        import django

        django.setup()
    except Exception:  # noqa: BLE001, S110 - settings are optional here; paths fall back to the repo
        pass
    try:
        written = contracts_compile(force="--force" in argv)
    except ContractCompileError as error:
        print(f"contracts: compile error: {error}", file=sys.stderr)
        return 1
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
