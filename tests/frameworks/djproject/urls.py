"""Views of the test project: just enough of an account area to sign in, change the password,
list devices and sign out."""

from __future__ import annotations

from django.contrib.auth import authenticate, login, logout, update_session_auth_hash
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from sessionkeeper import SessionManager
from sessionkeeper.django import SessionStore


def manager() -> SessionManager:
    return SessionManager(SessionStore.backend().store)


def sign_in(request: HttpRequest) -> HttpResponse:
    user = authenticate(request, username=request.POST["username"], password=request.POST["password"])
    if user is None:
        return HttpResponse("no", status=403)
    login(request, user)
    return HttpResponse("ok")


def sign_out(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponse("bye")


def me(request: HttpRequest) -> JsonResponse:
    user = request.user
    return JsonResponse({"user": user.get_username() if user.is_authenticated else None,
                         "cart": request.session.get("cart", [])})


def add(request: HttpRequest) -> HttpResponse:
    request.session["cart"] = [*request.session.get("cart", []), request.POST["item"]]
    return HttpResponse("added")


def change_password(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not user.is_authenticated:
        return HttpResponse("sign in first", status=403)
    user.set_password(request.POST["new"])
    user.save()
    update_session_auth_hash(request, user)
    return HttpResponse("changed")


def devices(request: HttpRequest) -> JsonResponse:
    user = request.user
    if not user.is_authenticated:
        return JsonResponse({"devices": []}, status=403)
    found = manager().devices(str(user.pk))
    return JsonResponse({"devices": [{"id": d.session_id, "ua": d.user_agent, "ip": d.ip} for d in found]})


def race(request: HttpRequest) -> HttpResponse:
    """Signed out in another request while this one runs: its write must not bring it back."""
    request.session.get("cart")  # loaded before the other request signs out
    SessionStore().delete(request.session.session_key)
    request.session["late"] = "write"
    return HttpResponse("written")


urlpatterns = [
    path("login", sign_in),
    path("logout", sign_out),
    path("me", me),
    path("add", add),
    path("password", change_password),
    path("devices", devices),
    path("race", race),
]
