"""Request counters and a latency histogram, exposed in the Prometheus text format at `/metrics`."""

from __future__ import annotations

import threading
from collections.abc import Mapping

BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Thread-safe counters: requests by (route, method, status) and a latency histogram by route."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = {}
        self.buckets: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (route, method, status)
            self.requests[key] = self.requests.get(key, 0) + 1
            b = self.buckets.setdefault(route, [0] * len(BUCKETS))
            for i, le in enumerate(BUCKETS):
                if seconds <= le:
                    b[i] += 1
            self.sums[route] = self.sums.get(route, 0.0) + seconds
            self.counts[route] = self.counts.get(route, 0) + 1

    def render(self, gauges: Mapping[str, float]) -> str:
        """The exposition text; `gauges` adds `newsletter_qa_index_<name>` values (documents, chunks…)."""
        out = [
            "# HELP newsletter_qa_requests_total HTTP requests by route, method and status.",
            "# TYPE newsletter_qa_requests_total counter",
        ]
        with self._lock:
            for (route, method, status), n in sorted(self.requests.items()):
                out.append(f'newsletter_qa_requests_total{{route="{route}",method="{method}",status="{status}"}} {n}')
            out += [
                "# HELP newsletter_qa_request_seconds Request latency by route.",
                "# TYPE newsletter_qa_request_seconds histogram",
            ]
            for route in sorted(self.buckets):
                for le, n in zip(BUCKETS, self.buckets[route], strict=True):
                    out.append(f'newsletter_qa_request_seconds_bucket{{route="{route}",le="{le}"}} {n}')
                out.append(f'newsletter_qa_request_seconds_bucket{{route="{route}",le="+Inf"}} {self.counts[route]}')
                out.append(f'newsletter_qa_request_seconds_sum{{route="{route}"}} {self.sums[route]:.6f}')
                out.append(f'newsletter_qa_request_seconds_count{{route="{route}"}} {self.counts[route]}')
        for name, value in sorted(gauges.items()):
            out += [f"# TYPE newsletter_qa_index_{name} gauge", f"newsletter_qa_index_{name} {value}"]
        return "\n".join(out) + "\n"
