"""Average cost and realized P&L kept on the position (issue 15): the new columns are
worked out for every existing position from its trades in effect (its account's own
fills, and the allocations booked to it), as ``orders.services.positions`` does after a
reversal."""

from decimal import Decimal

from django.db import migrations, models

from orders.pnl import trades_apply

BOOKED = ("confirmed", "received", "accepted")


def costs_from_trades(apps, schema_editor):
    Position = apps.get_model("orders", "Position")
    Execution = apps.get_model("orders", "Execution")
    AllocationLine = apps.get_model("orders", "AllocationLine")
    for position in Position.objects.all().iterator():
        trades = [
            (at, pk, qty if side == "BUY" else -qty, px)
            for at, pk, side, qty, px in Execution.objects.filter(
                in_effect=True,
                last_px__isnull=False,
                last_qty__gt=0,
                order__account_id=position.account_id,
                order__security_id=position.security_id,
                order__block_order=False,
            ).values_list("received_at", "id", "order__side", "last_qty", "last_px")
        ]
        trades += [
            (at, pk, qty if side == "BUY" else -qty, px)
            for at, pk, side, qty, px in AllocationLine.objects.filter(
                account_id=position.account_id,
                allocation__order__security_id=position.security_id,
                allocation__status__in=BOOKED,
                quantity__gt=0,
            ).values_list(
                "allocation__confirmed_at", "id", "allocation__order__side", "quantity", "allocation__avg_price"
            )
        ]
        trades.sort(key=lambda trade: (trade[0], trade[1]))
        cost = trades_apply((qty, px) for _at, _pk, qty, px in trades)
        Position.objects.filter(pk=position.pk).update(cost_basis=cost.cost, realized_pnl=cost.realized)


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0012_exposure_of_blocks_is_the_funds"),
    ]

    operations = [
        migrations.AddField(
            model_name="position",
            name="cost_basis",
            field=models.DecimalField(decimal_places=8, default=Decimal("0"), max_digits=28),
        ),
        migrations.AddField(
            model_name="position",
            name="realized_pnl",
            field=models.DecimalField(decimal_places=8, default=Decimal("0"), max_digits=28),
        ),
        migrations.RunPython(costs_from_trades, migrations.RunPython.noop),
    ]
