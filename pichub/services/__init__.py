"""The rules of PicHub, one module per noun; the web API and the web pages both call these.

Services own every rule and every transaction: they take typed inputs (the
request models of `pichub.models`, or plain values), return typed results,
write the outbox event of a change in the change's own transaction, and never
import aiohttp. `Services` bundles the stateful ones for the app; `accounts`
and `sessions` are plain functions over the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from pichub.services.admin import Admin
from pichub.services.albumpages import AlbumPages
from pichub.services.albums import Albums
from pichub.services.images import Images
from pichub.services.uploads import Uploads
from pichub.services.webhooks import Webhooks


@dataclass(frozen=True)
class Services:
    """The services of one running app (built in `app.py`)."""

    images: Images
    albums: Albums
    webhooks: Webhooks
    uploads: Uploads
    admin: Admin
    album_pages: AlbumPages
