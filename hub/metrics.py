"""Prometheus metrics: a few counters and gauges, rendered in the text exposition format."""

from __future__ import annotations

import threading
from collections.abc import Callable


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    escaped = (v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for v in values)
    return "{" + ",".join(f'{n}="{v}"' for n, v in zip(names, escaped, strict=True)) + "}"


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, labels: tuple[str, ...] = ()) -> None:
        self.name = name
        self.help = help_text
        self.label_names = labels
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()
        REGISTRY.register(self)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        with self._lock:
            items = sorted(self._values.items())
        for values, number in items:
            lines.append(f"{self.name}{_labels(self.label_names, values)} {number:g}")
        return lines

    def value(self, *labels: str) -> float:
        """The current value for a label set (0 if never touched)."""
        return self._values.get(labels, 0.0)


class Counter(_Metric):
    """A monotonically increasing count."""

    kind = "counter"

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        """Add to the count for a label set."""
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount


class Gauge(_Metric):
    """A value that goes up and down."""

    kind = "gauge"

    def set(self, value: float, *labels: str) -> None:
        """Set the value for a label set."""
        with self._lock:
            self._values[labels] = value


class Registry:
    """Every metric of the process, plus collectors run at scrape time."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self.collectors: list[Callable[[], None]] = []

    def register(self, metric: _Metric) -> None:
        """Add a metric; names are unique per process."""
        self._metrics.setdefault(metric.name, metric)

    def get(self, name: str) -> _Metric | None:
        """A metric by name."""
        return self._metrics.get(name)

    def render(self) -> str:
        """The text exposition format."""
        for collect in self.collectors:
            collect()
        lines: list[str] = []
        for metric in self._metrics.values():
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"


REGISTRY = Registry()

EVENTS_IN = Counter("govhub_events_in_total", "Events received and verified.", ("stream",))
EVENTS_OUT = Counter("govhub_events_out_total", "Events published.", ("stream",))
REJECTIONS = Counter("govhub_rejections_total", "Events refused, by reason.", ("reason",))
