"""Import a CSV into an organisation's own node vault from the command line."""
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from marketplace.exceptions import ApplicationError
from marketplace.models import Organisation
from marketplace.services.catalog import dataset_import


class Command(BaseCommand):
    help = "Import a CSV file into an organisation's node vault; only its metadata reaches the marketplace."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--org", required=True, help="Organisation slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--id-column", required=True)
        parser.add_argument("--description", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        organisation = Organisation.objects.filter(slug=options["org"]).first()
        if organisation is None:
            raise CommandError(f"No organisation {options['org']!r}.")
        path: Path = options["path"]
        if not path.is_file():
            raise CommandError(f"No file at {path}.")
        try:
            dataset = dataset_import(
                organisation=organisation, name=options["name"], data=path.read_bytes(),
                id_column=options["id_column"], description=options["description"],
                actor=f"cli:{organisation.slug}",
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        table = dataset.table
        self.stdout.write(
            f"Imported {dataset.id}: {table.row_count} rows, fingerprint {table.fingerprint}, quality {table.quality}"
        )
