"""The hook's async transport on aiohttp: one connection pool per event loop, shared by every client.

Imported on a hook's first ``async with`` (a worker's hook never needs it). See
:attr:`~airflow_provider_dpc.hooks.dpc.DpcHook.async_transport` for when it is used.
"""

from __future__ import annotations

import asyncio
import re
import weakref
from typing import TYPE_CHECKING, Any, ClassVar

import aiohttp
import httpx

from airflow_provider_dpc.hooks._protocol import Call, ConnectionSettings, RawAnswer

if TYPE_CHECKING:
    from airflow_provider_dpc.hooks._protocol import Answer

__all__ = ["AiohttpClient"]


class AiohttpClient:
    """An ``async with hook:`` block's client on aiohttp: the hook's headers, timeouts and TLS settings,
    sent through the connection pool that every such client in the event loop shares.

    Requests are built straight from the :class:`Call` (building an ``httpx.Request`` costs more CPU
    than aiohttp's whole round trip) and aiohttp's errors are raised as the httpx errors they
    correspond to, so the retry rules of :func:`judge_error` apply unchanged.
    """

    def __init__(self, settings: ConnectionSettings) -> None:
        options = settings.client_options()
        self._headers: dict[str, str] = dict(options["headers"])
        self._ssl = options["verify"]
        self._timeout = aiohttp.ClientTimeout(sock_connect=settings.timeout, sock_read=settings.timeout)
        self._pool = _SharedSession.lease()

    async def send(self, call: Call[Any], base_url: str, token: str | None) -> Answer:
        headers = {**self._headers, "Authorization": f"Bearer {token}"} if token else self._headers
        params = {k: str(v) for k, v in call.params.items()} if call.params else None
        try:
            async with self._pool.session.request(
                call.method,
                call.target(base_url),
                params=params,
                json=call.json,
                data=call.form,
                headers=headers,
                ssl=self._ssl,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _httpx_error(exc) from exc
        return RawAnswer(response.status, body, response.headers)

    async def aclose(self) -> None:
        await self._pool.release()


class _SharedSession:
    """The aiohttp session of one event loop, leased by every :class:`AiohttpClient` in it.

    It has no pool limit and keeps no cookies (hooks of different connections share it), and is
    closed when its last client closes.
    """

    _by_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _SharedSession]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.users = 0
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
        )

    @classmethod
    def lease(cls) -> _SharedSession:
        loop = asyncio.get_running_loop()
        shared = cls._by_loop.get(loop)
        if shared is None or shared.session.closed:
            shared = cls._by_loop[loop] = cls(loop)
        shared.users += 1
        return shared

    async def release(self) -> None:
        self.users -= 1
        if self.users <= 0:
            if self._by_loop.get(self.loop) is self:
                del self._by_loop[self.loop]
            await self.session.close()


_SSL_REPR = re.compile(r" ssl:<[^>]*>")


def _httpx_error(exc: Exception) -> httpx.TransportError:
    """The httpx error matching an aiohttp one: connection not made, timed out, or broken mid-answer."""
    reason = _SSL_REPR.sub("", str(exc)) or type(exc).__name__  # aiohttp names the SSL context object
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(reason)
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout(reason)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(reason)
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(reason)
    if isinstance(exc, aiohttp.ClientConnectionError):
        return httpx.ReadError(reason)
    return httpx.TransportError(reason)
