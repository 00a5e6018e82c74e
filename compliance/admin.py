from django.contrib import admin

from .models import ComplianceResult


@admin.register(ComplianceResult)
class ComplianceResultAdmin(admin.ModelAdmin):
    list_display = ["id", "order", "stage", "rule", "outcome", "code", "evaluated_at"]
    list_filter = ["outcome", "rule", "stage"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
