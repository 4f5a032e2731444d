"""Full-text and regex search over the lines of a document or a batch run's documents, with the hits' spans."""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence, Union

from ..errors import InputError
from ..model import Document


@dataclass
class Hit:
    """One line that matches: where it is, its text and the matched (start, end) spans."""

    document: str
    page: str
    index: int          # 1-based line number on the page
    line_id: str
    text: str
    spans: list[tuple[int, int]]


def _documents(source) -> list[Document]:
    if isinstance(source, Document):
        return [source]
    out = []
    for item in source:
        out.append(item if isinstance(item, Document) else item.document)  # a workbench Run
    return out


def compile_query(query: str, regex: bool = False, case: bool = False) -> re.Pattern:
    """The query as a pattern: plain text (matched literally) or a regular expression."""
    if not query:
        raise InputError("the search query is empty")
    try:
        return re.compile(query if regex else re.escape(query), 0 if case else re.IGNORECASE)
    except re.error as exc:
        raise InputError(f"the regular expression {query!r} is not valid: {exc}") from exc


def search(source: Union[Document, Sequence], query: str, regex: bool = False, case: bool = False,
           origin: str = "current", limit: Optional[int] = None) -> list[Hit]:
    """The lines whose text (``origin``: the standing text, or ``htr``/``reference``) matches ``query``.

    ``source`` is a Document, or a list of Documents or workbench Runs (a batch).
    """
    pattern = compile_query(query, regex, case)
    hits: list[Hit] = []
    for document in _documents(source):
        for page in document.pages:
            for number, line in enumerate(page.lines, start=1):
                if origin == "reference":
                    text = line.reference or ""
                elif origin == "current":
                    text = line.text
                else:
                    variant = line.variant(origin)
                    text = variant.text if variant else ""
                spans = [m.span() for m in pattern.finditer(text) if m.end() > m.start()]
                if spans:
                    hits.append(Hit(document.name, page.name, number, line.id, text, spans))
                    if limit is not None and len(hits) >= limit:
                        return hits
    return hits


def marked_html(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """``text`` with the matched spans in <mark>."""
    out, last = [], 0
    for start, end in spans:
        out.append(html.escape(text[last:start]))
        out.append(f"<mark>{html.escape(text[start:end])}</mark>")
        last = end
    out.append(html.escape(text[last:]))
    return "".join(out)
