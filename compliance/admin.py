from django.contrib import admin

from oms_site.admin import ReadOnlyAdmin

from .models import ComplianceResult


@admin.register(ComplianceResult)
class ComplianceResultAdmin(ReadOnlyAdmin):
    list_display = ["id", "order", "stage", "rule", "outcome", "code", "evaluated_at"]
    list_filter = ["outcome", "rule", "stage"]
