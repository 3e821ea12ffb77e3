"""Cost caps: ``max_cost`` (USD) and ``max_tokens_total`` for one run.

Spend is what the run's item records say they used: each step's usage priced with the
project's ``prices:`` (USD per million prompt / completion tokens) for the model the run
recorded for the step's assistant — the same arithmetic as the reports' ``cost``. Every
recorded attempt counts, a retried item's earlier record too: it was paid for. A batch run
(``--batch``) cannot be capped: a round's batch holds every item at once, so it is refused.

Before an item starts, the runner asks :meth:`Budget.allows` with the number of items in
flight: their cost is not known yet, so each is estimated at the mean of the records so far
(a resumed run's earlier ones included; zero before the first one, so a new run's first
``concurrency`` items always start). Once recorded spend plus that estimate reaches a cap, no
new item starts; those in flight finish and are recorded (they are paid for), and the run ends
``interrupted`` with ``stop_reason: cost cap``, resumable with a higher cap.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from orch.errors import UsageError

STOP_REASON = "cost cap"


@dataclass
class Budget:
    """The caps of one run and what it has spent; thread-safe."""

    max_cost: float | None
    max_tokens: int | None
    #: model of each assistant, as the run records it (``models`` in run.json)
    models: dict[str, str]
    #: model → (USD per 1M prompt tokens, USD per 1M completion tokens)
    prices: dict[str, tuple[float, float]]
    cost: float = 0.0
    tokens: int = 0
    _seen: int = 0  # records charged (the in-flight estimate's sample)
    _seen_cost: float = 0.0
    _seen_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.max_cost is None:
            return
        unpriced = sorted({m for m in self.models.values() if m not in self.prices})
        if unpriced:
            raise UsageError(
                f"max_cost needs a price for every model the run uses; no price for "
                f"{', '.join(unpriced)} in orch.yml `prices:` (USD per million tokens, e.g. "
                f"`prices: {{{unpriced[0]}: {{input: 2.5, output: 10}}}}`); "
                "max_tokens_total needs no prices."
            )

    @property
    def capped(self) -> bool:
        """Whether there is any cap at all (without one, nothing is counted)."""
        return self.max_cost is not None or self.max_tokens is not None

    def spend_of(self, record: dict[str, Any]) -> tuple[float, int]:
        """(USD, tokens) an item record used, over its steps."""
        cost, tokens = 0.0, 0
        for step in record.get("steps") or []:
            usage = step.get("usage") or {}
            prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
            tokens += usage.get("total_tokens") or prompt + completion
            price = self.prices.get(self.models.get(step.get("assistant") or "", ""))
            if price is not None:
                cost += (prompt * price[0] + completion * price[1]) / 1_000_000
        return cost, tokens

    def preload(self, records: Iterable[dict[str, Any]]) -> None:
        """Count what the run recorded before this process (a resume), in the estimate too."""
        for record in records:
            self.charge(record)

    def charge(self, record: dict[str, Any]) -> None:
        """Count a record this process just wrote."""
        cost, tokens = self.spend_of(record)
        with self._lock:
            self.cost += cost
            self.tokens += tokens
            self._seen += 1
            self._seen_cost += cost
            self._seen_tokens += tokens

    def allows(self, in_flight: int) -> bool:
        """Whether one more item may start with ``in_flight`` items still running."""
        with self._lock:
            mean_cost = self._seen_cost / self._seen if self._seen else 0.0
            mean_tokens = self._seen_tokens / self._seen if self._seen else 0.0
            if self.max_cost is not None and self.cost + in_flight * mean_cost >= self.max_cost:
                return False
            cap = self.max_tokens
            return cap is None or self.tokens + in_flight * mean_tokens < cap

    def describe(self) -> str:
        """What was spent against which cap, for the run's message."""
        parts = []
        if self.max_cost is not None:
            parts.append(f"${self.cost:.4f} of max_cost ${self.max_cost:g}")
        if self.max_tokens is not None:
            parts.append(f"{self.tokens} of max_tokens_total {self.max_tokens} tokens")
        return ", ".join(parts)
