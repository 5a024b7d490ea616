"""The ``mes`` command: ``mes serve`` runs the server (see ``mes serve --help``)."""

from __future__ import annotations

import argparse
import logging
import sys

from fhir_server.config import load_settings

log = logging.getLogger("mes")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fhir_server.app import create_app
    from fhir_server.demo import load_demo

    settings = load_settings(host=args.host, port=args.port, data_dir=args.data_dir)
    app = create_app(settings, on_start=load_demo if args.demo else None)
    log.info("FHIR base %s, data in %s", settings.fhir_base, settings.database_path)
    uvicorn.run(app, host=settings.host, port=settings.port, loop="uvloop", http="httptools",
                log_level="warning", access_log=False)
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="mes", description="MES interoperability server")
    commands = root.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the FHIR server on the embedded SQLite store")
    serve.add_argument("--host", help="bind address (env MES_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (env MES_PORT, default 8080)")
    serve.add_argument("--data-dir", help="data directory, created if absent (env MES_DATA_DIR, default ./var)")
    serve.add_argument("--demo", action="store_true", help="load a small synthetic French dataset on first start")
    serve.set_defaults(run=_serve)
    return root


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
