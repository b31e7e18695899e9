"""`make bench`: run every benchmark and write their sections into docs/benchmarks.md.

BENCH_QUICK=1 runs small sizes (a smoke run); BENCH_ONLY=<section> (psi, nodes, audit, catalog, purchase) runs one.
"""
from __future__ import annotations

import importlib
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

SECTIONS = ["psi", "nodes", "audit", "catalog", "purchase"]


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    only = os.environ.get("BENCH_ONLY")
    names = [name for name in SECTIONS if not only or name == only]
    parts = [
        "# Benchmarks",
        "",
        "Produced by `make bench` (`python -m bench`) on this machine: "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Ratios are against baselines measured in the same run.",
        "",
    ]
    for name in names:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"bench.{name}")
        parts.append(module.run().rstrip())
        parts.append("")
    target = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
    if os.environ.get("BENCH_QUICK") == "1":
        target = target.with_name("benchmarks-quick.md")
    target.write_text("\n".join(parts) + "\n")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
