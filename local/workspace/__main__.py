"""``python -m local.workspace serve``: start the local Databricks-compatible workspace.

It listens on 127.0.0.1 only unless ``--allow-remote`` is given: whoever reaches it with the
token runs any script of spark_jobs/ with this user's rights, and the run pages (state,
parameters, logs) need no token. A container (docker compose) binds 0.0.0.0 inside its own
network and passes ``--allow-remote`` explicitly.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import socket
import sys
from pathlib import Path

from local.spark.runtime import LocalLayout
from local.workspace.lock import StateFolderBusy, lock_state_folder


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.workspace", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the Jobs and Files APIs")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (loopback)")
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (only inside a container network)",
    )
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--mode", choices=["warm", "cold"], default="warm")
    serve.add_argument("--max-concurrent-runs", type=int, default=1)
    serve.add_argument(
        "--max-upload-bytes",
        type=int,
        help="largest Files API upload in bytes, a larger one is a 413 (default 512 MiB)",
    )
    serve.add_argument("--state-dir", type=Path, help="state folder (default .local)")
    serve.add_argument(
        "--token",
        default=os.environ.get("DATABRICKS_TOKEN"),
        help="prefer DATABRICKS_TOKEN: a command line is visible to every local user (ps)",
    )
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("a token is required: --token or DATABRICKS_TOKEN")
    if not args.allow_remote and not is_loopback(args.host):
        parser.error(
            f"refusing to listen on {args.host}: the local workspace runs job scripts for "
            "anyone holding the token and serves run pages without one, so it binds a "
            "loopback address (127.0.0.1, the default) unless --allow-remote is given "
            "(only inside a container network)"
        )
    # Jobs run in child processes that inherit this environment: the token stays here.
    os.environ.pop("DATABRICKS_TOKEN", None)
    if args.port == 8080:
        parser.error("port 8080 belongs to the Airflow API server; choose another")
    if args.max_concurrent_runs < 1:
        parser.error("--max-concurrent-runs must be at least 1")
    if args.max_upload_bytes is not None and args.max_upload_bytes < 1:
        parser.error("--max-upload-bytes must be at least 1")

    if args.state_dir:
        os.environ["ECOM_LOCAL_DIR"] = str(args.state_dir.resolve())
    layout = LocalLayout.from_env()
    try:  # before the run store is opened: a second server on the folder touches nothing
        lock = lock_state_folder(layout.state, layout.workspace_dir)
    except StateFolderBusy as busy:
        print(f"[workspace] refusing to start: {busy}", file=sys.stderr, flush=True)
        return 1
    with lock:  # held while the server runs
        import uvicorn

        from local.workspace.limits import MAX_UPLOAD_BYTES
        from local.workspace.server import create_app

        logging.basicConfig(level=logging.INFO, format="[workspace] %(message)s")
        app = create_app(
            layout,
            token=args.token,
            mode=args.mode,
            slots=args.max_concurrent_runs,
            port=args.port,
            max_upload_bytes=args.max_upload_bytes or MAX_UPLOAD_BYTES,
        )
        print(f"[workspace] {args.mode} mode, serving http://{args.host}:{args.port}", flush=True)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
