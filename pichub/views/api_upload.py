"""POST /upload (SPEC §3): thin glue between multipart HTTP and the Uploader."""

from __future__ import annotations

from aiohttp import web

from pichub.errors import PichubError, ValidationError
from pichub.keys import METRICS, SETTINGS, UPLOAD_TMP, UPLOADER
from pichub.models.common import UploadFailure
from pichub.models.images import Image
from pichub.models.uploads import UploadForm
from pichub.uploads import parse_options
from pichub.views.common import actor, base_url, ok
from pichub.views.multipart import read_upload
from pichub.views.routes import ApiRoute


async def upload(request: web.Request) -> web.Response:
    who = actor(request, "write")
    uploader = request.app[UPLOADER]
    uploader.check_free_space(request.content_length or 0)
    form = await read_upload(request, request.app[UPLOAD_TMP], request.app[SETTINGS].storage)
    try:
        if not form.files:
            raise ValidationError.field("files[]", "at least one file is required")
        options = parse_options(form.fields, request.app[SETTINGS])
        await uploader.check_album(who.user_id, options.album_id)
        stored = await uploader.store_all(who.user_id, options, form.files, base_url(request))
    finally:
        form.cleanup()
    if not stored.images:
        first: PichubError = stored.errors[0][2]
        if not form.complete:
            first.headers["Connection"] = "close"
        raise first
    metrics = request.app[METRICS]
    metrics.uploads.inc(len(stored.images))
    metrics.upload_bytes.inc(sum(image["size"] for image in stored.images))
    extra = None
    if stored.errors:
        extra = {"errors": [
            {"index": index, "filename": name, "code": exc.code, "message": exc.message,
             "details": exc.details}
            for index, name, exc in stored.errors
        ]}
    response = ok(stored.images, status=201, extra=extra)
    if not form.complete:
        response.force_close()
    return response


ROUTES = [
    ApiRoute(
        "POST", "/upload", upload, "upload", "Upload", "Upload images",
        "Upload one or more images (multipart/form-data; the fields `files[]`, `files`, "
        "`file` and `image` all take files). The type is sniffed from the bytes (JPEG, PNG, "
        "WebP, GIF, AVIF), never from the name or Content-Type. Each file stands or falls "
        "alone: when some fail, the others are stored and the answer is 201 with a top-level "
        "`errors` list (0-based `index`); when all fail, the first file's error is returned. "
        "Output format: `format` other than `auto` wins, else `convertToWebP` gives WebP "
        "(animated GIF → animated WebP), else the source format. EXIF orientation is applied "
        "to the pixels. Location is stripped by default (EXIF GPS, XMP and IPTC location) "
        "unless `keep_location`; `remove_exif` strips EXIF, XMP, GPS and comments (ICC kept). "
        "When the format stays and nothing needs rotating, the uploaded bytes are stored as "
        "they are, or with only their metadata rewritten (JPEG, PNG, WebP, GIF: same pixels).",
        scope="write", form=UploadForm, data=Image, many=True, status=201,
        errors=(400, 404, 413, 415, 422, 507),
        extra_lists=(("errors", UploadFailure,
                      "Only when some files failed and others were stored."),)),
]
