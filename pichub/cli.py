"""The `pichub` command: serve | user … | token … | invite create | backup | restore | migrate
(README: Running)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from pichub.config import EXIT_CONFIG, ConfigError, Settings, check_engines, load_settings
from pichub.errors import PichubError


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH", help="TOML config file")
    parser.add_argument("--data-dir", metavar="DIR", help="data directory (storage.data_dir)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pichub", description="Self-hosted image host")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server")
    _common(serve)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="action", required=True)
    create = user.add_parser("create", help="create a user")
    _common(create)
    create.add_argument("name")
    create.add_argument("--admin", action="store_true")
    create.add_argument("--quota-mb", type=int)
    create.add_argument("--password-stdin", action="store_true",
                        help="read the password from standard input")
    _common(user.add_parser("list", help="list users"))
    for action, text in (("disable", "disable a user: their tokens and sessions stop at once"),
                         ("enable", "enable a disabled user again"),
                         ("delete", "delete a user with all their images, albums, tokens and "
                                    "webhooks")):
        change = user.add_parser(action, help=text)
        _common(change)
        change.add_argument("name")
        if action == "delete":
            change.add_argument("--yes", action="store_true", help="do not ask to confirm")

    reset = user.add_parser("reset-2fa", help="turn a user's two-factor sign-in off (its "
                            "secret and recovery codes go): their next sign-in needs only "
                            "the password")
    _common(reset)
    reset.add_argument("name")

    email = user.add_parser("email", help="set (or with no address, clear) a user's e-mail, "
                            "which single sign-on may link by (oidc.link_by_email)")
    _common(email)
    email.add_argument("name")
    email.add_argument("address", nargs="?", default="")

    token = sub.add_parser("token", help="manage API tokens").add_subparsers(
        dest="action", required=True)
    tcreate = token.add_parser("create", help="create a token; prints only the token")
    _common(tcreate)
    tcreate.add_argument("user")
    tcreate.add_argument("--name", default="")
    tcreate.add_argument("--scope", choices=["read", "write"], default="write")
    tlist = token.add_parser("list", help="list a user's tokens")
    _common(tlist)
    tlist.add_argument("user")
    trevoke = token.add_parser("revoke", help="revoke a token by ID")
    _common(trevoke)
    trevoke.add_argument("id", type=int)

    invite = sub.add_parser("invite", help="manage sign-up invites").add_subparsers(
        dest="action", required=True)
    icreate = invite.add_parser("create", help="make a single-use sign-up link; prints only "
                                "the link")
    _common(icreate)
    icreate.add_argument("--expires", type=duration, default=7 * 86400, metavar="TIME",
                         help="how long it works: 30m, 12h, 7d or seconds (default 7d)")
    icreate.add_argument("--note", default="", help="who it is for (shown in the list)")
    icreate.add_argument("--quota-mb", type=int, default=None, metavar="N",
                         help="the new account's quota (default: no limit)")

    backup = sub.add_parser("backup", help="copy this instance (running or not) into DEST")
    _common(backup)
    backup.add_argument("dest", metavar="DEST", help="a directory that is absent or empty, or "
                        "an interrupted backup of this instance (it continues)")
    backup.add_argument("--jobs", type=_positive, metavar="N",
                        help="files copied side by side (default: 4 per core, at most 16)")
    backup.add_argument("--nice", type=int, default=10, metavar="N",
                        help="lower the backup's CPU priority by N so that a running server "
                        "stays responsive (default 10; 0 keeps it)")
    backfill = sub.add_parser("backfill", help="make missing working copies, placeholders "
                              "and EXIF summaries (safe while the server runs; resumable)")
    _common(backfill)
    backfill.add_argument("--limit", type=int, metavar="N", help="look at N images at most")
    restore = sub.add_parser("restore", help="restore a backup into the data directory")
    _common(restore)
    restore.add_argument("src", metavar="SRC", help="a directory written by `pichub backup`")
    restore.add_argument("--jobs", type=_positive, metavar="N",
                         help="files copied side by side (default: 4 per core, at most 16)")
    migrate = sub.add_parser(
        "migrate", help="copy this single-box instance (SQLite and blobs/) into PostgreSQL "
        "and, with --to-storage s3, the bucket of [storage.s3]; verified, resumable")
    _common(migrate)
    migrate.add_argument("--to-database", required=True, metavar="URL",
                         help="postgresql://user:password@host:5432/name (the database must "
                         "exist; its tables are created)")
    migrate.add_argument("--to-storage", choices=("s3", "filesystem"), default="filesystem",
                         help="s3: copy the files into [storage.s3]; filesystem (default): "
                         "they stay in the data directory")
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(text: str) -> int:
    """`30m`, `12h`, `7d`, `2w` or plain seconds, as seconds."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "s")
    if not number.isdigit():
        raise argparse.ArgumentTypeError("use a number with s, m, h, d or w (e.g. 7d)")
    return int(number) * _UNITS[unit]


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["storage"] = {"data_dir": args.data_dir}
    server = {k: v for k in ("host", "port") if (v := getattr(args, k, None)) is not None}
    if server:
        overrides["server"] = server
    return load_settings(args.config, **overrides)  # sources merge key by key


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
        check_engines(settings)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    from pichub import commands  # keeps `pichub --help` fast

    handlers: dict[tuple[str, str | None], Callable[..., Coroutine[Any, Any, int]]] = {
        ("user", "create"): commands.user_create,
        ("user", "list"): commands.user_list,
        ("user", "disable"): commands.user_disable,
        ("user", "enable"): commands.user_enable,
        ("user", "delete"): commands.user_delete,
        ("user", "email"): commands.user_email,
        ("user", "reset-2fa"): commands.user_reset_2fa,
        ("token", "create"): commands.token_create,
        ("token", "list"): commands.token_list,
        ("token", "revoke"): commands.token_revoke,
        ("invite", "create"): commands.invite_create,
        ("backup", None): commands.backup,
        ("restore", None): commands.restore,
        ("backfill", None): commands.backfill,
        ("migrate", None): commands.migrate,
    }
    if args.command == "serve":
        return commands.serve(settings)
    if args.command == "user" and args.action == "create":
        args.password = _read_password(args)
    if args.command == "user" and args.action == "delete" and not args.yes:
        if not _confirm(f"Delete {args.name} and all their data? Type the name to confirm: ",
                        args.name):
            print("not deleted", file=sys.stderr)
            return 1
    try:
        return asyncio.run(handlers[(args.command, getattr(args, "action", None))](settings, args))
    except PichubError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1


def _confirm(prompt: str, expected: str) -> bool:
    """True when the operator types `expected` (on a terminal; without one, `--yes` is
    needed)."""
    if not sys.stdin.isatty():
        print("error: pass --yes to delete without a terminal", file=sys.stderr)
        return False
    return input(prompt).strip() == expected


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        print("error: passwords do not match", file=sys.stderr)
        raise SystemExit(1)
    return first


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    raise SystemExit(main())
