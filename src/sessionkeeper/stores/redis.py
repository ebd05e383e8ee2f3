"""Redis store: one hash per session, per-field deltas, one round trip per operation.

Works with Redis (5+; 7 tested), Valkey, Redis Sentinel and Redis Cluster through redis-py's
``redis`` (sync) and ``redis.asyncio`` (async) clients. The logic (Lua scripts, arguments,
replies, the Cluster rename) is written once in ``_redis_lua`` and ``_redis_plan``; this
module only parses URLs and moves requests to and from the two clients.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from ..core.records import Apply, Count, Create, Delete, ListUser, Load, Op, Purge, Rename, Scan
from ..errors import ConfigError, StoreError
from .base import Store, redact_url

try:
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.asyncio.retry
    import redis.asyncio.sentinel
    import redis.cluster
    import redis.retry
    import redis.sentinel
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import NoScriptError
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the Redis store needs redis-py: pip install 'sessionkeeper[redis]'"
    ) from exc

from ._redis_plan import (
    NOT_DIRECT,
    REDIS_ERRORS,
    Layout,
    Nodes,
    Plan,
    PoolBusy,
    RedisPlans,
    Request,
    Send,
    drive_async,
    drive_sync,
    translate,
)
from ._redis_wire import AsyncWire, Slots, SyncWire

Kind = Literal["single", "cluster", "sentinel"]


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


#: option name -> converter (query-string values arrive as text)
_OPTIONS: dict[str, Callable[[Any], Any]] = {
    "prefix": str,
    "socket_timeout": float,
    "connect_timeout": float,
    "max_connections": int,
    "pool_timeout": float,
    "username": str,
    "password": str,
    "client_name": str,
    "ssl_ca_certs": str,
    "ssl_certfile": str,
    "ssl_keyfile": str,
    "ssl_cert_reqs": str,
    "ssl_check_hostname": _flag,
    "sentinel_username": str,
    "sentinel_password": str,
    "rename_ttl": float,
    "index_grace": float,
    "move_wait": float,
}


def _hosts(text: str, default_port: int) -> list[tuple[str, int]]:
    out = []
    for part in text.split(","):
        try:
            parsed = urlsplit("//" + part.strip())
            host, port = parsed.hostname, parsed.port
        except ValueError as exc:
            raise ConfigError(f"bad host {part!r} in redis URL: {exc}") from None
        if not host:
            raise ConfigError(f"missing host in redis URL part {part!r}")
        out.append((host, port or default_port))
    return out


def _db(text: str) -> int:
    text = text.strip("/")
    if not text:
        return 0
    if not text.isdigit():
        raise ConfigError(f"redis database must be a number, got {text!r}")
    return int(text)


def _closed_under_us(exc: AttributeError) -> RedisConnectionError:
    """redis-py may close a client's connections while other commands are using them (its
    asyncio Cluster client drops a failing node's idle connections without taking them out
    of the pool first; its ``aclose()`` on CLUSTERDOWN is tamed in ``_redis_cluster``); those
    fail inside redis-py with ``'NoneType' object has no attribute 'writelines'`` or alike.
    That is a connection lost mid-command: a redis ConnectionError (so a 503, and the plan
    sees it as any lost reply), not an internal error (a 500)."""
    if "NoneType" not in str(exc):
        raise exc
    return RedisConnectionError(f"connection closed while in use ({exc})")


class RedisStore(Store):
    """Sessions in Redis, Valkey, Redis Sentinel or Redis Cluster.

    Open it with :func:`~sessionkeeper.open_store`::

        redis://[user:password@]host[:6379][/db]      valkey://…   rediss://… (TLS)
        redis+cluster://host:port,host:port           rediss+cluster://… (TLS)
        redis+sentinel://host:26379,host:26379/service_name[/db]

    Options, as keyword arguments or in the URL's query string (``?prefix=app:``):

    ``prefix`` (``"sk:"``)
        Prepended to every key: ``<prefix>{<storage key>}`` holds a session (the braces make
        the storage key the Cluster hash tag), ``<prefix>u:{<sha256(user id)>}`` a user's index.
        Must not contain ``{`` or ``}``.
    ``socket_timeout`` (5.0), ``connect_timeout`` (5.0)
        Seconds before a read or a connect gives up with :class:`StoreUnavailable`.
    ``max_connections`` (100), ``pool_timeout`` (2.0)
        At most ``max_connections`` commands of this store (per face: sync, async) are in
        flight at once, so each pool (each node's pool in a Cluster) never needs more
        connections than that. A command that finds them all busy *waits* for one, up to
        ``pool_timeout`` seconds, so a burst queues instead of failing; only when the wait
        runs out does it fail with :class:`StoreUnavailable` ("busy: all N connections in
        use"), a 503 that says it was not an outage. ``pool_timeout=0`` sheds at once
        instead. The wait is this store's own semaphore in front of redis-py's non-blocking
        pool: a free connection is taken without waiting (about half the checkout cost of
        redis-py's ``BlockingConnectionPool`` in asyncio, see ``bench/soak_checkout.py``), and
        only a command that finds none queues. The default, 2 s, is ten times the longest wait
        measured with 1,000 commands queued on 100 connections, and stays under
        ``socket_timeout``, so a hung server still shows as unavailable.
    ``username``, ``password``, ``client_name``
        ``username``/``password`` override those in the URL.
    ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``, ``ssl_cert_reqs`` (``"required"``),
    ``ssl_check_hostname`` (true unless ``ssl_cert_reqs="none"``)
        TLS settings for ``rediss://``.
    ``sentinel_username``, ``sentinel_password``
        Credentials for the Sentinels themselves.
    ``rename_ttl`` (30.0), ``index_grace`` (60.0)
        Cluster only: how long a renamed session's tombstone lives, and how old an index
        member with no session must be before a read drops it (see ``_redis_plan``).
    ``move_wait`` (0.25)
        Cluster only: how long an Apply that meets a session half-way through a rename waits
        for the move to land (then its change goes to the new key) before it gives up with
        :class:`StoreUnavailable`, having written nothing.

    Behaviour:

    - One hash per session: ``f:<name>`` per session key, ``m`` the metadata (JSON), ``e`` its
      expiry; Redis expires the hash itself at ``expires_at`` (PEXPIREAT), and every read also
      checks ``expires_at`` against the caller's clock.
    - Load, Create, Apply, Delete and (single server) Rename are one round trip each: one
      EVALSHA (EVAL when the server lost its script cache). Commands are never
      retried: a write whose reply was lost cannot safely be sent twice. In a Cluster a user's
      index is in another slot, so a write that changes it costs one more command, and Rename
      is a two-step move (3-4 commands) that never leaves two live copies (see ``_redis_plan``).
      A Load or Apply meeting a move half-way costs 1-2 more commands (an Apply may wait for
      the move, up to ``move_wait``), and behaves as on a single server, where Rename is atomic.
    - ``Purge`` and ``Count`` SCAN every primary for the prefix: O(number of keys), for admin
      tools, not requests. Redis expires sessions by itself, so ``Purge`` only finds sessions
      expired by the caller's clock but not yet by Redis's.
    - Errors: unreachable, timing out, failing over, Cluster down or read-only ->
      :class:`StoreUnavailable` ("<address> unavailable: …"); every connection busy for
      ``pool_timeout`` -> :class:`StoreUnavailable` ("<address> busy …"); anything else Redis
      refuses (credentials included) -> :class:`StoreError`. Messages name the store by
      :attr:`address`, never with its password.
    - The async client is created in the running event loop on first ``aexecute``; a store
      serves one event loop at a time (a new loop gets a new client).
    """

    name = "redis"

    def __init__(
        self,
        hosts: list[tuple[str, int]],
        *,
        kind: Kind = "single",
        db: int = 0,
        service: str | None = None,
        ssl: bool = False,
        prefix: str = "sk:",
        socket_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        max_connections: int = 100,
        pool_timeout: float = 2.0,
        username: str | None = None,
        password: str | None = None,
        client_name: str | None = None,
        ssl_ca_certs: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        ssl_cert_reqs: str = "required",
        ssl_check_hostname: bool | None = None,
        sentinel_username: str | None = None,
        sentinel_password: str | None = None,
        rename_ttl: float = 30.0,
        index_grace: float = 60.0,
        move_wait: float = 0.25,
    ) -> None:
        if not hosts:
            raise ConfigError("a redis store needs at least one host")
        if kind == "single" and len(hosts) != 1:
            raise ConfigError("redis:// takes one host; use redis+cluster:// or redis+sentinel://")
        if kind == "cluster" and db != 0:
            raise ConfigError("Redis Cluster has only database 0")
        if kind == "sentinel" and not service:
            raise ConfigError("redis+sentinel:// needs a service name: redis+sentinel://host:port/name")
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise ConfigError(f"prefix must be a non-empty string without braces, got {prefix!r}")
        if not (socket_timeout > 0 and connect_timeout > 0 and pool_timeout >= 0):
            raise ConfigError("timeouts must be positive")
        if max_connections < 1:
            raise ConfigError("max_connections must be at least 1")
        if not (rename_ttl > 0 and index_grace >= 0 and move_wait >= 0):
            raise ConfigError("rename_ttl must be positive, index_grace and move_wait not negative")
        self.kind: Kind = kind
        self.hosts = list(hosts)
        self.db = db
        self.service = service
        self.ssl = ssl
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        self.sentinel_kwargs = {
            k: v
            for k, v in {
                "username": sentinel_username,
                "password": sentinel_password,
                "socket_timeout": socket_timeout,
                "socket_connect_timeout": connect_timeout,
            }.items()
            if v is not None
        }
        # Keyword arguments every redis-py connection of this store gets (both faces).
        self.connection_kwargs: dict[str, Any] = {
            "username": username,
            "password": password,
            "client_name": client_name,
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": connect_timeout,
            # RESP2: every reply this store reads (a hash, a script's array) is as easy to use,
            # and redis-py parses it 10-15 % faster than RESP3's typed replies (measured here).
            "protocol": 2,
        }
        if ssl:
            self.connection_kwargs.update(
                ssl_ca_certs=ssl_ca_certs,
                ssl_certfile=ssl_certfile,
                ssl_keyfile=ssl_keyfile,
                ssl_cert_reqs=ssl_cert_reqs,
                # Python's ssl refuses hostname checks without certificate checks.
                ssl_check_hostname=(ssl_cert_reqs != "none" if ssl_check_hostname is None
                                    else ssl_check_hostname),
            )
        # Without the password: for messages and logs.
        scheme = ("rediss" if ssl else "redis") + {"single": "", "cluster": "+cluster",
                                                   "sentinel": "+sentinel"}[kind]
        hosts_text = ",".join(f"{h}:{p}" for h, p in self.hosts)
        path = f"/{service}/{db}" if kind == "sentinel" else "" if kind == "cluster" else f"/{db}"
        self._address = redact_url(urlsplit(
            f"{scheme}://{username + '@' if username else ''}{hosts_text}{path}"))
        # The gates: how many commands may hold a connection at once (see max_connections).
        self._gate = Slots(max_connections)
        self._agate: asyncio.Semaphore | None = None
        layout = Layout(prefix, cluster=kind == "cluster", rename_ttl=rename_ttl, index_grace=index_grace,
                        move_wait=move_wait)
        self.plans = RedisPlans(layout)
        self._lock = threading.Lock()
        self._sync: Any = None
        self._async: Any = None
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._sentinels: dict[bool, list[Any]] = {}  # asynchronous? -> clients of the Sentinels

    @classmethod
    def from_url(cls, url: SplitResult, **options: Any) -> RedisStore:
        """Build a store from a parsed ``redis://``-family URL and options (see the class)."""
        scheme = url.scheme.lower()
        kind: Kind = "cluster" if "+cluster" in scheme else "sentinel" if "+sentinel" in scheme else "single"
        ssl = scheme.startswith("rediss")
        creds, _, host_text = url.netloc.rpartition("@")
        merged: dict[str, Any] = dict(parse_qsl(url.query, keep_blank_values=True))
        if creds:
            user, has_password, password = creds.partition(":")
            if user:
                merged["username"] = unquote(user)
            if has_password:
                merged["password"] = unquote(password)
        merged.update(options)
        kwargs: dict[str, Any] = {}
        for name, value in merged.items():
            convert = _OPTIONS.get(name)
            if convert is None:
                raise ConfigError(
                    f"unknown redis store option {name!r}; known: {', '.join(sorted(_OPTIONS))}"
                )
            try:
                kwargs[name] = value if value is None else convert(value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"redis store option {name}={value!r}: {exc}") from None
        if not host_text:
            raise ConfigError(f"redis URL {redact_url(url)!r} names no host")
        service = None
        if kind == "sentinel":
            service, _, rest = url.path.strip("/").partition("/")
            db = _db(rest)
            hosts = _hosts(host_text, 26379)
        else:
            db = _db(url.path)
            hosts = _hosts(host_text, 6379)
        return cls(hosts, kind=kind, db=db, service=unquote(service) if service else None, ssl=ssl, **kwargs)

    @property
    def address(self) -> str:
        """This store's servers as a URL without password, e.g. ``redis://127.0.0.1:6379/0``."""
        return self._address

    def __repr__(self) -> str:
        return f"<RedisStore {self._address}>"

    # ---- the two faces -------------------------------------------------------------------

    def _plan(self, op: Op) -> Plan[Any]:
        p = self.plans
        match op:
            case Load(key, now):
                return p.load(key, now)
            case Apply(key, delta, now):
                return p.apply(key, delta, now)
            case Create(key, record):
                return p.create(key, record)
            case Rename(old, new, delta, now):
                return p.rename(old, new, delta, now)
            case Delete(key):
                return p.delete(key)
            case ListUser(user_id, now):
                return p.list_user(user_id, now)
            case Scan() | Purge(report=True):  # whole-store reads and reports
                return p.maintenance(op)
            case Purge(now, batch):
                return p.purge(now, batch)
            case Count(now):
                return p.count(now)
        raise StoreError(f"RedisStore cannot perform {op!r}")

    def execute(self, op: Op) -> Any:
        """Perform one operation with the sync client."""
        if type(op) is Load or type(op) is Apply:  # the request path: see RedisPlans.direct
            cmd = self.plans.direct(op)
            if cmd is not None:
                try:
                    reply = self._io(Send((cmd,)))[0]
                    result = self.plans.direct_result(op, reply)
                    if result is NOT_DIRECT:  # the server lost its scripts: EVAL, once
                        again = Send((self.plans.direct_eval(op, cmd),))
                        result = self.plans.direct_result(op, self._io(again)[0])
                except REDIS_ERRORS as exc:
                    raise translate(exc, self._address) from exc
                return result
        return drive_sync(self._plan(op), self._io, self._address)

    async def aexecute(self, op: Op) -> Any:
        """Perform one operation with the async client (made in this loop on first use)."""
        if type(op) is Load or type(op) is Apply:  # the request path: see RedisPlans.direct
            cmd = self.plans.direct(op)
            if cmd is not None:
                try:
                    reply = (await self._aio(Send((cmd,))))[0]
                    result = self.plans.direct_result(op, reply)
                    if result is NOT_DIRECT:  # the server lost its scripts: EVAL, once
                        again = Send((self.plans.direct_eval(op, cmd),))
                        result = self.plans.direct_result(op, (await self._aio(again))[0])
                except REDIS_ERRORS as exc:
                    raise translate(exc, self._address) from exc
                return result
        return await drive_async(self._plan(op), self._aio, self._address)

    def _busy(self) -> PoolBusy:
        return PoolBusy(self.max_connections, self.pool_timeout)

    def _io(self, request: Request) -> Any:
        gate = self._gate
        # Fast path: a free slot, taken without waiting. Slow path: wait, bounded.
        if not gate.acquire(blocking=False) and not (
            self.pool_timeout > 0 and gate.acquire(timeout=self.pool_timeout)
        ):
            raise self._busy()
        try:
            client = self._sync_client()
            if type(client) is SyncWire:  # one server: the store's own wire (_redis_wire)
                return [None] if type(request) is Nodes else client.call(request.cmds)  # type: ignore[union-attr]
            return self._io_now(client, request)
        except AttributeError as exc:
            raise _closed_under_us(exc) from exc
        finally:
            gate.release()

    def _io_now(self, client: Any, request: Request) -> Any:
        if isinstance(request, Nodes):
            return client.get_primaries()
        if request.node is not None:
            return [client.execute_command(*request.cmds[0], target_nodes=request.node)]
        if len(request.cmds) == 1:
            try:
                return [client.execute_command(*request.cmds[0])]
            except NoScriptError as exc:
                return [exc]
        pipe = client.pipeline(transaction=False)
        for cmd in request.cmds:
            pipe.execute_command(*cmd)
        return pipe.execute(raise_on_error=False)

    async def _aio(self, request: Request) -> Any:
        client = self._async_client()
        gate: Any = self._agate  # made with the client
        if gate.locked():  # every slot taken (or others already queue): wait, bounded
            if self.pool_timeout <= 0:
                raise self._busy()
            try:
                async with asyncio.timeout(self.pool_timeout):
                    await gate.acquire()
            except TimeoutError:
                raise self._busy() from None
        else:  # a free slot: acquire() returns without suspending
            await gate.acquire()
        try:
            if type(client) is AsyncWire:  # one server: the store's own wire (_redis_wire)
                return [None] if type(request) is Nodes else await client.call(request.cmds)  # type: ignore[union-attr]
            return await self._aio_now(client, request)
        except AttributeError as exc:
            raise _closed_under_us(exc) from exc
        finally:
            gate.release()

    async def _aio_now(self, client: Any, request: Request) -> Any:
        if isinstance(request, Nodes):
            await client.initialize()  # unlike the sync client, it learns the nodes lazily
            return client.get_primaries()
        if request.node is not None:
            return [await client.execute_command(*request.cmds[0], target_nodes=request.node)]
        if len(request.cmds) == 1:
            try:
                return [await client.execute_command(*request.cmds[0])]
            except NoScriptError as exc:
                return [exc]
        pipe = client.pipeline(transaction=False)
        for cmd in request.cmds:
            pipe.execute_command(*cmd)
        return await pipe.execute(raise_on_error=False)

    # ---- clients -------------------------------------------------------------------------

    def _sync_client(self) -> Any:
        client = self._sync
        if client is None:
            with self._lock:
                if self._sync is None:
                    # Made on first use: a Cluster client connects when it is built, and a
                    # store must open while Redis is down and work once it is back.
                    self._sync = self._make_client(asynchronous=False)
                client = self._sync
        return client

    def _async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._async_loop is not loop or self._async is None:
            self._async = self._make_client(asynchronous=True)
            self._agate = asyncio.Semaphore(self.max_connections)
            self._async_loop = loop
        return self._async

    def _make_client(self, asynchronous: bool) -> Any:
        lib: Any = redis.asyncio if asynchronous else redis
        retry_cls: Any = redis.asyncio.retry.Retry if asynchronous else redis.retry.Retry
        # No retries: a write whose reply was lost may have happened; sending it again could
        # report a created session as taken, or a renamed one as gone.
        kwargs = {**self.connection_kwargs, "retry": retry_cls(NoBackoff(), 0)}
        if self.kind == "cluster":
            from ._redis_cluster import AsyncRedisCluster

            cluster: Any = redis.asyncio.cluster if asynchronous else redis.cluster
            # asyncio: redis-py's client minus closing connections under running commands
            # (see _redis_cluster); the sync one does not do that.
            client_class: Any = AsyncRedisCluster if asynchronous else redis.cluster.RedisCluster
            return client_class(
                startup_nodes=[cluster.ClusterNode(h, p) for h, p in self.hosts],
                ssl=self.ssl,
                max_connections=self.max_connections,
                **kwargs,
            )
        # One server: redis-py's pool only makes the connections; the wire keeps them (the
        # gate in _io/_aio bounds how many are in use). Async connections get no socket
        # timeout of their own: the wire gives each round trip one deadline instead.
        if asynchronous:
            kwargs["socket_timeout"] = None
        if self.kind == "sentinel":
            module: Any = redis.asyncio.sentinel if asynchronous else redis.sentinel
            sentinel = module.Sentinel(self.hosts, sentinel_kwargs=self.sentinel_kwargs)
            pool = sentinel.master_for(
                self.service, db=self.db, max_connections=self.max_connections, **kwargs
            ).connection_pool
            # The wire does not own the connections to the Sentinels: close them too.
            self._sentinels[asynchronous] = list(sentinel.sentinels)
        else:
            host, port = self.hosts[0]
            pool = lib.ConnectionPool(
                host=host,
                port=port,
                db=self.db,
                connection_class=lib.SSLConnection if self.ssl else lib.Connection,
                max_connections=self.max_connections,
                # socket_timeout is kept when None: redis-py's own default is 5 s
                **{k: v for k, v in kwargs.items() if v is not None or k == "socket_timeout"},
            )
        if asynchronous:
            return AsyncWire(pool, self.connection_kwargs["socket_timeout"])
        return SyncWire(pool)

    def close(self) -> None:
        """Disconnect the sync client (a later operation reconnects)."""
        client, self._sync = self._sync, None
        if client is not None:
            client.close()
            for sentinel in self._sentinels.pop(False, ()):
                sentinel.close()

    async def aclose(self) -> None:
        """Disconnect both clients."""
        client, self._async, self._async_loop = self._async, None, None
        if client is not None:
            await client.aclose()
            for sentinel in self._sentinels.pop(True, ()):
                await sentinel.aclose()
        self.close()
