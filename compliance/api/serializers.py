import datetime as dt

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import KillSwitch, OverrideRequest, RestrictedEntry


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date and time that must carry its time zone: a list entry's period
    is a compliance fact, never guessed from the server's zone."""

    default_error_messages = {"naive": "A date and time with a time zone (e.g. 2026-01-31T09:30:00Z)."}

    def enforce_timezone(self, value: dt.datetime) -> dt.datetime:
        if timezone.is_naive(value):
            self.fail("naive")
        return super().enforce_timezone(value)


# ------------------------------------------------------------------ restricted list
class RestrictedEntryFilterSerializer(serializers.Serializer):
    active = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text="true: in force now; false: ended or not yet started"
    )
    symbol = serializers.CharField(max_length=32, required=False, help_text="entries added for this symbol")
    issuer = serializers.CharField(
        max_length=200, required=False, help_text="entries for this issuer (symbol entries carry their issuer)"
    )


class RestrictedEntryInputSerializer(serializers.Serializer):
    symbol = serializers.CharField(max_length=32, required=False, allow_null=True, allow_blank=True)
    issuer = serializers.CharField(max_length=200, required=False, allow_null=True, allow_blank=True)
    reason = serializers.CharField()
    effective_from = AwareDateTimeField(required=False, allow_null=True, help_text="default: now")
    effective_to = AwareDateTimeField(required=False, allow_null=True, help_text="default: open-ended")


class RestrictedEntrySerializer(serializers.ModelSerializer):
    symbol = serializers.CharField(source="security.symbol", read_only=True, allow_null=True, default=None)
    active = serializers.SerializerMethodField()
    added_by = serializers.CharField(source="added_by.username", read_only=True, allow_null=True, default=None)
    ended_by = serializers.CharField(source="ended_by.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = RestrictedEntry
        fields = [
            "id",
            "symbol",
            "issuer",
            "reason",
            "effective_from",
            "effective_to",
            "active",
            "added_by",
            "added_at",
            "ended_by",
            "ended_at",
        ]
        read_only_fields = fields

    def get_active(self, entry: RestrictedEntry) -> bool:
        """In force now."""
        return entry.in_force()


# ---------------------------------------------------------------------- kill switch
class KillSwitchInputSerializer(serializers.Serializer):
    scope = serializers.ChoiceField(choices=KillSwitch.Scope.choices)
    target = serializers.CharField(
        max_length=150,
        required=False,
        allow_blank=True,
        default="",
        help_text="account code, username, venue code or symbol; empty for the firm switch",
    )
    active = serializers.BooleanField(help_text="true switches on (and cancels working orders), false releases")
    reason = serializers.CharField()


class KillSwitchSerializer(serializers.ModelSerializer):
    active = serializers.BooleanField(read_only=True)
    activated_by = serializers.CharField(source="activated_by.username", read_only=True, allow_null=True, default=None)
    released_by = serializers.CharField(source="released_by.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = KillSwitch
        fields = [
            "id",
            "scope",
            "target",
            "active",
            "reason",
            "activated_by",
            "activated_at",
            "released_by",
            "released_at",
            "release_reason",
            "cancels_requested",
        ]
        read_only_fields = fields


class KillSwitchResultSerializer(KillSwitchSerializer):
    """The switch after ``kill_switch_set``, with what the call did; serializes the
    service's KillSwitchResult."""

    changed = serializers.BooleanField(read_only=True, help_text="false: the switch was already in that state")
    cancelled_order_ids = serializers.ListField(
        child=serializers.IntegerField(), read_only=True, help_text="orders cancelled or sent a cancel request"
    )

    class Meta(KillSwitchSerializer.Meta):
        fields = [*KillSwitchSerializer.Meta.fields, "changed", "cancelled_order_ids"]
        read_only_fields = fields

    def to_representation(self, result):
        data = super().to_representation(result.switch)
        data["changed"] = result.changed
        data["cancelled_order_ids"] = list(result.cancelled_order_ids)
        return data


# ------------------------------------------------------------------------ overrides
# A named enum component: the field name "status" already carries the order statuses.
@extend_schema_field(
    {"type": "string", "enum": list(OverrideRequest.Status.values)}, component_name="OverrideStatusEnum"
)
class OverrideStatusField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=OverrideRequest.Status.choices, **kwargs)


class OverrideFilterSerializer(serializers.Serializer):
    status = OverrideStatusField(required=False)


class OverrideRequestInputSerializer(serializers.Serializer):
    justification = serializers.CharField(help_text="why the held order should be released")


class OverrideApproveInputSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="")


class OverrideDenyInputSerializer(serializers.Serializer):
    note = serializers.CharField(help_text="why the override is denied")


class OverrideRequestSerializer(serializers.ModelSerializer):
    status = OverrideStatusField(read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True)
    decided_by = serializers.CharField(source="decided_by.username", read_only=True, allow_null=True, default=None)
    warnings = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = OverrideRequest
        fields = [
            "id",
            "order",
            "status",
            "justification",
            "requested_by",
            "requested_at",
            "expires_at",
            "warnings",
            "decided_by",
            "decided_at",
            "decision_note",
        ]
        read_only_fields = fields


class OverrideDecisionSerializer(OverrideRequestSerializer):
    order_status = serializers.CharField(source="order.status", read_only=True, help_text="after the decision")

    class Meta(OverrideRequestSerializer.Meta):
        fields = [*OverrideRequestSerializer.Meta.fields, "order_status"]
        read_only_fields = fields
