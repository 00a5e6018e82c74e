"""Print a user's API token and nothing else, for scripts:
``TOKEN=$(manage.py api_token trader1)``."""

from django.core.management.base import BaseCommand, CommandError

from audit.services import SYSTEM_ACTOR
from audit.tokens import api_token_issue
from oms_site.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Print USER's API token (created if they have none) on stdout and nothing else. "
        "Exit 1 with a message on stderr for an unknown or inactive user."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--rotate", action="store_true", help="replace the user's token with a new one (the old one stops working)"
        )
        parser.add_argument("--actor", default=f"{SYSTEM_ACTOR}:api_token", help="who is recorded in the audit")

    def handle(self, *args, **options):
        try:
            key = api_token_issue(username=options["username"], actor=options["actor"], rotate=options["rotate"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(key)
