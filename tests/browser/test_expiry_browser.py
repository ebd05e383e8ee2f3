"""Issue 10 in a real browser: the expiry warning, extending, re-authentication, tabs, revoked
sessions, form drafts, the cart, and an accessibility check, against the demo shop.

Headless Chromium (Debian's) driven by Playwright. Time is fake on both sides, so the suite
needs no sleeps and asserts nothing about wall-clock durations: the server's ``clock`` option
is a :class:`Clock` the test moves, and the browser context's clock is Playwright's
(``context.clock.install``, paused, so it moves only with ``fast_forward``). :meth:`Shop.advance`
moves both together.

ASVS 5.0 V7.3.1 (idle timeout) / V7.3.2 (absolute timeout): the page's countdown is the
server's, polling never extends a session, and extending never passes the absolute limit.
ASVS 5.0 V7.4.1 / WSTG-SESS-06: a session ended elsewhere (revoked, signed out in another tab)
ends on this page too. WCAG 2.2 SC 2.2.1 (Timing Adjustable): warned, at least 20 s, one action.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from sessionkeeper import open_store
from sessionkeeper.core import ids
from sessionkeeper.core.records import Apply, Load, Op
from sessionkeeper.stores.base import Store

from .conftest import _serve

T0 = 1_900_000_000.0
AXE = Path(__file__).with_name("vendor") / "axe.min.js"
SCREENSHOTS = Path(__file__).parents[2] / "docs" / "screenshots"


class Clock:
    """The server's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Recording(Store):
    """Passes operations to a memory store and counts writes; can hold writes until two
    requests have both loaded (to make "two tabs at once" certain, not a matter of luck)."""

    def __init__(self) -> None:
        self.inner = open_store("memory://")
        self.ops: list[Op] = []
        self.barrier: threading.Barrier | None = None
        self.lock = threading.Lock()

    def execute(self, op: Op) -> Any:
        with self.lock:
            self.ops.append(op)
            barrier = self.barrier
        if barrier is not None and isinstance(op, Apply) and op.delta.touches_fields:
            barrier.wait(timeout=20)
        return self.inner.execute(op)

    async def aexecute(self, op: Op) -> Any:  # pragma: no cover - the demo is WSGI
        return self.execute(op)

    def close(self) -> None:
        self.inner.close()


class Shop:
    """The demo shop on loopback with a fake clock; helpers to drive a browser against it."""

    def __init__(self, browser: Any, base: str, clock: Clock, store: Recording) -> None:
        self.browser = browser
        self.base = base
        self.clock = clock
        self.store = store
        self.contexts: list[Any] = []

    def context(self, **options: Any) -> Any:
        ctx = self.browser.new_context(viewport={"width": 900, "height": 640}, **options)
        ctx.clock.install(time=datetime.fromtimestamp(self.clock.now, timezone.utc))
        # Paused: the page's clock moves only with advance(), never with the machine's own
        # time, so a slow run (a cold browser, a busy CI machine) reads the same countdown.
        ctx.clock.pause_at(datetime.fromtimestamp(self.clock.now, timezone.utc))
        self.contexts.append(ctx)
        return ctx

    def advance(self, seconds: float) -> None:
        """Move the server's clock and every browser context's clock by ``seconds``."""
        self.clock.now += seconds
        for ctx in self.contexts:
            ctx.clock.fast_forward(int(seconds * 1000))

    def sign_in(self, page: Any, user: str = "alice", path: str = "/") -> None:
        page.goto(self.base + f"/signin?next={path}")
        page.fill("#user-name", user)
        page.fill("#password", "demo")
        page.click("#login")
        page.wait_for_selector("#user")
        ready(page)

    def meta(self, page: Any) -> Any:
        """The server's record of the page's session (``None`` if it has none)."""
        (cookie,) = [c for c in page.context.cookies() if c["name"] == "session"]
        record = self.store.inner.execute(Load(ids.storage_key(cookie["value"]), self.clock.now))
        return None if record is None else record.meta


def ready(page: Any) -> None:
    # functions, not expressions: an expression would be eval'd in the page, which its CSP forbids
    page.wait_for_function("() => document.documentElement.dataset.sessionkeeper === 'ready'")


def dialog_mode(page: Any) -> str | None:
    return page.evaluate("(() => { const d = document.querySelector('dialog.sk-dialog');"
                         " return d && d.open ? d.dataset.mode : null; })()")


def wait_mode(page: Any, mode: str | None) -> None:
    if mode is None:
        page.wait_for_function("() => !(document.querySelector('dialog.sk-dialog') || {}).open")
    else:
        page.wait_for_function(
            f"() => {{ const d = document.querySelector('dialog.sk-dialog');"
            f" return d && d.open && d.dataset.mode === '{mode}'; }}")


def shoot(page: Any, name: str) -> None:
    # The README's pictures are refreshed only on request, so a test run leaves the checkout
    # as it found it: SESSIONKEEPER_UPDATE_SCREENSHOTS=1 python3 dev.py test tests/browser
    data = page.screenshot()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("SESSIONKEEPER_UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / name).write_bytes(data)


def make_shop(browser: Any, **options: Any) -> Iterator[Shop]:
    from sessionkeeper.demo.app import make_app

    clock, store = Clock(), Recording()
    options = {"idle_timeout": 60, "absolute_timeout": 600, "warn_before": 30, **options}
    app = make_app(store, clock=clock, shown_url="memory://", **options)
    for base in _serve(app):
        shop = Shop(browser, base, clock, store)
        try:
            yield shop
        finally:
            for ctx in shop.contexts:
                ctx.close()
            store.close()


@pytest.fixture
def shop(browser: Any) -> Iterator[Shop]:
    yield from make_shop(browser)


@pytest.fixture
def short_absolute(browser: Any) -> Iterator[Shop]:
    yield from make_shop(browser, absolute_timeout=80)


# ---- the warning, extending, expiry ----------------------------------------------------------


def test_v7_3_1_warning_before_idle_timeout_with_focus_and_stay_signed_in_extends(shop: Shop) -> None:
    page = shop.context().new_page()
    shop.sign_in(page)
    before = shop.meta(page)
    shop.advance(25)
    assert dialog_mode(page) is None  # 35 s left: more than the 30 s warning
    shop.advance(6)  # 29 s left
    wait_mode(page, "warning")
    dialog = page.locator("dialog.sk-dialog")
    assert dialog.get_attribute("role") == "alertdialog"
    assert dialog.get_attribute("aria-modal") == "true"
    assert page.evaluate("document.activeElement.textContent") == "Stay signed in"
    assert "signed out in 29 seconds" in page.inner_text("#sk-body")
    assert page.evaluate("document.querySelector('.sk-live').getAttribute('aria-live')") == "polite"
    # Tab stays inside the dialog (two buttons: Stay, Sign out, then back to Stay)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Sign out"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Stay signed in"
    shoot(page, "expiry-warning.png")
    page.get_by_role("button", name="Stay signed in").click()
    wait_mode(page, None)
    after = shop.meta(page)
    assert after.last_seen == T0 + 31 > before.last_seen  # extended on the server
    assert after.expires_at == T0 + 91


def test_escape_means_stay_signed_in(shop: Shop) -> None:
    page = shop.context().new_page()
    shop.sign_in(page)
    shop.advance(31)
    wait_mode(page, "warning")
    page.keyboard.press("Escape")
    wait_mode(page, None)
    assert shop.meta(page).expires_at == T0 + 91


def test_v7_3_1_ignoring_the_warning_ends_the_session_and_the_page_says_so(shop: Shop) -> None:
    page = shop.context().new_page()
    shop.sign_in(page)
    shop.advance(31)
    wait_mode(page, "warning")
    shop.advance(30)
    wait_mode(page, "ended")
    assert "You have been signed out" in page.inner_text("#sk-title")
    assert "inactivity" in page.inner_text("#sk-body")
    assert page.evaluate("document.activeElement.textContent") == "Sign in again"
    assert shop.meta(page) is None  # the server agrees: gone
    page.get_by_role("button", name="Sign in again").click()
    page.wait_for_selector("#signin")


def test_v7_3_1_the_status_poll_never_extends_the_session(shop: Shop) -> None:
    """An open tab nobody touches polls, and still the session dies at its idle timeout."""
    page = shop.context().new_page()
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.method) if r.url.endswith("/_session/status") else None)
    shop.sign_in(page)
    before = shop.meta(page)
    shop.store.ops.clear()
    polls.clear()  # the ones each page makes once when it loads
    for _ in range(3):  # poll interval: 15 s (a quarter of the idle timeout)
        with page.expect_response(lambda r: r.url.endswith("/_session/status")):
            shop.advance(16)
    assert polls == ["GET"] * 3, polls
    assert shop.meta(page) == before  # no touch, no write
    assert not [op for op in shop.store.ops if not isinstance(op, Load)]
    shop.advance(13)  # 61 s after sign-in
    wait_mode(page, "ended")


def test_only_real_user_activity_extends_and_at_most_once_per_interval(shop: Shop) -> None:
    page = shop.context().new_page()
    extends: list[str] = []
    page.on("request", lambda r: extends.append(r.method) if r.url.endswith("/_session/extend") else None)
    shop.sign_in(page, "gus", "/cart")
    shop.advance(20)  # past the activity throttle (15 s: a quarter of the idle timeout)
    # events a script makes up are not activity
    page.evaluate("() => { document.dispatchEvent(new KeyboardEvent('keydown', {key: 'a'}));"
                  " document.querySelector('#note').dispatchEvent(new Event('input', {bubbles: true})); }")
    assert extends == [] and shop.meta(page).last_seen == T0
    with page.expect_response(lambda r: r.url.endswith("/_session/extend")):
        page.type("#note", "abc")  # a person typing: one extend for the three key presses
    assert shop.meta(page).last_seen == T0 + 20
    page.type("#note", "def")
    assert extends == ["POST"]  # throttled


def test_v7_3_2_near_the_absolute_limit_the_dialog_offers_reauthentication(short_absolute: Shop) -> None:
    shop = short_absolute
    page = shop.context().new_page()
    shop.sign_in(page)
    shop.advance(31)  # idle warning (absolute is 49 s away): extending helps
    wait_mode(page, "warning")
    page.get_by_role("button", name="Stay signed in").click()
    wait_mode(page, None)
    assert shop.meta(page).expires_at == T0 + 80  # capped by the absolute limit
    shop.advance(20)  # 29 s to the absolute limit: extending cannot help
    wait_mode(page, "reauth")
    assert page.locator("dialog.sk-dialog button", has_text="Stay signed in").count() == 0
    assert page.evaluate("document.activeElement.textContent") == "Sign in again"
    assert "Sign in again to keep working" in page.inner_text("#sk-body")
    page.get_by_role("button", name="Sign in again").click()
    page.wait_for_selector("#signin")
    page.fill("#user-name", "alice")
    page.fill("#password", "demo")
    page.click("#login")
    page.wait_for_selector("#user")
    ready(page)
    meta = shop.meta(page)
    assert meta.absolute_at == shop.clock.now + 80  # a new session: a fresh absolute window


# ---- tabs and other devices ----------------------------------------------------------------------


def test_two_tabs_extend_in_one_closes_the_other_and_sign_out_ends_both(shop: Shop) -> None:
    ctx = shop.context()
    one, two = ctx.new_page(), ctx.new_page()
    shop.sign_in(one)
    two.goto(shop.base + "/cart")
    ready(two)
    shop.advance(31)
    wait_mode(one, "warning")
    wait_mode(two, "warning")
    one.get_by_role("button", name="Stay signed in").click()
    wait_mode(one, None)
    wait_mode(two, None)  # the other tab's warning closed too
    shop.advance(31)
    wait_mode(one, "warning")
    wait_mode(two, "warning")
    one.locator("dialog.sk-dialog").get_by_role("button", name="Sign out").click()
    wait_mode(two, "ended")
    assert "You signed out in another tab" in two.inner_text("#sk-body")
    one.wait_for_selector("#signin-link")  # the tab that signed out shows the signed-out page


FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
          "like Gecko) Version/18.1 Mobile/15E148 Safari/604.1")


def test_v7_4_1_revoked_from_another_browser_the_page_says_signed_out(shop: Shop) -> None:
    laptop = shop.context(user_agent=FIREFOX).new_page()
    shop.sign_in(laptop, "bob")
    shop.advance(5)
    phone = shop.context(user_agent=IPHONE).new_page()
    shop.sign_in(phone, "bob")
    phone.goto(shop.base + "/devices")
    assert "Firefox on Linux" in phone.inner_text("#devices")
    shoot(phone, "devices.png")
    phone.locator("#devices button").click()  # the one other device: the laptop
    phone.wait_for_selector("#devices")
    assert shop.meta(laptop) is None
    assert dialog_mode(laptop) is None
    shop.advance(16)  # the laptop's next status poll
    wait_mode(laptop, "ended")
    assert "You have been signed out" in laptop.inner_text("#sk-title")
    assert "another device" in laptop.inner_text("#sk-body")


# ---- drafts, the cart ---------------------------------------------------------------------------


def test_form_drafts_survive_expiry_and_sign_in(shop: Shop) -> None:
    page = shop.context().new_page()
    shop.sign_in(page, "carol", "/cart")
    page.fill("#address", "12 Harbour Road")
    page.fill("#note", "Ring twice, the bell is slow.")
    shop.advance(61)
    wait_mode(page, "ended")
    assert "comes back after you sign in" in page.inner_text("dialog.sk-dialog")
    shoot(page, "expiry-ended.png")
    stored = page.evaluate("JSON.stringify(Object.assign({}, localStorage))")
    assert "Ring twice" in stored and "csrf" not in stored  # hidden fields are never kept
    page.get_by_role("button", name="Sign in again").click()
    page.fill("#user-name", "carol")
    page.fill("#password", "demo")
    page.click("#login")
    page.wait_for_selector("#checkout")
    page.wait_for_function("() => document.querySelector('#note').value !== ''")
    assert page.input_value("#address") == "12 Harbour Road"
    assert page.input_value("#note") == "Ring twice, the bell is slow."
    assert "Ring twice" not in page.evaluate("JSON.stringify(Object.assign({}, localStorage))")


def test_password_fields_are_never_kept_as_drafts(shop: Shop) -> None:
    page = shop.context().new_page()
    shop.sign_in(page, "dan", "/cart")
    page.evaluate("""() => {
        const f = document.querySelector('#checkout');
        const p = document.createElement('input');
        p.type = 'password'; p.name = 'pin'; p.value = 'hunter2';
        f.append(p);
    }""")
    page.fill("#note", "keep me")
    shop.advance(61)
    wait_mode(page, "ended")
    stored = page.evaluate("JSON.stringify(Object.assign({}, localStorage))")
    assert "keep me" in stored and "hunter2" not in stored


def test_cart_keeps_every_item_when_two_tabs_add_at_once(shop: Shop) -> None:
    ctx = shop.context()
    one, two = ctx.new_page(), ctx.new_page()
    shop.sign_in(one, "erin")
    two.goto(shop.base + "/")
    # Both requests load the session before either saves (the store holds their writes at a
    # barrier): with whole-session writes one item would be lost.
    shop.store.barrier = threading.Barrier(2)
    with one.expect_navigation(), two.expect_navigation():
        one.evaluate("document.querySelector('#add-tea').form.requestSubmit()")
        two.evaluate("document.querySelector('#add-mug').form.requestSubmit()")
    shop.store.barrier = None
    one.goto(shop.base + "/cart")
    rows = one.locator("#cart tr[id^=line-]").evaluate_all(
        "rs => rs.map(r => r.id + '=' + r.cells[1].textContent)")
    assert sorted(rows) == ["line-mug=1", "line-tea=1"]  # one key for the whole cart lost one


# ---- accessibility -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["warning", "ended"])
def test_the_dialog_has_no_axe_violations(shop: Shop, mode: str) -> None:
    # bypass_csp: only so that the test can inject axe; the client runs under the CSP elsewhere
    page = shop.context(bypass_csp=True).new_page()
    shop.sign_in(page, "fay", "/cart")
    shop.advance(31 if mode == "warning" else 61)
    wait_mode(page, mode)
    page.context.clock.resume()  # axe schedules its own work with timers
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    result = page.evaluate("""async () => {
        const r = await axe.run(document.querySelector('dialog.sk-dialog'),
            {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']});
        return {violations: r.violations.map(v => v.id + ': ' + v.help), passes: r.passes.length};
    }""")
    assert result["violations"] == [], result["violations"]
    assert result["passes"] > 5  # it really looked (aria roles, names, contrast ...)
