from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "Compliance"

    def ready(self) -> None:
        from . import rules  # noqa: F401 (registers the rules with the engine)
        from .roles import role_permissions_connect

        role_permissions_connect(self)
