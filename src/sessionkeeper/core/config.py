"""Every option, with its default and its check. The same names work in every adapter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any, Literal

from ..errors import ConfigError
from . import ids
from .clock import Clock, Timeouts, seconds, system_clock
from .cookies import CookiePolicy, SameSite

Transport = Literal["cookie"]


@dataclass(frozen=True)
class SessionConfig:
    """Options shared by the ASGI, WSGI and Flask adapters (pass them as keyword arguments).

    Defaults follow NIST SP 800-63B rev. 3 for AAL2: 30 minutes idle, 12 hours absolute.
    """

    idle_timeout: float | timedelta = 30 * 60
    absolute_timeout: float | timedelta = 12 * 3600
    touch_interval: float | timedelta | None = None
    cookie_name: str = "session"
    cookie_path: str = "/"
    cookie_domain: str | None = None
    cookie_max_age: int | None = None
    secure: bool = True
    http_only: bool = True
    same_site: SameSite = "lax"
    host_prefix: bool = True
    max_size: int = 64 * 1024
    unavailable_status: int = 503
    clock: Clock = system_clock
    token_factory: Callable[[], str] = ids.new_token
    timeouts: Timeouts = field(init=False)
    cookie: CookiePolicy = field(init=False)

    def __post_init__(self) -> None:
        idle = seconds(self.idle_timeout, "idle_timeout")
        absolute = seconds(self.absolute_timeout, "absolute_timeout")
        if absolute < idle:
            raise ConfigError(
                f"absolute_timeout ({absolute:g} s) must not be shorter than idle_timeout "
                f"({idle:g} s)"
            )
        touch = None if self.touch_interval is None else seconds(self.touch_interval, "touch_interval")
        if touch is not None and touch >= idle:
            # A read-only session is touched only this often: it would die idle in between.
            raise ConfigError(
                f"touch_interval ({touch:g} s) must be shorter than idle_timeout ({idle:g} s)"
            )
        object.__setattr__(self, "timeouts", Timeouts(idle, absolute, touch))
        object.__setattr__(
            self,
            "cookie",
            CookiePolicy(
                name=self.cookie_name,
                path=self.cookie_path,
                domain=self.cookie_domain,
                secure=self.secure,
                http_only=self.http_only,
                same_site=self.same_site,
                max_age=self.cookie_max_age,
                host_prefix=self.host_prefix,
            ),
        )
        if isinstance(self.max_size, bool) or not isinstance(self.max_size, int) or self.max_size < 1:
            raise ConfigError(f"max_size must be a positive number of bytes, not {self.max_size!r}")
        status = self.unavailable_status
        if isinstance(status, bool) or not isinstance(status, int) or not 500 <= status <= 599:
            raise ConfigError("unavailable_status must be a 5xx status code")

    @classmethod
    def from_options(cls, config: SessionConfig | None = None, **options: Any) -> SessionConfig:
        """Build a config from keyword options, naming any unknown one."""
        known = {f.name for f in fields(cls) if f.init}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(
                f"unknown session option(s) {', '.join(unknown)}; "
                f"valid options are: {', '.join(sorted(known))}"
            )
        if config is not None:
            if options:
                base = {f.name: getattr(config, f.name) for f in fields(cls) if f.init}
                return cls(**{**base, **options})
            return config
        return cls(**options)
