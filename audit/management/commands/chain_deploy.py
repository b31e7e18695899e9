"""`manage.py chain_deploy [--force]`: deploy the contracts on the configured chain, print addresses."""
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.chain.contracts import contracts_deploy
from audit.chain.errors import ChainError


class Command(BaseCommand):
    help = "Deploy DataRegistry, AccessRegistry, AuditAnchor and UsageReceipts (unless this chain already has them)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="deploy again even if a live record exists")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            addresses = contracts_deploy(force=options["force"])
        except ChainError as error:
            raise CommandError(str(error)) from error
        for name, address in addresses.items():
            self.stdout.write(f"{name} {address}")
