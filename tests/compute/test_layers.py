"""The two sides of compute/ stay apart: the node (at the organisation) imports no marketplace code, no
job rows and no database; the marketplace side does not reach into the node. They share only the pure
protocols, crypto, tables and the message formats."""
import ast
from pathlib import Path

import pytest
from django.conf import settings

NODE_FORBIDDEN = ("marketplace", "pricing", "frontend", "config", "compute.jobs", "compute.models", "django.db",
                  "audit.services", "audit.chain.outbox", "audit.chain.accounts.chain_account")
JOBS_FORBIDDEN = ("compute.node",)


def _imports(folder: str) -> list[tuple[str, str]]:
    found = []
    for path in sorted(Path(settings.BASE_DIR, folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found += [(path.name, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                found += [(path.name, f"{node.module}.{alias.name}") for alias in node.names]
    return found


@pytest.mark.parametrize(("folder", "forbidden"), [("compute/node", NODE_FORBIDDEN), ("compute/jobs", JOBS_FORBIDDEN)])
def test_each_side_of_compute_keeps_to_itself(folder, forbidden):
    crossing = [(file, name) for file, name in _imports(folder) if name.startswith(forbidden)]
    assert not crossing, crossing
    assert _imports(folder)  # the walk saw the code
