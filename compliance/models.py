from django.db import models


class Outcome(models.TextChoices):
    PASS = "pass", "Pass"
    WARN = "warn", "Warn"
    BLOCK = "block", "Block"


class ComplianceResult(models.Model):
    """One rule's verdict on one order at one evaluation (submit, amend, release);
    pass results are kept as well as failures."""

    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="compliance_results")
    stage = models.CharField(max_length=20, default="submit")
    rule = models.CharField(max_length=50)
    outcome = models.CharField(max_length=5, choices=Outcome.choices)
    code = models.CharField(max_length=50)
    reason = models.TextField(blank=True)
    # Watch-list style results are for compliance only, never shown to traders.
    internal = models.BooleanField(default=False)
    evaluated_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.rule}: {self.outcome}"
