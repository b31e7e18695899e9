import json
import shutil
import subprocess
import sys

import pytest
from django.conf import settings

from contracts.compile import (
    CONTRACT_NAMES,
    CompilePaths,
    ContractCompileError,
    build_is_current,
    contracts_compile,
    sources_hash,
    sources_read,
)


def copy_sources(target):
    target.mkdir(parents=True)
    for source in settings.CONTRACTS_SOURCE_DIR.glob("*.sol"):
        shutil.copy(source, target / source.name)
    return target


@pytest.fixture
def paths(tmp_path):
    return CompilePaths(source_dir=copy_sources(tmp_path / "src"), build_dir=tmp_path / "build",
                        solc_binary=settings.SOLC_BINARY)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One compile shared by the tests that only read its output (solc-js takes seconds)."""
    root = tmp_path_factory.mktemp("compiled")
    paths = CompilePaths(source_dir=copy_sources(root / "src"), build_dir=root / "build",
                         solc_binary=settings.SOLC_BINARY)
    return paths, contracts_compile(paths=paths)


def test_it_writes_one_artefact_per_contract_with_abi_bytecode_and_sources_hash(built):
    paths, written = built

    assert set(written) == set(CONTRACT_NAMES)
    digest = sources_hash(sources_read(paths.source_dir))
    for name, path in written.items():
        artefact = json.loads(path.read_text())
        assert artefact["contractName"] == name
        assert artefact["sourcesHash"] == digest
        assert artefact["bytecode"].startswith("0x60") and len(artefact["bytecode"]) > 100
        assert artefact["compilerSettings"]["evmVersion"] == "shanghai"
        assert any(item["type"] == "function" for item in artefact["abi"])
    anchor_abi = json.loads(written["AuditAnchor"].read_text())["abi"]
    assert {"AccessControlUnauthorizedAccount", "BatchAlreadyAnchored"} <= {
        item["name"] for item in anchor_abi if item["type"] == "error"}


def test_it_skips_work_while_the_sources_are_unchanged_and_not_once_they_change(built, tmp_path):
    paths, written = built
    stamps = {name: path.stat().st_mtime_ns for name, path in written.items()}

    again = contracts_compile(paths=paths)

    assert {name: path.stat().st_mtime_ns for name, path in again.items()} == stamps
    changed = copy_sources(tmp_path / "changed")
    (changed / "DataRegistry.sol").write_text((changed / "DataRegistry.sol").read_text() + "\n// changed\n")
    assert build_is_current(paths.build_dir, sources_hash(sources_read(paths.source_dir)))
    assert not build_is_current(paths.build_dir, sources_hash(sources_read(changed)))


def test_it_reports_a_compile_error_in_one_line(paths):
    broken = paths.source_dir / "DataRegistry.sol"
    broken.write_text(broken.read_text().replace("external view returns (address)", "external view returns (adress)"))

    with pytest.raises(ContractCompileError) as caught:
        contracts_compile(paths=paths)

    message = str(caught.value)
    assert "\n" not in message
    assert "adress" in message or "Identifier not found" in message
    assert not (paths.build_dir / "DataRegistry.json").exists()


def test_it_runs_as_a_module_from_the_makefile():
    result = subprocess.run(
        [sys.executable, "-m", "contracts.compile"], cwd=settings.BASE_DIR, capture_output=True, text=True,
        timeout=120, check=False,
    )

    assert result.returncode == 0, result.stderr
    assert all(f"{name}:" in result.stdout for name in CONTRACT_NAMES)


def test_the_wrapper_writes_output_past_a_pipe_buffer_whole_to_a_slow_reader(tmp_path):
    """Slither asks for every AST at once (about 1 MB): the wrapper must not exit before stdout drains."""
    sources = {f"contracts/{path.name}": {"content": path.read_text()}
               for path in settings.CONTRACTS_SOURCE_DIR.glob("*.sol")}
    request = tmp_path / "input.json"
    request.write_text(json.dumps({"language": "Solidity", "sources": sources, "settings": {
        "outputSelection": {"*": {"": ["ast"], "*": ["abi", "evm.bytecode"]}}}}))
    reader = "import sys, time; time.sleep(1); sys.stdout.buffer.write(sys.stdin.buffer.read())"
    with request.open("rb") as stdin:
        wrapper = subprocess.Popen(["node", str(settings.SOLC_BINARY), "--standard-json"], stdin=stdin,
                                   stdout=subprocess.PIPE, cwd=settings.BASE_DIR)
        slow = subprocess.run([sys.executable, "-c", reader], stdin=wrapper.stdout, capture_output=True,
                              timeout=120, check=True)
        assert wrapper.wait(timeout=120) == 0

    output = json.loads(slow.stdout)
    assert len(slow.stdout) > 256 * 1024 and not [e for e in output.get("errors", []) if e["severity"] == "error"]
    assert {"AuditAnchor.sol", "AccessRegistry.sol"} <= {key.rsplit("/", 1)[-1] for key in output["sources"]}
