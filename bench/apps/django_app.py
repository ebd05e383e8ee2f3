"""A one-file Django app under gunicorn: cache sessions on Redis, or no sessions."""

from __future__ import annotations

import json
import time

from common import REDIS_URL, SECRET, SESSION, delay_seconds
from django.conf import settings

if SESSION not in ("none", "django-cache"):
    raise SystemExit(f"django app: unknown BENCH_SESSION {SESSION!r}")

settings.configure(
    DEBUG=False,
    SECRET_KEY=SECRET,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["django.contrib.sessions"] if SESSION != "none" else [],
    MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"] if SESSION != "none" else [],
    CACHES={"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}},
    SESSION_ENGINE="django.contrib.sessions.backends.cache",
    USE_TZ=True,
    LOGGING_CONFIG=None,
)

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

USES_SESSION = SESSION != "none"


def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def read(request: HttpRequest) -> HttpResponse:
    if USES_SESSION:
        return HttpResponse(str(request.session.get("counter", 0)))
    return HttpResponse("0")


def write(request: HttpRequest) -> HttpResponse:
    if USES_SESSION:
        n = request.session.get("counter", 0) + 1
        request.session["counter"] = n
        return HttpResponse(str(n))
    return HttpResponse("1")


def cart_naive(request: HttpRequest) -> HttpResponse:
    cart = request.session.get("cart", {})
    time.sleep(delay_seconds(request.GET.get("delay")))
    cart[request.GET["item"]] = 1
    request.session["cart"] = cart
    return HttpResponse("ok")


def cart_key(request: HttpRequest) -> HttpResponse:
    request.session.get("counter")
    time.sleep(delay_seconds(request.GET.get("delay")))
    request.session[f"item:{request.GET['item']}"] = 1
    return HttpResponse("ok")


def cart_list(request: HttpRequest) -> HttpResponse:
    items = request.session.setdefault("cart_list", [])
    time.sleep(delay_seconds(request.GET.get("delay")))
    items.append(request.GET["item"])
    request.session.modified = True  # Django does not see a change inside a value
    return HttpResponse("ok")


def cart_count(request: HttpRequest) -> HttpResponse:
    s = request.session
    cart = s.get("cart") or {}
    keys = sum(1 for k, _ in s.items() if k.startswith("item:"))
    items = s.get("cart_list") or []
    return HttpResponse(json.dumps({"naive": len(cart), "per_key": keys, "list": len(items)}))


urlpatterns = [
    path("plain", plain),
    path("read", read),
    path("write", write),
    path("cart/naive", cart_naive),
    path("cart/key", cart_key),
    path("cart/list", cart_list),
    path("cart/count", cart_count),
]

app = get_wsgi_application()
