"""The body of an upload, in any of the shapes it may come in, as files, URLs and options.

- `multipart/form-data` (`multipart.py`): files streamed to `tmp/`, `url`/`urls[]`
  fields, the options as form fields;
- `application/json`: `models.uploads.UploadUrls`, URLs and the options, read whole
  within aiohttp's 1 MiB `client_max_size` (413 past it).

Anything else is a 400 (from `multipart.read_upload`). Options are validated as one
`UploadForm` before any URL is fetched; blank URLs are left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from pichub.config import StorageSettings
from pichub.models.base import validate
from pichub.models.uploads import UploadForm, UploadUrls
from pichub.web.common import json_body
from pichub.web.multipart import Form, read_upload


@dataclass
class UploadBody:
    """What an upload request asked for; `form.cleanup()` removes its temp files."""

    form: Form
    options: UploadForm
    urls: list[str]


async def read_upload_body(
    request: web.Request, tmp_dir: Path, storage: StorageSettings,
    adapt: Callable[[dict[str, str]], dict[str, str]] | None = None,
) -> UploadBody:
    """The request's files (on disk), URLs and validated options; 400 for a body of another
    type or a malformed one, 422 for a bad option. `adapt` maps another API's form fields
    onto the options first."""
    if request.content_type == "application/json":
        body = await json_body(request)
        parsed = validate(UploadUrls, {k: v for k, v in body.items() if v is not None})
        return UploadBody(Form(), parsed, parsed.all_urls())
    form = await read_upload(request, tmp_dir, storage)
    try:
        fields = adapt(form.fields) if adapt else form.fields
        return UploadBody(form, validate(UploadForm, fields), _given(form.urls))
    except BaseException:
        form.cleanup()
        raise


def _given(urls: list[str]) -> list[str]:
    return [url for url in urls if url.strip()]
