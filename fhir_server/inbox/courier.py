"""The outbox courier in a process of its own (``python -m fhir_server.inbox.courier``), which the
SMTP door starts beside ``mes serve`` when ``MES_SMTP_RELAY`` is set. Building and relaying a
receipt — a ~200 KB MDN that carries the original mail and its files — costs about as much CPU as
receiving the mail; in the server's process it took the listener's core (one process, one GIL).

The courier opens the same store (several processes share it, each with its own trace journal),
acts as the bridge's client, polls what is due (``outbox.py``), and ends when the server that
started it is gone — also after a ``kill -9`` of the server: it watches its parent. The door
starts it again if it dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import subprocess
import sys
from dataclasses import fields

from fhir_server.config import Settings, load_settings
from fhir_server.core.repository import Repository
from fhir_server.inbox.client import bridge_principal
from fhir_server.inbox.outbox import Outbox
from fhir_server.security.audit import AuditTrail
from fhir_server.store import open_store
from mssante_bridge.relay import Relay

log = logging.getLogger("mes")

POLL_SECONDS = 0.2
WATCH_SECONDS = 1.0


def environment(settings: Settings) -> dict[str, str]:
    """The server's settings as the ``MES_*`` variables the courier reads (flags included)."""
    return {**os.environ, **{f"MES_{f.name.upper()}": str(getattr(settings, f.name)) for f in fields(settings)}}


class CourierProcess:
    """The courier's process as the door sees it: started, watched, stopped."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        self._process = subprocess.Popen([sys.executable, "-m", "fhir_server.inbox.courier", str(os.getpid())],
                                         env=environment(self._settings))

    async def watch(self) -> None:
        """Start the courier again should it die (its work is in the store: nothing is lost)."""
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            if self._process is not None and self._process.poll() is not None:
                log.error("MSSanté bridge: the outbox courier ended (%s); starting it again", self._process.returncode)
                self.start()

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


async def serve(settings: Settings, parent: int) -> None:
    """The courier until its parent (the server's process id) is gone or it is told to stop."""
    repository = Repository(open_store(settings), settings.fhir_base)
    audit = AuditTrail(repository.store)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        relay = Relay.parse(settings.smtp_relay, ssl.create_default_context())
        outbox = Outbox(repository.acting_as(repository.resolve_access(bridge_principal(settings))), audit, relay,
                        settings.patient_mail_domain)
        courier = asyncio.create_task(outbox.run_forever(POLL_SECONDS))
        while not stop.is_set() and os.getppid() == parent and not courier.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_SECONDS)
        courier.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await courier
    finally:
        audit.close()
        repository.store.close()


def main(argv: list[str]) -> int:
    """``python -m fhir_server.inbox.courier <the server's pid>`` (the pid given, not read: the
    server may be gone before the courier has started)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s (courier): %(message)s")
    asyncio.run(serve(load_settings(), int(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
