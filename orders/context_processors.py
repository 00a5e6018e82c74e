from .selectors import accounts_tradable_by, user_sees_all_accounts


def navigation(request) -> dict:
    """What the page header offers: the ticket to those who trade an account, the
    compliance console to middle office."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "nav_trades": accounts_tradable_by(user=user).exists(),
        "nav_console": user.is_staff and (user.is_superuser or user_sees_all_accounts(user)),
    }
