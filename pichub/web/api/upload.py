"""`POST /upload` of the JSON API: files and URLs in, `services.uploads` does the rest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from pichub.config import StorageSettings
from pichub.errors import PichubError, ValidationError
from pichub.keys import FETCHER, METRICS, SERVICES, SETTINGS, UPLOAD_TMP
from pichub.models.common import UploadFailure
from pichub.models.images import UploadedImage
from pichub.models.uploads import UploadForm, UploadUrls
from pichub.services.accounts import Actor
from pichub.services.uploads import Outcome, Received
from pichub.web.common import actor, base_url, ok
from pichub.web.fetch import MAX_REDIRECTS
from pichub.web.routes import ApiRoute
from pichub.web.shapes import wants_text
from pichub.web.upload_body import UploadBody, read_upload_body


@dataclass
class Stored:
    """What an upload request became: the outcome, the URL of each item that was one (by
    its index), and whether the body was read to its end (else the answer must close the
    connection)."""

    outcome: Outcome
    urls: dict[int, str]
    complete: bool

    def failures(self) -> list[UploadFailure]:
        return [failure.model_copy(update={"url": self.urls.get(failure.index)})
                for failure in self.outcome.failures()]


async def receive_and_store(request: web.Request, who: Actor,
                            adapt: Callable[[dict[str, str]], dict[str, str]] | None = None,
                            ) -> Stored:
    """Read the request's files, URLs and options, fetch the URLs, store what can be
    stored. When nothing could be stored, the first item's error is raised. `adapt` maps
    another API's form fields onto the upload options (Lsky Pro's `permission` →
    `is_public`)."""
    app = request.app
    app[SERVICES].uploads.check_free_space(request.content_length or 0)
    body = await read_upload_body(request, app[UPLOAD_TMP], app[SETTINGS].storage, adapt)
    files = body.form.files
    urls = {len(files) + i: url for i, url in enumerate(body.urls)}
    try:
        _check_count(body, app[SETTINGS].storage)
        if urls:
            if body.options.album_id is not None:  # a wrong album costs no fetch
                await app[SERVICES].albums.get(who.user_id, body.options.album_id,
                                               base_url(request))
            files.extend(await app[FETCHER].fetch_all(body.urls, len(files)))
        outcome = await store_received(request, who, body.options, files,
                                       body.form.complete)
    finally:
        body.form.cleanup()
    return Stored(outcome, urls, body.form.complete)


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


def _check_count(body: UploadBody, storage: StorageSettings) -> None:
    count = len(body.form.files) + len(body.urls)
    if count == 0:
        raise ValidationError.field("files[]", "at least one file or URL is required")
    if count > storage.max_files_per_request:
        raise ValidationError.field(
            "url", f"at most {storage.max_files_per_request} files and URLs per request")


async def upload(request: web.Request) -> web.Response:
    stored = await receive_and_store(request, actor(request, "write"))
    outcome = stored.outcome
    if wants_text(request):  # for shell pipes: the URLs, one a line
        response = web.Response(text="".join(f"{image.url}\n" for image in outcome.images),
                                status=201)
    else:
        extra = {"errors": stored.failures()} if outcome.errors else None
        response = ok(outcome.images, status=201, extra=extra)
    if not stored.complete:
        response.force_close()
    return response


ROUTES = [
    ApiRoute(
        "POST", "/upload", upload, "upload", "Upload", "Upload images",
        "Upload one or more images (multipart/form-data; the fields `files[]`, `files`, "
        "`file` and `image` all take files), or have PicHub fetch them: `url` (repeatable; "
        "`url[]`, `urls` and `urls[]` too) as form fields, or a JSON object "
        "`{\"url\": …, \"urls\": […]}` with the same options. The type is sniffed from the "
        "bytes (JPEG, PNG, WebP, GIF, AVIF, HEIC/HEIF, JPEG XL), never from the name or "
        "Content-Type. A HEIC is always stored in a web format (WebP; with "
        "`convertToWebP=false` JPEG, or PNG when it has alpha; or `format`) and its uploaded "
        "bytes are kept beside, counted in the quota (`original_format`, "
        "`GET /images/{id}/original`). Each file and URL stands or falls alone: when some "
        "fail, the others are stored and the answer is 201 with a top-level `errors` list "
        "(0-based `index`: the files first, then the URLs); when all fail, the first one's "
        "error is returned. "
        "Output format: `format` other than `auto` wins, else `convertToWebP` gives WebP "
        "(animated GIF → animated WebP), else the source format. EXIF orientation is applied "
        "to the pixels. Location is stripped by default (EXIF GPS, XMP and IPTC location) "
        "unless `keep_location`; `remove_exif` strips EXIF, XMP, GPS and comments (ICC kept). "
        "When the format stays and nothing needs rotating, the uploaded bytes are stored as "
        "they are, or with only their metadata rewritten (JPEG, PNG, WebP, GIF: same pixels)."
        "\n\nA URL is fetched by the server, then stored like an uploaded file "
        "(`original_name` from its `Content-Disposition` or its path). It fails alone with "
        "422 when it is not http(s), resolves to a loopback, private, link-local or reserved "
        "address (also after a redirect; allowed by `storage.fetch_allow_private_networks` "
        f"or `storage.fetch_allowed_networks`), redirects more than {MAX_REDIRECTS} times or "
        "in a loop, cannot be reached, answers anything but 200, or is too slow "
        "(`storage.fetch_timeout_s` for the whole fetch, `storage.fetch_read_timeout_s` for "
        "each wait); with 413 when it is larger than `storage.max_upload_mb` (a larger "
        "`Content-Length` is refused before the body is read); with 415 when its bytes are "
        "not an accepted image (an HTML page or SVG).\n\n"
        "Each stored image carries its `delete_url`, shown only in this answer. "
        "`?format=txt` (or `Accept: text/plain` without JSON) answers the stored images' URLs "
        "as text, one a line (files that failed in a partial batch are left out); errors "
        "then answer their message as text, with the same status.",
        scope="write", form=UploadForm, body=UploadUrls, data=UploadedImage, many=True,
        status=201,
        errors=(400, 404, 413, 415, 422, 507),
        extra_lists=(("errors", UploadFailure,
                      "Only when some files or URLs failed and others were stored."),)),
]
