"""How long does `auto` take to choose a chain?

``auto`` runs on every request that names it, before anything is sent to Puter, so its cost is
pure added latency. The design asks for "well under a millisecond". This prints the time of one
`AutoRouter.choose()` call over a realistic mix of prompts (short questions, coding requests
with code and tracebacks, plans, proofs, and long pastes that exercise the head/tail window),
as the median and the 99th percentile, overall and per prompt kind. No assertions: timings
depend on the machine; read the numbers.

Run: ``.venv/bin/python bench/auto_router.py [--rounds N]``
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

from puter_mcp.routing.auto import AutoRouter

_TRACEBACK = """Traceback (most recent call last):
  File "/srv/app/main.py", line 42, in <module>
    run(config)
  File "/srv/app/runner.py", line 17, in run
    client.connect(timeout=cfg.timeout)
AttributeError: 'NoneType' object has no attribute 'timeout'
"""

_CODE = """```python
from dataclasses import dataclass

@dataclass
class Item:
    name: str
    price: float

def total(items: list[Item]) -> float:
    return sum(i.price for i in items)
```
"""

_PROSE = (
    "The committee met on Tuesday to review the quarterly figures. Revenue was flat, costs rose "
    "slightly, and the new office opened two weeks late because of a permit delay. "
)

PROMPTS: dict[str, list[str]] = {
    "short": [
        "hi",
        "What's the capital of Australia?",
        "tl;dr of the French revolution?",
        "Translate 'good morning' to Japanese",
        "Why is the sky blue?",
    ],
    "coding": [
        "Implement a thread-safe LRU cache in Python with type hints and unit tests.",
        "Refactor this so it handles empty lists:\n" + _CODE,
        _TRACEBACK + "\nWhat is wrong and how do I fix it?",
        "Quick regex to match ISO 8601 dates in a bash script?",
        "Write a Rust function that parses a CSV line with quoted fields, then explain the edge cases.",
    ],
    "thinking": [
        "Prove that there are infinitely many primes, step by step.",
        "Plan a migration from our monolith to services: milestones, risks and a rough timeline.",
        "Compare event sourcing and CRUD for an order system; what are the trade-offs?",
        "How should I structure a two-week study plan for the GRE quantitative section?",
    ],
    "long": [
        _PROSE * 60 + "\nSummarize this in one sentence.",  # ~11 KB, request at the end
        _CODE * 40 + "\nWhy does total() return 0 for my data?",  # ~8 KB of code
        (_TRACEBACK + _PROSE) * 30,  # ~12 KB of logs
        "Please review: " + "x = compute(a, b)  # step\n" * 2000,  # ~50 KB
    ],
}


def measure(router: AutoRouter, prompt: str, rounds: int) -> list[float]:
    """Microseconds per call, one sample per call (after one warm-up call)."""
    router.choose(prompt)
    samples: list[float] = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        router.choose(prompt)
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=2000, help="calls per prompt (default 2000)")
    args = parser.parse_args(argv)
    router = AutoRouter()

    print(f"auto router: {args.rounds} calls per prompt; Python {platform.python_version()}")
    print(f"{'kind':<10}{'prompts':>8}{'chars (max)':>13}{'median us':>11}{'p99 us':>9}")
    everything: list[float] = []
    for kind, prompts in PROMPTS.items():
        samples: list[float] = []
        for prompt in prompts:
            samples.extend(measure(router, prompt, args.rounds))
        everything.extend(samples)
        longest = max(len(p) for p in prompts)
        print(
            f"{kind:<10}{len(prompts):>8}{longest:>13}{statistics.median(samples):>11.1f}{p99(samples):>9.1f}"
        )
    print(f"{'all':<10}{sum(map(len, PROMPTS.values())):>8}{'':>13}", end="")
    print(f"{statistics.median(everything):>11.1f}{p99(everything):>9.1f}")
    print("\nchoices:")
    for kind, prompts in PROMPTS.items():
        for prompt in prompts:
            choice = router.choose(prompt)
            preview = " ".join(prompt.split())[:48]
            print(f"  [{kind}] {preview!r:<52} -> {choice.chain} ({choice.category})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
