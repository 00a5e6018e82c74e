"""The user groups the OMS knows, named once. A library module: it imports no app."""

from __future__ import annotations

TRADER_GROUP = "trader"
MIDDLE_OFFICE_GROUP = "middle_office"
API_CLIENT_GROUP = "api_client"
# Decides what to buy or sell; their orders are checked by compliance but never routed:
# they wait for a trader of the account, who accepts and works them (child orders).
PORTFOLIO_MANAGER_GROUP = "portfolio_manager"
# Who may run the compliance console and API (with superusers): never a trader.
COMPLIANCE_GROUPS = (MIDDLE_OFFICE_GROUP, API_CLIENT_GROUP)
