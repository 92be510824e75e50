"""What several services share: a page of results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from pichub.models.common import Meta

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, newest first, and where it sits in the whole."""

    items: list[T]
    meta: Meta
