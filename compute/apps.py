from django.apps import AppConfig


class ComputeConfig(AppConfig):
    name = "compute"
    default_auto_field = "django.db.models.BigAutoField"
