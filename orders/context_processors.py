from .selectors import accounts_tradable_by, user_is_portfolio_manager, user_sees_all_accounts


def navigation(request) -> dict:
    """What the page header offers: the ticket to those who trade an account, the
    desk's incoming queue to traders (not to portfolio managers, whose orders fill it),
    the compliance console to middle office."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    trades = accounts_tradable_by(user=user).exists()
    return {
        "nav_trades": trades,
        "nav_incoming": trades and not user_is_portfolio_manager(user),
        "nav_console": user.is_staff and (user.is_superuser or user_sees_all_accounts(user)),
    }
