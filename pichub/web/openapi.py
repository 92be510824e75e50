"""The OpenAPI 3.1 document, generated from the route table and the models.

Paths come from the `ApiRoute`s (`views.routes`), request bodies and response
objects from the pydantic models' JSON Schemas (`components.schemas`), and
values the config decides (quality, sizes, files per request, dimensions,
rate limits) from the running instance's `Settings`, so the document
describes this server. Outgoing webhooks are the top-level `webhooks`
section. Served without auth at `/api/v1/openapi.json`, rendered at `/docs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from pichub.config import Settings
from pichub.models.base import SchemaGenerator
from pichub.models.common import ErrorBody, Meta
from pichub.models.images import IMAGE_ID_EXAMPLE
from pichub.models.webhooks import EVENT_TYPES, PING, Event
from pichub.web.routes import ApiRoute

J = dict[str, Any]
JSON: Final = "application/json"
REF: Final = "#/components/schemas/{model}"
RATE_HEADERS: Final = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")

# status → (code, example message, example details, what it means)
ERRORS: Final[dict[int, tuple[str, str, Any, str]]] = {
    400: ("BAD_REQUEST", "Request body is not valid JSON", None,
          "Malformed request: bad JSON, bad query parameter, not (valid) multipart; or a "
          "`Host` outside `server.allowed_hosts`."),
    401: ("UNAUTHORIZED", "Invalid or expired API token",
          "Please check your API token and ensure it has not expired",
          "Missing, invalid or revoked token."),
    403: ("FORBIDDEN", "This token has read scope; write scope is required", None,
          "Valid token with too little scope."),
    404: ("NOT_FOUND", "Image not found", None,
          "No such resource, or it belongs to another user (never 403: no existence leak)."),
    405: ("METHOD_NOT_ALLOWED", "Method PUT is not allowed on /api/v1/images", None,
          "Wrong method on a known route."),
    408: ("REQUEST_TIMEOUT", "No request body bytes arrived for 30 seconds", None,
          "The request body stopped arriving for `server.body_timeout_s`; the connection "
          "closes."),
    410: ("GONE", "Image has expired", None,
          "The image expired (`expires_at` passed, or its last `max_views` was used); it is "
          "being deleted. A private image answers 404 instead to whoever may not see it."),
    413: ("PAYLOAD_TOO_LARGE", "File size exceeds maximum limit",
          "Maximum file size is 50MB. Your file is 75MB.",
          "A file is larger than `storage.max_upload_mb`, or the form's other fields are "
          "too many or too large."),
    415: ("UNSUPPORTED_MEDIA_TYPE", "Unsupported file format", None,
          "Not JPEG, PNG, WebP, GIF, AVIF, HEIC/HEIF or still JPEG XL (sniffed from the "
          "bytes)."),
    422: ("VALIDATION_ERROR", "quality: must be between 1 and 100",
          [{"field": "quality", "message": "must be between 1 and 100"}],
          "Validation failed; `details` lists each bad field."),
    429: ("RATE_LIMIT_EXCEEDED", "Rate limit exceeded. Try again in 42 seconds.",
          {"limit": 60, "reset": 1640995200, "retry_after": 42},
          "Over a rate limit; retry after `Retry-After` seconds."),
    500: ("INTERNAL_ERROR", "Internal server error", None,
          "Unexpected server error (no stack trace in the body)."),
    503: ("SERVICE_UNAVAILABLE", "Server is busy, try again", None,
          "Busy (the transform queue is full, or too many connections) or shutting down; "
          "retry after `Retry-After` seconds."),
    507: ("INSUFFICIENT_STORAGE", "Storage quota exceeded",
          "Quota is 100MB; 99MB used, this file needs 3MB",
          "Per-user quota or the server's free-disk reserve exceeded; nothing was stored."),
}
TAGS: Final = [
    ("Upload", "`POST /upload`: files (multipart), or URLs for PicHub to fetch (multipart "
               "fields or JSON)."),
    ("Images", "Your images, and the public square."),
    ("Albums", "Group images; deleting an album keeps its images."),
    ("Webhooks", "Signed event notifications (Standard Webhooks) with a delivery log."),
    ("Integrations", "Ready-made configurations for ShareX, PicGo, Flameshot, uPic and curl."),
    ("Dynamic images", "Resize and re-encode on the fly at `/img/{id}.{ext}` (no auth)."),
    ("Admin", "Users, every image and token, and the overview: for admins' tokens only "
              "(anyone else gets 404)."),
    ("Meta", "This document."),
]
_ID_PARAMS: Final = {"/admin/users": ("userId", "user", "integer", 2),
                     "/admin/images": ("imageId", "image", "string", IMAGE_ID_EXAMPLE),
                     "/admin/tokens": ("tokenId", "token", "integer", 5),
                     "/admin/invites": ("inviteId", "invite", "integer", 3),
                     "/images": ("imageId", "image", "string", IMAGE_ID_EXAMPLE),
                     "/albums": ("albumId", "album", "integer", 3),
                     "/webhooks": ("webhookId", "webhook", "integer", 7)}


def ref(kind: str, name: str) -> J:
    return {"$ref": f"#/components/{kind}/{name}"}


def model_ref(model: type[BaseModel]) -> J:
    return {"$ref": REF.format(model=model.__name__)}


def model_schemas(routes: Sequence[ApiRoute]) -> J:
    """`components.schemas`: every model the routes use (requests in validation mode,
    answers in serialization mode) and what they refer to."""
    wanted: dict[tuple[type[BaseModel], str], None] = {(ErrorBody, "serialization"): None,
                                                       (Meta, "serialization"): None,
                                                       (Event, "serialization"): None}
    for route in routes:
        for model in (route.body, route.form):
            if model is not None:
                wanted[(model, "validation")] = None
        for model in (route.data, *(m for _, m, _ in route.extra_lists)):
            if model is not None:
                wanted[(model, "serialization")] = None
    _, top = models_json_schema(list(wanted), ref_template=REF,  # type: ignore[arg-type]
                                schema_generator=SchemaGenerator)
    return dict(top.get("$defs", {}))


# --- operations ------------------------------------------------------------------------------

def _rate_headers() -> J:
    return {name: ref("headers", name) for name in RATE_HEADERS}


def _success(route: ApiRoute) -> J:
    if route.content is not None:
        return {"description": route.summary + ".", "headers": _rate_headers(),
                "content": route.content}
    data: J = route.extra_data or {"type": "object"}
    if route.data is not None:
        data = model_ref(route.data)
    if route.many:
        data = {"type": "array", "items": data}
    props: J = {"success": {"const": True}, "data": data}
    if route.listed:
        props["meta"] = model_ref(Meta)
    for name, model, text in route.extra_lists:
        props[name] = {"type": "array", "items": model_ref(model), "description": text}
    envelope = {"type": "object", "required": ["success", "data"], "properties": props}
    return {"description": route.summary + ".", "headers": _rate_headers(),
            "content": {JSON: {"schema": envelope}}}


def _form_body(route: ApiRoute, schemas: J, s: Settings) -> J:
    """A multipart body: the files and URLs plus the form model's fields (inlined, so that
    Swagger UI draws one input per field), with the server's defaults; and, when the route
    also has a JSON `body`, that as the other content type."""
    assert route.form is not None
    form = schemas[route.form.__name__]
    most = s.storage.max_files_per_request
    props: J = {"files[]": {
        "type": "array", "items": {"type": "string", "format": "binary"},
        "maxItems": most,
        "description": f"The images, at most {s.storage.max_upload_mb} MB each."}}
    content: J = {}
    if route.body is not None:
        props["url"] = {"type": "array", "items": {"type": "string", "format": "uri"},
                        "maxItems": most,
                        "description": "Images for PicHub to fetch (the field may repeat; "
                                       "`urls[]` is the same). Files and URLs together: at "
                                       f"most {most}."}
        content[JSON] = {"schema": model_ref(route.body)}
    props.update(form["properties"])
    props["quality"] = {**props["quality"], "default": s.images.default_quality}
    schema = {"type": "object", "properties": props,
              "description": form.get("description", "")}
    multipart = {"schema": schema, "encoding": {"files[]": {"contentType": "image/*, "
                                                            "application/octet-stream"}}}
    return {"required": True, "content": {"multipart/form-data": multipart, **content}}


def _operation(route: ApiRoute, schemas: J, s: Settings) -> J:
    responses: J = {str(route.status): _success(route)}
    codes = set(route.errors) | {400, 405, 429, 500, 503} | ({401, 403} if route.scope else set())
    if route.body is not None or route.form is not None:
        codes.add(408)
    for code in sorted(codes):
        responses[str(code)] = ref("responses", ERRORS[code][0])
    description = route.description
    if route.scope:
        description += f"\n\nNeeds a token with **{route.scope}** scope."
    op: J = {"operationId": route.operation_id, "tags": [route.tag], "summary": route.summary,
             "description": description.strip(), "responses": responses,
             "security": [{"bearerAuth": []}] if route.scope else []}
    if route.query or route.parameters:
        op["parameters"] = [*(ref("parameters", name) for name in route.query),
                            *route.parameters]
    if route.body is not None:
        op["requestBody"] = {"required": True,
                             "content": {JSON: {"schema": model_ref(route.body)}}}
    if route.form is not None:
        op["requestBody"] = _form_body(route, schemas, s)
        storage = s.storage
        op["description"] += (
            f"\n\nLimits, checked before decoding: {storage.max_pixels} pixels, "
            f"{storage.max_frames} frames, and a decode budget of {storage.max_decode_mb} MB "
            "(width × height × frames × bytes per pixel; 4 for RGB(A) and animation frames) → "
            f"422. At most {storage.max_files_per_request} files and URLs per request, "
            f"{storage.max_upload_mb} MB each; a URL within {storage.fetch_timeout_s:g} s "
            f"(and {storage.fetch_read_timeout_s:g} s for each wait). Also rate limited by "
            f"`rate_limits.upload` ({s.rate_limits.upload}): a request counts once, whatever "
            "it carries.")
    return op


def _paths(routes: Sequence[ApiRoute], schemas: J, s: Settings) -> J:
    paths: J = {}
    for route in routes:
        item = paths.setdefault(route.path, {})
        if "{id}" in route.path:
            name = next(v[0] for k, v in _ID_PARAMS.items() if route.path.startswith(k))
            item["parameters"] = [ref("parameters", name)]
        item[route.method.lower()] = _operation(route, schemas, s)
    paths["/img/{id}.{ext}"] = _img_path(s)
    return paths


def _img_path(s: Settings) -> J:
    """`/img/…` is no JSON route (it answers image bytes at the site root), so it is
    described here by hand; its parameters are those of `imaging.spec.TransformSpec`."""
    dim = {"type": "integer", "minimum": 1, "maximum": s.images.max_dimension}
    params: list[J] = [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
         "example": IMAGE_ID_EXAMPLE},
        {"name": "ext", "in": "path", "required": True, "example": "webp",
         "schema": {"enum": ["jpg", "jpeg", "png", "webp", "gif", "avif", "jxl"]},
         "description": "Output format unless `fm` is given."},
        {"name": "w", "in": "query", "schema": dim, "description": "Width, e.g. 800."},
        {"name": "h", "in": "query", "schema": dim,
         "description": "Height, e.g. 600; with only one side, the aspect ratio is kept."},
        {"name": "q", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100},
         "description": f"Quality; default {s.images.default_quality} (AVIF: 30 lower)."},
        {"name": "fit", "in": "query", "schema": {"enum": [
            "cover", "crop", "contain", "fill", "inside", "outside"]},
         "description": "sharp's geometry. `cover` (default with both w and h; `crop` is the "
                        "same): scale to cover, centre-crop to w×h. `contain`: fit inside, pad "
                        "to w×h (transparent, or white without alpha). `fill`: exactly w×h. "
                        "`inside`/`outside`: largest within / smallest covering w×h."},
        {"name": "fm", "in": "query", "schema": {"enum": [
            "jpg", "jpeg", "png", "webp", "avif", "jxl", "gif", "auto"]},
         "description": "Output format; `auto` picks JPEG XL, then AVIF, then WebP, from "
                        "`Accept` (else JPEG, or PNG for PNG and GIF sources)."},
        {"name": "s", "in": "query", "schema": {"type": "string"},
         "description": "Signature, required for variants when `images.signing_key` is set: "
                        "URL-safe base64 HMAC-SHA256 over the path and the sorted query "
                        "without `s`."},
        {"name": "exp", "in": "query", "schema": {"type": "integer"},
         "description": "A signed link's expiry (Unix seconds): see `POST /images/{id}/links`."},
        {"name": "sig", "in": "query", "schema": {"type": "string"},
         "description": "A signed link's signature; opens a private image until `exp`."},
    ]
    image = {"description": "The image bytes (a cached variant, or the stored file).",
             "headers": {"ETag": {"schema": {"type": "string"}},
                         "Last-Modified": {"schema": {"type": "string"}},
                         "Cache-Control": {"schema": {"type": "string"},
                                           "example": "public, max-age=31536000, immutable"}},
             "content": {f"image/{t}": {"schema": {"type": "string", "format": "binary"}}
                         for t in ("webp", "jpeg", "png", "gif", "avif", "jxl")}}
    get = {"operationId": "getImageFile", "tags": ["Dynamic images"], "security": [],
           "summary": "Serve an image, resized and re-encoded on the fly",
           "description": "No auth for public and unlisted images (ids are unguessable); a "
                          "private one is served to its owner (bearer token or session cookie) "
                          "or through a signed link (`exp`, `sig`), else 404. An expired image "
                          "→ 410. No parameters and the stored "
                          "extension → the stored bytes. Also answered at the CDN-style root "
                          "path `/{id}.{ext}` and without extension at `/img/{id}`. Variants "
                          "are cached on disk; `If-None-Match` → 304. Cache misses are rate "
                          f"limited per client IP ({s.rate_limits.img_miss}). A variant whose "
                          "decode would pass `storage.max_decode_mb` "
                          f"({s.storage.max_decode_mb} MB: width × height × frames decoded × "
                          "bytes per pixel; an animated output decodes every frame, a still "
                          "output only the first) → 400, before any decoding.",
           "parameters": params,
           "responses": {"200": image, "304": {"description": "Not modified."},
                         **{str(c): ref("responses", ERRORS[c][0])
                            for c in (400, 403, 404, 410, 429, 503)}}}
    return {"servers": [{"url": "/", "description": "Site root"}], "get": get}


# --- shared components -------------------------------------------------------------------------

def _parameters() -> J:
    out: J = {
        "page": {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                            "default": 1},
                 "description": "Page number (< 1 or not an integer → 422)."},
        "per_page": {"name": "per_page", "in": "query", "schema": {
            "type": "integer", "minimum": 1, "maximum": 100, "default": 20},
            "description": "Items per page, 1–100 (else 422)."},
        "cursor": {"name": "cursor", "in": "query", "schema": {"type": "string"},
                   "description": "A `meta.next_cursor` or `meta.prev_cursor` of this list: the "
                                  "page after (before) it, at the same cost on any page and "
                                  "without skipping or repeating items while the list "
                                  "changes. Wins over `page`; one not made for this list "
                                  "→ 422."},
        "album_id": {"name": "album_id", "in": "query", "schema": {"type": "integer"},
                     "description": "Only images in this album (yours; another user's → 404)."},
    }
    for name, what, kind, example in _ID_PARAMS.values():
        out[name] = {"name": "id", "in": "path", "required": True, "schema": {"type": kind},
                     "example": example, "description": f"The {what}'s id."}
    return out


def _responses() -> J:
    out: J = {}
    for status, (code, message, details, meaning) in ERRORS.items():
        headers = _rate_headers()
        if status in (429, 503):
            headers["Retry-After"] = ref("headers", "Retry-After")
        if status == 401:
            headers["WWW-Authenticate"] = {"schema": {"type": "string"},
                                           "example": 'Bearer realm="pichub"'}
        example = {"success": False, "message": message,
                   "error": {"code": code, "message": message, "details": details}}
        out[code] = {"description": f"{status} {code}: {meaning}", "headers": headers,
                     "content": {JSON: {"schema": model_ref(ErrorBody), "example": example}}}
    return out


def _headers() -> J:
    integer = {"schema": {"type": "integer"}}
    return {
        "X-RateLimit-Limit": {**integer, "description": "Limit of the most constraining "
                              "window.", "example": 60},
        "X-RateLimit-Remaining": {**integer, "description": "Requests left in it (this one "
                                  "counted).", "example": 45},
        "X-RateLimit-Reset": {**integer, "description": "When it resets (Unix time).",
                              "example": 1640995200},
        "Retry-After": {**integer, "description": "Seconds to wait.", "example": 42}}


def _webhooks() -> J:
    """The requests PicHub sends to webhook endpoints (OpenAPI 3.1 `webhooks`)."""
    headers = [
        ("webhook-id", "The event's `evt_…` id; the same on every attempt (deduplicate on it)."),
        ("webhook-timestamp", "Unix time of this attempt."),
        ("webhook-signature", "`v1,<base64 HMAC-SHA256 of \"id.timestamp.body\">` with the "
                              "endpoint's secret (Standard Webhooks)."),
        ("X-PicHub-Event", "The event type."),
    ]
    params = [{"name": name, "in": "header", "required": True, "schema": {"type": "string"},
               "description": text} for name, text in headers]
    out: J = {}
    for kind in [*EVENT_TYPES, PING]:
        out[kind] = {"post": {
            "operationId": "event_" + kind.replace(".", "_"), "tags": ["Webhooks"],
            "summary": f"{kind} event",
            "description": "Delivered at least once: any 2xx within `webhooks.timeout_s` is "
                           "success; anything else is retried with exponential backoff and "
                           "jitter, then marked failed. `data` is the "
                           + ("Album" if kind.startswith("album") else
                              "Image" if kind != PING else "test message")
                           + " as the API shows it.",
            "parameters": params, "security": [],
            "requestBody": {"required": True, "content": {JSON: {"schema": model_ref(Event)}}},
            "responses": {"2XX": {"description": "Delivered."},
                          "default": {"description": "Retried later."}}}}
    return out


def _info(s: Settings) -> J:
    limits = s.rate_limits
    rate = (f"Per user, all of a user's tokens together (anonymous: per client IP): "
            f"`{limits.api}`; uploads additionally `{limits.upload}`. Every API response "
            "carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (Unix "
            "time) of the most constraining window; over it → 429 `RATE_LIMIT_EXCEEDED` with "
            "`Retry-After`." if limits.enabled else
            "Disabled on this server (`rate_limits.enabled = false`), so responses carry no "
            "`X-RateLimit-*` headers; where enabled, going over a limit answers 429 "
            "`RATE_LIMIT_EXCEEDED` with `Retry-After`.")
    table = "\n".join(f"| {status} | `{code}` — {meaning} |"
                      for status, (code, _, _, meaning) in ERRORS.items())
    return {"title": "PicHub API", "version": "1.0.0",
            "license": {"name": "MIT", "identifier": "MIT"},
            "description": f"""Self-hosted image hosting with a developer API.

**Authentication**: `Authorization: Bearer <token>` (missing/invalid → 401; too little scope
→ 403). Every route also answers under `/v1`. `GET /square`, `/img/…` and this document need
no token. Browser sessions of the web UI never authorise API calls.

**Envelope**: success is `{{"success": true, "data": …}}`; lists add
`"meta": {{"page", "per_page", "total", "total_pages", "next_cursor", "prev_cursor"}}` and
are newest first: walk them by `page` or, faster on deep pages and stable while the list
changes, by passing `next_cursor` back as `?cursor=`. Errors are
`{{"success": false, "message", "error": {{"code", "message", "details"}}}}` with the codes
below, including unknown routes (404), wrong methods (405) and unexpected errors (500).
Another user's resource answers 404, never 403. `DELETE` answers
`{{"id", "deleted": true}}`. Times are ISO 8601 UTC with `Z`.

**Rate limits**: {rate}

| status | code |
|---|---|
{table}"""}


def build_openapi(settings: Settings, routes: Sequence[ApiRoute]) -> J:
    """The whole document (a fresh dict each call: callers may change it)."""
    schemas = model_schemas(routes)
    return {
        "openapi": "3.1.0",
        "info": _info(settings),
        "servers": [{"url": "/api/v1", "description": "This server (also answered under /v1)"}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": name, "description": text} for name, text in TAGS],
        "paths": _paths(routes, schemas, settings),
        "webhooks": _webhooks(),
        "components": {
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer", "bearerFormat": "ph_…",
                "description": "An API token: create it on the dashboard (API tokens) or with "
                               "`pichub token create USER`. Scope `write` (default) or `read`."}},
            "headers": _headers(),
            "parameters": _parameters(),
            "responses": _responses(),
            "schemas": schemas,
        },
    }
