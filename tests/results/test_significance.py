"""`orch compare`: pass rates with 95 % intervals, and whether a drop is significant (the gate)."""

from __future__ import annotations

import json
import textwrap

import pytest

from .conftest import invoke

# 12 items; the first `bad` of them are answered rudely (and fail), the rest pass
GATE = """
    name: gate
    assistant: bot
    vars: {bad: "0"}
    items: [{n: 1}, {n: 2}, {n: 3}, {n: 4}, {n: 5}, {n: 6}, {n: 7}, {n: 8}, {n: 9}, {n: 10},
            {n: 11}, {n: 12}]
    steps:
      - id: talk
        prompt: "{{ 'be rude' if item.n <= vars.bad | int else 'greet me' }} ({{ item.n }})"
        expect: [{contains: Bonjour}]
"""


@pytest.fixture(scope="module")
def gate(project) -> dict[str, str]:
    """Run ids of the gate pipeline: all pass, one drop, eight drops, eight of the first six."""
    (project / "pipelines" / "gate.yml").write_text(textwrap.dedent(GATE).lstrip("\n"))
    runs = {
        "base": ("--var", "bad=0"),
        "one": ("--var", "bad=1"),
        "eight": ("--var", "bad=8"),
        "fewer": ("--var", "bad=6", "--items-limit", "6"),  # other items: not paired
    }
    ids = {}
    for name, args in runs.items():
        ran = invoke("run", "pipelines/gate.yml", "--json", *args)
        assert ran.exit_code in (0, 1), ran.stderr
        ids[name] = json.loads(ran.stdout)["run_id"]
    return ids


def test_compare_shows_intervals_and_a_significant_drop(gate):
    ran = invoke("compare", gate["base"], gate["eight"])
    assert ran.exit_code == 0
    out = ran.stdout
    assert "pass rate   100.0% →   33.3%  (-66.7 pts)" in out
    assert "95% CI     76–100% →  14–61%" in out  # Wilson: 12/12 and 4/12
    # McNemar: 8 regressions, no fix: p = 2 / 2^8
    assert "pass-rate change: significant (p=0.008, McNemar exact test, 12 paired items)" in out


def test_one_failure_more_is_not_significant(gate):
    out = invoke("compare", gate["base"], gate["one"]).stdout
    assert "95% CI     76–100% →  65–99%" in out
    assert "pass-rate change: not significant (p=1.00, McNemar exact test, 12 paired items)" in out


def test_other_items_are_compared_as_independent_samples(gate):
    out = invoke("compare", gate["base"], gate["fewer"]).stdout
    # 12/12 against 0/6: pooled 2/3, z = -1 / sqrt(2/9 * (1/12 + 1/6)) = -4.24
    assert "pass-rate change: significant (p=<0.001, two-proportion z-test, 18 items)" in out


def test_fail_on_regression_significant_gates_only_real_drops(gate):
    base, one, eight = gate["base"], gate["one"], gate["eight"]
    significant = "--fail-on-regression=significant"
    assert invoke("compare", base, eight, significant).exit_code == 1
    assert invoke("compare", base, one, significant).exit_code == 0
    assert invoke("compare", eight, base, significant).exit_code == 0  # a significant rise
    # `any` (the bare flag, before or after the run ids) fails on the single regression
    assert invoke("compare", base, one, "--fail-on-regression").exit_code == 1
    assert invoke("compare", "--fail-on-regression", base, one).exit_code == 1
    assert invoke("compare", base, one, "--fail-on-regression", "any").exit_code == 1
    assert invoke("compare", base, one, "--fail-on-regression", "significant").exit_code == 0
    assert invoke("compare", base, one).exit_code == 0
    wrong = invoke("compare", base, one, "--fail-on-regression=some")
    assert wrong.exit_code == 2
    assert "'some' is not one of 'any', 'significant'" in wrong.stderr


def test_markdown_and_json_carry_the_test(gate):
    md = invoke("compare", gate["base"], gate["eight"], "--md").stdout
    assert "| 95% CI | 76–100% | 14–61% |  |" in md
    assert "Pass-rate change: **significant** (p=0.008, McNemar exact test, 12 paired items)" in md
    data = json.loads(invoke("compare", gate["base"], gate["eight"], "--json").stdout)
    sig = data["significance"]
    assert sig["test"] == "mcnemar" and sig["significant"] is True
    assert (sig["regressions"], sig["fixes"], sig["items"]) == (8, 0, 12)
    assert sig["p_value"] == pytest.approx(2 / 256)
    assert data["b"]["pass_rate_ci95"] == [
        pytest.approx(0.1381, abs=1e-4),
        pytest.approx(0.6094, abs=1e-4),
    ]


def test_help_teaches_the_gate():
    out = invoke("compare", "--help").stdout
    assert "--fail-on-regression [any|significant]" in out
    assert "McNemar" in out and "p < 0.05" in out


def test_history_shows_each_pass_rate_with_its_interval(gate):
    listed = invoke("history", "--pipeline", "gate").stdout.splitlines()
    assert listed[0].split()[4:8] == ["PASS", "%", "95%", "CI"]
    rows = {line.split()[0]: line.split() for line in listed[1:]}
    assert rows[gate["base"]][3:5] == ["100.0%", "76–100"]
    assert rows[gate["eight"]][3:5] == ["33.3%", "14–61"]
    data = json.loads(invoke("history", "--pipeline", "gate", "--json").stdout)
    by_id = {r["run_id"]: r for r in data}
    assert by_id[gate["one"]]["pass_rate_ci95"] == [
        pytest.approx(0.6461, abs=1e-4),
        pytest.approx(0.9851, abs=1e-4),
    ]
