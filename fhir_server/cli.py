"""The ``mes`` command: ``mes serve`` runs the server, ``mes token`` prints a development token,
``mes import cda`` files CDA documents into a data directory's DMP."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import fields
from pathlib import Path

from fhir_server.config import Settings, load_settings

log = logging.getLogger("mes")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fhir_server.app import create_app
    from fhir_server.demo import load_demo

    auth = args.auth or ("off" if args.demo and "MES_AUTH" not in os.environ else None)
    settings = load_settings(host=args.host, port=args.port, data_dir=args.data_dir, auth=auth,
                             mllp_port=args.mllp_port, **{name: getattr(args, name) for name in SMTP_FLAGS})
    app = create_app(settings, on_start=load_demo if args.demo else None)
    log.info("FHIR base %s, data in %s", settings.fhir_base, settings.database_path)
    uvicorn.run(app, host=settings.host, port=settings.port, loop="uvloop", http="httptools",
                log_level="warning", access_log=False)
    return 0


#: The MSSanté bridge's flags of ``mes serve`` (each also an ``MES_…`` variable; see ``config.py``).
SMTP_FLAGS = ("smtp_port", "smtp_tls_cert", "smtp_tls_key", "smtp_client_ca", "smtp_allowed_domains",
              "patient_mail_domain", "smtp_relay")


def _smtp_flags(serve: argparse.ArgumentParser) -> None:
    helps = {f.name: f.metadata["help"] for f in fields(Settings)}
    for name in SMTP_FLAGS:
        serve.add_argument("--" + name.replace("_", "-"), type=int if name == "smtp_port" else str,
                           help=f"{helps[name]} (env MES_{name.upper()})")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="mes", description="MES interoperability server")
    commands = root.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the FHIR server on the embedded SQLite store")
    serve.add_argument("--host", help="bind address (env MES_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (env MES_PORT, default 8080)")
    serve.add_argument("--data-dir", help="data directory, created if absent (env MES_DATA_DIR, default ./var)")
    serve.add_argument("--demo", action="store_true", help="load a small synthetic French dataset on first start"
                       " (and turn authentication off unless --auth or MES_AUTH says otherwise)")
    serve.add_argument("--auth", choices=("on", "off"), help="bearer tokens required (env MES_AUTH, default on;"
                       " off only on a loopback host, for development)")
    serve.add_argument("--mllp-port", type=int, help="HL7 v2 MLLP port (env MES_MLLP_PORT, default 2575; 0: off)")
    _smtp_flags(serve)
    serve.set_defaults(run=_serve)
    token = commands.add_parser("token", help="print a development token that a server on the same data"
                                " directory accepts")
    token.add_argument("--data-dir", help="the server's data directory (env MES_DATA_DIR, default ./var)")
    token.add_argument("--sub", required=True, help="Patient/…, Practitioner/…, PractitionerRole/…,"
                       " RelatedPerson/…, or a system client id")
    token.add_argument("--scope", required=True, help="SMART scopes, e.g. 'patient/*.rs' or 'system/*.*'")
    token.add_argument("--purpose", choices=("normal", "bris_de_glace", "centre_15"), help="DMP access mode")
    token.add_argument("--reason", help="the stated reason of a bris_de_glace or centre_15 access")
    token.add_argument("--aud", help="audience (default: the FHIR base URL from MES_HOST/MES_PORT/MES_BASE_URL)")
    token.add_argument("--lifetime", type=int, default=3600, help="seconds of validity (default 3600)")
    token.set_defaults(run=_token)
    importing = commands.add_parser("import", help="file documents into the DMP of a data directory")
    kinds = importing.add_subparsers(dest="kind", required=True)
    cda = kinds.add_parser("cda", help="CDA R2 documents: files, or folders searched for .xml files")
    cda.add_argument("paths", nargs="+", type=Path, help="files and folders")
    cda.add_argument("--data-dir", help="data directory (env MES_DATA_DIR, default ./var)")
    cda.set_defaults(run=_import_cda)
    return root


def _import_cda(args: argparse.Namespace) -> int:
    from fhir_server.dmp.import_files import import_cda

    summary = import_cda(load_settings(data_dir=args.data_dir), args.paths)
    print(summary.report())
    return 1 if summary.refused else 0


def _token(args: argparse.Namespace) -> int:
    from fhir_server.security.devkeys import issue_dev_token

    settings = load_settings(data_dir=args.data_dir)
    print(issue_dev_token(Path(settings.data_dir), args.sub, args.scope, args.aud or settings.fhir_base,
                          purpose=args.purpose, reason=args.reason, lifetime_s=args.lifetime))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
