"""Row locks for the orders app, always taken in one order: account -> order ->
position (STYLE.md), so two services can never deadlock on each other."""

from __future__ import annotations

from django.db.models import Q

from oms_site.prepared import PreparedRead, RawRead, reads_together

from .models import Account, Order, Position


def account_lock(*, account_id: int) -> Account:
    """Serialises everything that consumes the account's limits and locates: two
    orders of one account are checked one after the other (compliance reads the
    account's positions and running exposure under this lock). FOR NO KEY UPDATE:
    it serialises the account's writers without blocking the foreign-key checks of
    rows that merely name the account (a position, an exposure row)."""
    return account_lock_then(account_id=account_id)[0]


def account_lock_then(*, account_id: int, reads: tuple[RawRead, ...] = ()) -> tuple[Account, list[list[tuple]]]:
    """``account_lock``, then ``reads`` under the lock, in one round trip (on
    PostgreSQL: the statements after the first run once it holds the row, and see
    what the lock's previous holder committed). Returns the account and the rows of
    each read."""
    locked, *rows = reads_together((_ACCOUNT_LOCK, {"account_id": account_id}), *reads)
    if not locked:
        raise Account.DoesNotExist(f"No account {account_id}.")
    return locked[0], rows


_ACCOUNT_LOCK = PreparedRead(
    lambda account_id: Account.objects.select_for_update(no_key=True).filter(pk=account_id), account_id=1
)


def order_lock(*, order_id: int) -> Order:
    return Order.objects.select_for_update(of=("self",)).select_related("security", "account", "venue").get(pk=order_id)


def position_lock(*, account_id: int, security_id: int) -> Position:
    # Insert-or-fetch: the unique constraint decides, so two first fills racing for a
    # new position cannot create two rows.
    Position.objects.bulk_create([Position(account_id=account_id, security_id=security_id)], ignore_conflicts=True)
    return Position.objects.select_for_update().get(account_id=account_id, security_id=security_id)


def accounts_lock(*, account_ids=(), codes=()) -> list[Account]:
    """Lock several accounts (by id or by code) in one statement, in id order (rows are
    locked in the order they are returned), so two baskets or blocks sharing accounts
    queue behind each other instead of deadlocking."""
    wanted = Q(pk__in=set(account_ids)) | Q(code__in=set(codes))
    return list(Account.objects.select_for_update(no_key=True).filter(wanted).order_by("pk"))
