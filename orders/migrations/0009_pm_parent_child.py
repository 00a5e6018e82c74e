import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

GROUP = "portfolio_manager"


def create_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.get_or_create(name=GROUP)


def remove_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP, user__isnull=True).delete()


class Migration(migrations.Migration):
    """Portfolio managers' orders (issue 14): a desk order waits for a trader, who
    accepts it (owner) and works it in child orders (parent)."""

    dependencies = [
        ("orders", "0008_firm_trade_date"),
        ("auth", "0012_alter_user_first_name_max_length"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="order",
            name="desk_order",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="order",
            name="owner",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="owned_orders",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="order",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="children",
                to="orders.order",
            ),
        ),
        migrations.RunPython(create_group, remove_group),
    ]
