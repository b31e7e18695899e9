"""`manage.py audit_verify <entry_id>` or `manage.py audit_verify --all`: verify audit entries
against the chain. Exit status 0 when verified (or only pending), 1 when tampered, 2 for bad input."""
from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.services import audit_chain_verify, audit_entry_verify

EXIT_TAMPERED = 1
EXIT_BAD_INPUT = 2


class Command(BaseCommand):
    help = "Verify one audit entry (hash chain, batch root, Merkle proof against the chain) or the whole log."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("entry_id", nargs="?", help="the id of the entry to verify")
        parser.add_argument("--all", action="store_true", help="verify every entry and batch")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["all"] == (options["entry_id"] is not None):
            raise CommandError("give either an entry id or --all", returncode=EXIT_BAD_INPUT)
        if options["all"]:
            self._verify_all()
        else:
            self._verify_one(options["entry_id"])

    def _verify_one(self, raw_id: str) -> None:
        if not raw_id.isdigit() or int(raw_id) > 2**63 - 1:
            raise CommandError(
                f"entry id must be a positive integer, not {raw_id!r}", returncode=EXIT_BAD_INPUT
            )
        result = audit_entry_verify(entry_id=int(raw_id))
        if result.status == "missing":
            raise CommandError(f"entry {raw_id}: no such entry in the log", returncode=EXIT_BAD_INPUT)
        where = f" batch {result.batch_id} leaf {result.leaf_index}" if result.batch_id is not None else ""
        note = f" ({result.detail})" if result.detail else ""
        self.stdout.write(f"entry {result.entry_id}: {result.status}{where}{note}")
        for problem in result.problems:
            self.stdout.write(f"  {problem}")
        if result.status == "tampered":
            sys.exit(EXIT_TAMPERED)

    def _verify_all(self) -> None:
        report = audit_chain_verify()
        self.stdout.write(
            f"log: {report.status}: {report.entries} entries, {report.batches} batches "
            f"({report.unanchored_batches} not yet anchored), "
            f"{report.unbatched_entries} entries not yet sealed"
        )
        for problem in report.problems:
            self.stdout.write(f"  {problem}")
        if report.status == "tampered":
            sys.exit(EXIT_TAMPERED)
