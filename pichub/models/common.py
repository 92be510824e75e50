"""Shapes shared by every route: list metadata, deletion answers, errors, upload failures."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from pichub.models.base import Model


class Meta(Model):
    """Pagination of a list answer. Pages are numbered (`page`) or reached by cursor:
    pass `next_cursor` (or `prev_cursor`) back as `?cursor=` for the next (previous)
    page; a cursor keeps its place while images are added or deleted, so walking a list
    by cursors returns each item once, and costs the same on the last page as on the
    first."""

    page: int | None = Field(description="The page number asked for; null when the request "
                                         "used `cursor`.")
    per_page: int
    total: int
    total_pages: int
    next_cursor: str | None = Field(description="The cursor of the next (older) page; null "
                                                "on the last page.")
    prev_cursor: str | None = Field(description="The cursor of the previous (newer) page; "
                                                "null on the first page.")

    @classmethod
    def of(cls, page: int | None, per_page: int, total: int, *,
           next_cursor: str | None = None, prev_cursor: str | None = None) -> Meta:
        return cls.model_construct(page=page, per_page=per_page, total=total,
                                   total_pages=(total + per_page - 1) // per_page,
                                   next_cursor=next_cursor, prev_cursor=prev_cursor)


class Deleted(Model):
    """The answer to every `DELETE`."""

    id: int | str
    deleted: Literal[True]


class ErrorInfo(Model):
    code: str
    message: str
    details: Any = Field(description="null, a string, an object, or (422) a list of "
                                     "`{field, message}`.")


class ErrorBody(Model):
    """Every error answer: the top-level `message` repeats `error.message` (the seed's
    clients read it)."""

    success: Literal[False]
    message: str
    error: ErrorInfo


class UploadFailure(Model):
    """One file or URL of a batch that was not stored (the others were)."""

    index: int = Field(description="0-based position in the request: the files first, then "
                                   "the URLs, each in the order sent.")
    filename: str
    code: str = Field(examples=["UNSUPPORTED_MEDIA_TYPE"])
    message: str
    details: Any = None
    url: str | None = Field(None, description="The URL, when the item was one.")
