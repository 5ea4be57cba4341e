"""`python -m server --unix PATH` or `--host H --port P`: one single-process instance, as production runs it.

Process supervision (restart on crash) belongs to supervisor, not to Sanic. Configuration errors
stop the process before it serves: one line on stderr naming the variable, exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from server.config import ConfigError, load_settings
from server.listen import bind_unix_socket, remove_unix_socket, unix_socket_problem


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server", description="Run one ClickNBack API instance.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    parser.add_argument(
        "--unix",
        metavar="PATH",
        default="",
        help="listen on this Unix socket instead of --host/--port (production, behind nginx)",
    )
    args = parser.parse_args(argv)
    if args.unix:
        problem = unix_socket_problem(args.unix)
        if problem:
            print(f"--unix: {problem}", file=sys.stderr)
            return 2
    try:
        settings = load_settings()
    except ConfigError as error:
        print(str(error), file=sys.stderr)
        return 2

    import asyncpg

    from server import logs
    from server.app import create_app, tune_garbage_collector
    from server.drain import DrainingHttpProtocol

    logs.configure(settings.log_format, settings.log_level, settings.log_file)
    app = create_app(settings, name="clicknback")
    app.after_server_start(tune_garbage_collector)
    try:
        if not args.unix:
            app.run(
                host=args.host,
                port=args.port,
                single_process=True,
                access_log=False,
                motd=False,
                protocol=DrainingHttpProtocol,
            )
            return 0
        try:
            app.run(
                sock=bind_unix_socket(args.unix),
                single_process=True,
                access_log=False,
                motd=False,
                protocol=DrainingHttpProtocol,
            )
        finally:
            remove_unix_socket(args.unix)  # unless a newer instance has taken the path over
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        # The database refused or could not be reached while opening the pool (wrong password,
        # PostgreSQL down): the log has the details; the operator gets one line, not a traceback.
        # asyncpg's messages name the user and address, never the password.
        print(" ".join(f"cannot start: {type(error).__name__}: {error}".split())[:500], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
