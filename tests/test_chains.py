"""Chains: resolution against a catalogue, user chains from config.toml, reasoning translation."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from puter_mcp.puter.wire import reasoning_effort
from puter_mcp.routing.auto import DEFAULT_CATEGORY_CHAINS, QUICK_BUILDING_CHAIN
from puter_mcp.routing.chains import (
    AUTO,
    BUILTIN_CHAINS,
    ChainConfigError,
    UnknownModelError,
    VirtualModel,
    free_tail_order,
    merge_chains,
    parse_user_chains,
    resolve,
    resolve_all,
    resolve_auto,
)

SOURCE = "/home/ada/.config/puter-mcp/config.toml"


@dataclass(frozen=True)
class FakeModel:
    id: str
    free: bool = False
    aliases: tuple[str, ...] = ()
    context: int | None = None


class FakeCatalogue:
    """The two methods the chains module needs, matching names the way Puter does."""

    def __init__(self, models: Iterable[FakeModel]) -> None:
        self.models = list(models)
        self._index: dict[str, FakeModel] = {}
        for model in self.models:
            for name in (model.id, *model.aliases):
                self._index.setdefault(name.casefold(), model)

    def find(self, name: str) -> FakeModel | None:
        return self._index.get(name.casefold())

    def free_models(self) -> list[FakeModel]:
        return [model for model in self.models if model.free]


SONNET = FakeModel("claude-sonnet-5", aliases=("claude-sonnet-latest", "anthropic/claude-sonnet-5"))
OPUS = FakeModel("claude-opus-5", aliases=("claude-opus-latest",))
GPT5 = FakeModel("gpt-5-2025-08-07", aliases=("gpt-5", "openai/gpt-5"))
NANO = FakeModel("gpt-5-nano-2025-08-07", aliases=("gpt-5-nano",))
REASONER = FakeModel("deepseek-reasoner")
FREE_BIG = FakeModel("openrouter:qwen/qwen3-coder:free", free=True, context=262_144)
FREE_SMALL = FakeModel("openrouter:mistralai/mistral-7b-instruct:free", free=True, context=32_768)
FREE_UNKNOWN = FakeModel("openrouter:meta-llama/llama-3.3-70b-instruct:free", free=True)
FREE_ALSO_BIG = FakeModel("openrouter:deepseek/deepseek-r1:free", free=True, context=262_144)


def catalogue(*extra: FakeModel) -> FakeCatalogue:
    return FakeCatalogue(
        [SONNET, OPUS, GPT5, NANO, REASONER, FREE_SMALL, FREE_UNKNOWN, FREE_BIG, FREE_ALSO_BIG, *extra]
    )


FREE_ORDER = [FREE_ALSO_BIG.id, FREE_BIG.id, FREE_SMALL.id, FREE_UNKNOWN.id]


# --- built-in chains ----------------------------------------------------------------------------


def test_builtin_chains_are_the_four_named_in_the_issue() -> None:
    assert set(BUILTIN_CHAINS) == {"coding-elite", "coding-fast", "chat-smart", "chat-fast"}
    for name, chain in BUILTIN_CHAINS.items():
        assert chain.name == name
        assert chain.free_fallback is True
        assert chain.description
        assert "\n" not in chain.description
        assert chain.models


@pytest.mark.parametrize("entry", sorted({e for c in BUILTIN_CHAINS.values() for e in c.models}))
def test_builtin_entries_are_aliases_not_dated_ids(entry: str) -> None:
    # Puter's catalogue changes monthly: a dated id such as gpt-5-2025-08-07 would rot.
    assert not re.search(r"\d{4}-?\d{2}-?\d{2}", entry)
    assert entry == entry.strip()
    assert entry


def test_auto_only_names_chains_that_exist() -> None:
    assert set(DEFAULT_CATEGORY_CHAINS.values()) | {QUICK_BUILDING_CHAIN} <= set(BUILTIN_CHAINS)
    assert AUTO not in BUILTIN_CHAINS


# --- resolution ---------------------------------------------------------------------------------


def test_chain_members_in_order_missing_entries_skipped_then_free_models() -> None:
    resolved = resolve("chat-smart", catalogue(), chains=BUILTIN_CHAINS, fallback_to_free=True)

    # chat-smart: claude-sonnet-latest, gpt-latest (absent), gpt-5, gemini-pro-latest (absent),
    # deepseek-reasoner.
    assert resolved.chain == "chat-smart"
    assert resolved.requested == "chat-smart"
    assert resolved.ids == [SONNET.id, GPT5.id, REASONER.id, *FREE_ORDER]
    assert resolved.skipped == ["gpt-latest", "gemini-pro-latest"]
    assert resolved.free_tail == FREE_ORDER


def test_chain_name_is_case_insensitive_and_requested_is_kept_as_given() -> None:
    resolved = resolve(" Chat-Smart ", catalogue(), chains=BUILTIN_CHAINS, fallback_to_free=False)
    assert resolved.chain == "chat-smart"
    assert resolved.requested == " Chat-Smart "
    assert resolved.ids == [SONNET.id, GPT5.id, REASONER.id]


def test_duplicates_are_removed_by_id_keeping_the_first_place() -> None:
    chains = {
        "dupes": VirtualModel(
            "dupes",
            ("claude-sonnet-latest", "gpt-5", "anthropic/claude-sonnet-5", "CLAUDE-SONNET-5", FREE_BIG.id),
        )
    }
    resolved = resolve("dupes", catalogue(), chains=chains, fallback_to_free=True)

    assert resolved.ids == [SONNET.id, GPT5.id, FREE_BIG.id, FREE_ALSO_BIG.id, FREE_SMALL.id, FREE_UNKNOWN.id]
    assert len(set(resolved.ids)) == len(resolved.ids)
    # The free model already in the chain is a member, not part of the tail.
    assert resolved.free_tail == [FREE_ALSO_BIG.id, FREE_SMALL.id, FREE_UNKNOWN.id]
    assert resolved.skipped == []


@pytest.mark.parametrize(
    ("chain_free_fallback", "global_switch", "tail"),
    [(True, True, FREE_ORDER), (True, False, []), (False, True, []), (False, False, [])],
)
def test_free_tail_needs_both_the_chain_and_the_global_switch(
    chain_free_fallback: bool, global_switch: bool, tail: list[str]
) -> None:
    chains = {"review": VirtualModel("review", ("gpt-5-nano",), free_fallback=chain_free_fallback)}
    resolved = resolve("review", catalogue(), chains=chains, fallback_to_free=global_switch)
    assert resolved.ids == [NANO.id, *tail]
    assert resolved.free_tail == tail


def test_free_models_are_ordered_by_context_then_id_whatever_the_catalogue_order() -> None:
    models = [FREE_UNKNOWN, FREE_SMALL, FREE_BIG, FREE_ALSO_BIG]
    assert [m.id for m in free_tail_order(models)] == FREE_ORDER
    assert [m.id for m in free_tail_order(list(reversed(models)))] == FREE_ORDER
    reversed_catalogue = FakeCatalogue(reversed(catalogue().models))
    resolved = resolve("gpt-5", reversed_catalogue, chains=BUILTIN_CHAINS, fallback_to_free=True)
    assert resolved.free_tail == FREE_ORDER


def test_a_concrete_model_is_a_chain_of_one_then_the_free_models() -> None:
    resolved = resolve("GPT-5-NANO", catalogue(), chains=BUILTIN_CHAINS, fallback_to_free=True)
    assert resolved.chain is None
    assert resolved.ids == [NANO.id, *FREE_ORDER]
    assert resolved.skipped == []

    alone = resolve("gpt-5-nano", catalogue(), chains=BUILTIN_CHAINS, fallback_to_free=False)
    assert alone.ids == [NANO.id]
    assert alone.free_tail == []


def test_a_concrete_free_model_comes_first_and_is_not_repeated_in_the_tail() -> None:
    resolved = resolve(FREE_SMALL.id, catalogue(), chains=BUILTIN_CHAINS, fallback_to_free=True)
    assert resolved.ids == [FREE_SMALL.id, FREE_ALSO_BIG.id, FREE_BIG.id, FREE_UNKNOWN.id]
    assert FREE_SMALL.id not in resolved.free_tail


def test_a_chain_whose_members_are_all_gone_resolves_empty_with_the_explanation() -> None:
    chains = {"old": VirtualModel("old", ("gpt-3.5-turbo", "claude-2"), free_fallback=False)}
    resolved = resolve("old", catalogue(), chains=chains, fallback_to_free=True)
    assert resolved.models == []
    assert resolved.skipped == ["gpt-3.5-turbo", "claude-2"]


def test_unknown_model_carries_close_matches_from_the_catalogue() -> None:
    asked: list[str] = []

    def closest(name: str) -> Sequence[str]:
        asked.append(name)
        return ["gpt-5-nano", "gpt-5"]

    with pytest.raises(UnknownModelError) as caught:
        resolve("gpt-5-nanoo", catalogue(), chains=BUILTIN_CHAINS, fallback_to_free=True, closest=closest)

    assert asked == ["gpt-5-nanoo"]
    assert caught.value.name == "gpt-5-nanoo"
    assert caught.value.closest == ["gpt-5-nano", "gpt-5"]
    assert "Unknown model 'gpt-5-nanoo'" in str(caught.value)
    assert "Did you mean: gpt-5-nano, gpt-5?" in str(caught.value)


def test_unknown_name_close_to_a_chain_suggests_the_chain_first() -> None:
    with pytest.raises(UnknownModelError) as caught:
        resolve("coding-elit", catalogue(), chains=BUILTIN_CHAINS, fallback_to_free=True)
    assert caught.value.closest[0] == "coding-elite"


def test_without_a_closest_callable_free_model_ids_are_compared() -> None:
    with pytest.raises(UnknownModelError) as caught:
        resolve("openrouter:qwen/qwen3-coder:fre", catalogue(), chains=BUILTIN_CHAINS, fallback_to_free=True)
    assert caught.value.closest == [FREE_BIG.id]


def test_unknown_name_with_nothing_close_says_so_without_suggestions() -> None:
    with pytest.raises(UnknownModelError) as caught:
        resolve("zzzz", catalogue(), chains=BUILTIN_CHAINS, fallback_to_free=True)
    assert caught.value.closest == []
    assert "Did you mean" not in str(caught.value)


@pytest.mark.parametrize("name", ["auto", "AUTO", "", "   "])
def test_auto_and_empty_names_are_not_resolved_here(name: str) -> None:
    with pytest.raises(ValueError, match=r"auto|no model given"):
        resolve(name, catalogue(), chains=BUILTIN_CHAINS, fallback_to_free=True)


def test_a_user_chain_replaces_the_builtin_of_the_same_name() -> None:
    mine = VirtualModel("chat-fast", ("deepseek-reasoner",), free_fallback=False, origin=SOURCE)
    chains = merge_chains({"chat-fast": mine, "review": VirtualModel("review", ("gpt-5",))})

    assert chains["chat-fast"] is mine
    assert chains["coding-elite"] is BUILTIN_CHAINS["coding-elite"]
    assert list(chains) == ["coding-elite", "coding-fast", "chat-smart", "chat-fast", "review"]
    assert BUILTIN_CHAINS["chat-fast"] is not mine  # the built-ins themselves are untouched
    resolved = resolve("chat-fast", catalogue(), chains=chains, fallback_to_free=True)
    assert resolved.ids == [REASONER.id]


def test_a_chain_may_shadow_a_model_name() -> None:
    chains = {"gpt-5": VirtualModel("gpt-5", ("gpt-5", "gpt-5-nano"), free_fallback=False)}
    resolved = resolve("gpt-5", catalogue(), chains=chains, fallback_to_free=True)
    assert resolved.chain == "gpt-5"
    assert resolved.ids == [GPT5.id, NANO.id]


def test_resolve_all_lists_every_chain_with_its_current_members() -> None:
    listing = resolve_all(catalogue(), chains=BUILTIN_CHAINS, fallback_to_free=False)
    assert list(listing) == list(BUILTIN_CHAINS)
    assert listing["coding-elite"].ids == [OPUS.id, SONNET.id, GPT5.id, REASONER.id]
    assert listing["coding-elite"].skipped == ["gpt-latest", "gemini-pro-latest"]
    assert listing["coding-fast"].ids == []
    assert listing["chat-fast"].ids == [NANO.id]


def test_resolve_auto_picks_a_chain_from_the_message_and_resolves_it() -> None:
    choice, resolved = resolve_auto(
        "Implement a binary search tree in Rust with insert and delete, plus unit tests.",
        catalogue(),
        chains=BUILTIN_CHAINS,
        fallback_to_free=False,
    )
    assert choice.chain == "coding-elite"
    assert resolved.requested == "auto"
    assert resolved.chain == "coding-elite"
    assert resolved.ids == [OPUS.id, SONNET.id, GPT5.id, REASONER.id]


def test_resolve_auto_uses_the_users_override_and_falls_back_to_builtins() -> None:
    mine = VirtualModel("chat-fast", ("gpt-5",), free_fallback=False)
    _, overridden = resolve_auto(
        "hi", catalogue(), chains=merge_chains({"chat-fast": mine}), fallback_to_free=True
    )
    assert overridden.ids == [GPT5.id]

    # A chains mapping without the chain the router picked still resolves it (built-in).
    _, builtin = resolve_auto("hi", catalogue(), chains={}, fallback_to_free=False)
    assert builtin.chain == "chat-fast"
    assert builtin.ids == [NANO.id]


NAMES = st.sampled_from(
    [
        "claude-sonnet-latest",
        "gpt-5",
        "gpt-5-nano",
        "gone-model",
        FREE_BIG.id,
        "CLAUDE-SONNET-5",
        "deepseek-reasoner",
    ]
)


@given(members=st.lists(NAMES, min_size=1, max_size=8), chain_free=st.booleans(), global_free=st.booleans())
def test_resolution_invariants(members: list[str], chain_free: bool, global_free: bool) -> None:
    chains = {"x": VirtualModel("x", tuple(members), free_fallback=chain_free)}
    resolved = resolve("x", catalogue(), chains=chains, fallback_to_free=global_free)
    cat = catalogue()

    assert len(set(resolved.ids)) == len(resolved.ids)
    assert resolved.skipped == [m for m in members if cat.find(m) is None]
    own = list(dict.fromkeys(m.id for m in (cat.find(n) for n in members) if m is not None))
    assert resolved.ids[: len(own)] == own
    assert resolved.ids[len(own) :] == resolved.free_tail
    assert (resolved.free_tail == []) or (chain_free and global_free)
    if chain_free and global_free:
        assert set(resolved.ids) >= set(FREE_ORDER)


# --- user chains from config.toml ---------------------------------------------------------------

ISSUE_EXAMPLE = """
[chains.review]
models = ["claude-sonnet-latest", "gpt-5-nano"]   # tried in this order
free_fallback = false                              # default true: free models come last
"""


def test_the_issue_example_parses_into_a_chain() -> None:
    table = tomllib.loads(ISSUE_EXAMPLE)["chains"]
    chains = parse_user_chains(table, source=SOURCE)

    assert chains == {
        "review": VirtualModel(
            name="review",
            models=("claude-sonnet-latest", "gpt-5-nano"),
            free_fallback=False,
            description="",
            origin=SOURCE,
        )
    }
    resolved = resolve("review", catalogue(), chains=merge_chains(chains), fallback_to_free=True)
    assert resolved.ids == [SONNET.id, NANO.id]


def test_defaults_and_optional_keys() -> None:
    table = tomllib.loads(
        """
        [chains.cheap]
        models = [" gpt-5-nano ", "deepseek-reasoner"]
        description = "  Cheap first.  "

        [chains.chat-fast]
        models = ["gpt-5"]
        """
    )["chains"]
    chains = parse_user_chains(table, source=SOURCE)

    assert chains["cheap"].free_fallback is True
    assert chains["cheap"].models == ("gpt-5-nano", "deepseek-reasoner")
    assert chains["cheap"].description == "Cheap first."
    assert chains["chat-fast"].models == ("gpt-5",)  # a built-in's name is allowed: it replaces it
    assert parse_user_chains({}, source=SOURCE) == {}


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        pytest.param(
            {"auto": {"models": ["gpt-5"]}},
            '[chains.auto]: "auto" is reserved for the automatic router',
            id="reserved-name",
        ),
        pytest.param(
            {"My Chain": {"models": ["gpt-5"]}},
            '[chains."My Chain"]: a chain name must be a simple slug: lowercase letters, digits, '
            '"-" and "_", starting with a letter or digit, at most 64 characters (e.g. "my-chain")',
            id="not-a-slug",
        ),
        pytest.param(
            {"Review": {"models": ["gpt-5"]}},
            '(e.g. "review")',
            id="uppercase",
        ),
        pytest.param(
            {"review": ["claude-sonnet-latest", "gpt-5-nano"]},
            "[chains.review]: expected a table with a models list, such as [chains.review] with "
            'models = ["claude-sonnet-latest", "gpt-5-nano"], got a list',
            id="list-instead-of-table",
        ),
        pytest.param(
            {"review": {}},
            "[chains.review]: missing models: expected a non-empty list of model names",
            id="missing-models",
        ),
        pytest.param(
            {"review": {"models": "gpt-5"}},
            "[chains.review]: models: expected a non-empty list of model names, got the string 'gpt-5' "
            "(write models = ['gpt-5'])",
            id="models-a-string",
        ),
        pytest.param(
            {"review": {"models": []}},
            "[chains.review]: models: expected a non-empty list of model names, got an empty list",
            id="models-empty",
        ),
        pytest.param(
            {"review": {"models": ["gpt-5", "  "]}},
            "[chains.review]: models[1]: expected a model name (a non-empty string), got an empty string",
            id="blank-entry",
        ),
        pytest.param(
            {"review": {"models": ["gpt-5", 3]}},
            "[chains.review]: models[1]: expected a model name (a non-empty string), got the number 3",
            id="number-entry",
        ),
        pytest.param(
            {"review": {"models": ["gpt-5"], "free_fallback": "false"}},
            "[chains.review]: free_fallback: expected true or false (unquoted), got the string 'false'",
            id="free-fallback-quoted",
        ),
        pytest.param(
            {"review": {"models": ["gpt-5"], "description": 5}},
            "[chains.review]: description: expected a string, got the number 5",
            id="description-not-string",
        ),
        pytest.param(
            {"review": {"models": ["gpt-5"], "free-fallback": False}},
            '[chains.review]: unknown key "free-fallback" (did you mean "free_fallback"?); '
            "allowed keys: models, free_fallback, description",
            id="unknown-key",
        ),
        pytest.param(
            tomllib.loads('[chains.gpt.fast]\nmodels = ["gpt-5"]')["chains"],
            '[chains.gpt.fast]: a chain name cannot contain dots (e.g. "gpt-fast")',
            id="dotted-name",
        ),
    ],
)
def test_each_bad_form_is_reported_with_file_chain_key_and_expectation(
    table: dict[str, object], expected: str
) -> None:
    with pytest.raises(ChainConfigError) as caught:
        parse_user_chains(table, source=SOURCE)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: [chains")
    assert expected in message
    assert caught.value.source == SOURCE


def test_chains_that_is_not_a_table_is_reported() -> None:
    with pytest.raises(ChainConfigError, match=r"\[chains\]: expected tables of chains"):
        parse_user_chains(["gpt-5"], source=SOURCE)  # type: ignore[arg-type]


def test_every_problem_is_reported_at_once_and_nothing_is_half_loaded() -> None:
    table = {
        "good": {"models": ["gpt-5"]},
        "review": {"models": [], "free_fallback": 1},
        "auto": {"models": ["gpt-5"]},
    }
    with pytest.raises(ChainConfigError) as caught:
        parse_user_chains(table, source=SOURCE)

    assert len(caught.value.problems) == 3
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: 3 problems in [chains]:\n  - ")
    assert "[chains.review]: models: expected a non-empty list" in message
    assert "[chains.review]: free_fallback: expected true or false (unquoted), got the number 1" in message
    assert '[chains.auto]: "auto" is reserved' in message


def test_a_chain_config_error_is_a_value_error() -> None:
    # Settings loading can catch every config problem as ValueError.
    with pytest.raises(ValueError, match=r"config\.toml"):
        parse_user_chains({"review": {}}, source=SOURCE)


# --- reasoning ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("budget", "effort"),
    [(1, "low"), (1024, "low"), (1025, "medium"), (4096, "medium"), (4097, "high"), (32_000, "high")],
)
def test_thinking_budget_translates_to_an_effort(budget: int, effort: str) -> None:
    assert reasoning_effort(None, budget) == effort


@pytest.mark.parametrize(
    ("given_effort", "effort"), [("low", "low"), ("Medium", "medium"), (" HIGH ", "high")]
)
def test_effort_is_validated_and_normalised(given_effort: str, effort: str) -> None:
    assert reasoning_effort(given_effort, None) == effort


def test_nothing_asked_means_nothing_sent() -> None:
    assert reasoning_effort(None, None) is None


def test_both_given_is_an_error_never_both_sent() -> None:
    with pytest.raises(ValueError, match="either reasoning_effort or a thinking budget, not both"):
        reasoning_effort("low", 1024)


@pytest.mark.parametrize("bad", ["max", "", "none", "lowest"])
def test_unknown_effort_is_an_error(bad: str) -> None:
    with pytest.raises(ValueError, match="must be one of low, medium, high"):
        reasoning_effort(bad, None)


@pytest.mark.parametrize("bad", [0, -1, True])
def test_non_positive_budget_is_an_error(bad: int) -> None:
    with pytest.raises(ValueError, match="positive number of tokens"):
        reasoning_effort(None, bad)
