"""`POST /upload` of the JSON API: multipart in, `services.uploads` does the rest."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from pichub.errors import PichubError
from pichub.keys import METRICS, SERVICES, SETTINGS, UPLOAD_TMP
from pichub.models.base import validate
from pichub.models.common import UploadFailure
from pichub.models.images import UploadedImage
from pichub.models.uploads import UploadForm
from pichub.services.accounts import Actor
from pichub.services.uploads import Outcome, Received
from pichub.web.common import actor, base_url, ok
from pichub.web.multipart import read_upload
from pichub.web.routes import ApiRoute
from pichub.web.shapes import wants_text


async def receive_and_store(request: web.Request, who: Actor,
                            adapt: Callable[[dict[str, str]], dict[str, str]] | None = None,
                            ) -> tuple[Outcome, bool]:
    """Read the request's files and options, store what can be stored; also whether the
    body was read to its end (else the answer must close the connection). When no file
    could be stored, the first file's error is raised. `adapt` maps another API's fields
    onto the upload options (Lsky Pro's `permission` → `is_public`)."""
    uploads = request.app[SERVICES].uploads
    uploads.check_free_space(request.content_length or 0)
    form = await read_upload(request, request.app[UPLOAD_TMP], request.app[SETTINGS].storage)
    try:
        options = validate(UploadForm, adapt(form.fields) if adapt else form.fields)
        outcome = await store_received(request, who, options, form.files, form.complete)
    finally:
        form.cleanup()
    return outcome, form.complete


async def store_received(request: web.Request, who: Actor, options: UploadForm,
                         files: list[Received], complete: bool = True) -> Outcome:
    """Store received files for `who` (the API's rules, limits and events); the first
    file's error when none could be stored. Counts the uploads in the metrics."""
    outcome = await request.app[SERVICES].uploads.store(who.user_id, options, files,
                                                        base_url(request))
    if not outcome.images:
        first: PichubError = outcome.errors[0][2]
        if not complete:
            first.headers["Connection"] = "close"
        raise first
    metrics = request.app[METRICS]
    metrics.uploads.inc(len(outcome.images))
    metrics.upload_bytes.inc(sum(image.size for image in outcome.images))
    return outcome


async def upload(request: web.Request) -> web.Response:
    outcome, complete = await receive_and_store(request, actor(request, "write"))
    if wants_text(request):  # for shell pipes: the URLs, one a line
        response = web.Response(text="".join(f"{image.url}\n" for image in outcome.images),
                                status=201)
    else:
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
        "WebP, GIF, AVIF), never from the name or Content-Type. Each file stands or falls "
        "alone: when some fail, the others are stored and the answer is 201 with a top-level "
        "`errors` list (0-based `index`); when all fail, the first file's error is returned. "
        "Output format: `format` other than `auto` wins, else `convertToWebP` gives WebP "
        "(animated GIF → animated WebP), else the source format. EXIF orientation is applied "
        "to the pixels. Location is stripped by default (EXIF GPS, XMP and IPTC location) "
        "unless `keep_location`; `remove_exif` strips EXIF, XMP, GPS and comments (ICC kept). "
        "When the format stays and nothing needs rotating, the uploaded bytes are stored as "
        "they are, or with only their metadata rewritten (JPEG, PNG, WebP, GIF: same pixels). "
        "Each stored image carries its `delete_url`, shown only in this answer.\n\n"
        "`?format=txt` (or `Accept: text/plain` without JSON) answers the stored images' URLs "
        "as text, one a line (files that failed in a partial batch are left out); errors "
        "then answer their message as text, with the same status.",
        scope="write", form=UploadForm, data=UploadedImage, many=True, status=201,
        errors=(400, 404, 413, 415, 422, 507),
        extra_lists=(("errors", UploadFailure,
                      "Only when some files failed and others were stored."),)),
]
