import datetime as dt
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from orders.models import Account, Security


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")

    @factory.post_generation
    def password(self, create, extracted, **kwargs):
        self.set_password(extracted or "pass-Word-1")
        if create:
            self.save(update_fields=["password"])


class SecurityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Security
        django_get_or_create = ("symbol",)

    symbol = factory.Sequence(lambda n: f"SEC{n}")
    name = factory.LazyAttribute(lambda o: f"{o.symbol} Corp")
    issuer = factory.LazyAttribute(lambda o: f"{o.symbol} Corp")
    currency = "USD"
    reference_price = Decimal("100.00")
    reference_price_at = factory.LazyFunction(lambda: dt.datetime.now(dt.UTC))


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"ACC-{n}")
    name = factory.LazyAttribute(lambda o: f"Account {o.code}")
