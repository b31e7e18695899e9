"""The node's command line, run by the organisation on its own host:

    python -m compute.node init   --home DIR --slug SLUG --marketplace-key HEX [--enrol-token TOKEN]
    python -m compute.node run    --home DIR [--concurrency N]
    python -m compute.node import --home DIR FILE --name NAME --id-column COLUMN
    python -m compute.node tables --home DIR
    python -m compute.node export --home DIR --table ID [--out FILE]

The node secret comes from NODE_SECRET or NODE_SECRET_FILE; the broker from CELERY_BROKER_URL; the chain
from CHAIN_RPC_URL and the operator's deployment record in CHAIN_DEPLOYMENTS_DIR. A problem is one line
on standard error and a non-zero exit.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from compute.exceptions import ComputeError
from compute.node.keys import NodeSecretError, keystore_create, node_secret_from_env


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m compute.node", description="An organisation's compute node.")
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="generate this node's keys in its home")
    init.add_argument("--home", type=Path, required=True)
    init.add_argument("--slug", required=True)
    init.add_argument("--marketplace-key", required=True, help="the marketplace's signing public key (hex)")
    init.add_argument("--enrol-token", default="", help="the one-time enrolment token the marketplace gave you")
    run = commands.add_parser("run", help="serve this node's queue")
    run.add_argument("--home", type=Path, required=True)
    run.add_argument("--concurrency", type=int, default=2)
    run.add_argument("--pool", default="prefork", choices=["prefork", "solo", "threads"])
    importing = commands.add_parser("import", help="import a CSV from this host into the vault")
    importing.add_argument("--home", type=Path, required=True)
    importing.add_argument("file", type=Path)
    importing.add_argument("--name", required=True)
    importing.add_argument("--id-column", required=True)
    importing.add_argument("--profile", action="store_true",
                           help="also publish each column's differentially private profile (a table to sell)")
    tables = commands.add_parser("tables", help="list the tables in this node's vault")
    tables.add_argument("--home", type=Path, required=True)
    export = commands.add_parser("export", help="write a table (a result) as CSV, for this node's operator")
    export.add_argument("--home", type=Path, required=True)
    export.add_argument("--table", required=True)
    export.add_argument("--out", type=Path)
    return parser


def _runtime(home: Path):  # type: ignore[no-untyped-def]
    import os

    from compute.node.runtime import NodeRuntime
    from compute.node.worker import django_setup, node_app, node_open

    django_setup()
    keys = node_open(home)
    broker = os.environ.get("CELERY_BROKER_URL", "")
    app = node_app(broker_url=broker, queue=f"node.{keys.slug}") if broker else None
    return NodeRuntime(home=home, keys=keys, app=app)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "init":
            try:
                marketplace_key = bytes.fromhex(args.marketplace_key)
            except ValueError:
                raise ComputeError("--marketplace-key is not hex.") from None
            if len(marketplace_key) != 32:
                raise ComputeError("--marketplace-key is not a 32-byte Ed25519 public key.")
            keys = keystore_create(home=args.home, slug=args.slug, secret=node_secret_from_env(),
                                   marketplace_public=marketplace_key)
            if args.enrol_token:
                token = args.home / "enrol-token"
                token.write_text(args.enrol_token)
                token.chmod(0o600)
            print(json.dumps(keys.public_info()))
        elif args.command == "run":
            from compute.node.worker import django_setup, node_run

            django_setup()
            node_run(home=args.home, concurrency=args.concurrency, pool=args.pool)
        elif args.command == "import":
            from compute.node.handlers import table_register
            from compute.node.tables import table_import_bytes

            runtime = _runtime(args.home)
            if runtime.app is None:
                raise ComputeError("Set CELERY_BROKER_URL: the marketplace learns of the table through the broker.")
            try:
                data = args.file.read_bytes()
            except OSError as exc:
                raise ComputeError(f"Cannot read {args.file}: {exc.strerror}.") from None
            meta = table_register(runtime, table_import_bytes(runtime, data=data, name=args.name,
                                                              id_column=args.id_column, profiled=args.profile))
            runtime.send_all([runtime.to_marketplace("table.imported", {"request": "", "table": meta})])
            print(json.dumps({key: meta[key] for key in ("id", "name", "row_count", "fingerprint", "asset_id")}))
        elif args.command == "tables":
            runtime = _runtime(args.home)
            for meta in runtime.store.table_list():
                print(json.dumps({key: meta.get(key) for key in ("id", "name", "kind", "row_count")}))
        elif args.command == "export":
            from compute.node.tables import table_csv, table_load

            runtime = _runtime(args.home)
            text = table_csv(table_load(runtime, args.table))
            if args.out:
                args.out.write_text(text)
            else:
                sys.stdout.write(text)
    except (NodeSecretError, ComputeError) as exc:
        print(f"node: {getattr(exc, 'message', None) or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
