"""Demo data: users, accounts, securities and the simulated venue SIM. Idempotent:
running it again leaves the same state (passwords are reset to the printed ones)."""

import datetime as dt
import os
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Q

from compliance.services import locate_add
from oms_site.roles import API_CLIENT_GROUP, MIDDLE_OFFICE_GROUP, PORTFOLIO_MANAGER_GROUP, TRADER_GROUP
from orders.models import AssetClass, Security
from orders.services import account_save, security_save
from routing.services import venue_save

SECURITIES = [
    # symbol, name, issuer, asset class, reference price
    ("AAPL", "Apple Inc.", "Apple Inc.", AssetClass.EQUITY, "175.50"),
    ("MSFT", "Microsoft Corporation", "Microsoft Corporation", AssetClass.EQUITY, "415.20"),
    ("GOOGL", "Alphabet Inc. Class A", "Alphabet Inc.", AssetClass.EQUITY, "168.40"),
    ("GOOG", "Alphabet Inc. Class C", "Alphabet Inc.", AssetClass.EQUITY, "169.90"),
    ("AMZN", "Amazon.com Inc.", "Amazon.com Inc.", AssetClass.EQUITY, "185.10"),
    ("META", "Meta Platforms Inc.", "Meta Platforms Inc.", AssetClass.EQUITY, "505.75"),
    ("NVDA", "NVIDIA Corporation", "NVIDIA Corporation", AssetClass.EQUITY, "121.30"),
    ("TSLA", "Tesla Inc.", "Tesla Inc.", AssetClass.EQUITY, "248.60"),
    ("JPM", "JPMorgan Chase & Co.", "JPMorgan Chase & Co.", AssetClass.EQUITY, "205.15"),
    ("BAC", "Bank of America Corporation", "Bank of America Corporation", AssetClass.EQUITY, "39.85"),
    ("XOM", "Exxon Mobil Corporation", "Exxon Mobil Corporation", AssetClass.EQUITY, "112.40"),
    ("CVX", "Chevron Corporation", "Chevron Corporation", AssetClass.EQUITY, "156.25"),
    ("JNJ", "Johnson & Johnson", "Johnson & Johnson", AssetClass.EQUITY, "152.70"),
    ("PFE", "Pfizer Inc.", "Pfizer Inc.", AssetClass.EQUITY, "28.45"),
    ("KO", "The Coca-Cola Company", "The Coca-Cola Company", AssetClass.EQUITY, "63.10"),
    ("PEP", "PepsiCo Inc.", "PepsiCo Inc.", AssetClass.EQUITY, "168.95"),
    ("WMT", "Walmart Inc.", "Walmart Inc.", AssetClass.EQUITY, "68.30"),
    ("DIS", "The Walt Disney Company", "The Walt Disney Company", AssetClass.EQUITY, "101.55"),
    ("INTC", "Intel Corporation", "Intel Corporation", AssetClass.EQUITY, "30.20"),
    ("IBM", "International Business Machines", "International Business Machines", AssetClass.EQUITY, "183.90"),
    ("SPY", "SPDR S&P 500 ETF Trust", "State Street Global Advisors", AssetClass.ETF, "545.60"),
    ("QQQ", "Invesco QQQ Trust", "Invesco", AssetClass.ETF, "478.35"),
]

ACCOUNTS = [("ACC-1", "Global Equity Fund"), ("ACC-2", "US Growth Fund"), ("ACC-3", "Income Fund")]

PEOPLE = [
    # username, group, accounts traded, is_staff, is_superuser
    ("trader1", TRADER_GROUP, ["ACC-1", "ACC-2"], False, False),
    ("trader2", TRADER_GROUP, ["ACC-3"], False, False),
    ("pm1", PORTFOLIO_MANAGER_GROUP, ["ACC-1", "ACC-2", "ACC-3"], False, False),
    ("mo1", MIDDLE_OFFICE_GROUP, [], True, False),
    ("mo2", MIDDLE_OFFICE_GROUP, [], True, False),
    ("admin", None, [], True, True),
]

ACTOR = "system:seed_demo"
VIA = "seed_demo"


class Command(BaseCommand):
    help = "Create or refresh the demo users, accounts, securities and venue SIM."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="allow with DEBUG off (never in production)")

    def handle(self, *args, **options):
        if not settings.DEBUG and not options["force"]:
            raise CommandError("seed_demo creates users with known passwords: refusing with DEBUG off (use --force).")
        with transaction.atomic():
            passwords = self._seed()
        self.stdout.write(self.style.SUCCESS("Demo data ready. Users and passwords:"))
        for username, password, role in passwords:
            self.stdout.write(f"  {username:8} {password:22} {role}")

    def _seed(self):
        User = get_user_model()
        groups = {
            name: Group.objects.get_or_create(name=name)[0]
            for name in (TRADER_GROUP, PORTFOLIO_MANAGER_GROUP, MIDDLE_OFFICE_GROUP, API_CLIENT_GROUP)
        }

        for symbol, name, issuer, asset_class, price in SECURITIES:
            values = {
                "name": name,
                "issuer": issuer,
                "asset_class": asset_class,
                "currency": "USD",
                "reference_price": Decimal(price),
                # Stamped at every seed: a reference older than the firm's maximum
                # age blocks orders (fail closed), and the demo runs on fresh ones.
                "reference_price_at": dt.datetime.now(dt.UTC),
                "active": True,
            }
            security_save(symbol=symbol, values=values, actor=ACTOR, via=VIA)

        printed = []
        for username, group, account_codes, is_staff, is_superuser in PEOPLE:
            user, _ = User.objects.get_or_create(username=username)
            password = os.environ.get("OMS_DEMO_PASSWORD") or f"{username}-demo-pass"
            user.set_password(password)
            user.is_staff = is_staff
            user.is_superuser = is_superuser
            user.email = user.email or f"{username}@example.com"
            user.save()
            if group:
                user.groups.add(groups[group])
            role = group or "superuser"
            if account_codes:
                role += " (" + ", ".join(account_codes) + ")"
            printed.append((username, password, role))

        accounts = {}
        for code, name in ACCOUNTS:
            # The demo traders are added; whoever else trades the account keeps it.
            demo_traders = [username for username, _, codes, _, _ in PEOPLE if code in codes]
            traders = User.objects.filter(Q(trading_accounts__code=code) | Q(username__in=demo_traders)).distinct()
            accounts[code], _ = account_save(
                code=code, values={"name": name, "active": True}, traders=traders, actor=ACTOR, via=VIA
            )
        # A borrow located for today, so a SELL_SHORT can be demonstrated (Reg SHO).
        today = dt.datetime.now(dt.UTC).date()
        locate_add(
            user=None,
            account=accounts["ACC-1"],
            security=Security.objects.get(symbol="TSLA"),
            broker="DEMO-PB",
            reference=f"LOC-TSLA-{today:%Y%m%d}",
            quantity=5000,
            expires_at=dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC),
        )
        venue_values = {
            "name": "Venue simulator",
            "host": os.environ.get("SIM_HOST", "127.0.0.1"),
            "port": int(os.environ.get("SIM_PORT", "9878")),
            "sender_comp_id": "OMS",
            "target_comp_id": "SIM",
            "enabled": True,
        }
        venue_save(code="SIM", values=venue_values, actor=ACTOR, via=VIA)
        return printed
