"""The middle-office compliance console.

Every change made here goes through a service (the same functions the API calls):
``compliance.services`` for the records compliance keeps, ``orders.services`` where an
order changes (the kill switch cancels, an override decision releases or rejects). The
services write the audit event with who, before and after. Nothing is ever deleted:
entries and locates are ended, switches released, overrides decided.

Adds that have a service of their own (list entries, kill switches) use a small add
page of their own instead of the model form, so the service, not the form, writes the
row, and it runs in its own transactions (the kill switch must commit its latch before
it sweeps the working orders).

One module per concern; importing them registers their admins."""

from . import kill_switch, lists, locates, overrides, review, rules  # noqa: F401
