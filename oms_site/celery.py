import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oms_site.settings")

app = Celery("oms_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# What a worker runs beside its consumer (bootsteps) belongs to the apps and is added to
# app.steps["worker"] by their AppConfig.ready(): routing (FIX session hosting, see
# routing/worker.py) and audit (sealing, see audit/worker.py). Celery's Django fixup
# runs django.setup() when a worker starts, before the worker reads its steps.
