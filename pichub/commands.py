"""What each CLI subcommand does, on the same data as the server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TextIO

from pichub import server
from pichub.app import data_paths, open_database
from pichub.config import EXIT_CONFIG, ConfigError, Settings, check_shared, require_driver
from pichub.db.database import Database, is_postgres, sqlite_path
from pichub.errors import NotFound, PichubError, ServiceUnavailable
from pichub.imaging.cache import DiskCache
from pichub.models.base import validate
from pichub.models.invites import InviteCreate
from pichub.sealing import KEY_FILE
from pichub.services import accounts, admin, oidc, registration
from pichub.services import migrate as engines
from pichub.services.backfill import Progress as BackfillProgress
from pichub.services.backfill import backfill as run_backfill
from pichub.services.backup import WORKERS, BackupError, Interrupted, Manifest
from pichub.services.backup import Progress as CopyProgress
from pichub.services.backup import backup as backup_to_dir
from pichub.services.backup import restore as restore_from_dir
from pichub.services.images import Images
from pichub.services.transfer import Bucket, Directory, Files, TransferError
from pichub.services.transfer import Progress as MoveProgress
from pichub.storage import opened
from pichub.timeutil import now
from pichub.web.observe import configure_logging

log = logging.getLogger("pichub")


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Database]:
    """The instance's database, open for one command."""
    db = await open_database(settings)
    try:
        yield db
    finally:
        await db.close()


def _banner(password: str, token: str) -> str:
    lines = [
        "PicHub first start: created the admin user. Shown once, keep them safe:",
        "",
        "  username:  admin",
        f"  password:  {password}",
        f"  API token: {token}",
        "",
        "Upload:  curl -H 'Authorization: Bearer <token>' -F 'files[]=@photo.jpg' \\",
        "         http://HOST:PORT/api/v1/upload",
    ]
    width = max(len(line) for line in lines) + 4
    rule = "=" * width
    return "\n".join([rule, *(f"  {line}" for line in lines), rule])


async def _bootstrap(settings: Settings) -> None:
    async with _database(settings) as db:
        created = await accounts.bootstrap_admin(db)
    if created is not None:
        print(_banner(*created), flush=True)


def serve(settings: Settings) -> int:
    """`pichub serve`: first-start bootstrap, then the server until it is stopped.

    A failure exits at once: status 2 for a bad configuration, 1 for anything
    else, with one line on stderr (after a logged traceback when unexpected).
    """
    configure_logging(settings.server.log_level.upper())
    try:
        asyncio.run(_serve(settings))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except (server.StartupError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        log.exception("the server stopped on an unexpected error")
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(settings: Settings) -> None:
    check_shared(settings)
    await _bootstrap(settings)
    await server.run(settings)


async def user_create(settings: Settings, args: argparse.Namespace) -> int:
    async with _database(settings) as db:
        user_id = await accounts.create_user(db, args.name, args.password, is_admin=args.admin,
                                             quota_mb=args.quota_mb)
    print(f"created user {args.name} (id {user_id})")
    return 0


async def user_list(settings: Settings, _args: argparse.Namespace) -> int:
    async with _database(settings) as db:
        rows = await accounts.list_users(db)
    _table([(">4", "ID"), ("<20", "USERNAME"), ("<5", "ADMIN"), (">8", "QUOTA"),
            (">6", "IMAGES"), ("", "CREATED")],
           [(r["id"], r["username"], "yes" if r["is_admin"] else "no",
             f"{r['quota_mb']}MB" if r["quota_mb"] is not None else "-", r["image_count"],
             r["created_at"]) for r in rows])
    return 0


async def _user_id(db: Database, name: str) -> int:
    row = await accounts.get_user(db, name)
    if row is None:
        raise NotFound("user")
    return int(row["id"])


async def _set_active(settings: Settings, name: str, active: bool) -> int:
    async with _database(settings) as db:
        await admin.set_active(db, await _user_id(db, name), active)
    print(f"{'enabled' if active else 'disabled'} user {name}")
    return 0


async def user_disable(settings: Settings, args: argparse.Namespace) -> int:
    """`pichub user disable NAME`: takes effect at once, on a running server too (the
    token and session lookups read the flag on every request)."""
    return await _set_active(settings, args.name, False)


async def user_enable(settings: Settings, args: argparse.Namespace) -> int:
    return await _set_active(settings, args.name, True)


async def user_email(settings: Settings, args: argparse.Namespace) -> int:
    """`pichub user email NAME [ADDRESS]`: the address single sign-on may link by."""
    async with _database(settings) as db:
        await oidc.set_email(db, await _user_id(db, args.name), args.address)
    print(f"e-mail of {args.name}: {args.address or '(none)'}")
    return 0


async def user_reset_2fa(settings: Settings, args: argparse.Namespace) -> int:
    """`pichub user reset-2fa NAME`: as the admin API's reset (for anyone, admins too: the
    way back in for the last admin who lost their authenticator and recovery codes)."""
    async with _database(settings) as db:
        await admin.reset_totp(db, await _user_id(db, args.name))
    print(f"two-factor sign-in of {args.name} is off")
    return 0


async def user_delete(settings: Settings, args: argparse.Namespace) -> int:
    """`pichub user delete NAME`: as the admin API's delete, with the files removed from the
    blob store and the variant cache directly (a running server's figure of the cache size
    may still count those variants until it restarts)."""
    paths = data_paths(settings)
    cache = DiskCache(paths["cache"], settings.images.cache_max_mb * 2**20,
                      max_files=settings.images.cache_max_files)
    base = _base_url(settings)

    async def purge(image_id: str) -> int:
        return await asyncio.to_thread(cache.purge_image, image_id)

    async with _database(settings) as db, opened(settings.storage, paths["blobs"]) as files:
        user_id = await _user_id(db, args.name)
        images = Images(db, files, purge_variants=purge, on_change=lambda: None)
        await admin.delete_user(db, images, user_id, base)
    print(f"deleted user {args.name} and all their data")
    return 0


def _base_url(settings: Settings) -> str:
    """The base of URLs a command prints: `server.public_url`, else the listen address."""
    server_ = settings.server
    return (server_.public_url or f"http://{server_.host}:{server_.port}").rstrip("/")


async def invite_create(settings: Settings, args: argparse.Namespace) -> int:
    """`pichub invite create`: prints only the invite link (made by no admin in particular)."""
    body = validate(InviteCreate, {"expires_in": args.expires, "note": args.note,
                                   "quota_mb": args.quota_mb})
    async with _database(settings) as db:
        created = await registration.create_invite(db, body, created_by=None,
                                                   base_url=_base_url(settings), at=now())
    print(created.url)
    print(f"single use, until {created.expires_at}", file=sys.stderr)
    if settings.auth.registration == "closed":
        print("note: auth.registration is \"closed\": the link works once it is \"invite\" "
              "or \"open\"", file=sys.stderr)
    return 0


async def token_create(settings: Settings, args: argparse.Namespace) -> int:
    async with _database(settings) as db:
        token = await accounts.create_token(db, args.user, args.name, args.scope)
    print(token)
    return 0


async def token_list(settings: Settings, args: argparse.Namespace) -> int:
    async with _database(settings) as db:
        rows = await accounts.list_tokens(db, args.user)
    _table([(">4", "ID"), ("<20", "NAME"), ("<6", "SCOPE"), ("<20", "CREATED"),
            ("", "LAST USED")],
           [(r["id"], r["name"][:20], r["scope"], r["created_at"], r["last_used_at"] or "-")
            for r in rows])
    return 0


def _table(columns: list[tuple[str, str]], rows: list[tuple[object, ...]]) -> None:
    """Print aligned columns: (format spec, title) each, two spaces apart."""
    for cells in [tuple(title for _, title in columns), *rows]:
        print("  ".join(f"{cell!s:{spec}}" for (spec, _), cell in zip(columns, cells,
                                                                       strict=True)).rstrip())


async def token_revoke(settings: Settings, args: argparse.Namespace) -> int:
    async with _database(settings) as db:
        try:
            await accounts.revoke_token(db, args.id)
        except NotFound:
            print(f"error: no live token with ID {args.id}", file=sys.stderr)
            return 1
    print(f"revoked token {args.id}")
    return 0


async def backfill(settings: Settings, args: argparse.Namespace) -> int:
    """`pichub backfill`: working copies, placeholders and EXIF summaries that images lack
    (see services.backfill)."""
    show = _Ticker(sys.stdout.isatty())
    async with _database(settings) as db, \
            opened(settings.storage, data_paths(settings)["blobs"]) as files:
        progress = await run_backfill(db, files, show, limit=args.limit)
    show.end()
    print(f"looked at {progress.done} image(s): {progress.made} working copies made, "
          f"{progress.described} described (placeholders, EXIF summary), "
          f"{progress.failed} unreadable, in {time.monotonic() - progress.started:.1f} s")
    return 1 if progress.failed else 0


class _Ticker:
    """Progress of a long command: one line redrawn in place on a terminal, else a line now
    and then (logs, CI)."""

    def __init__(self, terminal: bool, out: TextIO | None = None) -> None:
        self.terminal = terminal
        self.out = out or sys.stdout
        self.last = 0.0

    def __call__(self, progress: BackfillProgress) -> None:
        eta = progress.eta_s
        self.show(progress.done == progress.total, lambda: (
            f"{progress.done}/{progress.total} images, {progress.made} copies made, "
            f"{progress.described} described, {progress.rate:.1f} images/s"
            + (f", ETA {eta:.0f} s" if eta else "")))

    def show(self, final: bool, line: Callable[[], str]) -> None:
        """Print `line()` if it is time to (always when `final`)."""
        now = time.monotonic()
        if not final and now - self.last < (0.2 if self.terminal else 10.0):
            return
        self.last = now
        print("\r" + line().ljust(79) if self.terminal else line(),
              end="" if self.terminal else "\n", file=self.out, flush=True)

    def end(self) -> None:
        if self.terminal and self.last:
            print(file=self.out)
            self.last = 0.0


async def backup(settings: Settings, args: argparse.Namespace) -> int:
    """`pichub backup DEST`: database snapshot and blobs; safe while the server runs, and run
    again after an interruption it continues."""
    if not _on_one_box(settings):
        return await _backup_engines(settings, args)
    dest = Path(args.dest)
    show = _Ticker(sys.stderr.isatty(), sys.stderr)
    try:
        manifest = await _copying(show, _backup_niced, settings.storage.data_dir, dest,
                                  _copy_reporter(show, "backup"), args.jobs or WORKERS,
                                  args.nice)
    except (BackupError, OSError) as exc:  # one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (asyncio.CancelledError, Interrupted):
        return _interrupted("backup")
    for image_id in manifest.dropped:
        print(f"warning: image {image_id} was deleted during the backup; left out",
              file=sys.stderr)
    for image_id in manifest.damaged:
        print(f"warning: the stored bytes of image {image_id} do not match its sha256; "
              "copied as they are", file=sys.stderr)
    print(f"backed up {_summary(manifest)} to {dest}")
    return 0


def _on_one_box(settings: Settings) -> bool:
    """Whether the instance is the SQLite file of its data directory and the files in its
    `blobs/`: backup and restore then copy the directory (hard links, a SQLite snapshot);
    otherwise they copy row by row and file by file (services.migrate)."""
    url = settings.database.url
    here = not url or (not is_postgres(url) and
                       sqlite_path(url).resolve() == data_paths(settings)["db"].resolve())
    return here and settings.storage.backend == "filesystem"


@asynccontextmanager
async def _instance_files(settings: Settings) -> AsyncIterator[Files]:
    """The files of the configured instance: its bucket, or its `blobs/` directory."""
    from pichub.storage.s3 import S3Storage  # its driver is imported only when opened

    async with opened(settings.storage, data_paths(settings)["blobs"]) as storage:
        yield (Bucket(storage.objects) if isinstance(storage, S3Storage)
               else Directory(storage.blobs.root))


async def _backup_engines(settings: Settings, args: argparse.Namespace) -> int:
    """`pichub backup DEST` of an instance on PostgreSQL or S3: row by row, file by file."""
    dest = Path(args.dest)
    show = _Ticker(sys.stderr.isatty(), sys.stderr)
    manifest = await _on_the_instance(settings, show, lambda db, files: engines.backup(
        db, files, settings.storage.data_dir, dest, _move_reporter(show, "backup")))
    if manifest is None:
        return 1
    for image_id in manifest.dropped:
        print(f"warning: image {image_id} was deleted during the backup; left out",
              file=sys.stderr)
    print(f"backed up {_summary(manifest)} to {dest}")
    return 0


async def _restore_engines(settings: Settings, args: argparse.Namespace) -> int:
    """`pichub restore SRC` into an instance on PostgreSQL or S3 (which must be empty)."""
    show = _Ticker(sys.stderr.isatty(), sys.stderr)
    manifest = await _on_the_instance(settings, show, lambda db, files: engines.restore(
        Path(args.src), db, files, settings.storage.data_dir, _move_reporter(show, "restore")))
    if manifest is None:
        return 1
    print(f"restored {_summary(manifest)} from the backup of {manifest.created_at}")
    if settings.auth.secret_key is None and settings.shared_database:
        print(_KEY_ADVICE.format(key=settings.storage.data_dir / KEY_FILE), file=sys.stderr)
    return 0


async def _on_the_instance(settings: Settings, show: _Ticker,
                           run: Callable[[Database, Files], Awaitable[Manifest]]
                           ) -> Manifest | None:
    """`run` with the configured database and files open; None (the error said in one
    line) when it fails."""
    try:
        async with _database(settings) as db, _instance_files(settings) as files:
            return await run(db, files)
    except (BackupError, TransferError, ServiceUnavailable, OSError) as exc:
        show.end()  # the error on a line of its own
        print(f"error: {_message(exc)}", file=sys.stderr)
        return None
    finally:
        show.end()


_KEY_ADVICE = ("note: set auth.secret_key (or PICHUB_AUTH__SECRET_KEY) to the content of {key}, "
               "the same on every process: two-factor secrets and signed links depend on it")


async def migrate(settings: Settings, args: argparse.Namespace) -> int:
    """`pichub migrate --to-database URL [--to-storage s3]` (services.migrate): the instance
    configured now (SQLite and blobs/ in the data directory) into PostgreSQL and a bucket."""
    if not _on_one_box(settings):
        print("error: pichub migrate copies an instance on SQLite and blobs/ in its data "
              "directory; this configuration already uses [database] url or the S3 backend",
              file=sys.stderr)
        return 1
    if not is_postgres(args.to_database):
        print("error: --to-database must be a postgresql:// URL", file=sys.stderr)
        return 2
    paths = data_paths(settings)
    if not paths["db"].is_file():
        print(f"error: no PicHub database at {paths['db']}", file=sys.stderr)
        return 1
    try:
        require_driver("asyncpg")
        if args.to_storage == "s3":
            require_driver("aiobotocore")
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    if args.to_storage == "s3" and not settings.storage.s3.bucket:
        print("error: --to-storage s3 needs [storage.s3] (bucket, endpoint_url, keys) in the "
              "configuration", file=sys.stderr)
        return 2
    show = _Ticker(sys.stderr.isatty(), sys.stderr)
    try:
        async with contextlib.AsyncExitStack() as stack:
            dest = await Database.open(args.to_database,
                                       pool_size=settings.database.pool_size)
            stack.push_async_callback(dest.close)
            files: Files | None = None
            if args.to_storage == "s3":
                from pichub.storage.objects import ObjectStore

                objects = ObjectStore(settings.storage.s3)
                await objects.open()
                stack.push_async_callback(objects.close)
                files = Bucket(objects)
            moved = await engines.migrate(settings.storage.data_dir, dest, files,
                                          Directory(paths["blobs"]),
                                          _move_reporter(show, "migrate"))
    except (TransferError, ServiceUnavailable, OSError) as exc:
        show.end()
        print(f"error: {_message(exc)}", file=sys.stderr)
        return 1
    show.end()
    print(f"copied {sum(moved.rows.values()):,} rows ({moved.rows.get('images', 0):,} images)"
          + (f" and {moved.files:,} files ({moved.bytes / 2**20:,.1f} MB)" if files else "")
          + ", verified. Point PicHub at them:")
    print(f"  [database]\n  url = \"{args.to_database}\"")
    if files:
        print("  [storage]\n  backend = \"s3\"")
    if settings.auth.secret_key is None:
        print(_KEY_ADVICE.format(key=settings.storage.data_dir / KEY_FILE))
    if moved.vanished:
        print(f"warning: {len(moved.vanished)} image(s) were deleted during the copy",
              file=sys.stderr)
    print("Run it again with PicHub stopped to copy what changed meanwhile; it continues where "
          "it left off.")
    return 0


def _move_reporter(show: _Ticker, what: str) -> Callable[[MoveProgress], None]:
    def report(p: MoveProgress) -> None:
        eta = p.eta_s
        unit = "rows" if p.step == "rows" else "files"
        size = (f", {p.done_bytes / 2**20:,.1f}/{p.total_bytes / 2**20:,.1f} MB"
                if p.total_bytes else "")
        show.show(p.finished, lambda: (
            f"{what}: {p.step}: {p.done:,}/{p.total:,} {unit}{size}, {p.rate:,.0f} {unit}/s"
            + (f", ETA {eta:.0f} s" if eta and not p.finished else "")))
        if p.finished:
            show.end()
    return report


def _message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, PichubError) else str(exc)


def _backup_niced(data_dir: Path, dest: Path, report: Callable[[CopyProgress], None],
                  jobs: int, niceness: int, stop: threading.Event) -> Manifest:
    if niceness > 0:  # a running server keeps the CPU it needs
        os.nice(niceness)  # Linux: this thread, and the copy threads it starts inherit it
    return backup_to_dir(data_dir, dest, report, workers=jobs, stop=stop)


async def restore(settings: Settings, args: argparse.Namespace) -> int:
    """`pichub restore SRC --data-dir D`: into a data directory that is absent or empty (or
    holds a restore of the same backup that was interrupted: it continues)."""
    if not _on_one_box(settings):
        return await _restore_engines(settings, args)
    data_dir = settings.storage.data_dir
    show = _Ticker(sys.stderr.isatty(), sys.stderr)
    try:
        manifest = await _copying(show, _restore, Path(args.src), data_dir,
                                  _copy_reporter(show, "restore"), args.jobs or WORKERS)
    except (BackupError, OSError) as exc:  # one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (asyncio.CancelledError, Interrupted):
        return _interrupted("restore")
    print(f"restored {_summary(manifest)} from the backup of {manifest.created_at} "
          f"into {data_dir}")
    return 0


def _restore(src: Path, data_dir: Path, report: Callable[[CopyProgress], None], jobs: int,
             stop: threading.Event) -> Manifest:
    return restore_from_dir(src, data_dir, report, workers=jobs, stop=stop)


async def _copying(show: _Ticker, run: Callable[..., Manifest], *args: object) -> Manifest:
    """`run(*args, stop)` in a thread; Ctrl-C sets `stop`, and the copy stops between chunks
    with what it has done kept for the next run."""
    stop = threading.Event()
    try:
        return await asyncio.to_thread(run, *args, stop)
    finally:
        stop.set()
        show.end()


def _copy_reporter(show: _Ticker, what: str) -> Callable[[CopyProgress], None]:
    def report(p: CopyProgress) -> None:
        eta = p.eta_s
        show.show(p.done, lambda: (
            f"{what}: {p.files:,}/{p.files_total:,} files, {p.bytes / 2**20:,.0f}/"
            f"{p.bytes_total / 2**20:,.0f} MB, {p.rate:,.0f} files/s"
            + (f", ETA {eta:.0f} s" if eta and not p.done else "")
            + (f", {p.kept:,} kept" if p.kept else "")))
    return report


def _interrupted(what: str) -> int:
    print(f"interrupted: run the same command again to continue the {what}", file=sys.stderr)
    return 130


def _summary(manifest: Manifest) -> str:
    return f"{manifest.images} image(s), {manifest.bytes / 2**20:.1f} MB"
