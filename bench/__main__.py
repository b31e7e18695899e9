"""`make bench`: run every benchmark and write their sections into docs/benchmarks.md.

BENCH_QUICK=1 runs small sizes (a smoke run, written to docs/benchmarks-quick.md); BENCH_ONLY=<section>
(psi, lookup, stats, aggregate, chain, nodes, audit, catalog, purchase, latency, valuation, overlap, psi_direct,
vfl) runs one and replaces only its own section of the file.
"""
from __future__ import annotations

import importlib
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

SECTIONS = [
    "psi", "lookup", "stats", "aggregate", "chain", "nodes", "audit", "catalog", "purchase", "latency", "valuation",
    "overlap", "psi_direct", "vfl",
]


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # Benchmarks check exact answers (1,000 matched ids) and quote many times per buyer and product: they
    # quote at an ε whose noise is zero but for a chance below 1e-40, with a budget that does not run out.
    # The noise itself costs one OpenDP sample per quote. The processes they start inherit these.
    os.environ.setdefault("QUOTE_EPSILON", "100")
    os.environ.setdefault("NODE_QUOTE_EPSILON_MAX", "100")
    os.environ.setdefault("QUOTE_BUDGET_EPSILON", "100000")
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
    sections = []
    for name in names:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"bench.{name}")
        sections.append(module.run().rstrip())
    target = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
    if os.environ.get("BENCH_QUICK") == "1":
        target = target.with_name("benchmarks-quick.md")
    if only and target.exists():
        target.write_text(section_replace(target.read_text(), sections[0]))
    else:
        target.write_text("\n".join(parts + [part + "\n" for part in sections]))
    print(f"wrote {target}")
    return 0


def section_replace(document: str, section: str) -> str:
    """``document`` with the section of the same "## " heading as ``section`` replaced (or appended)."""
    heading = section.splitlines()[0]
    chunks = document.rstrip("\n").split("\n## ")
    head, rest = chunks[0], ["## " + chunk for chunk in chunks[1:]]
    for index, chunk in enumerate(rest):
        if chunk.splitlines()[0] == heading:
            rest[index] = section
            break
    else:
        rest.append(section)
    return "\n\n".join([head.rstrip("\n"), *[chunk.rstrip("\n") for chunk in rest]]) + "\n"


if __name__ == "__main__":
    sys.exit(main())
