"""The OpenAPI 3.1 document of the whole PicHub API (SPEC §2–7), built from the settings.

Served without auth at `/api/v1/openapi.json` (and `/v1/openapi.json`) and
rendered by Swagger UI at `/docs`. Defaults that come from the config
(quality, upload size, files per request, image dimensions, rate limits) are
filled in from the running instance's `Settings`, so the document describes
this server, not a generic one. Outgoing webhooks are described in the
top-level `webhooks` section (an OpenAPI 3.1 feature).
"""

from __future__ import annotations

from typing import Any

from pichub.config import Settings

J = dict[str, Any]
JSON = "application/json"
BOOL_NOTE = "Accepts `true`, `false`, `1` or `0`."
EVENT_TYPES = ["image.uploaded", "image.deleted", "album.created", "album.updated",
               "album.deleted"]
STAMP = "2026-11-27T06:50:33Z"
IMG_ID = "Xb3kQ9vTz1Lm"
BASE = "https://pichub.example.com"

# status → (code, example message, example details)
ERRORS: dict[int, tuple[str, str, Any]] = {
    400: ("BAD_REQUEST", "Request body is not valid JSON", None),
    401: ("UNAUTHORIZED", "Invalid or expired API token",
          "Please check your API token and ensure it has not expired"),
    403: ("FORBIDDEN", "This token has read scope; write scope is required", None),
    404: ("NOT_FOUND", "Image not found", None),
    405: ("METHOD_NOT_ALLOWED", "Method PUT is not allowed on /api/v1/images", None),
    408: ("REQUEST_TIMEOUT", "No request body bytes arrived for 30 seconds", None),
    413: ("PAYLOAD_TOO_LARGE", "File size exceeds maximum limit",
          "Maximum file size is 50MB. Your file is 75MB."),
    415: ("UNSUPPORTED_MEDIA_TYPE", "Unsupported file format", None),
    422: ("VALIDATION_ERROR", "quality: must be between 1 and 100",
           [{"field": "quality", "message": "must be between 1 and 100"}]),
    429: ("RATE_LIMIT_EXCEEDED", "Rate limit exceeded. Try again in 42 seconds.",
          {"limit": 60, "reset": 1640995200, "retry_after": 42}),
    500: ("INTERNAL_ERROR", "Internal server error", None),
    503: ("SERVICE_UNAVAILABLE", "Server is busy, try again", None),
    507: ("INSUFFICIENT_STORAGE", "Storage quota exceeded",
          "Quota is 100MB; 99MB used, this file needs 3MB"),
}
DESCRIPTIONS = {
    400: "Malformed request: bad JSON, bad query parameter, not multipart; or a `Host` "
         "outside `server.allowed_hosts`.",
    401: "Missing, invalid or revoked token.", 403: "Valid token with too little scope.",
    404: "No such resource, or it belongs to another user (never 403: no existence leak).",
    405: "Wrong method on a known route.",
    408: "The request body stopped arriving for `server.body_timeout_s`; the connection closes.",
    413: "A file is larger than `storage.max_upload_mb`.",
    415: "Not JPEG, PNG, WebP, GIF or AVIF (sniffed from the bytes).",
    422: "Validation failed; `details` lists each bad field.",
    429: "Over a rate limit; retry after `Retry-After` seconds.",
    500: "Unexpected server error (no stack trace in the body).",
    503: "Busy (the transform queue is full, or too many connections) or shutting down; "
         "retry after `Retry-After` seconds.",
    507: "Per-user quota or the server's free-disk reserve exceeded; nothing was stored.",
}


def ref(kind: str, name: str) -> J:
    return {"$ref": f"#/components/{kind}/{name}"}


def schema(name: str) -> J:
    return ref("schemas", name)


def _rate_headers() -> J:
    return {name: ref("headers", name) for name in
            ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")}


def ok(description: str, data: J, example: Any, *, listed: bool = False,
       extra: J | None = None) -> J:
    """A success response: the `{"success": true, "data": …}` envelope with rate headers."""
    props: J = {"success": {"const": True}, "data": data}
    body: J = {"success": True, "data": example}
    if listed:
        props["meta"] = schema("Meta")
        body["meta"] = {"page": 1, "per_page": 20, "total": 1, "total_pages": 1}
    props.update(extra or {})
    envelope = {"type": "object", "required": ["success", "data"], "properties": props}
    return {"description": description, "headers": _rate_headers(),
            "content": {JSON: {"schema": envelope, "example": body}}}


def operation(op_id: str, tag: str, summary: str, description: str, responses: J, *,
              errors: tuple[int, ...] = (), scope: str | None = "read",
              params: list[J] | None = None, body: J | None = None) -> J:
    """One operation; 400 (Host), auth errors (401/403), 405, 408 (a body), 429, 500 and 503
    (busy, shutting down) are added as they apply."""
    codes = set(errors) | {400, 405, 429, 500, 503} | ({401, 403} if scope else set())
    if body:
        codes.add(408)
    for code in sorted(codes):
        responses[str(code)] = ref("responses", ERRORS[code][0])
    op: J = {"operationId": op_id, "tags": [tag], "summary": summary,
             "description": description, "responses": responses}
    op["security"] = [{"bearerAuth": []}] if scope else []
    if scope:
        op["description"] += f"\n\nNeeds a token with **{scope}** scope."
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = body
    return op


def json_body(name: str, example: J, required: bool = True) -> J:
    return {"required": required, "content": {JSON: {"schema": schema(name), "example": example}}}


def deleted(kind: str, example_id: Any) -> J:
    data = {"type": "object", "required": ["id", "deleted"],
            "properties": {"id": {"type": ["integer", "string"]}, "deleted": {"const": True}}}
    return {"200": ok(f"The {kind} was deleted.", data, {"id": example_id, "deleted": True})}


# --- the paths -----------------------------------------------------------------------------------


def _upload_path(s: Settings) -> J:
    body = {"required": True, "content": {"multipart/form-data": {
        "schema": schema("UploadForm"),
        "encoding": {"files[]": {"contentType": "image/jpeg, image/png, image/webp, image/gif, "
                                                "image/avif, application/octet-stream"}}}}}
    data = {"type": "array", "items": schema("Image")}
    errors = {"type": "array", "items": schema("UploadError"),
              "description": "Only when some files failed and others were stored."}
    return {"post": operation(
        "upload", "Upload", "Upload images",
        "Upload one or more images (multipart/form-data). The type is sniffed from the bytes "
        "(JPEG, PNG, WebP, GIF, AVIF), never from the name or Content-Type. Each file stands or "
        "falls alone: when some fail, the others are stored and the answer is 201 with a "
        "top-level `errors` list (0-based `index`); when all fail, the first file's error is "
        "returned. Output format: `format` other than `auto` wins, else `convertToWebP` gives "
        "WebP (animated GIF → animated WebP), else the source format. EXIF orientation is "
        "applied to the pixels; `remove_exif` also strips EXIF, XMP and GPS (ICC kept). "
        f"At most {s.storage.max_files_per_request} files per request, "
        f"{s.storage.max_upload_mb} MB each. Also rate limited by `rate_limits.upload` "
        f"({s.rate_limits.upload}).",
        {"201": ok("The stored images, in upload order.", data, [IMAGE_EXAMPLE],
                   extra={"errors": errors})},
        errors=(400, 404, 413, 415, 422, 507), scope="write", body=body)}


def _images_paths() -> J:
    image_id = ref("parameters", "imageId")
    listing = {"type": "array", "items": schema("Image")}
    album_filter = {"name": "album_id", "in": "query", "required": False,
                    "schema": {"type": "integer"},
                    "description": "Only images in this album (yours; another user's → 404)."}
    return {
        "/images": {"get": operation(
            "listImages", "Images", "List my images",
            "Your images, newest first (ties in the same second keep upload order).",
            {"200": ok("A page of images.", listing, [IMAGE_EXAMPLE], listed=True)},
            errors=(404, 422),
            params=[ref("parameters", "page"), ref("parameters", "perPage"), album_filter])},
        "/images/{id}": {
            "parameters": [image_id],
            "get": operation("getImage", "Images", "Get one of my images", "",
                             {"200": ok("The image.", schema("Image"), IMAGE_EXAMPLE)},
                             errors=(404,)),
            "patch": operation(
                "updateImage", "Images", "Change album, visibility or description",
                "Send any of the fields; `album_id: null` takes the image out of its album. "
                "Fires no webhook event.",
                {"200": ok("The updated image.", schema("Image"), IMAGE_EXAMPLE)},
                errors=(400, 404, 422), scope="write",
                body=json_body("ImageUpdate", {"album_id": 3, "is_public": False})),
            "delete": operation(
                "deleteImage", "Images", "Delete an image",
                "Removes the row, the stored file and every cached variant; fires "
                "`image.deleted`. Irreversible.",
                deleted("image", IMG_ID), errors=(404,), scope="write"),
        },
        "/square": {"get": operation(
            "square", "Images", "Public square",
            "Public images of all users, newest first. No authentication.",
            {"200": ok("A page of public images.", listing, [IMAGE_EXAMPLE], listed=True)},
            errors=(422,), scope=None,
            params=[ref("parameters", "page"), ref("parameters", "perPage")])},
    }


def _albums_paths() -> J:
    album_id = ref("parameters", "albumId")
    listing = {"type": "array", "items": schema("Album")}
    return {
        "/albums": {
            "post": operation(
                "createAlbum", "Albums", "Create an album", "Fires `album.created`.",
                {"201": ok("The new album.", schema("Album"), ALBUM_EXAMPLE)},
                errors=(400, 422), scope="write",
                body=json_body("AlbumCreate", {"name": "我的相册",
                                               "description": "这是一个示例相册",
                                               "is_public": True})),
            "get": operation(
                "listAlbums", "Albums", "List my albums", "Newest first.",
                {"200": ok("A page of albums.", listing, [ALBUM_EXAMPLE], listed=True)},
                errors=(422,), params=[ref("parameters", "page"), ref("parameters", "perPage")]),
        },
        "/albums/{id}": {
            "parameters": [album_id],
            "get": operation("getAlbum", "Albums", "Get an album", "",
                             {"200": ok("The album.", schema("Album"), ALBUM_EXAMPLE)},
                             errors=(404,)),
            "patch": operation(
                "updateAlbum", "Albums", "Rename, describe or toggle public",
                "Send at least one field. Fires `album.updated`.",
                {"200": ok("The updated album.", schema("Album"), ALBUM_EXAMPLE)},
                errors=(400, 404, 422), scope="write",
                body=json_body("AlbumUpdate", {"name": "Holidays 2026"})),
            "delete": operation(
                "deleteAlbum", "Albums", "Delete an album",
                "Its images are kept, with `album_id` set to null. Fires `album.deleted`.",
                deleted("album", 3), errors=(404,), scope="write"),
        },
    }


def _webhooks_paths() -> J:
    hook_id = ref("parameters", "webhookId")
    listing = {"type": "array", "items": schema("Webhook")}
    deliveries = {"type": "array", "items": schema("Delivery")}
    created = {"201": ok("The webhook, with its `secret` (shown only here).",
                         schema("WebhookCreated"), {**WEBHOOK_EXAMPLE, "secret": SECRET})}
    return {
        "/webhooks": {
            "post": operation(
                "createWebhook", "Webhooks", "Add a webhook endpoint",
                "Targets resolving to loopback, private, link-local or reserved addresses are "
                "refused with 422 unless `webhooks.allow_private_networks` is set.",
                created, errors=(400, 422), scope="write",
                body=json_body("WebhookCreate", {"url": "https://example.com/hooks/pichub",
                                                 "events": ["image.uploaded"]})),
            "get": operation("listWebhooks", "Webhooks", "List my webhooks", "",
                             {"200": ok("Your webhooks.", listing, [WEBHOOK_EXAMPLE])}),
        },
        "/webhooks/{id}": {
            "parameters": [hook_id],
            "get": operation("getWebhook", "Webhooks", "Get a webhook", "",
                             {"200": ok("The webhook.", schema("Webhook"), WEBHOOK_EXAMPLE)},
                             errors=(404,)),
            "patch": operation(
                "updateWebhook", "Webhooks", "Change a webhook", "Send at least one field.",
                {"200": ok("The updated webhook.", schema("Webhook"), WEBHOOK_EXAMPLE)},
                errors=(400, 404, 422), scope="write",
                body=json_body("WebhookUpdate", {"is_active": False})),
            "delete": operation("deleteWebhook", "Webhooks", "Delete a webhook",
                                "Its delivery log goes with it.", deleted("webhook", 7),
                                errors=(404,), scope="write"),
        },
        "/webhooks/{id}/deliveries": {"parameters": [hook_id], "get": operation(
            "listDeliveries", "Webhooks", "Delivery log", "Attempts for this endpoint, newest "
            "first: `pending` (waiting for its next attempt), `delivered` or `failed` "
            "(attempts exhausted).",
            {"200": ok("The deliveries.", deliveries, [DELIVERY_EXAMPLE])},
            errors=(404, 422), params=[ref("parameters", "page"), ref("parameters", "perPage")])},
        "/webhooks/{id}/test": {"parameters": [hook_id], "post": operation(
            "testWebhook", "Webhooks", "Send a test event",
            "Queues a `ping` event for this endpoint only.",
            {"202": ok("The queued delivery.", schema("Delivery"),
                       {**DELIVERY_EXAMPLE, "type": "ping", "status": "pending",
                        "attempt": 0, "response_status": None, "delivered_at": None})},
            errors=(404,), scope="write")},
    }


def _img_paths(s: Settings) -> J:
    dim = {"type": "integer", "minimum": 1, "maximum": s.images.max_dimension}
    params: list[J] = [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
         "example": IMG_ID},
        {"name": "ext", "in": "path", "required": True, "example": "webp",
         "schema": {"enum": ["jpg", "jpeg", "png", "webp", "gif", "avif"]},
         "description": "Output format unless `fm` is given."},
        {"name": "w", "in": "query", "schema": dim, "description": "Width, e.g. 800."},
        {"name": "h", "in": "query", "schema": dim, "description": "Height, e.g. 600; with "
                                                                  "only one side, the aspect "
                                                                  "ratio is kept."},
        {"name": "q", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                 "maximum": 100},
         "description": f"Quality; default {s.images.default_quality} (AVIF: 30 lower)."},
        {"name": "fit", "in": "query", "schema": {"enum": [
            "cover", "crop", "contain", "fill", "inside", "outside"]},
         "description": "sharp's geometry. `cover` (default with both w and h; `crop` is the "
                        "same): scale to cover, centre-crop to w×h. `contain`: fit inside, pad "
                        "to w×h (transparent, or white without alpha). `fill`: exactly w×h. "
                        "`inside`/`outside`: largest within / smallest covering w×h."},
        {"name": "fm", "in": "query", "schema": {"enum": [
            "jpg", "jpeg", "png", "webp", "avif", "gif", "auto"]},
         "description": "Output format; `auto` picks AVIF, then WebP, from `Accept`."},
        {"name": "s", "in": "query", "schema": {"type": "string"},
         "description": "Signature, required for variants when `images.signing_key` is set: "
                        "URL-safe base64 HMAC-SHA256 over the path and the sorted query "
                        "without `s`."},
    ]
    image = {"description": "The image bytes (a cached variant, or the stored file).",
             "headers": {"ETag": {"schema": {"type": "string"}},
                         "Last-Modified": {"schema": {"type": "string"}},
                         "Cache-Control": {"schema": {"type": "string"},
                                           "example": "public, max-age=31536000, immutable"}},
             "content": {f"image/{t}": {"schema": {"type": "string", "format": "binary"}}
                         for t in ("webp", "jpeg", "png", "gif", "avif")}}
    get = {"operationId": "getImageFile", "tags": ["Dynamic images"], "security": [],
           "summary": "Serve an image, resized and re-encoded on the fly",
           "description": "No auth: ids are unguessable. No parameters and the stored "
                          "extension → the stored bytes. Also answered at the CDN-style root "
                          "path `/{id}.{ext}` and without extension at `/img/{id}`. Variants "
                          "are cached on disk; `If-None-Match` → 304. Cache misses are rate "
                          f"limited per client IP ({s.rate_limits.img_miss}).",
           "parameters": params,
           "responses": {"200": image, "304": {"description": "Not modified."},
                         **{str(c): ref("responses", ERRORS[c][0])
                            for c in (400, 403, 404, 429, 503)}}}
    return {"/img/{id}.{ext}": {"servers": [{"url": "/", "description": "Site root"}],
                                "get": get}}


def _paths(s: Settings) -> J:
    document = {"description": "The OpenAPI 3.1 document.", "headers": _rate_headers(),
                "content": {JSON: {"schema": {"type": "object"}}}}
    spec_op = operation("openapi", "Meta", "This document", "No authentication; rendered "
                        "by the `/docs` page.", {"200": document}, scope=None)
    return {"/upload": _upload_path(s), **_images_paths(), **_albums_paths(),
            **_webhooks_paths(), **_img_paths(s), "/openapi.json": {"get": spec_op}}


# --- examples ------------------------------------------------------------------------------

IMAGE_URL = f"{BASE}/img/{IMG_ID}.webp"
IMAGE_EXAMPLE: J = {
    "id": IMG_ID, "url": IMAGE_URL, "filename": "holiday_photo.webp",
    "original_name": "holiday photo.jpg", "description": "", "format": "webp",
    "mime": "image/webp", "width": 1600, "height": 1200, "size": 214873,
    "sha256": "9f2c4d0e8b7a6f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c",
    "album_id": 3, "is_public": True, "created_at": STAMP,
    "links": {"url": IMAGE_URL, "thumbnail": f"{IMAGE_URL}?w=300",
              "markdown": f"![holiday photo.jpg]({IMAGE_URL})",
              "html": f'<img src="{IMAGE_URL}" alt="holiday photo.jpg">',
              "bbcode": f"[img]{IMAGE_URL}[/img]"},
}
ALBUM_EXAMPLE: J = {"id": 3, "name": "我的相册", "description": "这是一个示例相册",
                    "is_public": True, "image_count": 12, "cover_url": IMAGE_URL,
                    "created_at": STAMP, "updated_at": STAMP}
WEBHOOK_EXAMPLE: J = {"id": 7, "url": "https://example.com/hooks/pichub",
                      "events": ["image.uploaded"], "description": "", "is_active": True,
                      "created_at": STAMP, "updated_at": STAMP}
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DELIVERY_EXAMPLE: J = {"id": 41, "event_id": "evt_Q2h1Y2sgTm9ycmlzIQ", "type": "image.uploaded",
                       "attempt": 1, "status": "delivered", "response_status": 200,
                       "error": None, "created_at": STAMP, "next_attempt_at": None,
                       "delivered_at": STAMP}


# --- components ----------------------------------------------------------------------------


def _obj(required: list[str], props: J, **extra: Any) -> J:
    return {"type": "object", "required": required, "properties": props, **extra}


def _str(description: str = "", **extra: Any) -> J:
    return {"type": "string", "description": description, **extra} if description else {
        "type": "string", **extra}


def _time(description: str) -> J:
    return {"type": "string", "format": "date-time", "description": description + " (UTC, `Z`)",
            "example": STAMP}


def _nullable(base: J) -> J:
    return {**base, "type": [base["type"], "null"]}


def _image_schemas() -> J:
    links = _obj(["url", "thumbnail", "markdown", "html", "bbcode"], {
        "url": _str("Same as the image's `url`.", format="uri"),
        "thumbnail": _str("A 300 px wide WebP variant.", format="uri"),
        "markdown": _str("`![original_name](url)`"), "html": _str("`<img src alt>`"),
        "bbcode": _str("`[img]url[/img]`")})
    image = _obj(list(IMAGE_EXAMPLE), {
        "id": _str("Short, random, URL-safe (≥ 64 bits: unguessable).", example=IMG_ID),
        "url": _str("Absolute: `{public_url}/img/{id}.{ext}`.", format="uri"),
        "filename": _str("Sanitised original name (random with `auto_rename`), stored "
                         "format's extension."),
        "original_name": _str("The name as uploaded."),
        "description": _str(maxLength=1000),
        "format": {"enum": ["jpeg", "png", "webp", "gif", "avif"]},
        "mime": _str(example="image/webp"),
        "width": {"type": "integer"}, "height": {"type": "integer"},
        "size": {"type": "integer", "description": "Bytes of the stored file that `url` serves."},
        "sha256": _str("Hex SHA-256 of the stored bytes."),
        "album_id": _nullable({"type": "integer"}),
        "is_public": {"type": "boolean", "description": "Listed in the public square. Private "
                      "images are still served to anyone who has the URL."},
        "created_at": _time("Upload time"), "links": schema("ImageLinks")},
        example=IMAGE_EXAMPLE)
    update = {"type": "object", "minProperties": 1, "properties": {
        "album_id": _nullable({"type": "integer", "description": "Yours (else 404); null = none."}),
        "is_public": {"type": "boolean"},
        "description": _nullable({"type": "string", "maxLength": 1000})}}
    return {"ImageLinks": links, "Image": image, "ImageUpdate": update}


def _upload_schemas(s: Settings) -> J:
    def flag(default: bool, text: str) -> J:
        return {"type": "boolean", "default": default, "description": f"{text} {BOOL_NOTE}"}

    form = _obj(["files[]"], {
        "files[]": {"type": "array", "items": {"type": "string", "format": "binary"},
                    "minItems": 1, "maxItems": s.storage.max_files_per_request,
                    "description": "The images. The fields `files`, `file` and `image` are "
                                   "accepted too."},
        "album_id": {"type": "integer", "description": "Add to this album of yours "
                     "(not an integer → 422; not yours → 404)."},
        "quality": {"type": "integer", "minimum": 1, "maximum": 100,
                    "default": s.images.default_quality,
                    "description": "Encoder quality when PicHub re-encodes."},
        "format": {"enum": ["auto", "jpeg", "jpg", "png", "webp"], "default": "auto",
                   "description": "Output format; anything but `auto` wins over `convertToWebP`."},
        "remove_exif": flag(False, "Strip EXIF, XMP and GPS (the ICC profile is kept)."),
        "convertToWebP": flag(True, "Store as WebP when `format` is `auto`."),
        "auto_rename": flag(False, "Random `filename` instead of the sanitised original name."),
        "is_public": flag(True, "List in the public square."),
        "description": {"type": "string", "maxLength": 1000},
    })
    failure = _obj(["index", "filename", "code", "message"], {
        "index": {"type": "integer", "description": "0-based position in the request."},
        "filename": _str(), "code": _str(example="UNSUPPORTED_MEDIA_TYPE"),
        "message": _str(), "details": {}})
    return {"UploadForm": form, "UploadError": failure}


def _album_schemas() -> J:
    name = {"type": "string", "minLength": 1, "maxLength": 100}
    desc = {"type": "string", "maxLength": 1000, "default": ""}
    album = _obj(list(ALBUM_EXAMPLE), {
        "id": {"type": "integer"}, "name": name, "description": desc,
        "is_public": {"type": "boolean"}, "image_count": {"type": "integer"},
        "cover_url": _nullable({"type": "string", "description": "The newest image's URL."}),
        "created_at": _time("Creation time"), "updated_at": _time("Last change")},
        example=ALBUM_EXAMPLE)
    create = _obj(["name"], {"name": name, "description": desc,
                             "is_public": {"type": "boolean", "default": True}})
    update = {"type": "object", "minProperties": 1, "properties": {
        "name": name, "description": _nullable(desc), "is_public": {"type": "boolean"}}}
    return {"Album": album, "AlbumCreate": create, "AlbumUpdate": update}


def _webhook_schemas() -> J:
    events = _nullable({"type": "array", "minItems": 1, "items": {"enum": EVENT_TYPES},
                        "description": "Omitted or null = every event type."})
    url = {"type": "string", "format": "uri", "maxLength": 2048,
           "description": "http(s); private/loopback targets refused unless allowed in config."}
    hook = _obj(list(WEBHOOK_EXAMPLE), {
        "id": {"type": "integer"}, "url": url,
        "events": {"type": "array", "items": {"enum": EVENT_TYPES}},
        "description": _str(maxLength=1000), "is_active": {"type": "boolean"},
        "created_at": _time("Creation time"), "updated_at": _time("Last change")},
        example=WEBHOOK_EXAMPLE)
    created = {"allOf": [schema("Webhook"), _obj(["secret"], {"secret": _str(
        "`whsec_<base64>`: the Standard Webhooks signing secret. Shown only once.")})]}
    delivery = _obj(list(DELIVERY_EXAMPLE), {
        "id": {"type": "integer"}, "event_id": _str("`evt_…`: the `webhook-id` header."),
        "type": {"enum": [*EVENT_TYPES, "ping"]}, "attempt": {"type": "integer"},
        "status": {"enum": ["pending", "delivered", "failed"]},
        "response_status": _nullable({"type": "integer"}),
        "error": _nullable({"type": "string"}), "created_at": _time("Queued at"),
        "next_attempt_at": _nullable(_time("Next try")),
        "delivered_at": _nullable(_time("Delivered at"))}, example=DELIVERY_EXAMPLE)
    event = _obj(["id", "type", "created_at", "data"], {
        "id": _str(example="evt_Q2h1Y2sgTm9ycmlzIQ"), "type": {"enum": [*EVENT_TYPES, "ping"]},
        "created_at": _time("When the change was committed"),
        "data": {"type": "object", "description": "The Image or Album (as the API shows it)."}})
    return {"Webhook": hook, "WebhookCreated": created, "Delivery": delivery, "Event": event,
            "WebhookCreate": _obj(["url"], {"url": url, "events": events,
                                            "description": _str(maxLength=1000)}),
            "WebhookUpdate": {"type": "object", "minProperties": 1, "properties": {
                "url": url, "events": events, "description": _nullable(_str(maxLength=1000)),
                "is_active": {"type": "boolean"}}}}


def _error_schemas() -> J:
    codes = sorted({code for code, _, _ in ERRORS.values()})
    error = _obj(["success", "message", "error"], {
        "success": {"const": False},
        "message": _str("Same as `error.message` (the seed's clients read it)."),
        "error": _obj(["code", "message", "details"], {
            "code": {"enum": codes}, "message": _str(),
            "details": {"description": "null, a string, an object, or (422) a list of "
                                       "`{field, message}`."}})})
    meta = _obj(["page", "per_page", "total", "total_pages"], {
        name: {"type": "integer"} for name in ("page", "per_page", "total", "total_pages")})
    return {"Error": error, "Meta": meta}


def _responses() -> J:
    out: J = {}
    for status, (code, message, details) in ERRORS.items():
        headers = _rate_headers()
        if status in (429, 503):
            headers["Retry-After"] = ref("headers", "Retry-After")
        if status == 401:
            headers["WWW-Authenticate"] = {"schema": {"type": "string"},
                                           "example": 'Bearer realm="pichub"'}
        example = {"success": False, "message": message,
                   "error": {"code": code, "message": message, "details": details}}
        out[code] = {"description": f"{status} {code}: {DESCRIPTIONS[status]}",
                     "headers": headers,
                     "content": {JSON: {"schema": schema("Error"), "example": example}}}
    return out


def _parameters() -> J:
    def path(name: str, kind: str, example: Any) -> J:
        return {"name": "id", "in": "path", "required": True, "schema": {"type": kind},
                "example": example, "description": f"The {name}'s id."}

    return {
        "page": {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                            "default": 1},
                 "description": "Page number (< 1 or not an integer → 422)."},
        "perPage": {"name": "per_page", "in": "query", "schema": {
            "type": "integer", "minimum": 1, "maximum": 100, "default": 20},
            "description": "Items per page, 1–100 (else 422)."},
        "imageId": path("image", "string", IMG_ID), "albumId": path("album", "integer", 3),
        "webhookId": path("webhook", "integer", 7),
    }


def components(settings: Settings) -> J:
    integer = {"schema": {"type": "integer"}}
    return {
        "securitySchemes": {"bearerAuth": {
            "type": "http", "scheme": "bearer", "bearerFormat": "ph_…",
            "description": "An API token: create it on the dashboard (API tokens) or with "
                           "`pichub token create USER`. Scope `write` (default) or `read`."}},
        "headers": {
            "X-RateLimit-Limit": {**integer, "description": "Limit of the most constraining "
                                  "window.", "example": 60},
            "X-RateLimit-Remaining": {**integer, "description": "Requests left in it (this one "
                                      "counted).", "example": 45},
            "X-RateLimit-Reset": {**integer, "description": "When it resets (Unix time).",
                                  "example": 1640995200},
            "Retry-After": {**integer, "description": "Seconds to wait.", "example": 42}},
        "parameters": _parameters(),
        "responses": _responses(),
        "schemas": {**_image_schemas(), **_upload_schemas(settings), **_album_schemas(),
                    **_webhook_schemas(), **_error_schemas()},
    }


def webhooks() -> J:
    """The outgoing requests PicHub makes to webhook endpoints (OpenAPI 3.1 `webhooks`)."""
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
    for kind in [*EVENT_TYPES, "ping"]:
        data = ALBUM_EXAMPLE if kind.startswith("album") else IMAGE_EXAMPLE
        if kind == "ping":
            data = {"webhook_id": 7, "message": "PicHub webhook test"}
        example = {"id": "evt_Q2h1Y2sgTm9ycmlzIQ", "type": kind, "created_at": STAMP,
                   "data": data}
        out[kind] = {"post": {
            "operationId": "event_" + kind.replace(".", "_"), "tags": ["Webhooks"],
            "summary": f"{kind} event",
            "description": "Delivered at least once: any 2xx within `webhooks.timeout_s` is "
                           "success; anything else is retried with exponential backoff and "
                           "jitter, then marked failed.",
            "parameters": params, "security": [],
            "requestBody": {"required": True, "content": {JSON: {
                "schema": schema("Event"), "example": example}}},
            "responses": {"2XX": {"description": "Delivered."},
                          "default": {"description": "Retried later."}}}}
    return out


def info(s: Settings) -> J:
    limits = s.rate_limits
    rate = (f"Per token (anonymous: per client IP): `{limits.api}`; uploads additionally "
            f"`{limits.upload}`. Every API response carries `X-RateLimit-Limit`, "
            "`X-RateLimit-Remaining` and `X-RateLimit-Reset` (Unix time) of the most "
            "constraining window; over it → 429 `RATE_LIMIT_EXCEEDED` with `Retry-After`."
            if limits.enabled else "Disabled on this server (`rate_limits.enabled = false`), "
            "so responses carry no `X-RateLimit-*` headers; where enabled, going over a limit "
            "answers 429 `RATE_LIMIT_EXCEEDED` with `Retry-After`.")
    return {"title": "PicHub API", "version": "1.0.0", "license": {"name": "MIT",
                                                                     "identifier": "MIT"},
            "description": f"""Self-hosted image hosting with a developer API.

**Authentication**: `Authorization: Bearer <token>` (missing/invalid → 401; too little scope
→ 403). Every route also answers under `/v1`. `GET /square`, `/img/…` and this document need
no token. Browser sessions of the web UI never authorise API calls.

**Envelope**: success is `{{"success": true, "data": …}}`; lists add
`"meta": {{"page", "per_page", "total", "total_pages"}}` and are newest first. Errors are
`{{"success": false, "message", "error": {{"code", "message", "details"}}}}` with the codes
below, including unknown routes (404), wrong methods (405) and unexpected errors (500).
Another user's resource answers 404, never 403. `DELETE` answers
`{{"id", "deleted": true}}`. Times are ISO 8601 UTC with `Z`.

**Rate limits**: {rate}

| status | code |
|---|---|
""" + "\n".join(f"| {status} | `{code}` — {DESCRIPTIONS[status]} |"
                for status, (code, _, _) in ERRORS.items())}


def build_openapi(settings: Settings) -> J:
    """The whole document (a fresh dict each call: callers may change it)."""
    return {
        "openapi": "3.1.0",
        "info": info(settings),
        "servers": [{"url": "/api/v1", "description": "This server (also answered under /v1)"}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": name, "description": text} for name, text in TAGS],
        "paths": _paths(settings),
        "webhooks": webhooks(),
        "components": components(settings),
    }


TAGS = [
    ("Upload", "`POST /upload` — multipart, one or more files (SPEC §3)."),
    ("Images", "Your images, and the public square."),
    ("Albums", "Group images; deleting an album keeps its images."),
    ("Webhooks", "Signed event notifications (Standard Webhooks) with a delivery log."),
    ("Dynamic images", "Resize and re-encode on the fly at `/img/{id}.{ext}` (no auth)."),
    ("Meta", "This document."),
]
