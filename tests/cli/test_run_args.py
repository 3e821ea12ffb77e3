"""What `orch run` makes of its arguments before running anything."""

from __future__ import annotations

import pytest

from orch.cli.run import parse_vars
from orch.errors import UsageError


def test_vars_are_read_as_yaml_scalars():
    assert parse_vars(["n=3", "ok=true", "name=ada", "ratio=0.5", "empty=", " k =v"]) == {
        "n": 3,
        "ok": True,
        "name": "ada",
        "ratio": 0.5,
        "empty": "",
        "k": "v",
    }


def test_non_scalar_values_stay_text():
    assert parse_vars(["list=[1, 2]", "bad=: x"]) == {"list": "[1, 2]", "bad": ": x"}


@pytest.mark.parametrize("pair", ["novalue", "=x", " =x"])
def test_a_pair_without_key_or_equals_is_a_usage_error(pair: str):
    with pytest.raises(UsageError, match="expected key=value"):
        parse_vars([pair])
