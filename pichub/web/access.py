"""Who is asking for an image at `/img`, and what they may be answered (services/sharing.py
has the rules): the owner found by bearer token or session cookie, a signed link checked,
and the caching headers that keep a private, expiring or counted image out of shared
caches.

The caller is looked up only for images that need it (private ones, and those whose
views are counted), so a public image costs no database query more than before.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import hdrs, web

from pichub.errors import Unauthorized
from pichub.imaging.pipeline import Source
from pichub.keys import CLOCK, DB, SERVICES
from pichub.services import sessions
from pichub.services.accounts import actor_from_token
from pichub.services.sharing import SIGNATURE_PARAM, Link, admit
from pichub.web.files import CACHE_FOREVER
from pichub.web.middleware import bearer

#: nginx's own header (docs/nginx.conf): 0 = do not keep this answer in the proxy cache,
#: whatever `proxy_cache_valid` says; it overrides `proxy_ignore_headers Cache-Control`.
PROXY_NO_STORE = {"X-Accel-Expires": "0"}
MAX_AGE_S = 31536000


@dataclass(frozen=True)
class Admission:
    """A request /img may answer: whether it is the owner's, and whether a valid signed
    link let it in."""

    owner: bool
    link: Link

    def counts_view(self, source: Source, method: str) -> bool:
        """A view to count against `max_views`: a GET by anyone but the owner."""
        return source.max_views is not None and not self.owner and method == hdrs.METH_GET


async def caller_id(request: web.Request) -> int | None:
    """The user asking: by bearer token (a bad one is nobody), else by session cookie."""
    db = request.app[DB]
    token = bearer(request.headers.get(hdrs.AUTHORIZATION))
    if token is not None:
        try:
            return (await actor_from_token(db, token)).user_id
        except Unauthorized:
            return None
    session = await sessions.lookup(db, request.cookies.get(sessions.COOKIE))
    return None if session is None else session.user_id


async def admission(request: web.Request, source: Source) -> Admission:
    """Let the request in, or raise NotFound (404: it may not know the image exists) or
    Gone (410: it may, but the image expired)."""
    now = request.app[CLOCK]()
    link = Link.NONE
    signer = request.app[SERVICES].images.links
    if SIGNATURE_PARAM in request.query and signer is not None:
        link = signer.check(request.path, request.query, now)
    owner = False
    if source.restricted or source.max_views is not None:
        owner = await caller_id(request) == source.owner
    # An image of a password-protected album is let in as a private one: its album's page
    # hands its visitors signed links (the album's cookie is scoped to the page's path).
    visibility = "private" if source.restricted else source.visibility
    admit(visibility=visibility, owner=owner, expires_at=source.expires_at, link=link,
          now=now)
    return Admission(owner, link)


def cache_headers(request: web.Request, source: Source) -> dict[str, str]:
    """`Cache-Control` of an answer for `source`: forever for a shared image; never in a
    shared cache otherwise (private: the browser's own, revalidated; counted views: not
    stored at all; expiring: until the expiry)."""
    if source.shared:
        return {hdrs.CACHE_CONTROL: CACHE_FOREVER}
    if source.max_views is not None:
        control = "no-store"
    elif source.restricted:
        control = "private, no-cache"
    else:
        assert source.expires_at is not None
        left = (source.expires_at - request.app[CLOCK]()).total_seconds()
        control = f"public, max-age={max(0, min(int(left), MAX_AGE_S))}"
    return {hdrs.CACHE_CONTROL: control, **PROXY_NO_STORE}
