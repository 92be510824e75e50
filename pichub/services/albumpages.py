"""Album pages (`/a/{id}`): who may see an album's page, its password, and what it shows.

A public or unlisted album's page is open to anyone with its link, a private one only to
its owner; anyone else is told 404, as for an album that does not exist. The page lists the
album's public and unlisted images that have not expired, never a private one (not even to
the owner: the page shows what a visitor sees).

An album with a password shows its visitors (not its owner) a password form first. The
right password earns a token for a cookie scoped to that album's path: `<exp>.<mac>`, an
HMAC-SHA256 with the instance's `link_key` over the album id, the expiry and the album's
password hash, so it opens that album only, stops at `exp`, and stops at once when the
password changes or is removed. The images of such an album are served at `/img` only to
their owner or through a signed link (web/access.py), so the page hands out signed links,
valid for a few hours (rounded up to the hour, so a browser's cached copy stays usable).
"""

from __future__ import annotations

import asyncio
import hmac
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final
from urllib.parse import urlencode

from pichub.blobs import BlobStore
from pichub.db import albums as albums_db
from pichub.db import images as images_db
from pichub.db.database import Database, Row
from pichub.db.keyset import Position
from pichub.errors import Gone, NotFound
from pichub.hashing import verify_password
from pichub.imaging.formats import ext_of
from pichub.imaging.spec import sign
from pichub.services.common import Page, PageRequest, read_page
from pichub.services.sharing import LinkSigner
from pichub.timeutil import Clock, iso, now

#: How long an unlocked album stays open in a browser.
UNLOCK_S: Final = 7 * 86400
#: How long the signed links of a locked album's page work (at least; rounded up to the hour).
LINK_S: Final = 6 * 3600
_DOMAIN: Final = b"pichub-album-unlock\n"  # keeps these MACs apart from signed links
#: Rows read per step when listing every image of an album (the zip).
BATCH: Final = 200


@dataclass(frozen=True)
class SharedAlbum:
    """An album as its page's visitor may see it. `locked`: it has a password the visitor
    has not given (the owner never has to)."""

    row: Row
    owner: bool
    locked: bool

    @property
    def id(self) -> int:
        return int(self.row["id"])

    @property
    def has_password(self) -> bool:
        return self.row["password_hash"] is not None


@dataclass(frozen=True)
class ZipEntry:
    """One file of an album's zip: its name in the archive, its stored file, its time."""

    name: str
    path: Path
    size: int
    modified: str


class AlbumPages:
    """Reads albums for their pages; `links` signs the image links of locked albums,
    `signing_key` (`images.signing_key`) the variant URLs of the others."""

    def __init__(self, db: Database, blobs: BlobStore, links: LinkSigner | None,
                 signing_key: str | None = None, clock: Clock = now) -> None:
        self.db = db
        self.blobs = blobs
        self.links = links
        self.signing_key = signing_key
        self.clock = clock

    async def open(self, album_id: int, viewer: int | None, token: str | None) -> SharedAlbum:
        """The album for `viewer` (a user id, or None) holding the unlock `token` (the
        album's cookie, or None); NotFound when they may not know it exists."""
        row = await albums_db.find(self.db, album_id)
        if row is None:
            raise NotFound("album")
        owner = viewer is not None and viewer == row["user_id"]
        if row["visibility"] == "private" and not owner:
            raise NotFound("album")
        if row["expires_at"] is not None and row["expires_at"] <= iso(self.clock()):
            raise Gone("album")  # until the expiry sweep deletes it; then 404
        locked = (row["password_hash"] is not None and not owner
                  and not self.unlocked(row, token))
        return SharedAlbum(row, owner, locked)

    async def check_password(self, album: SharedAlbum, password: str) -> bool:
        """Whether `password` is the album's (scrypt, in a thread)."""
        stored = album.row["password_hash"]
        if stored is None:
            return True
        return await asyncio.to_thread(verify_password, password, stored)

    def unlock_token(self, album: SharedAlbum) -> str:
        """The cookie value that opens this album (and no other) for UNLOCK_S seconds."""
        expires = int((self.clock() + timedelta(seconds=UNLOCK_S)).timestamp())
        return f"{expires}.{self._mac(album.row, expires)}"

    def unlocked(self, row: Row, token: str | None) -> bool:
        """Whether `token` is a current unlock token of this album and its password."""
        if not token or self.links is None:
            return False
        raw, _, mac = token.partition(".")
        if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
            return False
        expected = self._mac(row, int(raw))
        return (hmac.compare_digest(mac.encode(), expected.encode())
                and self.clock().timestamp() < int(raw))

    def _mac(self, row: Row, expires: int) -> str:
        assert self.links is not None
        message = f"{row['id']}\n{expires}\n{row['password_hash']}".encode()
        return self.links.mac(_DOMAIN, message)

    async def page(self, album: SharedAlbum, request: PageRequest) -> Page[Row]:
        """A page of the images the album's page shows, newest first (rows)."""
        moment = iso(self.clock())
        total = await images_db.shared_in_album_count(self.db, album.id, moment)
        return await read_page(self.db, images_db.shared_in_album(album.id, moment),
                               images_db.KEY_SHAPE, request, total, lambda row: row)

    async def first(self, album: SharedAlbum) -> Row | None:
        """The newest image the page shows (its OpenGraph image), if any."""
        window = await images_db.shared_in_album(album.id, iso(self.clock())).window(self.db, 1)
        return window.rows[0] if window.rows else None

    def src(self, album: SharedAlbum, row: Row, width: int | None = None) -> str:
        """The path of an image (or its `width` variant) for this page's visitor: a signed
        link when the album has a password, else the image's ordinary URL."""
        ext = ext_of(row["format"]) if width is None else "webp"  # thumbnails: as the UI's
        path = f"/img/{row['id']}.{ext}"
        variant = {} if width is None else {"w": str(width)}
        if album.has_password and self.links is not None:
            query = self.links.query(path, variant, self._link_expiry())
        elif variant and self.signing_key is not None:
            query = {**variant, "s": sign(path, variant, self.signing_key)}
        else:
            query = variant
        return path + ("?" + urlencode(query) if query else "")

    def _link_expiry(self) -> datetime:
        """LINK_S from now, rounded up to the hour: the same URL for an hour."""
        later = (self.clock() + timedelta(seconds=LINK_S)).timestamp()
        return datetime.fromtimestamp(math.ceil(later / 3600) * 3600, self.clock().tzinfo)

    async def entries(self, album: SharedAlbum) -> list[ZipEntry]:
        """Every file the album's zip holds, newest first, with names unique in it (the
        image's filename with its stored format's extension; `name (2).ext` for the next
        with the same name). Read in steps of BATCH rows; a few hundred bytes per image."""
        listing = images_db.shared_in_album(album.id, iso(self.clock()))
        entries: list[ZipEntry] = []
        taken: set[str] = set()
        position: Position | None = None
        while True:
            window = await listing.window(self.db, BATCH, position=position)
            for row in window.rows:
                entries.append(self._entry(row, taken))
            if not window.older or not window.rows:
                return entries
            position = Position(older=True, key=listing.key_of(window.rows[-1]))

    def _entry(self, row: Row, taken: set[str]) -> ZipEntry:
        ext = ext_of(row["format"])
        stem = row["filename"].rsplit(".", 1)[0].replace("/", "_").replace("\\", "_") or row["id"]
        name, count = f"{stem}.{ext}", 1
        while name.lower() in taken:
            count += 1
            name = f"{stem} ({count}).{ext}"
        taken.add(name.lower())
        return ZipEntry(name, self.blobs.path(row["id"], ext), row["size"], row["created_at"])
