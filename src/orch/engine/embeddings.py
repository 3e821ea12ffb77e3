"""Embeddings the engine serves at ``/v1/embeddings``: local ones for rehearsals.

The scripted model has no embedding model, so the engine makes one that needs nothing: each
text's words and the character trigrams inside them are hashed into signed buckets
(feature hashing) and the vector is scaled to unit length. Equal texts get equal vectors,
texts sharing words or word pieces point the same way, and the numbers never change between
runs or machines — enough for ``text_similarity`` with ``cosine`` to be testable offline. It
knows nothing of meaning: synonyms are unrelated words to it.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct

__all__ = ["DEFAULT_DIMENSIONS", "default_dimensions", "encode", "local_embedding"]

#: vector sizes of OpenAI's embedding models, which local embeddings copy by model name
DEFAULT_DIMENSIONS = {"text-embedding-3-large": 3072}
_OTHER_DIMENSIONS = 1536
_WORD = re.compile(r"\w+")


def default_dimensions(model: str) -> int:
    """How long a local embedding is when the request names no ``dimensions``."""
    return DEFAULT_DIMENSIONS.get(model, _OTHER_DIMENSIONS)


def _features(text: str) -> list[tuple[str, float]]:
    """A text's hashed features: its words (weight 1) and their character trigrams (0.5)."""
    features: list[tuple[str, float]] = []
    for word in _WORD.findall(text.lower()):
        features.append(("w:" + word, 1.0))
        padded = f"<{word}>"
        features.extend(("t:" + padded[i : i + 3], 0.5) for i in range(len(padded) - 2))
    return features


def local_embedding(text: str, dimensions: int) -> list[float]:
    """The deterministic unit-length embedding of ``text`` (all zeros for a text without words)."""
    vector = [0.0] * dimensions
    for feature, weight in _features(text):
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        number = int.from_bytes(digest, "little")
        vector[number % dimensions] += weight if (number >> 63) & 1 else -weight
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else vector


def encode(vector: list[float], encoding_format: str) -> list[float] | str:
    """A vector as the API sends it: floats, or base64 of little-endian float32s."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector
