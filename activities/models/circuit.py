"""A circuit breaker per provider/model, living in the worker process.

After `threshold` consecutive failures that say the provider itself is unwell (5xx, overload,
timeouts, connection errors), calls fail at once with a non-retryable `CircuitOpen` for
`cooldown_s`, so the run's route moves on to its next model instead of waiting out retries.
After the cool-down one call is let through: success closes the circuit, failure reopens it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from temporalio.exceptions import ApplicationError

#: Failure types that count against a provider's health (bad requests and auth errors do not:
#: they say something about the request or the configuration, not the provider).
TRIPPING_TYPES = frozenset(
    {
        "ProviderServerError",
        "ProviderOverloaded",
        "ProviderTimeout",
        "ProviderConnectionError",
        "ProviderMalformedResponse",
        "ProviderUnexpectedError",
    }
)
CIRCUIT_OPEN = "CircuitOpen"


@dataclass
class _Circuit:
    failures: int = 0
    open_until: float = 0.0
    trial_in_flight: bool = False


class CircuitBreaker:
    """Consecutive-failure circuits keyed by `provider/model`; `clock` is injectable for tests."""

    def __init__(
        self, threshold: int = 5, cooldown_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if threshold < 1 or cooldown_s <= 0:
            raise ValueError("circuit threshold must be >= 1 and cool-down > 0")
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}

    def before_call(self, key: str) -> None:
        """Raise a non-retryable `CircuitOpen` while the circuit is open (one trial after cool-down)."""
        circuit = self._circuits.get(key)
        if circuit is None or circuit.failures < self.threshold:
            return
        now = self._clock()
        if now < circuit.open_until or circuit.trial_in_flight:
            remaining = max(circuit.open_until - now, 0.0)
            raise ApplicationError(
                f"circuit open for {key}: {circuit.failures} consecutive failures; retry in {remaining:.1f}s",
                {"key": key, "failures": circuit.failures, "retry_in_s": round(remaining, 3)},
                type=CIRCUIT_OPEN,
                non_retryable=True,
            )
        circuit.trial_in_flight = True

    def record_success(self, key: str) -> None:
        """A good answer closes the circuit."""
        self._circuits.pop(key, None)

    def record_failure(self, key: str, error_type: str | None) -> None:
        """Count a failure that says the provider is unwell; open the circuit at the threshold."""
        circuit = self._circuits.setdefault(key, _Circuit())
        circuit.trial_in_flight = False
        if error_type not in TRIPPING_TYPES:
            return
        circuit.failures += 1
        if circuit.failures >= self.threshold:
            circuit.open_until = self._clock() + self.cooldown_s

    def is_open(self, key: str) -> bool:
        """True while calls to `key` are refused."""
        circuit = self._circuits.get(key)
        return bool(circuit and circuit.failures >= self.threshold and self._clock() < circuit.open_until)
