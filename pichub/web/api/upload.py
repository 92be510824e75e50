"""`POST /upload` of the JSON API: multipart in, `services.uploads` does the rest."""

from __future__ import annotations

from aiohttp import web

from pichub.errors import PichubError
from pichub.keys import METRICS, SERVICES, SETTINGS, UPLOAD_TMP
from pichub.models.base import validate
from pichub.models.common import UploadFailure
from pichub.models.images import Image
from pichub.models.uploads import UploadForm
from pichub.services.accounts import Actor
from pichub.services.uploads import Outcome
from pichub.web.common import actor, base_url, ok
from pichub.web.multipart import read_upload
from pichub.web.routes import ApiRoute


async def receive_and_store(request: web.Request, who: Actor) -> tuple[Outcome, bool]:
    """Read the request's files and options, store what can be stored; also whether the
    body was read to its end (else the answer must close the connection). When no file
    could be stored, the first file's error is raised."""
    uploads = request.app[SERVICES].uploads
    uploads.check_free_space(request.content_length or 0)
    form = await read_upload(request, request.app[UPLOAD_TMP], request.app[SETTINGS].storage)
    try:
        options = validate(UploadForm, form.fields)
        outcome = await uploads.store(who.user_id, options, form.files, base_url(request))
    finally:
        form.cleanup()
    if not outcome.images:
        first: PichubError = outcome.errors[0][2]
        if not form.complete:
            first.headers["Connection"] = "close"
        raise first
    metrics = request.app[METRICS]
    metrics.uploads.inc(len(outcome.images))
    metrics.upload_bytes.inc(sum(image.size for image in outcome.images))
    return outcome, form.complete


async def upload(request: web.Request) -> web.Response:
    outcome, complete = await receive_and_store(request, actor(request, "write"))
    extra = {"errors": outcome.failures()} if outcome.errors else None
    response = ok(outcome.images, status=201, extra=extra)
    if not complete:
        response.force_close()
    return response


ROUTES = [
    ApiRoute(
        "POST", "/upload", upload, "upload", "Upload", "Upload images",
        "Upload one or more images (multipart/form-data; the fields `files[]`, `files`, "
        "`file` and `image` all take files). The type is sniffed from the bytes (JPEG, PNG, "
        "WebP, GIF, AVIF, HEIC/HEIF, JPEG XL), never from the name or Content-Type. A HEIC "
        "is always stored in a web format (WebP; with `convertToWebP=false` JPEG, or PNG "
        "when it has alpha; or `format`) and its uploaded bytes are kept beside, counted in "
        "the quota (`original_format`, `GET /images/{id}/original`). Each file stands or falls "
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
