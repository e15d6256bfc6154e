"""The auto router: category and chain for realistic prompts, reasons, window, determinism."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from puter_mcp.routing.auto import (
    CATEGORIES,
    HEAD_CHARS,
    TAIL_CHARS,
    AutoRouter,
    choose,
)

TRACEBACK = """Traceback (most recent call last):
  File "/srv/app/main.py", line 42, in <module>
    run(config)
AttributeError: 'NoneType' object has no attribute 'timeout'
"""

JS_STACK = """Uncaught TypeError: Cannot read properties of undefined (reading 'map')
    at renderList (webpack:///./src/List.jsx:12:18)
    at App (webpack:///./src/App.jsx:30:5)
"""

CODE = """```python
def total(items):
    return sum(i.price for i in items)
```"""

PROSE = "We met on Tuesday, went over the figures and agreed to meet again next month. "


@pytest.mark.parametrize(
    ("prompt", "category", "chain"),
    [
        # building
        ("Implement a thread-safe LRU cache in Python with type hints.", "building", "coding-elite"),
        (f"Refactor this so it handles an empty list:\n{CODE}", "building", "coding-elite"),
        (f"{TRACEBACK}\nWhat is wrong here?", "building", "coding-elite"),
        (f"{JS_STACK}\nThe list renders fine on the first load though.", "building", "coding-elite"),
        (
            "Why does my Dockerfile rebuild every layer when I only change src/app.py?",
            "building",
            "coding-elite",
        ),
        (
            "Write a function that merges two sorted arrays, and explain its complexity.",
            "building",
            "coding-elite",
        ),
        (
            "There's a bug in my SQL query: it returns duplicate rows after the join.",
            "building",
            "coding-elite",
        ),
        # building, asked for quickly: coding-fast, whether building or fast scored higher
        ("Quick regex to match ISO 8601 dates in a bash script?", "building", "coding-fast"),
        ("Just tell me, quickly: the bash one-liner to count lines in all .py files", "fast", "coding-fast"),
        # reasoning
        ("Prove that the square root of 2 is irrational.", "reasoning", "chat-smart"),
        (
            "A bat and a ball cost $1.10 in total. Think step by step about the price of each.",
            "reasoning",
            "chat-smart",
        ),
        (
            "Compare event sourcing with plain CRUD for an order system: what are the trade-offs?",
            "reasoning",
            "chat-smart",
        ),
        ("Derive the formula for the variance of a binomial distribution.", "reasoning", "chat-smart"),
        # planning
        (
            "Plan the migration of our monolith to services: milestones, risks, a rough timeline.",
            "planning",
            "chat-smart",
        ),
        ("How should I structure a two-week study schedule for the GRE?", "planning", "chat-smart"),
        ("Give me a roadmap and the next steps for launching a small bakery.", "planning", "chat-smart"),
        # fast
        ("hi", "fast", "chat-fast"),
        ("What's the capital of Australia?", "fast", "chat-fast"),
        ("Why is the sky blue?", "fast", "chat-fast"),
        ("TL;DR of the French revolution please", "fast", "chat-fast"),
        (f"{PROSE * 5}\nSummarize the above in one sentence.", "fast", "chat-fast"),
        ("Translate 'good morning, see you tomorrow' into Japanese", "fast", "chat-fast"),
        # default: substantive but without a clear signal
        (
            "Write a heartfelt letter to my grandmother thanking her for the summer we spent in "
            "her village, mentioning the garden and her old dog.",
            "default",
            "chat-smart",
        ),
        ("", "default", "chat-smart"),
        ("   \n  ", "default", "chat-smart"),
    ],
)
def test_realistic_prompts(prompt: str, category: str, chain: str) -> None:
    choice = choose(prompt)
    assert (choice.category, choice.chain) == (category, chain), choice.reason


def test_reason_names_the_deciding_keywords_and_the_chain() -> None:
    choice = choose("Implement and refactor the parser; I will paste the stack trace later")

    assert choice.category == "building"
    assert choice.scores["building"] == 9
    assert choice.reason == (
        "auto chose coding-elite: building 9 ('stack trace' +3, 'implement' +3, 'refactor' +3)"
        "; next fast 2"  # a short one-line message
    )
    assert choice.signals == ("stack trace", "implement", "refactor")


def test_reason_lists_the_strongest_signals_and_counts_the_rest() -> None:
    choice = choose("Implement and refactor the parser; here is the stack trace:\n" + TRACEBACK)

    assert choice.reason.startswith(
        "auto chose coding-elite: building 23 ('pasted stack trace' +5, 'error message' +3, "
    )
    assert choice.reason.endswith(", +4 more)")
    assert choice.signals[0] == "pasted stack trace"  # strongest first
    assert len(choice.signals) == 8


def test_reason_for_speedy_code_says_why_coding_fast() -> None:
    choice = choose("Quick regex to match ISO 8601 dates in a bash script?")
    assert choice.chain == "coding-fast"
    assert "asks for speed ('quick')" in choice.reason
    assert choice.reason.endswith("so coding-fast") or "so coding-fast;" in choice.reason


def test_reason_for_the_runner_up_and_for_defaults() -> None:
    assert "; next fast 2" in choose("Prove that there are infinitely many primes.").reason
    assert choose("").reason == "auto chose chat-smart: empty message, default"
    no_keyword = choose(
        "Write a heartfelt letter to my grandmother thanking her for the summer we spent in her "
        "village, mentioning the garden and her old dog."
    )
    assert no_keyword.reason == "auto chose chat-smart: no keyword matched, default"
    weak = choose(
        "Tell me what you think about the idea of moving to the countryside when the kids are "
        "grown, would it be lonely or peaceful, why?"
    )
    assert weak.category == "default"
    assert weak.reason == "auto chose chat-smart: no clear signal ('why' +1), default"


def test_scores_cover_every_category() -> None:
    choice = choose("Plan the refactor of our billing code")
    assert set(choice.scores) == set(CATEGORIES)
    assert choice.scores["default"] == 0
    assert choice.scores["planning"] == 3
    assert choice.scores["building"] == 3 + 2  # refactor, code


def test_suggested_reasoning_effort_by_category() -> None:
    assert choose("Prove Fermat's little theorem.").reasoning_effort == "high"
    assert choose("Outline a plan for the team offsite").reasoning_effort == "medium"
    assert choose("Implement quicksort in Go with tests and benchmarks please").reasoning_effort is None
    assert choose("hi").reasoning_effort is None
    assert choose("").reasoning_effort is None


def test_ties_go_to_the_more_demanding_category() -> None:
    # 'prove' (reasoning 3) against 'bug' (building 3): building wins the tie.
    choice = choose("Prove this bug exists")
    assert choice.scores["building"] == choice.scores["reasoning"] == 3
    assert choice.category == "building"


def test_a_repeated_keyword_counts_once() -> None:
    once = choose("There is a bug somewhere in the billing module of our application, please help me.")
    many = choose("There is a bug bug bug BUG somewhere in the billing module of our application, help.")
    assert once.scores == many.scores


def test_phrases_match_whole_words_in_any_spelling() -> None:
    assert "what if" not in choose("I went out somewhat iffy about it, what ifs aside").signals
    assert choose("What if the moon were twice as close, how would tides change?").signals[0] == "what if"
    for spelling in ("tl;dr", "TL;DR", "tl dr", "Tl;Dr"):
        assert choose(f"{spelling} the history of Rome").signals[0] == "tl;dr"
    assert choose("Explain step-by-step how TCP slow start works in congested networks").signals[0] == (
        "step by step"
    )


def test_only_the_head_and_the_tail_of_a_long_message_are_read() -> None:
    filler = PROSE * (3 * (HEAD_CHARS + TAIL_CHARS) // len(PROSE))
    assert len(filler) > 2 * (HEAD_CHARS + TAIL_CHARS)
    middle = filler[: len(filler) // 2] + " Prove the theorem. " + filler[len(filler) // 2 :]
    at_start = "Prove the theorem. " + filler
    at_end = filler + " Prove the theorem."

    assert choose(middle).category == "default"
    assert choose(at_start).category == "reasoning"
    assert choose(at_end).category == "reasoning"


def test_custom_category_mapping_and_no_quick_chain() -> None:
    router = AutoRouter({"default": "chat-fast", "building": "my-coders"}, quick_building_chain=None)
    assert router.choose("").chain == "chat-fast"
    assert router.choose("Quick regex to match ISO 8601 dates in a bash script?").chain == "my-coders"
    assert router.category_chains["reasoning"] == "chat-smart"


def test_same_message_same_choice() -> None:
    router = AutoRouter()
    prompt = f"Refactor, debug and fix this code quickly:\n{CODE}\n{TRACEBACK}"
    first = router.choose(prompt)
    assert all(router.choose(prompt) == first for _ in range(20))


_CHILD = """
import json, sys
from puter_mcp.routing.auto import choose
print(json.dumps([[c.chain, c.reason, list(c.signals)] for c in map(choose, json.loads(sys.stdin.read()))]))
"""


@pytest.mark.slow
def test_choices_do_not_depend_on_the_hash_seed() -> None:
    # Keywords pass through sets; an order leaking from a set would change reasons between runs.
    prompts = [
        f"Refactor, debug and fix this code quickly:\n{CODE}\n{TRACEBACK}",
        "Plan, outline and schedule the architecture migration; compare the trade-offs step by step.",
        "tl;dr, briefly, in one sentence: summarize and translate",
    ]
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", _CHILD],
            input=json.dumps(prompts),
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=True,
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1
    assert json.loads(outputs.pop())[0][0] == "coding-fast"


def test_reasons_quote_the_words_found_and_kin_words_count_once() -> None:
    choice = choose("Implementing a tokenizer for our config language, in Python and Rust, with docs")
    assert choice.signals == ("implementing", "python")  # python and rust share one row
    assert choice.scores["building"] == 3 + 1
    assert "'implementing' +3" in choice.reason
    assert choose("How should we break it down?").signals == ("break it down", "how should we")
