"""Function-tool handlers for the weather-bot example (deterministic dummy data, as in the seeds).

Declared in assistants/weather-bot.yml as ``orch.examples.weather:get_current_weather`` and
``orch.examples.weather:get_forecast``; ``orch run`` calls them on ``requires_action``.
"""

from __future__ import annotations

import json
from typing import Literal

_CITIES = {
    "tokyo": (10, "cloudy"),
    "san francisco": (72, "foggy"),
    "paris": (22, "sunny"),
    "taipei": (28, "humid"),
}


def _lookup(location: str) -> tuple[int, str]:
    key = location.split(",")[0].strip().lower()
    return _CITIES.get(key, (18, "unknown"))


def get_current_weather(
    location: str, unit: Literal["celsius", "fahrenheit"] = "fahrenheit"
) -> str:
    """Get the current weather in a given location.

    The numbers are made up: this is the seeds' dummy function, returning JSON text.
    """
    temperature, conditions = _lookup(location)
    return json.dumps(
        {
            "location": location,
            "temperature": str(temperature),
            "unit": unit,
            "conditions": conditions,
        }
    )


def get_forecast(location: str, days: int = 3) -> str:
    """Get a short daily forecast for a location, for up to 7 days."""
    if not 1 <= days <= 7:
        raise ValueError("days must be between 1 and 7")
    temperature, conditions = _lookup(location)
    return json.dumps(
        {
            "location": location,
            "days": [
                {"day": i + 1, "high": temperature + i, "conditions": conditions}
                for i in range(days)
            ],
        }
    )
