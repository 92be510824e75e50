"""The API's object shapes (SPEC §2 Objects), built from database rows."""

from __future__ import annotations

import re
from html import escape
from typing import Any

from pichub.db.database import Row
from pichub.imaging.formats import ext_of, mime_of


def image_url(base_url: str, image_id: str, fmt: str) -> str:
    return f"{base_url}/img/{image_id}.{ext_of(fmt)}"


_MARKDOWN_SPECIAL = re.compile(r"([\\\[\]])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def markdown_text(text: str) -> str:
    """`text` as literal Markdown link text: `\\`, `[` and `]` escaped, control characters
    (newlines included) turned into spaces, so a file name cannot close the image's
    brackets and point the link somewhere else."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _CONTROL.sub(" ", text))


def image_obj(row: Row, base_url: str) -> dict[str, Any]:
    url = image_url(base_url, row["id"], row["format"])
    alt = row["original_name"]
    return {
        "id": row["id"],
        "url": url,
        "filename": row["filename"],
        "original_name": row["original_name"],
        "description": row["description"],
        "format": row["format"],
        "mime": mime_of(row["format"]),
        "width": row["width"],
        "height": row["height"],
        "size": row["size"],
        "sha256": row["sha256"],
        "album_id": row["album_id"],
        "is_public": bool(row["is_public"]),
        "created_at": row["created_at"],
        "links": {
            "url": url,
            "thumbnail": f"{base_url}/img/{row['id']}.webp?w=300",
            "markdown": f"![{markdown_text(alt)}]({url})",
            "html": f'<img src="{url}" alt="{escape(alt)}">',
            "bbcode": f"[img]{url}[/img]",
        },
    }


def album_obj(row: Row, base_url: str) -> dict[str, Any]:
    cover = None
    if row["cover"]:  # "<id>.<format>" of the album's newest image
        cover_id, cover_fmt = row["cover"].split(".", 1)
        cover = image_url(base_url, cover_id, cover_fmt)
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "is_public": bool(row["is_public"]),
        "image_count": row["image_count"],
        "cover_url": cover,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
