"""The app bench/soak.py serves: ASGI (Starlette under uvicorn) and WSGI (Flask under
gunicorn gthread), both on the store named by ``SOAK_STORE`` (a store URL).

    GET /new                    start a session (writes ``init``)
    GET /add?k=K&v=V&work=MS    MS milliseconds of "work", then session[K] = V
    GET /get                    read: how many keys the session holds
    GET /logout                 destroy the session

Store outages are answered 503 by the adapters; their log lines go to stderr.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from flask import Flask, jsonify, request
from flask import session as flask_session
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sessionkeeper import asgi, open_store
from sessionkeeper import flask as sk_flask

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
STORE_URL = os.environ.get("SOAK_STORE", "memory://")
COOKIE = "sid"
OPTIONS: dict[str, Any] = {"cookie_name": COOKIE, "secure": False}


def _work(raw: str | None) -> float:
    try:
        return max(0.0, min(float(raw or 0), 1000.0)) / 1000.0
    except ValueError:
        return 0.0


# ---- ASGI ------------------------------------------------------------------------------------

async def _endpoint(req: Request) -> JSONResponse:
    session = req.session
    path = req.url.path
    if path == "/new":
        session["init"] = "1"
    elif path == "/add":
        await asyncio.sleep(_work(req.query_params.get("work")))
        session[req.query_params["k"]] = req.query_params["v"]
    elif path == "/logout":
        session.destroy()
    return JSONResponse({"n": len(session)})


asgi_app = Starlette(
    routes=[Route(p, _endpoint) for p in ("/new", "/add", "/get", "/logout")],
    middleware=[Middleware(asgi.SessionMiddleware, store=open_store(STORE_URL), **OPTIONS)]
    if os.environ.get("SOAK_FACE") != "wsgi" else [],
)


# ---- WSGI ------------------------------------------------------------------------------------

wsgi_app = Flask("soak")


@wsgi_app.route("/<name>")
def _flask_endpoint(name: str) -> Any:
    if name == "new":
        flask_session["init"] = "1"
    elif name == "add":
        time.sleep(_work(request.args.get("work")))
        flask_session[request.args["k"]] = request.args["v"]
    elif name == "logout":
        flask_session.destroy()  # type: ignore[attr-defined]
    elif name != "get":
        return jsonify({"error": "no such page"}), 404
    return jsonify({"n": len(flask_session)})


if os.environ.get("SOAK_FACE") == "wsgi":
    sk_flask.init_app(wsgi_app, store=STORE_URL, **OPTIONS)
