"""The Starlette app under uvicorn, with the session variant named by BENCH_SESSION."""

from __future__ import annotations

import asyncio

from common import REDIS_URL, SECRET, SESSION, STORE_URL, count_cart, delay_seconds
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

middleware: list[Middleware] = []
if SESSION == "sk":
    from sessionkeeper import open_store
    from sessionkeeper.asgi import SessionMiddleware

    middleware.append(Middleware(SessionMiddleware, store=open_store(STORE_URL)))
elif SESSION == "starsessions":
    from starsessions import SessionAutoloadMiddleware
    from starsessions import SessionMiddleware as StarSessionMiddleware
    from starsessions.stores.redis import RedisStore

    middleware += [
        Middleware(StarSessionMiddleware, store=RedisStore(REDIS_URL)),
        Middleware(SessionAutoloadMiddleware),
    ]
elif SESSION == "signed":
    from starlette.middleware.sessions import SessionMiddleware as SignedCookieMiddleware

    middleware.append(Middleware(SignedCookieMiddleware, secret_key=SECRET))
elif SESSION != "none":
    raise SystemExit(f"starlette app: unknown BENCH_SESSION {SESSION!r}")

USES_SESSION = SESSION != "none"


async def plain(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def read(request: Request) -> PlainTextResponse:
    if USES_SESSION:
        return PlainTextResponse(str(request.session.get("counter", 0)))
    return PlainTextResponse("0")


async def write(request: Request) -> PlainTextResponse:
    if USES_SESSION:
        n = request.session.get("counter", 0) + 1
        request.session["counter"] = n
        return PlainTextResponse(str(n))
    return PlainTextResponse("1")


async def cart_naive(request: Request) -> PlainTextResponse:
    cart = request.session.get("cart", {})
    await asyncio.sleep(delay_seconds(request.query_params.get("delay")))
    cart[request.query_params["item"]] = 1
    request.session["cart"] = cart
    return PlainTextResponse("ok")


async def cart_key(request: Request) -> PlainTextResponse:
    request.session.get("counter")
    await asyncio.sleep(delay_seconds(request.query_params.get("delay")))
    request.session[f"item:{request.query_params['item']}"] = 1
    return PlainTextResponse("ok")


async def cart_list(request: Request) -> PlainTextResponse:
    items = request.session.setdefault("cart_list", [])  # the README's cart: append to one list
    await asyncio.sleep(delay_seconds(request.query_params.get("delay")))
    items.append(request.query_params["item"])
    return PlainTextResponse("ok")


async def cart_count(request: Request) -> JSONResponse:
    return JSONResponse(count_cart(request.session))


app = Starlette(
    routes=[
        Route("/plain", plain),
        Route("/read", read),
        Route("/write", write),
        Route("/cart/naive", cart_naive),
        Route("/cart/key", cart_key),
        Route("/cart/list", cart_list),
        Route("/cart/count", cart_count),
    ],
    middleware=middleware,
)
