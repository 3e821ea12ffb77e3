"""Honest numbers for a run: pass-rate intervals, pass@k / pass^k, and whether a drop is real.

Pure functions over counts (no I/O, no orch types), so reports, the terminal summary and
``orch compare`` compute the same values.

* :func:`wilson_interval`: the 95 % Wilson score interval of a pass rate.
* :func:`pass_at_k` / :func:`pass_hat_k`: over an item's repeats, the chance that *some* /
  *every* one of k tries passes; :func:`repeat_statistics` averages them over the items.
* :func:`two_proportion_test` (independent samples) and :func:`mcnemar_exact_test` (the same
  items in both runs); :func:`regression_test` picks the right one for ``orch compare``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Z95 = 1.959964  # the standard normal quantile for a two-sided 95 % interval
ALPHA = 0.05  # a difference is "significant" when its two-sided p-value is below this


def wilson_interval(passed: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``passed`` successes out of ``n`` (95 % by default).

    With p̂ = passed/n::

        centre = (p̂ + z²/2n) / (1 + z²/n)
        half   = z/(1 + z²/n) · √(p̂(1−p̂)/n + z²/4n²)
        (low, high) = (centre − half, centre + half), clipped to [0, 1]

    Unlike the normal ("Wald") interval it stays inside [0, 1] and is not a single point at 0 %
    or 100 %: 10/10 gives 72.2–100 %, 8/10 gives 49.0–94.3 %. ``n == 0`` (nothing ran) returns
    ``(0.0, 1.0)``: no data, every rate possible. Raises ValueError unless 0 ≤ passed ≤ n.
    """
    if n < 0 or not 0 <= passed <= n:
        raise ValueError(f"need 0 <= passed <= n, got passed={passed}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = passed / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # at 0/n and n/n the bound is exactly 0 or 1; floating point would leave 0.9999999999999999
    low = 0.0 if passed == 0 else max(0.0, centre - half)
    high = 1.0 if passed == n else min(1.0, centre + half)
    return low, high


def pass_at_k(n: int, c: int, k: int) -> float | None:
    """pass@k of one item: the chance that at least one of k tries passes.

    The unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models Trained on
    Code") from ``n`` recorded tries of which ``c`` passed::

        pass@k = 1 − C(n−c, k) / C(n, k)

    With ``n == k`` it is 1 when any try passed, else 0. None when ``n < k`` (too few tries
    recorded, e.g. an interrupted run) or ``k < 1``.
    """
    _check_counts(n, c)
    if k < 1 or n < k:
        return None
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float | None:
    """pass^k of one item: the chance that all of k tries pass (a reliability measure).

    The estimator of tau-bench (Yao et al. 2024) from ``n`` tries of which ``c`` passed::

        pass^k = C(c, k) / C(n, k)

    With ``n == k`` it is 1 when every try passed, else 0. None when ``n < k`` or ``k < 1``.
    """
    _check_counts(n, c)
    if k < 1 or n < k:
        return None
    return math.comb(c, k) / math.comb(n, k)


def _check_counts(n: int, c: int) -> None:
    if n < 0 or not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")


@dataclass(frozen=True)
class RepeatStatistics:
    """pass@k and pass^k per item and overall (the mean over items with at least k tries)."""

    k: int
    per_item: dict[Any, tuple[float | None, float | None]]  # item → (pass@k, pass^k)
    pass_at_k: float | None
    pass_hat_k: float | None
    items: int  # the items the overall values average (those with at least k tries)


def repeat_statistics(tries: Mapping[Any, tuple[int, int]], k: int) -> RepeatStatistics:
    """pass@k / pass^k of each item from its ``(tries, passed)``, and their means over items.

    An item with fewer than k tries has None for both and is left out of the means (which are
    None when no item has k tries). Each item weighs the same, however many tries it has.
    """
    per_item = {item: (pass_at_k(n, c, k), pass_hat_k(n, c, k)) for item, (n, c) in tries.items()}
    complete = [values for values in per_item.values() if values[0] is not None]
    if not complete:
        return RepeatStatistics(k, per_item, None, None, 0)
    return RepeatStatistics(
        k,
        per_item,
        sum(v[0] for v in complete) / len(complete),
        sum(v[1] for v in complete) / len(complete),
        len(complete),
    )


def two_proportion_test(passed_a: int, n_a: int, passed_b: int, n_b: int) -> tuple[float, float]:
    """The pooled two-proportion z-test: (z, two-sided p) for pass rate B minus pass rate A.

    For two *independent* samples::

        p = (passed_a + passed_b) / (n_a + n_b)            (pooled under "no difference")
        z = (p_b − p_a) / √(p(1−p)(1/n_a + 1/n_b))
        two-sided p-value = erfc(|z| / √2)

    A normal approximation: rough below ~5 passes or fails per run. When both runs pass (or
    fail) everything there is no evidence of a difference: ``(0.0, 1.0)``; likewise when a run
    has no items.
    """
    _check_counts(n_a, passed_a)
    _check_counts(n_b, passed_b)
    if n_a == 0 or n_b == 0:
        return 0.0, 1.0
    pooled = (passed_a + passed_b) / (n_a + n_b)
    variance = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    if variance <= 0:
        return 0.0, 1.0
    z = (passed_b / n_b - passed_a / n_a) / math.sqrt(variance)
    return z, math.erfc(abs(z) / math.sqrt(2))


def mcnemar_exact_test(regressions: int, fixes: int) -> float:
    """McNemar's exact test on paired outcomes: the two-sided p-value.

    Only the items whose outcome changed count: ``regressions`` (passed in A, not in B) and
    ``fixes`` (the reverse). With no real difference each change is a fair coin, so with
    m = regressions + fixes the p-value is the two-sided binomial tail::

        p = min(1, 2 · Σ_{i=0}^{min(regressions, fixes)} C(m, i) / 2^m)

    1.0 when nothing changed. Exact (no approximation), so right for a handful of changes.
    """
    if regressions < 0 or fixes < 0:
        raise ValueError("counts must be >= 0")
    m = regressions + fixes
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(min(regressions, fixes) + 1))
    return min(1.0, 2 * tail / 2**m)


@dataclass(frozen=True)
class Significance:
    """Whether run B's pass rate differs from run A's beyond chance, and by which test."""

    test: str  # "mcnemar" or "two-proportion"
    p_value: float
    difference: float  # pass rate B − pass rate A
    items: int  # paired items (McNemar) or all items of both runs (two-proportion)
    z: float | None = None  # the two-proportion test's statistic
    regressions: int = 0  # McNemar: items passed in A, not in B
    fixes: int = 0

    @property
    def significant(self) -> bool:
        """Whether the p-value is below 0.05."""
        return self.p_value < ALPHA

    @property
    def significant_drop(self) -> bool:
        """B passes less than A, significantly."""
        return self.significant and self.difference < 0

    @property
    def verdict(self) -> str:
        """``significant`` or ``not significant``."""
        return "significant" if self.significant else "not significant"

    def detail(self) -> str:
        """``p=0.003, McNemar exact test, 20 paired items``."""
        if self.test == "mcnemar":
            how = f"McNemar exact test, {self.items} paired items"
        else:
            how = f"two-proportion z-test, {self.items} items"
        return f"p={format_p(self.p_value)}, {how}"

    def describe(self) -> str:
        """``significant (p=0.003, McNemar exact test, 20 paired items)``."""
        return f"{self.verdict} ({self.detail()})"

    def to_json(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {**self.__dict__, "significant": self.significant, "alpha": ALPHA}


def regression_test(outcomes_a: Mapping[str, bool], outcomes_b: Mapping[str, bool]) -> Significance:
    """Test whether B's pass rate differs from A's; outcomes map item keys to passed or not.

    Why two tests: the usual question is "the same items, evaluated before and after a change".
    Those samples are *paired* — an item that is hard stays hard — and the two-proportion test,
    which assumes independent samples, ignores that and wastes the information in the pairing.
    McNemar's exact test uses exactly what the pairing offers: of the items whose outcome
    changed, are the regressions more than chance would give? So when both runs hold the same
    item keys, McNemar's exact test decides; when the item sets differ (other items, a partial
    run), the runs are compared as independent samples with the pooled two-proportion z-test.
    A run's repeats are keyed per repeat (``3.r0``) and pair up by repeat number.
    """
    n_a, n_b = len(outcomes_a), len(outcomes_b)
    rate_a = sum(outcomes_a.values()) / n_a if n_a else 1.0
    rate_b = sum(outcomes_b.values()) / n_b if n_b else 1.0
    difference = rate_b - rate_a
    if n_a and set(outcomes_a) == set(outcomes_b):
        regressions = sum(1 for k, ok in outcomes_a.items() if ok and not outcomes_b[k])
        fixes = sum(1 for k, ok in outcomes_a.items() if not ok and outcomes_b[k])
        p = mcnemar_exact_test(regressions, fixes)
        return Significance("mcnemar", p, difference, n_a, None, regressions, fixes)
    z, p = two_proportion_test(sum(outcomes_a.values()), n_a, sum(outcomes_b.values()), n_b)
    return Significance("two-proportion", p, difference, n_a + n_b, z)


def format_p(p: float) -> str:
    """A p-value as text: ``0.003``, ``0.41``, ``<0.001``."""
    if p < 0.001:
        return "<0.001"
    if p < 0.01:
        return f"{p:.3f}"
    return f"{p:.2f}"


def format_interval(low: float, high: float, unit: str = "%") -> str:
    """``(0.49, 0.943)`` → ``"49–94%"`` (whole percents; ``unit=" %"`` gives ``"49–94 %"``)."""
    return f"{round(low * 100)}–{round(high * 100)}{unit}"


def rate_text(passed: int, n: int, unit: str = "%") -> str:
    """``"80% (95% CI 49–94%)"`` for 8 of 10 (``unit=" %"``: ``"80 % (95 % CI 49–94 %)"``)."""
    rate = passed / n * 100 if n else 100.0
    shown = f"{rate:.0f}" if abs(rate - round(rate)) < 1e-9 else f"{rate:.1f}"
    return f"{shown}{unit} (95{unit} CI {format_interval(*wilson_interval(passed, n), unit)})"


def repeat_count(items: Iterable[Mapping[str, Any]]) -> int:
    """The k of a run: how many times each item ran (the highest recorded ``repeat`` + 1)."""
    return max((int(i.get("repeat") or 0) for i in items), default=0) + 1


def tries_by_item(items: Iterable[Mapping[str, Any]]) -> dict[Any, tuple[int, int]]:
    """Each item's (tries, passed), keyed by ``(variant, index)``.

    An item's repeats share its ``index``; each variant of it (``variant``, absent without
    variants) counts as an item of its own.
    """
    tries: dict[Any, tuple[int, int]] = {}
    for item in items:
        key = (item.get("variant") or "", item.get("index", 0))
        n, c = tries.get(key, (0, 0))
        tries[key] = (n + 1, c + (item.get("status") == "passed"))
    return tries


def report_statistics(items: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The report context's ``statistics``: the pass rate's 95 % interval and pass@k / pass^k.

    ``items`` are item runs (every repeat its own, with ``index``, ``repeat`` and ``status``);
    an error counts as not passed, as in the pass rate. With repeats, the interval's n counts
    every repeat although an item's repeats are not independent (the interval is then too
    narrow): pass@k and pass^k, over items, are the numbers to read.
    """
    passed = sum(1 for i in items if i.get("status") == "passed")
    low, high = wilson_interval(passed, len(items))
    k = repeat_count(items)
    repeats = repeat_statistics(tries_by_item(items), k) if k > 1 else None
    return {
        "confidence": 0.95,
        "pass_rate": {
            "passed": passed,
            "n": len(items),
            "rate": passed / len(items) if items else 1.0,
            "low": low,
            "high": high,
            "interval": format_interval(low, high),
            "text": rate_text(passed, len(items)),
        },
        "repeat": k,
        "pass_at_k": repeats.pass_at_k if repeats else None,
        "pass_hat_k": repeats.pass_hat_k if repeats else None,
        "k_items": repeats.items if repeats else 0,
    }
