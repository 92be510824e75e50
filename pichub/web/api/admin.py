"""`/admin/…` of the JSON API: thin adapters over `services.admin`, for admins' tokens only.

Anyone else — anonymous callers and other users' tokens alike — gets the very 404 an
unknown route answers, so the admin routes do not even show that they exist.
"""

from __future__ import annotations

from aiohttp import web

from pichub.errors import NotFound
from pichub.keys import ACTOR, SERVICES
from pichub.models.admin import (
    AdminImage,
    AdminToken,
    AdminUser,
    AdminUserCreate,
    AdminUserUpdate,
    FailingWebhook,
    Stats,
)
from pichub.models.common import Deleted
from pichub.services.accounts import Actor
from pichub.services.admin import Admin
from pichub.web.common import base_url, body_as, deleted, ok, ok_page
from pichub.web.params import pagination, path_id, query_id
from pichub.web.routes import ApiRoute

#: Longest `q` of the user search.
MAX_QUERY = 64


def admin(request: web.Request, scope: str = "read") -> tuple[Actor, Admin]:
    """The calling admin (with at least `scope`) and the admin service; 404 for anyone
    else, exactly as for a route that does not exist."""
    who: Actor | None = request.get(ACTOR)
    if who is None or not who.is_admin:
        raise NotFound("route")
    who.require(scope)
    return who, request.app[SERVICES].admin


async def list_users(request: web.Request) -> web.Response:
    _, service = admin(request)
    listed = pagination(request.query)
    q = request.query.get("q", "").strip()[:MAX_QUERY]
    return ok_page(await service.users(listed, q))


async def create_user(request: web.Request) -> web.Response:
    _, service = admin(request, "write")
    body = await body_as(request, AdminUserCreate)
    return ok(await service.create_user(body), status=201)


async def get_user(request: web.Request) -> web.Response:
    _, service = admin(request)
    return ok(await service.user(path_id(request, "user")))


async def patch_user(request: web.Request) -> web.Response:
    who, service = admin(request, "write")
    user_id = path_id(request, "user")
    body = await body_as(request, AdminUserUpdate)
    return ok(await service.update_user(who, user_id, body))


async def delete_user(request: web.Request) -> web.Response:
    who, service = admin(request, "write")
    user_id = path_id(request, "user")
    await service.delete_user(who, user_id, base_url(request))
    return deleted(user_id)


async def reset_totp(request: web.Request) -> web.Response:
    who, service = admin(request, "write")
    return ok(await service.reset_totp(who, path_id(request, "user")))


async def list_images(request: web.Request) -> web.Response:
    _, service = admin(request)
    listed = pagination(request.query)
    user_id = query_id(request.query, "user_id", "user")
    return ok_page(await service.image_page(base_url(request), listed, user_id))


async def delete_image(request: web.Request) -> web.Response:
    _, service = admin(request, "write")
    image_id = request.match_info["id"]
    await service.delete_image(image_id, base_url(request))
    return deleted(image_id)


async def list_tokens(request: web.Request) -> web.Response:
    _, service = admin(request)
    listed = pagination(request.query)
    user_id = query_id(request.query, "user_id", "user")
    return ok_page(await service.tokens(listed, user_id))


async def revoke_token(request: web.Request) -> web.Response:
    _, service = admin(request, "write")
    token_id = path_id(request, "token")
    await service.revoke_token(token_id)
    return deleted(token_id)


async def failing_webhooks(request: web.Request) -> web.Response:
    _, service = admin(request)
    return ok(await service.failing_webhooks())


async def stats(request: web.Request) -> web.Response:
    _, service = admin(request)
    return ok(await service.stats())


_ONLY = ("Admins only: any other caller, with or without a token, gets 404 as if the route "
         "did not exist. ")
_USER_ID = {"name": "user_id", "in": "query", "required": False, "schema": {"type": "integer"},
            "description": "Only this user's (an unknown user → 404)."}

ROUTES = [
    ApiRoute("GET", "/admin/users", list_users, "adminListUsers", "Admin", "List users",
             _ONLY + "Newest first.", data=AdminUser, many=True, listed=True,
             errors=(404, 422), query=("page", "cursor", "per_page"),
             parameters=({"name": "q", "in": "query", "required": False,
                          "schema": {"type": "string", "maxLength": MAX_QUERY},
                          "description": "Only users whose name contains this (any case)."},)),
    ApiRoute("POST", "/admin/users", create_user, "adminCreateUser", "Admin", "Create a user",
             _ONLY + "The user can sign in at once; give them a token with "
             "`pichub token create` or let them make one on the tokens page.",
             scope="write", body=AdminUserCreate, data=AdminUser, status=201,
             errors=(400, 404, 422)),
    ApiRoute("GET", "/admin/users/{id}", get_user, "adminGetUser", "Admin", "Get a user",
             _ONLY, data=AdminUser, errors=(404,)),
    ApiRoute("PATCH", "/admin/users/{id}", patch_user, "adminUpdateUser", "Admin",
             "Disable, enable, promote, set quota or reset password",
             _ONLY + "Send any of the fields. `is_active: false` disables the user: their "
             "tokens are refused (401) and their sessions signed out at once; their data "
             "stays. A new `password` signs their sessions out. You cannot disable or demote "
             "yourself (422).", scope="write", body=AdminUserUpdate, data=AdminUser,
             errors=(400, 404, 422)),
    ApiRoute("DELETE", "/admin/users/{id}", delete_user, "adminDeleteUser", "Admin",
             "Delete a user and all their data",
             _ONLY + "Their images (files, working copies, kept originals and cached "
             "variants), albums, tokens, webhooks and sessions go, as one operation: the "
             "rows and an `image.deleted` event per image are committed together, the files "
             "removed after. The events reach the global webhook endpoint (`[webhooks] "
             "url`); the user's own endpoints go with them. You cannot delete yourself (422). "
             "Irreversible.", scope="write", data=Deleted, errors=(404, 422)),
    ApiRoute("DELETE", "/admin/users/{id}/totp", reset_totp, "adminResetTotp", "Admin",
             "Reset a user's two-factor sign-in",
             _ONLY + "Removes their TOTP secret and recovery codes (for someone who lost "
             "both): their next sign-in needs only the password, and they can set it up "
             "again on their account page. Answers the user (`two_factor: false`); a no-op "
             "when it was off. Not on your own account (422): turn yours off on the account "
             "page (password and a code).", scope="write", data=AdminUser,
             errors=(404, 422)),
    ApiRoute("GET", "/admin/images", list_images, "adminListImages", "Admin",
             "List every user's images",
             _ONLY + "Newest first, each with its owner (`user_id`, `username`).",
             data=AdminImage, many=True, listed=True, errors=(404, 422),
             query=("page", "cursor", "per_page"), parameters=(_USER_ID,)),
    ApiRoute("DELETE", "/admin/images/{id}", delete_image, "adminDeleteImage", "Admin",
             "Delete any image (moderation)",
             _ONLY + "The same as its owner's delete: row, files and variants go and "
             "`image.deleted` is sent to the owner's endpoints.", scope="write",
             data=Deleted, errors=(404,)),
    ApiRoute("GET", "/admin/tokens", list_tokens, "adminListTokens", "Admin",
             "List every live API token", _ONLY + "Newest first; tokens are stored as "
             "hashes, so only their names and owners are shown.", data=AdminToken, many=True,
             listed=True, errors=(404, 422), query=("page", "cursor", "per_page"),
             parameters=(_USER_ID,)),
    ApiRoute("DELETE", "/admin/tokens/{id}", revoke_token, "adminRevokeToken", "Admin",
             "Revoke any API token", _ONLY + "Requests with it are refused at once.",
             scope="write", data=Deleted, errors=(404,)),
    ApiRoute("GET", "/admin/webhooks/failing", failing_webhooks, "adminFailingWebhooks",
             "Admin", "Webhook endpoints with failed deliveries",
             _ONLY + "At most 100, the most failed deliveries first.", data=FailingWebhook,
             many=True, errors=(404,)),
    ApiRoute("GET", "/admin/stats", stats, "adminStats", "Admin", "The overview",
             _ONLY + "Users, images and bytes stored (from stored counters), the variant "
             "cache (size now; hits and misses since the server started), free disk in "
             "`storage.data_dir`, and uploads per UTC day for the last 30 days.", data=Stats,
             errors=(404,)),
]
