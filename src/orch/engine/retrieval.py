"""File search: text extraction, chunking and a small BM25 ranking over vector stores."""

from __future__ import annotations

import io
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from orch.engine.models.base import SearchHit

TEXT_SUFFIXES = (
    ".txt",
    ".md",
    ".markdown",
    ".json",
    ".jsonl",
    ".csv",
    ".tsv",
    ".py",
    ".html",
    ".htm",
    ".xml",
    ".yaml",
    ".yml",
    ".rst",
)
_WORD = re.compile(r"\w+", re.UNICODE)
CHUNK_CHARS = 800
CHUNK_OVERLAP = 200


class UnsupportedFile(Exception):
    """The file's type cannot be searched."""


def extract_text(filename: str, content: bytes) -> str:
    """The searchable text of a file: text formats as UTF-8, PDFs through pypdf."""
    name = filename.lower()
    if name.endswith(".pdf") or content[:5] == b"%PDF-":
        from pypdf import PdfReader

        try:
            reader = PdfReader(io.BytesIO(content))
            return "\n".join((page.extract_text() or "") for page in reader.pages)
        except Exception as exc:  # pypdf raises many kinds of errors on bad files
            raise UnsupportedFile(f"could not read PDF: {exc}") from exc
    if name.endswith(TEXT_SUFFIXES) or b"\x00" not in content[:4096]:
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError:
            return content.decode("latin-1")
    raise UnsupportedFile(
        f"Files with extension [{name.rsplit('.', 1)[-1]}] are not supported for retrieval."
    )


def split_chunks(text: str, size: int = CHUNK_CHARS, overlap: int = CHUNK_OVERLAP) -> list[str]:
    """Overlapping chunks of about ``size`` characters, cut at whitespace where possible."""
    text = text.strip()
    if not text:
        return []
    chunks = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = text.rfind(" ", start + size // 2, end)
            end = cut if cut > start else end
        chunks.append(text[start:end].strip())
        if end >= len(text):
            break
        start = max(end - overlap, start + 1)
    return [c for c in chunks if c]


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens."""
    return [w.lower() for w in _WORD.findall(text)]


@dataclass
class _Doc:
    file_id: str
    tokens: Counter
    length: int
    text: str


class SearchIndex:
    """BM25 over the chunks of some vector stores (built from the store, cached by caller)."""

    def __init__(self, rows: list[tuple[str, str, int, str]]):
        self.docs = []
        for _vs, file_id, _idx, text in rows:
            toks = tokenize(text)
            self.docs.append(_Doc(file_id, Counter(toks), len(toks), text))
        self.avg = (sum(d.length for d in self.docs) / len(self.docs)) if self.docs else 0.0
        self.df: Counter = Counter()
        for d in self.docs:
            self.df.update(d.tokens.keys())

    def search(
        self, query: str, limit: int, names: dict[str, str], k1: float = 1.2, b: float = 0.75
    ) -> list[SearchHit]:
        """The best ``limit`` chunks for ``query``, at most one per (file, chunk)."""
        terms = set(tokenize(query))
        n = len(self.docs)
        scored: list[tuple[float, int]] = []
        for i, d in enumerate(self.docs):
            score = 0.0
            for t in terms:
                tf = d.tokens.get(t)
                if not tf:
                    continue
                idf = math.log(1 + (n - self.df[t] + 0.5) / (self.df[t] + 0.5))
                score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * d.length / (self.avg or 1)))
            if score > 0:
                scored.append((score, i))
        scored.sort(key=lambda s: (-s[0], s[1]))
        top = scored[:limit]
        best = top[0][0] if top else 1.0
        return [
            SearchHit(
                self.docs[i].file_id,
                names.get(self.docs[i].file_id, self.docs[i].file_id),
                round(s / best, 4),
                self.docs[i].text,
            )
            for s, i in top
        ]


def result_entry(hit: SearchHit, with_content: bool) -> dict[str, Any]:
    """A hit as a run step's ``file_search.results[]`` item."""
    entry: dict[str, Any] = {"file_id": hit.file_id, "file_name": hit.filename, "score": hit.score}
    if with_content:
        entry["content"] = [{"type": "text", "text": hit.text}]
    return entry
