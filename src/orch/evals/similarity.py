"""The ``text_similarity`` grader's metrics, in pure Python, as OpenAI's graders guide defines them.

OpenAI documents each metric by the reference code its graders run, and these functions
compute the same numbers (the tests compare them with those packages on many sentence pairs):

* ``fuzzy_match``: rapidfuzz's ``fuzz.WRatio(output, reference,
  processor=utils.default_process) / 100``.
* ``bleu``: nltk's ``sentence_bleu([reference.split()], output.split())`` (4-gram, uniform
  weights, no smoothing).
* ``gleu``: nltk's ``sentence_gleu([reference.split()], output.split())``.
* ``meteor``: nltk's ``meteor_score([reference.split()], output.split())`` with its exact and
  Porter-stem stages. nltk's third stage matches WordNet synonyms, whose data is not a Python
  package; here that stage matches nothing, so two different words that are synonyms (and not
  the same stem) count as unmatched.
* ``rouge_1`` … ``rouge_5``, ``rouge_l``: rouge-score's F-measure of ``rouge1`` … ``rougeL``
  (``RougeScorer([...]).score(reference, output)``, its default tokenizer, no stemmer).

``cosine`` needs embeddings, so it is not here: :mod:`orch.evals.graders` asks the target.
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter
from collections.abc import Callable

from orch.evals.porter import stem

__all__ = ["METRICS", "bleu", "fuzzy_match", "gleu", "meteor", "rouge_l", "rouge_n", "score"]


# -- fuzzy_match: rapidfuzz's WRatio -------------------------------------------------------


def _default_process(text: str) -> str:
    """As rapidfuzz's ``utils.default_process``: non-alphanumerics to spaces, trimmed, lowercased.

    Like its compiled version (the one ``fuzz.WRatio`` uses), ``_`` is not alphanumeric. Its
    Unicode tables are older than Python's: a few hundred recent code points, and ``İ``, which
    Python lowercases to two characters, may differ.
    """
    return re.sub(r"[\W_]", " ", text).strip().lower()


def _lcs(a: str, b: str) -> int:
    """Length of the longest common subsequence (Hyyrö's bit-parallel algorithm)."""
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for i, ch in enumerate(a):
        masks[ch] = masks.get(ch, 0) | (1 << i)
    full = (1 << len(a)) - 1
    row = full
    for ch in b:
        matches = masks.get(ch, 0)
        u = row & matches
        row = ((row + u) | (row - u)) & full
    return len(a) - bin(row).count("1")


def _ratio(a: str, b: str) -> float:
    """Indel similarity in [0, 1]: ``1 - (len(a) + len(b) - 2 * lcs) / (len(a) + len(b))``."""
    total = len(a) + len(b)
    if not total:
        return 1.0
    return 1.0 - (total - 2 * _lcs(a, b)) / total


def _partial_windows(short: str, long: str) -> float:
    """Best ratio of ``short`` against the windows of ``long`` rapidfuzz considers."""
    chars, n, m = set(short), len(short), len(long)
    best = 0.0
    windows = (
        [(0, i) for i in range(1, n) if long[i - 1] in chars]
        + [(i, i + n) for i in range(m - n) if long[i + n - 1] in chars]
        + [(i, m) for i in range(m - n, m) if long[i] in chars]
    )
    for start, end in windows:
        best = max(best, _ratio(short, long[start:end]))
        if best == 1.0:
            break
    return best


def _partial_ratio(a: str, b: str) -> float:
    if not a and not b:
        return 1.0
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    best = _partial_windows(short, long)
    if best != 1.0 and len(a) == len(b):
        best = max(best, _partial_windows(long, short))
    return best


def _joined(tokens) -> str:
    return " ".join(sorted(tokens))


def _token_set_ratio(a: str, b: str) -> float:
    tokens_a, tokens_b = set(a.split()), set(b.split())
    if not tokens_a or not tokens_b:
        return 0.0
    common = tokens_a & tokens_b
    only_a, only_b = tokens_a - tokens_b, tokens_b - tokens_a
    if common and (not only_a or not only_b):
        return 1.0
    ab, ba = _joined(only_a), _joined(only_b)
    sect = len(_joined(common))
    sect_ab, sect_ba = sect + (sect != 0) + len(ab), sect + (sect != 0) + len(ba)
    lensum = sect_ab + sect_ba
    dist = len(ab) + len(ba) - 2 * _lcs(ab, ba)
    result = 1.0 - dist / lensum if lensum else 1.0
    if not sect:
        return result
    return max(
        result,
        1.0 - ((sect != 0) + len(ab)) / (sect + sect_ab),
        1.0 - ((sect != 0) + len(ba)) / (sect + sect_ba),
    )


def _partial_token_ratio(a: str, b: str) -> float:
    split_a, split_b = a.split(), b.split()
    tokens_a, tokens_b = set(split_a), set(split_b)
    if tokens_a & tokens_b:
        return 1.0
    result = _partial_ratio(_joined(split_a), _joined(split_b))
    only_a, only_b = tokens_a - tokens_b, tokens_b - tokens_a
    if len(split_a) == len(only_a) and len(split_b) == len(only_b):
        return result
    return max(result, _partial_ratio(_joined(only_a), _joined(only_b)))


def fuzzy_match(output: str, reference: str) -> float:
    """As rapidfuzz's ``WRatio`` with ``default_process``, scaled to [0, 1]."""
    a, b = _default_process(output), _default_process(reference)
    if not a or not b:
        return 0.0
    len_ratio = max(len(a), len(b)) / min(len(a), len(b))
    end = _ratio(a, b)
    if len_ratio < 1.5:
        token = max(_token_set_ratio(a, b), _ratio(_joined(a.split()), _joined(b.split())))
        return max(end, token * 0.95)
    partial_scale = 0.9 if len_ratio <= 8.0 else 0.6
    end = max(end, _partial_ratio(a, b) * partial_scale)
    return max(end, _partial_token_ratio(a, b) * 0.95 * partial_scale)


# -- bleu, gleu: nltk's sentence_bleu and sentence_gleu ------------------------------------


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu(output: str, reference: str) -> float:
    """As nltk's ``sentence_bleu([reference.split()], output.split())``: BLEU-4, no smoothing.

    As in nltk, an n-gram order without any match counts as the smallest positive float (so
    the score is vanishingly small, not 0), and no unigram match at all scores 0.
    """
    hyp, ref = output.split(), reference.split()
    logs = []
    for n in range(1, 5):
        counts, ref_counts = _ngrams(hyp, n), _ngrams(ref, n)
        matched = sum(min(c, ref_counts[g]) for g, c in counts.items())
        if n == 1 and not matched:
            return 0.0
        total = max(1, sum(counts.values()))
        logs.append(0.25 * math.log(matched / total if matched else sys.float_info.min))
    if len(hyp) > len(ref):
        penalty = 1.0
    elif not hyp:
        penalty = 0.0
    else:
        penalty = math.exp(1 - len(ref) / len(hyp))
    return penalty * math.exp(math.fsum(logs))


def _everygrams(tokens: list[str]) -> Counter:
    grams: Counter = Counter()
    for n in range(1, 5):
        grams.update(_ngrams(tokens, n))
    return grams


def gleu(output: str, reference: str) -> float:
    """As nltk's ``sentence_gleu([reference.split()], output.split())`` (1- to 4-grams)."""
    hyp, ref = _everygrams(output.split()), _everygrams(reference.split())
    total = max(sum(hyp.values()), sum(ref.values()))
    if not total:
        return 0.0
    return sum((hyp & ref).values()) / total


# -- meteor: nltk's meteor_score, exact and stem stages ------------------------------------


def _match(hyp: list[tuple[int, str]], ref: list[tuple[int, str]]):
    """As nltk's ``_match_enums``: pair equal words, hypothesis from its end; the rest unpaired."""
    positions: dict[str, list[int]] = {}
    for j, (_, word) in enumerate(ref):
        positions.setdefault(word, []).append(j)
    pairs, used_h, used_r = [], set(), set()
    for i in range(len(hyp) - 1, -1, -1):
        found = positions.get(hyp[i][1])
        if found:
            j = found.pop()
            used_h.add(i)
            used_r.add(j)
            pairs.append((hyp[i][0], ref[j][0]))
    rest_h = [p for i, p in enumerate(hyp) if i not in used_h]
    rest_r = [p for j, p in enumerate(ref) if j not in used_r]
    return pairs, rest_h, rest_r


def meteor(output: str, reference: str) -> float:
    """As nltk's ``meteor_score`` (alpha 0.9, beta 3, gamma 0.5) without WordNet synonyms."""
    hyp = list(enumerate(w.lower() for w in output.split()))
    ref = list(enumerate(w.lower() for w in reference.split()))
    exact, rest_h, rest_r = _match(hyp, ref)
    stemmed, _, _ = _match([(i, stem(w)) for i, w in rest_h], [(j, stem(w)) for j, w in rest_r])
    matches = sorted(exact + stemmed, key=lambda pair: pair[0])
    if not matches or not hyp or not ref:
        return 0.0
    precision, recall = len(matches) / len(hyp), len(matches) / len(ref)
    fmean = precision * recall / (0.9 * precision + 0.1 * recall)
    chunks = 1 + sum(
        1
        for a, b in zip(matches, matches[1:], strict=False)
        if not (b[0] == a[0] + 1 and b[1] == a[1] + 1)
    )
    return (1 - 0.5 * (chunks / len(matches)) ** 3) * fmean


# -- rouge: rouge-score's F-measures -------------------------------------------------------


def _rouge_tokens(text: str) -> list[str]:
    """rouge-score's default tokenizer (no stemmer): lowercase ASCII letters and digits."""
    return [t for t in re.split(r"\s+", re.sub(r"[^a-z0-9]+", " ", text.lower())) if t]


def _fmeasure(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def rouge_n(output: str, reference: str, n: int) -> float:
    """rouge-score's ``rouge<n>`` F-measure."""
    target, prediction = _ngrams(_rouge_tokens(reference), n), _ngrams(_rouge_tokens(output), n)
    common = sum(min(c, prediction[g]) for g, c in target.items())
    precision = common / max(sum(prediction.values()), 1)
    recall = common / max(sum(target.values()), 1)
    return _fmeasure(precision, recall)


def rouge_l(output: str, reference: str) -> float:
    """rouge-score's ``rougeL`` F-measure (longest common subsequence of tokens)."""
    target, prediction = _rouge_tokens(reference), _rouge_tokens(output)
    if not target or not prediction:
        return 0.0
    previous = [0] * (len(prediction) + 1)
    for word in target:
        row = [0]
        for j, other in enumerate(prediction, 1):
            row.append(previous[j - 1] + 1 if word == other else max(previous[j], row[j - 1]))
        previous = row
    common = previous[-1]
    return _fmeasure(common / len(prediction), common / len(target))


#: metric name → ``f(output, reference) -> score in [0, 1]`` (``cosine`` is the graders')
METRICS: dict[str, Callable[[str, str], float]] = {
    "fuzzy_match": fuzzy_match,
    "bleu": bleu,
    "gleu": gleu,
    "meteor": meteor,
    **{f"rouge_{n}": (lambda o, r, n=n: rouge_n(o, r, n)) for n in range(1, 6)},
    "rouge_l": rouge_l,
}


def score(metric: str, output: str, reference: str) -> float:
    """The ``metric`` of ``output`` against ``reference`` (KeyError for an unknown metric)."""
    return METRICS[metric](output, reference)
