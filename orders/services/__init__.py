"""Order use cases, one module per use case (DESIGN §3); every public name is
re-exported here, so callers write ``from orders.services import order_submit``.

- ``submit``: order_submit, order_check (the what-if), routing a passed order
- ``baskets``: basket_submit (many orders in one transaction), basket_check (its
  lines' what-if), basket_cancel
- ``cancel``: order_cancel
- ``blocks``: order_evaluate (compliance for any order; a block fund by fund)
- ``allocations``: a block's allocations proposed, changed, confirmed (positions
  booked, AllocationInstruction sent), cancelled, and the broker's acks applied
- ``positions``: positions_add (fills and allocations booked to positions)
- ``desk``: order_accept (a trader takes a portfolio manager's order), order_child_place
- ``amend``: order_amend
- ``overrides``: order_override_request, override_approve, override_deny,
  order_release, order_compliance_reject
- ``kill_switch``: kill_switch_set (latch in compliance, then cancel in scope)
- ``execution_reports``: execution_report_apply (ExecutionReport, OrderCancelReject)
- ``inbox``: inbox_apply, venue_reconcile
- ``local_close``: order_close_locally (an order the venue no longer knows)
- ``session_day``: orders_waiting_expire (orders that waited too long for a venue's
  session), end_of_day (DAY orders at a venue's session end, GTD orders past expiry)
- ``securities``: security_rows_load (the security master from CSV)
- ``reference_data``: security_save, account_save (every write of a security or an
  account outside the admin, audited as the admin's are)
- ``_common``: helpers shared by the above
"""

from ._common import order_snapshot
from .allocations import (
    allocation_cancel,
    allocation_change,
    allocation_confirm,
    allocation_snapshot,
    block_unallocated_quantity,
)
from .amend import order_amend
from .baskets import BASKET_MAX_LINES, BasketCancelResult, basket_cancel, basket_check, basket_submit
from .cancel import order_cancel
from .desk import order_accept, order_child_place
from .execution_reports import EXEC_TYPE_ACTIONS, ApplyResult, execution_report_apply
from .inbox import INBOX_BATCH, inbox_apply, venue_reconcile
from .kill_switch import kill_switch_set, orders_cancel_in_scope
from .local_close import LOCAL_CLOSE_STATUSES, order_close_locally
from .overrides import order_compliance_reject, order_override_request, order_release, override_approve, override_deny
from .reference_data import account_save, security_save
from .securities import SecurityLoadReport, security_rows_load
from .session_day import EndOfDayResult, end_of_day, orders_waiting_expire
from .submit import order_check, order_submit

__all__ = [
    "allocation_cancel",
    "allocation_change",
    "allocation_confirm",
    "allocation_snapshot",
    "block_unallocated_quantity",
    "BASKET_MAX_LINES",
    "EXEC_TYPE_ACTIONS",
    "INBOX_BATCH",
    "LOCAL_CLOSE_STATUSES",
    "ApplyResult",
    "BasketCancelResult",
    "EndOfDayResult",
    "SecurityLoadReport",
    "account_save",
    "basket_cancel",
    "basket_check",
    "basket_submit",
    "end_of_day",
    "orders_waiting_expire",
    "execution_report_apply",
    "inbox_apply",
    "kill_switch_set",
    "order_accept",
    "order_amend",
    "order_child_place",
    "order_cancel",
    "order_check",
    "order_close_locally",
    "order_compliance_reject",
    "order_override_request",
    "order_release",
    "order_snapshot",
    "order_submit",
    "orders_cancel_in_scope",
    "override_approve",
    "override_deny",
    "security_rows_load",
    "security_save",
    "venue_reconcile",
]
