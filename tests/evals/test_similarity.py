"""text_similarity metrics against the packages OpenAI's reference code uses (dev-only here).

OpenAI's graders guide defines each metric by Python: rapidfuzz's ``fuzz.WRatio`` with
``utils.default_process``, nltk's ``sentence_bleu``/``sentence_gleu``/``meteor_score`` over
whitespace tokens, rouge-score's F-measures. orch computes them itself; these tests hold it to
those packages' numbers on varied sentence pairs. METEOR's WordNet synonym stage needs data that
is not a package: nltk is given a WordNet without synsets, as orch has none.
"""

from __future__ import annotations

import random
import warnings

import pytest
from nltk.stem.porter import PorterStemmer
from nltk.translate.bleu_score import sentence_bleu
from nltk.translate.gleu_score import sentence_gleu
from nltk.translate.meteor_score import meteor_score
from rapidfuzz import fuzz, utils
from rouge_score import rouge_scorer

from orch.evals import similarity
from orch.evals.porter import stem

FIXED = [
    ("The cat sat on the mat.", "The cat is sitting on the mat."),
    ("Paris is the capital of France", "The capital of France is Paris"),
    ("New York Mets vs Atlanta Braves", "Atlanta Braves vs New York Mets"),
    ("hello", "hello world, how are you doing today?"),
    ("fuzzy wuzzy was a bear", "wuzzy fuzzy was a bear"),
    ("The quick brown fox jumps over the lazy dog", "A quick brown dog jumps over the lazy fox"),
    ("running runners ran quickly", "the runner runs quick"),
    ("generalizations of relational databases", "generalization of relations in a database"),
    ("OPENAI_API_KEY is set", "the openai api key is set"),
    ("Café au lait, s'il vous plaît!", "cafe au lait s il vous plait"),
    ("42", "forty-two"),
    ("a a a a a", "a a a"),
    ("abc", "xyz"),
    ("one two three four five six seven eight nine ten", "ten nine eight seven six"),
    ("It is raining.", "It's raining cats and dogs in the city tonight, they say."),
    ("x", "a much longer reference sentence than the hypothesis x"),
    ("", "something"),
    ("something", ""),
    ("   ", "   "),
]

WORDS = (
    "the a of model reply answer grader score item sample output text reference run step "
    "pipeline assistant tool call JSON, Paris France capital city weather sunny rain 21 "
    "degrees. fast slow quickly running runs ran generalization relational databases it's "
    "don't can't café naïve résumé über-cool under_score e-mail 3.14 100% (note) [x] {y}"
).split()


def _random_pairs(count: int) -> list[tuple[str, str]]:
    rng = random.Random(20261129)
    pairs = []
    for _ in range(count):
        ref = [rng.choice(WORDS) for _ in range(rng.randint(1, 18))]
        out = list(ref)
        for _ in range(rng.randint(0, 6)):  # edits: drop, swap, insert, change case
            op = rng.randrange(4)
            if op == 0 and len(out) > 1:
                out.pop(rng.randrange(len(out)))
            elif op == 1 and len(out) > 1:
                i, j = rng.randrange(len(out)), rng.randrange(len(out))
                out[i], out[j] = out[j], out[i]
            elif op == 2:
                out.insert(rng.randrange(len(out) + 1), rng.choice(WORDS))
            else:
                i = rng.randrange(len(out))
                out[i] = out[i].upper()
        pairs.append((" ".join(out), " ".join(ref)))
    return pairs


PAIRS = FIXED + _random_pairs(150)


class _NoSynonyms:
    """A WordNet with no synsets: nltk's METEOR without its synonym stage."""

    def synsets(self, word):
        return []


_ROUGE = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rouge3", "rouge4", "rouge5", "rougeL"])


def _reference(metric: str, output: str, reference: str) -> float:
    if metric == "fuzzy_match":
        return fuzz.WRatio(output, reference, processor=utils.default_process) / 100
    if metric == "bleu":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nltk warns of n-gram orders without a match
            return sentence_bleu([reference.split()], output.split())
    if metric == "gleu":
        return sentence_gleu([reference.split()], output.split())
    if metric == "meteor":
        return meteor_score([reference.split()], output.split(), wordnet=_NoSynonyms())
    key = "rougeL" if metric == "rouge_l" else "rouge" + metric[-1]
    return _ROUGE.score(reference, output)[key].fmeasure


@pytest.mark.parametrize("metric", sorted(similarity.METRICS))
def test_metric_matches_the_reference_package(metric):
    worst = max(
        (abs(similarity.score(metric, o, r) - _reference(metric, o, r)), o, r) for o, r in PAIRS
    )
    assert worst[0] < 1e-6, worst


def test_metrics_are_not_constant_on_the_pairs():
    # the comparison above would pass for two implementations that always answer 0
    for metric in similarity.METRICS:
        values = {round(similarity.score(metric, o, r), 6) for o, r in PAIRS}
        assert len(values) > 10, metric


def test_known_values():
    assert similarity.fuzzy_match("New York Mets", "new york mets!") == 1.0
    assert similarity.rouge_n("the cat sat", "the cat sat", 1) == 1.0
    assert similarity.rouge_n("the cat", "the dog", 1) == pytest.approx(0.5)
    assert similarity.rouge_l("a b c d", "a c d e") == pytest.approx(0.75)
    assert similarity.gleu("a b", "a b") == 1.0
    assert similarity.bleu("", "anything") == 0.0
    # METEOR's stem stage: "running"/"runs" share the stem "run"
    assert similarity.meteor("he runs", "he running") > similarity.meteor("he walks", "he running")


def test_porter_stems_like_nltk():
    nltk_stem = PorterStemmer().stem
    words = {w.strip(".,!?()[]{}%").lower() for o, r in PAIRS for w in (o + " " + r).split()}
    words |= {"skies", "dying", "generalizations", "conditional", "hopeful", "agreed", "happy"}
    words |= {"relational", "electrical", "adjustable", "formalize", "controll", "probate"}
    assert {w: stem(w) for w in words if w} == {w: nltk_stem(w) for w in words if w}
