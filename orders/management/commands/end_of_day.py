"""Close the trading day: DAY orders of venues whose session ended, GTD orders past
their expiry (the workers run this on their own every minute; this is for operators)."""

from django.core.management.base import BaseCommand, CommandError

from audit.services import SYSTEM_ACTOR
from orders.services import end_of_day
from routing.models import Venue


class Command(BaseCommand):
    help = (
        "End of day: DAY orders still working at a venue whose session has ended become done_for_day, "
        "GTD orders past expire_at become expired, each audited. Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("--venue", help="only this venue (code)")
        parser.add_argument(
            "--now",
            action="store_true",
            help="close the named venue's day at once (a venue with no session end configured, or a drill)",
        )
        parser.add_argument("--actor", default=f"{SYSTEM_ACTOR}:end_of_day", help="who is recorded in the audit")

    def handle(self, *args, **options):
        code = options["venue"]
        if options["now"] and not code:
            raise CommandError("--now closes one venue's day: name it with --venue CODE.")
        if code and not Venue.objects.filter(code=code).exists():
            known = ", ".join(Venue.objects.order_by("code").values_list("code", flat=True)) or "none"
            raise CommandError(f"Unknown venue {code!r} (venues: {known}).")
        result = end_of_day(venue_code=code, immediate=options["now"], actor=options["actor"])
        for venue, ids in result.day_orders.items():
            self.stdout.write(f"{venue}: {len(ids)} DAY order(s) done for day{': ' + _ids(ids) if ids else ''}")
        for venue, why in result.skipped.items():
            self.stdout.write(f"{venue}: skipped, {why}")
        gtd = result.gtd_orders
        self.stdout.write(f"GTD: {len(gtd)} order(s) expired{': ' + _ids(gtd) if gtd else ''}")
        self.stdout.write(self.style.SUCCESS(f"End of day: {result.closed} order(s) closed."))


def _ids(ids: list[int]) -> str:
    shown = ", ".join(f"#{pk}" for pk in ids[:20])
    return shown + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
