"""The Flask app under gunicorn, with the session variant named by BENCH_SESSION."""

from __future__ import annotations

import json
import time

from common import REDIS_URL, SECRET, SESSION, STORE_URL, count_cart, delay_seconds
from flask import Flask, request, session

app = Flask(__name__)

if SESSION == "sk":
    from sessionkeeper import open_store
    from sessionkeeper.flask import init_app

    init_app(app, store=open_store(STORE_URL))
elif SESSION == "flask-session":
    import redis
    from flask_session import Session

    app.config.update(SESSION_TYPE="redis", SESSION_REDIS=redis.Redis.from_url(REDIS_URL))
    Session(app)
elif SESSION == "signed":
    app.secret_key = SECRET
elif SESSION != "none":
    raise SystemExit(f"flask app: unknown BENCH_SESSION {SESSION!r}")

USES_SESSION = SESSION != "none"


@app.get("/plain")
def plain() -> str:
    return "ok"


@app.get("/read")
def read() -> str:
    if USES_SESSION:
        return str(session.get("counter", 0))
    return "0"


@app.get("/write")
def write() -> str:
    if USES_SESSION:
        n = session.get("counter", 0) + 1
        session["counter"] = n
        return str(n)
    return "1"


@app.get("/cart/naive")
def cart_naive() -> str:
    cart = session.get("cart", {})
    time.sleep(delay_seconds(request.args.get("delay")))
    cart[request.args["item"]] = 1
    session["cart"] = cart
    return "ok"


@app.get("/cart/key")
def cart_key() -> str:
    session.get("counter")  # load the session first, as a real view would
    time.sleep(delay_seconds(request.args.get("delay")))
    session[f"item:{request.args['item']}"] = 1
    return "ok"


@app.get("/cart/list")
def cart_list() -> str:
    items = session.setdefault("cart_list", [])  # the README's cart: append to one list
    time.sleep(delay_seconds(request.args.get("delay")))
    items.append(request.args["item"])
    return "ok"


@app.get("/cart/count")
def cart_count() -> str:
    return json.dumps(count_cart(session))
