"""The Celery application. Node tasks are routed to the queue of the party that must run them."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("dataxchange")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
