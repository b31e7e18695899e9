from typing import Any

from django.core.management.base import BaseCommand

from marketplace.services.demo import demo_seed


class Command(BaseCommand):
    help = "Create the demo organisations, users, datasets and products (once)."

    def handle(self, *args: Any, **options: Any) -> None:
        logins = demo_seed()
        if not logins:
            self.stdout.write("Demo data already present.")
        for username, password, token in logins:
            self.stdout.write(f"login {username} / {password}   API token {token}")
