"""Run a protocol's steps in one process (compute.protocols.local): re-exported for the tests."""
from __future__ import annotations

from compute.protocols.local import MemoryData, Run, protocol_run

__all__ = ["MemoryData", "Run", "protocol_run"]
