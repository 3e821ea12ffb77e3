"""The Porter stemmer as nltk's ``PorterStemmer()`` runs it (its default NLTK_EXTENSIONS mode).

METEOR's second stage matches words by their stems; OpenAI's reference METEOR is nltk's, so
the stems must be nltk's too. This is Porter's algorithm (1980) with nltk's extensions: a few
irregular forms, ``ies``/``ied`` on four-letter words, ``y`` → ``i`` only after a consonant,
``alli``, ``fulli`` and ``logi`` in step 2, and two-letter words left alone.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["stem"]

_VOWELS = frozenset("aeiou")
_IRREGULAR = {
    "skies": "sky",
    "sky": "sky",
    "dying": "die",
    "lying": "lie",
    "tying": "tie",
    "news": "news",
    "innings": "inning",
    "inning": "inning",
    "outings": "outing",
    "outing": "outing",
    "cannings": "canning",
    "canning": "canning",
    "howe": "howe",
    "proceed": "proceed",
    "exceed": "exceed",
    "succeed": "succeed",
}

Rule = tuple[str, str, "Callable[[str], bool] | None"]


def _consonant(word: str, i: int) -> bool:
    if word[i] in _VOWELS:
        return False
    if word[i] == "y":
        negate = False
        while i > 0 and word[i] == "y":
            negate = not negate
            i -= 1
        return (word[i] not in _VOWELS) != negate
    return True


def _flags(word: str) -> list[bool]:
    flags: list[bool] = []
    for i, ch in enumerate(word):
        if ch in _VOWELS:
            flags.append(False)
        elif ch == "y":
            flags.append(True if i == 0 else not flags[i - 1])
        else:
            flags.append(True)
    return flags


def _measure(word: str) -> int:
    return "".join("c" if c else "v" for c in _flags(word)).count("vc")


def _positive(word: str) -> bool:
    return _measure(word) > 0


def _has_vowel(word: str) -> bool:
    return not all(_flags(word))


def _double(word: str) -> bool:
    return len(word) >= 2 and word[-1] == word[-2] and _consonant(word, len(word) - 1)


def _cvc(word: str) -> bool:
    n = len(word)
    if n >= 3 and word[-1] not in "wxy":
        if _consonant(word, n - 3) and not _consonant(word, n - 2) and _consonant(word, n - 1):
            return True
    return n == 2 and not _consonant(word, 0) and _consonant(word, 1)


def _apply(word: str, rules: list[Rule]) -> str:
    """The first rule whose suffix ``word`` has decides (``*d``: a double consonant)."""
    for suffix, replacement, condition in rules:
        if suffix == "*d" and _double(word):
            base = word[:-2]
            return base + replacement if condition is None or condition(base) else word
        if word.endswith(suffix):
            base = word[: len(word) - len(suffix)]
            return base + replacement if condition is None or condition(base) else word
    return word


def _step1a(word: str) -> str:
    if word.endswith("ies") and len(word) == 4:
        return word[:-3] + "ie"
    return _apply(
        word, [("sses", "ss", None), ("ies", "i", None), ("ss", "ss", None), ("s", "", None)]
    )


def _step1b(word: str) -> str:
    if word.endswith("ied"):
        return word[:-3] + ("ie" if len(word) == 4 else "i")
    if word.endswith("eed"):
        base = word[:-3]
        return base + "ee" if _measure(base) > 0 else word
    for suffix in ("ed", "ing"):
        if word.endswith(suffix) and _has_vowel(word[: -len(suffix)]):
            base = word[: -len(suffix)]
            break
    else:
        return word
    return _apply(
        base,
        [
            ("at", "ate", None),
            ("bl", "ble", None),
            ("iz", "ize", None),
            ("*d", base[-1], lambda _: base[-1] not in ("l", "s", "z")),
            ("", "e", lambda s: _measure(s) == 1 and _cvc(s)),
        ],
    )


def _step1c(word: str) -> str:
    return _apply(word, [("y", "i", lambda s: len(s) > 1 and _consonant(s, len(s) - 1))])


_STEP2 = [
    ("ational", "ate"),
    ("tional", "tion"),
    ("enci", "ence"),
    ("anci", "ance"),
    ("izer", "ize"),
    ("bli", "ble"),
    ("alli", "al"),
    ("entli", "ent"),
    ("eli", "e"),
    ("ousli", "ous"),
    ("ization", "ize"),
    ("ation", "ate"),
    ("ator", "ate"),
    ("alism", "al"),
    ("iveness", "ive"),
    ("fulness", "ful"),
    ("ousness", "ous"),
    ("aliti", "al"),
    ("iviti", "ive"),
    ("biliti", "ble"),
    ("fulli", "ful"),
]


def _step2(word: str) -> str:
    if word.endswith("alli") and _positive(word[:-4]):
        return _step2(word[:-4] + "al")
    rules: list[Rule] = [(s, r, _positive) for s, r in _STEP2]
    rules.append(("logi", "log", lambda _: _positive(word[:-3])))
    return _apply(word, rules)


_STEP3 = [("icate", "ic"), ("ative", ""), ("alize", "al"), ("iciti", "ic"), ("ical", "ic")]
_STEP3 += [("ful", ""), ("ness", "")]
_STEP4 = ["al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent"]


def _step4(word: str) -> str:
    def above_one(s: str) -> bool:
        return _measure(s) > 1

    rules: list[Rule] = [(s, "", above_one) for s in _STEP4]
    rules.append(("ion", "", lambda s: _measure(s) > 1 and s[-1] in ("s", "t")))
    rules += [(s, "", above_one) for s in ("ou", "ism", "ate", "iti", "ous", "ive", "ize")]
    return _apply(word, rules)


def _step5(word: str) -> str:
    if word.endswith("e"):
        base = word[:-1]
        if _measure(base) > 1 or (_measure(base) == 1 and not _cvc(base)):
            word = base
    return _apply(word, [("ll", "l", lambda _: _measure(word[:-1]) > 1)])


def stem(word: str) -> str:
    """As nltk's ``PorterStemmer().stem(word)`` (lowercases first)."""
    word = word.lower()
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if len(word) <= 2:
        return word
    word = _step1c(_step1b(_step1a(word)))
    word = _step2(word)
    word = _apply(word, [(s, r, _positive) for s, r in _STEP3])
    return _step5(_step4(word))
