"""The bare baseline: a raw ASGI app (no framework, no storage) answering with canned bytes.

It runs under uvicorn with exactly the settings ``mes serve`` uses, so the gap between this and
the real server is what the FHIR server itself costs (routing, store, validation), not the HTTP
stack. The canned responses are what the real server returned during seeding (see
``bench/http_bench.py``): the bytes and headers of one Patient read, and of one create.

Run: ``python -m bench.bare_asgi --port 8081 --responses responses.json``
"""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvicorn

# Mirror fhir_server/cli.py (_serve): one worker, same event loop, same HTTP parser, no logs.
UVICORN_SETTINGS: dict[str, Any] = {"loop": "uvloop", "http": "httptools", "log_level": "warning",
                                    "access_log": False}

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Canned = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, headers, body


def load_responses(path: Path) -> dict[str, Canned]:
    """``{"read": {...}, "write": {...}}`` each with status, headers [[name, value]] and body_b64."""
    spec = json.loads(path.read_text())
    out = {}
    for name, item in spec.items():
        body = base64.b64decode(item["body_b64"])
        headers = [(k.lower().encode(), v.encode()) for k, v in item["headers"]]
        headers.append((b"content-length", str(len(body)).encode()))
        out[name] = (item["status"], headers, body)
    return out


async def _drain(receive: Receive) -> None:
    """Read the whole request body, as the real server must before answering a write."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


async def _lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge startup and shutdown (the real server has a lifespan too)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def make_app(responses: dict[str, Canned]) -> Callable[[Message, Receive, Send], Awaitable[None]]:
    """GET/HEAD get the canned read; any other method the canned write (201)."""

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        await _drain(receive)
        status, headers, body = responses["read" if scope["method"] in ("GET", "HEAD") else "write"]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--host", default="127.0.0.1")
    cli.add_argument("--port", type=int, required=True)
    cli.add_argument("--responses", type=Path, required=True, help="JSON file written by bench/http_bench.py")
    args = cli.parse_args()
    app = make_app(load_responses(args.responses))
    uvicorn.run(app, host=args.host, port=args.port, **UVICORN_SETTINGS)


if __name__ == "__main__":
    main()
