"""`/admin/invites` of the JSON API: admins make, list and revoke sign-up invites.

Like every admin route, anyone but an admin's token gets the 404 of a route that does not
exist (`web.api.admin.admin`).
"""

from __future__ import annotations

from aiohttp import web

from pichub.keys import CLOCK, DB
from pichub.models.common import Deleted
from pichub.models.invites import Invite, InviteCreate, InviteCreated
from pichub.services import registration
from pichub.web.api.admin import admin
from pichub.web.common import base_url, body_as, deleted, ok
from pichub.web.params import path_id
from pichub.web.routes import ApiRoute

_ONLY = ("Admins only: any other caller, with or without a token, gets 404 as if the route "
         "did not exist. ")


async def create_invite(request: web.Request) -> web.Response:
    who, _ = admin(request, "write")
    body = await body_as(request, InviteCreate)
    created = await registration.create_invite(
        request.app[DB], body, created_by=who.user_id, base_url=base_url(request),
        at=request.app[CLOCK]())
    return ok(created, status=201)


async def list_invites(request: web.Request) -> web.Response:
    admin(request)
    return ok(await registration.list_invites(request.app[DB], request.app[CLOCK]()))


async def revoke_invite(request: web.Request) -> web.Response:
    admin(request, "write")
    invite_id = path_id(request, "invite")
    await registration.revoke_invite(request.app[DB], invite_id, request.app[CLOCK]())
    return deleted(invite_id)


ROUTES = [
    ApiRoute("POST", "/admin/invites", create_invite, "adminCreateInvite", "Admin",
             "Make a sign-up invite",
             _ONLY + "A single-use link to `/signup` that stops working after `expires_in` "
             "seconds (default a week). Only its hash is stored: the `url` is shown this once. "
             "It works when `auth.registration` is `invite` or `open` (there it gives the "
             "invite's quota).", scope="write", body=InviteCreate, data=InviteCreated,
             status=201, errors=(400, 404, 422)),
    ApiRoute("GET", "/admin/invites", list_invites, "adminListInvites", "Admin",
             "List invites", _ONLY + "Invites not revoked, newest first (at most 200), each "
             "`unused`, `used` (with the account made) or `expired`.", data=Invite, many=True,
             errors=(404,)),
    ApiRoute("DELETE", "/admin/invites/{id}", revoke_invite, "adminRevokeInvite", "Admin",
             "Revoke an invite", _ONLY + "An unused invite's link stops working at once; a "
             "used one cannot be revoked (404).", scope="write", data=Deleted,
             errors=(404,)),
]
