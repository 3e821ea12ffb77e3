"""File search: text extraction, static chunking, and keyword (BM25) or hybrid ranking.

Chunking follows OpenAI's static strategy (800-token windows overlapping by 400 unless the
file's ``chunking_strategy`` says otherwise) with a heuristic token counter. Ranking is BM25
over the chunks, mixed with embedding similarity when the engine has an embeddings upstream.
"""

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
# The token counter (a heuristic, no tokenizer ships with the engine): runs of up to 3 digits,
# runs of up to 6 letters, and single other characters, spaces not counted. On English prose
# it counts within ~15% of cl100k (about 4.3 characters a token).
_TOKEN = re.compile(r"\d{1,3}|[^\W\d_]{1,6}|[^\s\w]|_", re.UNICODE)
#: OpenAI's static chunking defaults (``chunking_strategy: auto``).
CHUNK_TOKENS = 800
CHUNK_OVERLAP_TOKENS = 400
#: How many results a file_search returns unless its tool says (OpenAI's default).
MAX_NUM_RESULTS = 20


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


def count_tokens(text: str) -> int:
    """The heuristic token count of ``text`` (see ``_TOKEN``)."""
    return sum(1 for _ in _TOKEN.finditer(text))


def split_chunks(
    text: str, size: int = CHUNK_TOKENS, overlap: int = CHUNK_OVERLAP_TOKENS
) -> list[str]:
    """Static chunking: windows of ``size`` tokens, each starting ``size - overlap`` later.

    A chunk is the original text from its first token to its last (whitespace kept inside);
    the last window ends at the text's end. ``overlap`` must be at most half of ``size``, as
    OpenAI requires.
    """
    spans = [(m.start(), m.end()) for m in _TOKEN.finditer(text)]
    if not spans:
        return []
    step = max(1, size - overlap)
    chunks = []
    for start in range(0, len(spans), step):
        window = spans[start : start + size]
        chunks.append(text[window[0][0] : window[-1][1]])
        if start + size >= len(spans):
            break
    return chunks


def chunk_sizes(strategy: dict[str, Any] | None) -> tuple[int, int]:
    """``(max_chunk_size_tokens, chunk_overlap_tokens)`` of a vector store file's strategy."""
    static = (strategy or {}).get("static") or {}
    size = static.get("max_chunk_size_tokens")
    overlap = static.get("chunk_overlap_tokens")
    return (
        CHUNK_TOKENS if size is None else int(size),
        CHUNK_OVERLAP_TOKENS if overlap is None else int(overlap),
    )


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens."""
    return [w.lower() for w in _WORD.findall(text)]


@dataclass
class Ranking:
    """How a file_search ranks: a ``ranking_options`` object, read once.

    Scores are in [0, 1]: the keyword (BM25) score relative to the best chunk's, or, with
    embeddings, the weighted mean of that and the cosine similarity to the query (negative
    similarity counts as 0). Chunks scoring below ``score_threshold`` (or 0) are left out.
    """

    ranker: str = "default_2024_08_21"
    score_threshold: float = 0.0
    embedding_weight: float = 1.0
    text_weight: float = 1.0

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> Ranking:
        """From the tool's ``ranking_options`` (Assistants or Responses shape), or defaults."""
        options = options or {}
        hybrid = options.get("hybrid_search") or {}
        ranker = options.get("ranker") or "auto"
        return cls(
            # "auto" picks the engine's one ranker, and the step says which it was
            ranker="default_2024_08_21" if ranker == "auto" else ranker,
            score_threshold=float(options.get("score_threshold") or 0.0),
            embedding_weight=float(hybrid.get("embedding_weight", 1.0)),
            text_weight=float(hybrid.get("text_weight", 1.0)),
        )

    def recorded(self) -> dict[str, Any]:
        """The ``ranking_options`` a run step shows."""
        return {"ranker": self.ranker, "score_threshold": self.score_threshold}


def search_settings(tools: list[dict[str, Any]]) -> tuple[int, Ranking]:
    """``max_num_results`` and the ranking of the file_search tool among ``tools``."""
    for tool in tools:
        if tool.get("type") == "file_search":
            settings = tool.get("file_search") or {}
            limit = settings.get("max_num_results") or MAX_NUM_RESULTS
            return int(limit), Ranking.from_options(settings.get("ranking_options"))
    return MAX_NUM_RESULTS, Ranking()


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

    def keyword_scores(self, query: str, k1: float = 1.2, b: float = 0.75) -> list[float]:
        """Each chunk's BM25 score for ``query``."""
        terms = set(tokenize(query))
        n = len(self.docs)
        scores = []
        for d in self.docs:
            score = 0.0
            for t in terms:
                tf = d.tokens.get(t)
                if not tf:
                    continue
                idf = math.log(1 + (n - self.df[t] + 0.5) / (self.df[t] + 0.5))
                score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * d.length / (self.avg or 1)))
            scores.append(score)
        return scores

    def search(
        self,
        query: str,
        limit: int,
        names: dict[str, str],
        ranking: Ranking | None = None,
        similarities: list[float] | None = None,
    ) -> list[SearchHit]:
        """The best ``limit`` chunks for ``query`` (see :class:`Ranking` for the scores).

        ``similarities`` (one per chunk, cosine to the query) makes the ranking hybrid.
        """
        ranking = ranking or Ranking()
        raw = self.keyword_scores(query)
        best = max(raw, default=0.0) or 1.0
        scores = [s / best for s in raw]
        if similarities is not None:
            we, wt = ranking.embedding_weight, ranking.text_weight
            total = (we + wt) or 1.0
            scores = [
                (we * max(0.0, sim) + wt * kw) / total
                for sim, kw in zip(similarities, scores, strict=True)
            ]
        ranked = sorted(
            (i for i, s in enumerate(scores) if s > 0 and s >= ranking.score_threshold),
            key=lambda i: (-scores[i], i),
        )
        return [
            SearchHit(
                self.docs[i].file_id,
                names.get(self.docs[i].file_id, self.docs[i].file_id),
                round(scores[i], 4),
                self.docs[i].text,
            )
            for i in ranked[:limit]
        ]


def cosine(a: list[float], b: list[float]) -> float:
    """The cosine similarity of two vectors (0 for a zero vector)."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def result_entry(hit: SearchHit, with_content: bool) -> dict[str, Any]:
    """A hit as a run step's ``file_search.results[]`` item."""
    entry: dict[str, Any] = {"file_id": hit.file_id, "file_name": hit.filename, "score": hit.score}
    if with_content:
        entry["content"] = [{"type": "text", "text": hit.text}]
    return entry
