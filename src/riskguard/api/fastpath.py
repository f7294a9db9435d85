"""The hot endpoint, ``POST /v1/decisions``, served straight from ASGI.

Every other path goes to the FastAPI application, which also documents this one in OpenAPI. Routing,
dependency solving and query parsing in the framework cost about a third of a decision's CPU time
(profiled: Starlette route matching, FastAPI's parameter handling and middleware layers), so this one
route is written by hand on the ASGI interface. Its behaviour — authentication, limits, validation,
errors, the response — is the same functions the framework route uses, and the tests run against it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from riskguard.api.auth import Authenticator
from riskguard.app import RiskGuard
from riskguard.errors import RiskguardError, ValidationFailed
from riskguard.events.validate import parse_event

log = logging.getLogger("riskguard.api")
_encode = msgspec.json.Encoder(decimal_format="string").encode

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

TRUE = {"true", "1", "yes", "on"}
FALSE = {"false", "0", "no", "off"}


def error_response(exc: RiskguardError) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """Status, body and extra headers of an error, as every endpoint answers it."""
    content: dict[str, Any] = {"error": exc.code, "message": str(exc)}
    if isinstance(exc, ValidationFailed):
        content["detail"] = exc.errors
    headers = [(b"retry-after", b"1")] if exc.status == 503 else []
    return exc.status, _encode(content), headers


class _Disconnected(Exception):
    pass


class DecisionFastPath:
    def __init__(self, app: Any, guard: RiskGuard, auth: Authenticator) -> None:
        self.app = app
        self.guard = guard
        self.auth = auth
        self.limit = guard.settings.max_body_bytes
        self.limits = guard.settings.event_limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/decisions" and scope["method"] == "POST":
            await self._decide(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _decide(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status, body, extra = 200, await self._answer(scope, receive), []
        except RiskguardError as exc:
            status, body, extra = error_response(exc)
        except _Disconnected:
            return  # the client went away before sending its body: nothing was decided
        except Exception:
            log.exception("unexpected error")
            status, body, extra = 500, b'{"error":"internal_error","message":"internal error; it has been logged"}', []
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope, receive: Receive) -> bytes:
        authorization = ""
        declared = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-length":
                declared = value
        self.auth.identify_header(authorization, "decide")
        explain = False
        if scope.get("query_string"):
            for key, value in parse_qsl(scope["query_string"].decode("latin-1")):
                if key == "explain":
                    lowered = value.lower()
                    if lowered not in TRUE and lowered not in FALSE:
                        raise ValidationFailed(
                            [
                                {
                                    "loc": ["query", "explain"],
                                    "type": "bool_parsing",
                                    "msg": "Input should be a valid boolean, unable to interpret input",
                                }
                            ]
                        )
                    explain = lowered in TRUE
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            raise ValidationFailed(
                [
                    {
                        "loc": ["body"],
                        "type": "too_large",
                        "msg": f"body is {int(declared)} bytes; the limit is {self.limit}",
                    }
                ]
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise ValidationFailed(
                    [
                        {
                            "loc": ["body"],
                            "type": "too_large",
                            "msg": f"body is over {self.limit} bytes; the limit is {self.limit}",
                        }
                    ]
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        event = parse_event(b"".join(chunks), **self.limits)
        return _encode(await self.guard.decide_async(event, with_explain=explain))
