"""The ``auto`` model: pick a chain from the last user message, fast and explainably.

``auto`` exists so that a user who does not care which model answers still gets a sensible one:
a strong coding model for code, a careful model for proofs and plans, a cheap quick model for
"tl;dr" questions. It runs on every ``auto`` request before anything is sent, so it must cost
next to nothing (well under a millisecond) and it must never surprise: the same message always
gets the same chain, and the choice comes with a reason naming the words that decided it.

How it scores
-------------
Each category (building, planning, reasoning, fast) has weighted *signals*:

- single words: the message is lower-cased, its punctuation turned into spaces and split
  (all C-speed string methods), and the tokens intersected with the keyword set; variants such
  as "implement"/"implementing" share one label and count once;
- phrases ("step by step", "tl;dr"), tried only when their first word is among the tokens,
  as a whole-token substring of the re-joined tokens (so "somewhat if" is not "what if");
- shapes that words miss: code fences, pasted tracebacks and stack frames, lines that look
  like code, ``SomeError:`` lines, source file names (``app.py``), and a short one-line
  message (a small "fast" signal).

A category's score is the sum of the weights of its distinct signals: repeating a word does not
add more, so a long paste cannot drown the actual request. The best category wins if it scores
at least `MIN_SCORE`; ties go to the earlier category in `TIE_ORDER`. Otherwise the message is
"default".

Long messages: only the first `HEAD_CHARS` and the last `TAIL_CHARS` characters are read. The
request is usually at the start or, after a pasted log or file, at the very end; the middle is
mostly the paste itself. This bounds the cost whatever the size of the message.

Category -> chain (`DEFAULT_CATEGORY_CHAINS`)
----------------------------------------------
- building -> ``coding-elite``; but ``coding-fast`` when the message is about code *and* asks
  explicitly for speed or brevity ("quick", "one-liner", "short ...") and building or fast
  won: a quick regex does not need the strongest, slowest model, nor a model weak at code.
- reasoning -> ``chat-smart`` with a suggested reasoning effort of ``high``.
- planning -> ``chat-smart`` with a suggested reasoning effort of ``medium``.
- fast -> ``chat-fast``.
- default -> ``chat-smart``. A message with no clear signal that is not short is usually a
  substantive question; answering it with a weak model costs the user more (a second try) than
  the price difference. Short messages do carry a "fast" signal, so "hi" or "capital of France?"
  go to ``chat-fast`` without needing this default.
The suggested effort is only a suggestion: the caller applies it when the user gave none.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

__all__ = [
    "CATEGORIES",
    "DEFAULT_CATEGORY_CHAINS",
    "HEAD_CHARS",
    "MIN_SCORE",
    "QUICK_BUILDING_CHAIN",
    "TAIL_CHARS",
    "TIE_ORDER",
    "AutoChoice",
    "AutoRouter",
    "Category",
    "Signal",
    "choose",
]

Category = Literal["building", "planning", "reasoning", "fast", "default"]

CATEGORIES: tuple[Category, ...] = ("building", "planning", "reasoning", "fast", "default")

TIE_ORDER: tuple[Category, ...] = ("building", "reasoning", "planning", "fast")
"""Who wins a tie: the more demanding category, because under-serving a request costs a retry."""

MIN_SCORE = 2
"""A category needs at least this much evidence; one weak word (e.g. "why") is not enough."""

HEAD_CHARS = 4096
TAIL_CHARS = 1024

SHORT_MESSAGE_CHARS = 80
"""A one-line message up to this long counts as a small "fast" signal."""

DEFAULT_CATEGORY_CHAINS: Mapping[Category, str] = MappingProxyType(
    {
        "building": "coding-elite",
        "planning": "chat-smart",
        "reasoning": "chat-smart",
        "fast": "chat-fast",
        "default": "chat-smart",
    }
)

QUICK_BUILDING_CHAIN = "coding-fast"
"""The chain for a building request that also asks explicitly for speed or brevity."""

SUGGESTED_EFFORT: Mapping[Category, str] = MappingProxyType({"reasoning": "high", "planning": "medium"})

QUICK_BUILDING_MIN_FAST = 2
"""Explicit fast-word score that, with a building score of `MIN_SCORE`, means ``coding-fast``."""


# --- signal tables ------------------------------------------------------------------------------
# Each row: (category, weight, "word word ..."): inflections or close kin that count once
# together (a message naming both Python and Rust is no more about code than one naming Python).
# Reasons quote the word found in the message.
_WORD_ROWS: tuple[tuple[Category, int, str], ...] = (
    # building: asking for code, or showing broken code
    ("building", 3, "implement implements implemented implementing implementation"),
    ("building", 3, "refactor refactors refactored refactoring"),
    ("building", 3, "debug debugging debugger"),
    ("building", 3, "compile compiles compiler compiling compilation"),
    ("building", 3, "traceback stacktrace segfault"),
    ("building", 3, "bug bugs buggy"),
    ("building", 2, "code coding codebase"),
    ("building", 2, "function functions"),
    ("building", 2, "method methods"),
    ("building", 2, "class classes"),
    ("building", 2, "script scripts"),
    ("building", 2, "regex regexp"),
    ("building", 2, "sql"),
    ("building", 2, "api apis endpoint endpoints"),
    ("building", 2, "pytest unittest"),
    ("building", 2, "exception exceptions"),
    ("building", 2, "dockerfile"),
    ("building", 1, "fix fixes fixing"),
    ("building", 1, "error errors"),
    ("building", 1, "test tests"),
    ("building", 1, "algorithm algorithms"),
    ("building", 1, "library module package"),
    ("building", 1, "repo repository"),
    ("building", 1, "deploy deployment"),
    ("building", 1, "program programming"),
    ("building", 1, "python javascript typescript rust golang java kotlin swift c++ c# php ruby"),
    ("building", 1, "html css react django flask node npm pip docker kubernetes git bash json yaml"),
    # reasoning: proofs, maths, careful analysis
    ("reasoning", 3, "prove proves proving proof proofs"),
    ("reasoning", 3, "theorem lemma"),
    ("reasoning", 3, "derive derives deriving derivation"),
    ("reasoning", 1, "why"),
    ("reasoning", 2, "reasoning logic logical"),
    ("reasoning", 2, "puzzle riddle paradox"),
    ("reasoning", 2, "calculate calculation"),
    ("reasoning", 2, "math maths mathematical equation equations probability"),
    ("reasoning", 2, "analyze analyse analysis"),
    ("reasoning", 2, "compare comparison"),
    ("reasoning", 2, "tradeoff tradeoffs"),
    ("reasoning", 1, "evaluate assess"),
    ("reasoning", 1, "explain justify"),
    # planning: deciding what to do before doing it
    ("planning", 3, "plan plans planning"),
    ("planning", 3, "roadmap"),
    ("planning", 3, "strategy strategies"),
    ("planning", 3, "milestone milestones"),
    ("planning", 3, "architecture architect"),
    ("planning", 2, "design"),
    ("planning", 2, "outline"),
    ("planning", 2, "schedule timeline"),
    ("planning", 2, "prioritize prioritise priorities"),
    ("planning", 2, "migration migrate"),
    ("planning", 2, "proposal"),
    ("planning", 1, "organize organise structure"),
    ("planning", 1, "approach"),
    ("planning", 1, "phases steps"),
    # fast: the user wants it short and now
    ("fast", 3, "quick quickly asap"),
    ("fast", 3, "tldr"),
    ("fast", 3, "briefly brief"),
    ("fast", 2, "short shortly"),
    ("fast", 2, "summarize summarise summary"),
    ("fast", 2, "translate translation"),
    ("fast", 2, "eli5"),
    ("fast", 1, "define definition"),
)

# Phrases: (category, weight, "label|variant|..."). They are matched after the same
# normalisation as the message (punctuation -> space), so "tl;dr" also matches "tl dr" and
# "step-by-step" also matches "step by step"; matching is whole-token, so "somewhat if" is not
# "what if".
_PHRASE_ROWS: tuple[tuple[Category, int, str], ...] = (
    ("building", 3, "write a function|write me a function"),
    ("building", 3, "write a script|write me a script"),
    ("building", 3, "unit test|unit tests"),
    ("building", 3, "stack trace"),
    ("building", 3, "pull request"),
    ("building", 3, "code review"),
    ("building", 2, "one-liner|one liner"),
    ("reasoning", 3, "step by step"),
    ("reasoning", 3, "think carefully|think hard"),
    ("reasoning", 3, "pros and cons"),
    ("reasoning", 2, "trade-off|trade-offs"),
    ("reasoning", 2, "explain why"),
    ("reasoning", 2, "what if"),
    ("reasoning", 2, "is it true"),
    ("planning", 3, "how should i|how should we"),
    ("planning", 3, "break down|break it down"),
    ("planning", 3, "action plan"),
    ("planning", 3, "next steps"),
    ("planning", 3, "where do i start|where should i start"),
    ("planning", 2, "high-level"),
    ("fast", 3, "tl;dr"),
    ("fast", 3, "in one sentence|in one line|in a sentence"),
    ("fast", 3, "one word"),
    ("fast", 3, "one-liner|one liner"),
    ("fast", 3, "yes or no"),
    ("fast", 3, "short answer"),
    ("fast", 3, "in a nutshell"),
    ("fast", 3, "just tell me"),
    ("fast", 3, "quick question"),
)


@dataclass(frozen=True, slots=True)
class Signal:
    """One piece of evidence: it adds ``weight`` to ``category``; ``label`` is what reasons quote."""

    category: Category
    weight: int
    label: str


@dataclass(frozen=True, slots=True)
class _Shape:
    """A structural signal, looked for in ``"\n"`` + the lower-cased window.

    It is found when one of ``hints`` (literal substrings; none means no pre-check) occurs and
    one of ``patterns`` (none means the hint is enough) matches. Cost matters on long pastes:
    ``in`` is the cheapest scan there is, so it gates every regex that cannot start with a
    literal, and each pattern does start with a literal (``\n`` for "at the start of a line")
    so that the regex engine skips ahead instead of trying every position, which a single
    alternation or a MULTILINE ``^`` would make it do.
    """

    signal: Signal
    hints: tuple[str, ...] = ()
    patterns: tuple[re.Pattern[str], ...] = ()

    def found_in(self, text: str) -> bool:
        if self.hints and not any(hint in text for hint in self.hints):
            return False
        return not self.patterns or any(pattern.search(text) for pattern in self.patterns)


_SHAPES: tuple[_Shape, ...] = (
    _Shape(Signal("building", 4, "code block"), hints=("```", "~~~")),
    _Shape(
        Signal("building", 5, "pasted stack trace"),
        patterns=(
            re.compile(r"traceback \(most recent call last\)"),  # Python
            re.compile(r"\n[ \t]*file \"[^\"\n]+\", line \d+"),  # Python frames
            re.compile(r"\n[ \t]+at [\w.$<>\[\]/]+ ?\([^\n]*:\d+(?::\d+)?\)"),  # JavaScript / Java
            re.compile(r"\n[ \t]*thread '[^'\n]*' panicked at"),  # Rust
        ),
    ),
    _Shape(
        Signal("building", 3, "error message"),
        # TypeError:, java.io.IOException: ... (a bare "error:" is prose as often as not).
        hints=("error:", "exception:"),
        patterns=(re.compile(r"[a-z0-9_](?:error|exception):"),),
    ),
    _Shape(
        Signal("building", 2, "source file"),
        # The dot first (a literal), then a look-behind checks that a name precedes it.
        patterns=(
            re.compile(
                r"\.(?<=\w\.)(?:py|pyi|js|jsx|ts|tsx|rs|go|java|kt|c|cc|cpp|h|hpp|cs|rb|php|sh|sql"
                r"|toml|ya?ml|json|ipynb|vue|svelte)\b"
            ),
        ),
    ),
    _Shape(
        Signal("building", 3, "code"),
        patterns=(
            re.compile(
                r"\n[ \t]*(?:def [a-z_]\w*\(|class [a-z_]\w*[:(]|from [\w.]+ import |import [\w.]+\n"
                r"|function \w*\(|const \w+ = |let \w+ = |fn \w+\(|func \w+\(|#include <"
                r"|public (?:static |final )*(?:class|void|int|string)\b)"
            ),
        ),
    ),
)

# Punctuation becomes a space before splitting into tokens; "+" and "#" are kept for c++ / c#.
_TO_SPACE = str.maketrans(
    dict.fromkeys(string.punctuation.replace("+", "").replace("#", "") + "“”‘’«»…–—", " ")
)


def _tokens(lowered: str) -> list[str]:
    return lowered.translate(_TO_SPACE).split()


def _index_words(rows: Iterable[tuple[Category, int, str]]) -> dict[str, Signal]:
    """Variant -> signal (one shared signal per row, labelled by its first variant)."""
    index: dict[str, Signal] = {}
    for category, weight, variants in rows:
        words = variants.split()
        signal = Signal(category, weight, words[0])
        for word in words:
            if _tokens(word) != [word] or word in index:
                raise ValueError(f"auto-router keyword {word!r} is not one token or is listed twice")
            index[word] = signal
    return index


def _index_phrases(
    rows: Iterable[tuple[Category, int, str]],
) -> dict[str, tuple[tuple[str, Signal, Signal], ...]]:
    """First token -> (normalised " phrase ", row signal, signal labelled with that variant).

    Indexing by first token means only the phrases whose first word occurs are tried. The row
    signal makes the variants of one row count once; the labelled one is what reasons quote.
    """
    by_first: dict[str, list[tuple[str, Signal, Signal]]] = {}
    for category, weight, variants in rows:
        forms = variants.split("|")
        row = Signal(category, weight, forms[0])
        flats: set[str] = set()
        for form in forms:
            flat = " ".join(_tokens(form.lower()))
            if flat not in flats:  # "step-by-step" and "step by step" are one form
                flats.add(flat)
                entry = (f" {flat} ", row, Signal(category, weight, form))
                by_first.setdefault(flat.split()[0], []).append(entry)
    return {first: tuple(entries) for first, entries in by_first.items()}


_WORDS: Mapping[str, Signal] = _index_words(_WORD_ROWS)
_PHRASES: Mapping[str, tuple[tuple[str, Signal, Signal], ...]] = _index_phrases(_PHRASE_ROWS)
_KEYWORD_TOKENS: frozenset[str] = frozenset(_WORDS) | frozenset(_PHRASES)
_SHORT = Signal("fast", 2, "short message")


@dataclass(frozen=True)
class AutoChoice:
    """What `auto` picked and why.

    Attributes:
        category: building / planning / reasoning / fast / default.
        chain: the chain name to resolve (a key of the merged chains mapping).
        reason: one line naming the deciding keywords, fit for the answer's metadata.
        scores: every category's score (default always 0), for logs and tests.
        reasoning_effort: a suggested effort ("high" for reasoning, "medium" for planning),
            to use only when the user did not give one.
        signals: the labels that counted toward the winning category, strongest first.
    """

    category: Category
    chain: str
    reason: str
    scores: Mapping[str, int]
    reasoning_effort: str | None = None
    signals: tuple[str, ...] = field(default=())


def _window(text: str) -> str:
    """The part of the message that is read: head and tail of a long one (see module doc)."""
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


class AutoRouter:
    """Chooses a chain for ``auto``; stateless and deterministic, so one instance can be shared.

    Args:
        category_chains: category -> chain name; missing categories use
            `DEFAULT_CATEGORY_CHAINS`.
        quick_building_chain: chain for building requests that ask for speed; ``None`` keeps
            them on the building chain.
    """

    def __init__(
        self,
        category_chains: Mapping[Category, str] | None = None,
        *,
        quick_building_chain: str | None = QUICK_BUILDING_CHAIN,
    ) -> None:
        self._chains: dict[Category, str] = dict(DEFAULT_CATEGORY_CHAINS)
        if category_chains:
            self._chains.update(category_chains)
        self._quick_building_chain = quick_building_chain

    @property
    def category_chains(self) -> Mapping[Category, str]:
        return MappingProxyType(self._chains)

    def signals(self, message: str) -> list[Signal]:
        """Every distinct signal in ``message``, in a fixed order (shapes, phrases, words)."""
        raw = _window(message)
        lowered = "\n" + raw.lower()
        found: list[Signal] = [shape.signal for shape in _SHAPES if shape.found_in(lowered)]
        tokens = _tokens(lowered)
        present = _KEYWORD_TOKENS.intersection(tokens)
        if any(token in _PHRASES for token in present):
            flat = f" {' '.join(tokens)} "
            rows_seen: set[Signal] = set()
            for first in sorted(present):  # sorted: a set's order varies between runs
                for form, row, labelled in _PHRASES.get(first, ()):
                    if row not in rows_seen and form in flat:
                        rows_seen.add(row)
                        found.append(labelled)
        # One signal per row, labelled with the word actually found (the first in sorted order
        # when several variants of a row occur), so that reasons quote the message itself.
        by_row: dict[Signal, str] = {}
        for token in sorted(present):
            row = _WORDS.get(token)
            if row is not None:
                by_row.setdefault(row, token)
        words = [Signal(row.category, row.weight, token) for row, token in by_row.items()]
        found.extend(sorted(words, key=lambda s: (-s.weight, s.label)))
        stripped = raw.strip()
        if stripped and len(stripped) <= SHORT_MESSAGE_CHARS and "\n" not in stripped:
            found.append(_SHORT)
        return found

    def choose(self, last_user_message: str) -> AutoChoice:
        """Pick the category and chain for ``last_user_message`` (see the module doc)."""
        found = self.signals(last_user_message)
        scores: dict[str, int] = dict.fromkeys(CATEGORIES, 0)
        for signal in found:
            scores[signal.category] += signal.weight

        best = max(TIE_ORDER, key=scores.__getitem__)  # max keeps the first of equals: TIE_ORDER
        if scores[best] < MIN_SCORE:
            return self._default(last_user_message, scores, found)

        deciding = sorted(
            (s for s in found if s.category == best), key=lambda s: -s.weight
        )  # stable: ties keep the fixed signal order
        chain = self._chains[best]
        note = ""
        if self._quick_building_chain is not None and best in ("building", "fast"):
            # Code asked for quickly ("quick regex", "bash one-liner for ..."): a coding model,
            # but a fast one, whichever of the two scored higher. The short-message signal
            # does not count here: brevity of the request is not a request for brevity.
            speed = [s for s in found if s.category == "fast" and s is not _SHORT]
            if scores["building"] >= MIN_SCORE and sum(s.weight for s in speed) >= QUICK_BUILDING_MIN_FAST:
                chain = self._quick_building_chain
                if best == "building":
                    note = f"; asks for speed ({_quote(speed)}), so {chain}"
                else:
                    code = [s for s in found if s.category == "building"]
                    note = f"; about code ({_quote(code)}), so {chain}"
        runner_up = max((c for c in TIE_ORDER if c != best), key=scores.__getitem__)
        reason = f"auto chose {chain}: {best} {scores[best]} ({_listing(deciding)}){note}"
        if scores[runner_up]:
            reason += f"; next {runner_up} {scores[runner_up]}"
        return AutoChoice(
            category=best,
            chain=chain,
            reason=reason,
            scores=MappingProxyType(scores),
            reasoning_effort=SUGGESTED_EFFORT.get(best),
            signals=tuple(s.label for s in deciding),
        )

    def _default(self, message: str, scores: dict[str, int], found: list[Signal]) -> AutoChoice:
        """The default chain, with a reason that says why nothing else won."""
        chain = self._chains["default"]
        if not message.strip():
            reason = f"auto chose {chain}: empty message, default"
        elif found:
            reason = f"auto chose {chain}: no clear signal ({_listing(found)}), default"
        else:
            reason = f"auto chose {chain}: no keyword matched, default"
        return AutoChoice(category="default", chain=chain, reason=reason, scores=MappingProxyType(scores))


def _listing(signals: Iterable[Signal], limit: int = 4) -> str:
    items = list(signals)
    text = ", ".join(f"'{s.label}' +{s.weight}" for s in items[:limit])
    if len(items) > limit:
        text += f", +{len(items) - limit} more"
    return text


def _quote(signals: Iterable[Signal]) -> str:
    return ", ".join(f"'{s.label}'" for s in signals)


_DEFAULT_ROUTER = AutoRouter()


def choose(last_user_message: str) -> AutoChoice:
    """`AutoRouter.choose` with the default category -> chain mapping."""
    return _DEFAULT_ROUTER.choose(last_user_message)
