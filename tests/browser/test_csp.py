"""The Content-Security-Policy (settings CONTENT_SECURITY_POLICY) blocks nothing the
OMS's own pages need: the trader pages, the admin (lists, forms with their widgets and
JavaScript) and the API docs load in headless Chromium with no policy violation."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .conftest import login, snap

pytestmark = pytest.mark.browser


def _watch(page) -> list[str]:
    """The policy violations the page reports: Chromium's console errors, and the
    ``securitypolicyviolation`` events, which carry what was blocked."""
    violations: list[str] = []

    def seen(message) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            violations.append(f"{page.url}: {message.text}")

    page.on("console", seen)
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => console.error("
        "'Content Security Policy violation: ' + e.violatedDirective + ' ' + e.blockedURI))"
    )
    return violations


def test_pages_admin_and_api_docs_run_under_the_policy(oms, new_page):
    page = new_page()
    violations = _watch(page)
    login(page, "trader1")
    for path in ("/orders/", "/orders/new/", "/positions/"):
        page.goto(path)
        page.wait_for_load_state("networkidle")
    # The ticket's script runs: the order type shows and hides the price fields.
    page.goto("/orders/new/")
    page.get_by_label("Order type").select_option(label="Market")
    expect(page.get_by_label("Limit price")).to_be_hidden()

    page.goto("/api/docs/")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=20_000)
    snap(page, "csp-api-docs")
    # The watch works: a script the page did not bring with its nonce is refused.
    page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.__injected = true'; document.body.appendChild(s); }"
    )
    page.wait_for_timeout(300)
    assert page.evaluate("window.__injected === undefined")
    assert any("script-src" in v for v in violations), violations
    violations.clear()

    officer = new_page()
    violations += _watch(officer)
    login(officer, "mo1", path="/admin/login/")
    for path in (
        "/admin/",
        "/admin/orders/order/",
        "/admin/compliance/restrictedentry/add/",
        "/admin/compliance/killswitch/add/",
        "/admin/axes/accessattempt/",
    ):
        officer.goto(path)
        officer.wait_for_load_state("networkidle")
    # The admin's own JavaScript runs: the calendar widget opens.
    officer.goto("/admin/compliance/restrictedentry/add/")
    officer.locator(".datetimeshortcuts a", has_text="Today").first.click()
    snap(officer, "csp-admin-form")

    assert not violations, violations
