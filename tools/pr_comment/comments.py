"""Which existing comment the workflow edits: the oldest one its token wrote that starts with
the marker, found in ``gh api --paginate`` output. Standard library only."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

from tools.pr_comment.body import MARKER
from tools.pr_comment.results import ResultError

BOT_LOGIN: Final = "github-actions[bot]"
"""The author of comments made with the workflow's GITHUB_TOKEN."""


def parse_pages(text: str) -> list[dict[str, Any]]:
    """The comments of ``gh api --paginate`` output: one JSON array per page, concatenated."""
    decoder = json.JSONDecoder()
    comments: list[dict[str, Any]] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return comments
        page, position = decoder.raw_decode(text, position)
        if not isinstance(page, list):
            raise ResultError("comments: expected JSON arrays (gh api --paginate output)")
        comments.extend(item for item in page if isinstance(item, dict))


def find_comment(comments: Iterable[dict[str, Any]]) -> int | None:
    """The id of the oldest comment the workflow's token wrote that starts with ``MARKER``."""
    for comment in comments:
        user = comment.get("user") or {}
        body = comment.get("body") or ""
        if user.get("login") == BOT_LOGIN and body.startswith(MARKER):
            return int(comment["id"])
    return None
