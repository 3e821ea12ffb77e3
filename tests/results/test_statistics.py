"""orch.results.statistics on fixed data: values checked against published or hand-worked ones."""

from __future__ import annotations

import math

import pytest

from orch.results.statistics import (
    format_interval,
    format_p,
    mcnemar_exact_test,
    pass_at_k,
    pass_hat_k,
    rate_text,
    regression_test,
    repeat_statistics,
    report_statistics,
    two_proportion_test,
    wilson_interval,
)


@pytest.mark.parametrize(
    ("passed", "n", "low", "high"),
    [
        (8, 10, 0.4902, 0.9433),  # the textbook example (Wilson 1927; Newcombe 1998)
        (17, 20, 0.6396, 0.9476),
        (1, 3, 0.0615, 0.7923),
        (10, 10, 0.7225, 1.0),
        (0, 10, 0.0, 0.2775),
        (50, 100, 0.4038, 0.5962),
    ],
)
def test_wilson_interval_known_values(passed, n, low, high):
    got = wilson_interval(passed, n)
    assert got == (pytest.approx(low, abs=5e-5), pytest.approx(high, abs=5e-5))


def test_wilson_interval_edges():
    assert wilson_interval(10, 10)[1] == 1.0  # exactly, not 0.9999999999999999
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(0, 0) == (0.0, 1.0)  # nothing ran: every rate is possible
    low, high = wilson_interval(8, 10, z=1.0)  # a narrower (68 %) interval when asked
    assert 0.49 < low < high < 0.943
    with pytest.raises(ValueError, match="passed=11, n=10"):
        wilson_interval(11, 10)


def test_pass_at_k_and_pass_hat_k_by_hand():
    # 5 tries, 2 passed, k = 2: C(3,2)/C(5,2) = 3/10 of the pairs have no pass; 1 of 10 all pass
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_hat_k(5, 2, 2) == pytest.approx(0.1)
    # 10 tries, 3 passed, k = 3: 1 - C(7,3)/C(10,3) = 1 - 35/120; C(3,3)/C(10,3) = 1/120
    assert pass_at_k(10, 3, 3) == pytest.approx(85 / 120)
    assert pass_hat_k(10, 3, 3) == pytest.approx(1 / 120)
    # k = 1 is the plain pass rate of the item
    assert pass_at_k(4, 1, 1) == pass_hat_k(4, 1, 1) == 0.25


def test_with_n_equal_k_they_are_any_and_all_passed():
    assert [pass_at_k(3, c, 3) for c in range(4)] == [0.0, 1.0, 1.0, 1.0]
    assert [pass_hat_k(3, c, 3) for c in range(4)] == [0.0, 0.0, 0.0, 1.0]


def test_too_few_tries_give_none():
    assert pass_at_k(2, 1, 3) is None and pass_hat_k(2, 2, 3) is None
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 2)


def test_repeat_statistics_average_over_items_with_k_tries():
    stats = repeat_statistics({"a": (3, 3), "b": (3, 2), "c": (3, 0), "d": (2, 2)}, 3)
    assert stats.per_item == {
        "a": (1.0, 1.0),
        "b": (1.0, 0.0),
        "c": (0.0, 0.0),
        "d": (None, None),  # interrupted: too few tries, left out of the means
    }
    assert stats.pass_at_k == pytest.approx(2 / 3) and stats.pass_hat_k == pytest.approx(1 / 3)
    assert stats.items == 3
    none = repeat_statistics({"a": (1, 1)}, 3)
    assert (none.pass_at_k, none.pass_hat_k, none.items) == (None, None, 0)


def test_two_proportion_test_by_hand():
    # 20/20 vs 10/20: pooled 0.75, se = sqrt(.75 * .25 * (1/20 + 1/20)) = 0.136931
    z, p = two_proportion_test(20, 20, 10, 20)
    assert z == pytest.approx(-0.5 / math.sqrt(0.01875))
    assert z == pytest.approx(-3.6515, abs=1e-4) and p == pytest.approx(0.000261, abs=1e-6)
    z, p = two_proportion_test(8, 10, 7, 10)  # a small difference on few items
    assert z == pytest.approx(-0.5164, abs=1e-4) and p == pytest.approx(0.6056, abs=1e-4)
    assert two_proportion_test(5, 5, 7, 7) == (0.0, 1.0)  # both all passed: no evidence
    assert two_proportion_test(0, 0, 3, 4) == (0.0, 1.0)


def test_mcnemar_exact_test_by_hand():
    assert mcnemar_exact_test(0, 0) == 1.0
    assert mcnemar_exact_test(1, 0) == 1.0  # 2 * (1/2)
    assert mcnemar_exact_test(5, 0) == pytest.approx(0.0625)  # 2 / 32: not below 0.05
    assert mcnemar_exact_test(6, 0) == pytest.approx(0.03125)  # 2 / 64
    assert mcnemar_exact_test(5, 1) == pytest.approx(0.21875)  # 2 * (1 + 6) / 64
    assert mcnemar_exact_test(1, 5) == mcnemar_exact_test(5, 1)  # two-sided


def test_regression_test_pairs_the_same_items_else_compares_proportions():
    a = {str(i): True for i in range(10)}
    dropped = {**a, **{str(i): False for i in range(8)}}
    paired = regression_test(a, dropped)
    assert (paired.test, paired.items, paired.regressions, paired.fixes) == ("mcnemar", 10, 8, 0)
    assert paired.p_value == pytest.approx(2 / 2**8)
    assert paired.significant and paired.significant_drop
    assert paired.difference == pytest.approx(-0.8)
    assert paired.describe() == "significant (p=0.008, McNemar exact test, 10 paired items)"

    one = regression_test(a, {**a, "0": False})
    assert not one.significant and one.describe().startswith("not significant (p=1.00,")

    other_items = regression_test(a, {str(i): i >= 28 for i in range(20, 30)})
    assert other_items.test == "two-proportion" and other_items.items == 20
    assert other_items.z == pytest.approx(two_proportion_test(10, 10, 2, 10)[0])
    assert other_items.significant_drop

    better = regression_test(dropped, a)
    assert better.significant and not better.significant_drop  # a significant rise


def test_formatting():
    assert format_p(0.0031) == "0.003" and format_p(0.41) == "0.41" and format_p(1e-5) == "<0.001"
    assert format_interval(0.4902, 0.9433) == "49–94%"
    assert rate_text(8, 10) == "80% (95% CI 49–94%)"
    assert rate_text(17, 20, " %") == "85 % (95 % CI 64–95 %)"
    assert rate_text(1, 3) == "33.3% (95% CI 6–79%)"


def test_report_statistics_of_repeated_items():
    items = [
        {"index": i, "repeat": r, "status": status}
        for i, statuses in enumerate(
            [("passed",) * 3, ("passed", "failed", "passed"), ("error", "failed", "failed")]
        )
        for r, status in enumerate(statuses)
    ]
    stats = report_statistics(items)
    assert stats["repeat"] == 3 and stats["k_items"] == 3
    assert stats["pass_at_k"] == pytest.approx(2 / 3) and stats["pass_hat_k"] == pytest.approx(
        1 / 3
    )
    rate = stats["pass_rate"]
    assert (rate["passed"], rate["n"]) == (5, 9)
    assert (rate["low"], rate["high"]) == wilson_interval(5, 9)
    assert rate["text"] == "55.6% (95% CI 27–81%)"
    single = report_statistics([{"index": 0, "repeat": 0, "status": "passed"}])
    assert single["repeat"] == 1 and single["pass_at_k"] is None


def test_each_variant_of_an_item_is_an_item_of_its_own():
    items = [
        {"index": 0, "repeat": r, "variant": v, "status": "passed" if v == "a" or r else "failed"}
        for v in ("a", "b")
        for r in range(2)
    ]
    stats = report_statistics(items)
    # variant a: 2/2 (pass@2 = pass^2 = 1); variant b: 1/2 (pass@2 = 1, pass^2 = 0)
    assert stats["k_items"] == 2
    assert (stats["pass_at_k"], stats["pass_hat_k"]) == (1.0, 0.5)
