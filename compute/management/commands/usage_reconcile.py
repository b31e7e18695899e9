"""`manage.py usage_reconcile [--job ID ...] [--from-block N]`: check the chain's record of every use (grants
charged, usage receipts) against the marketplace's jobs; one line per difference, exit 1 if any."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from audit.chain.errors import ChainError
from audit.usage import chain_usage, job_key, usage_reconcile
from compute.jobs.services import job_receipt
from compute.models import Job


class Command(BaseCommand):
    help = "Reconcile the uses recorded on chain (charges, usage receipts) with the marketplace's jobs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--job", action="append", default=[], help="only this job (repeatable)")
        parser.add_argument("--from-block", type=int, default=0, help="read chain events from this block on")

    def handle(self, *args: Any, **options: Any) -> None:
        jobs = Job.objects.filter(Q(status=Job.Status.SUCCEEDED) | Q(status=Job.Status.FAILED, consume_tx_hash__gt=""),
                                  parties__grant_id__gt="").distinct().prefetch_related("parties__table")
        if options["job"]:
            jobs = jobs.filter(id__in=options["job"])
        expected = [job_receipt(job) for job in jobs]
        try:
            usage = chain_usage(from_block=options["from_block"])
        except ChainError as exc:
            raise CommandError(f"The chain could not be read: {exc}") from exc
        if options["job"]:
            usage = usage.only({"0x" + job_key(job).hex() for job in options["job"]})
        problems = usage_reconcile(expected=expected, usage=usage)
        for problem in problems:
            self.stdout.write(f"MISMATCH {problem}")
        if problems:
            raise CommandError(f"{len(problems)} difference(s) between the chain and the marketplace's records.")
        self.stdout.write(f"reconciled: {len(expected)} job(s), {len(usage.charged)} charge(s), "
                          f"{len(usage.receipts)} receipt(s) on chain")
