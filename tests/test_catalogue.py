"""catalogue.py: reading Puter's model details, resolving names, searching, caching."""

from __future__ import annotations

import json
from typing import Any

import pytest

from puter_mcp.puter.catalogue import Catalogue, ModelInfo

# Entries shaped like /puterai/chat/models/details (ids illustrative, prices per provider's keys).
CLAUDE: dict[str, Any] = {
    "id": "claude-sonnet-4-5-20250929",
    "provider": "claude",
    "puterId": "anthropic:anthropic/claude-sonnet-4-5",
    "name": "Claude Sonnet 4.5",
    "aliases": [
        "claude-sonnet-4.5",
        "claude-sonnet-4-5",
        "claude-sonnet-latest",
        "anthropic/claude-sonnet-4-5",
    ],
    "context": 200000,
    "max_tokens": 64000,
    "costs_currency": "usd-cents",
    "input_cost_key": "input_tokens",
    "output_cost_key": "output_tokens",
    "costs": {"tokens": 1000000, "input_tokens": 300, "cache_read_input_tokens": 30, "output_tokens": 1500},
    "modalities": {"input": ["text", "image", "pdf"], "output": ["text"]},
    "tool_call": True,
}
GPT: dict[str, Any] = {
    "id": "gpt-5-nano-2025-08-07",
    "provider": "openai-completion",
    "puterId": "openai:openai/gpt-5-nano",
    "name": "GPT-5 nano",
    "aliases": ["gpt-5-nano", "openai/gpt-5-nano"],
    "context": 400000,
    "max_tokens": 128000,
    "costs_currency": "usd-cents",
    "input_cost_key": "prompt_tokens",
    "output_cost_key": "completion_tokens",
    "costs": {"tokens": 1000000, "prompt_tokens": 5, "completion_tokens": 40, "cached_tokens": 0.5},
    "modalities": {"input": ["text", "image"], "output": ["text"]},
    "tool_call": True,
    "subscriberOnly": False,
}
OPENROUTER_FREE: dict[str, Any] = {
    "id": "openrouter:qwen/qwen3-coder:free",
    "provider": "openrouter",
    "name": "Qwen: Qwen3 Coder (free) (OpenRouter)",
    "aliases": ["qwen/qwen3-coder:free", "Qwen: Qwen3 Coder (free)", "openrouter/qwen/qwen3-coder:free"],
    "context": 262144,
    "max_tokens": None,
    "costs_currency": "usd-cents",
    "input_cost_key": "prompt",
    "output_cost_key": "completion",
    "costs": {"tokens": 1000000, "prompt": 0, "completion": 0, "request": 0},
}
TOGETHER: dict[str, Any] = {
    "id": "togetherai:meta-llama/llama-4",
    "provider": "together-ai",
    "aliases": ["meta-llama/llama-4"],
    "context": 128000,
    "max_tokens": 8192,
    "input_cost_key": "input",
    "output_cost_key": "output",
    "costs": {"tokens": 1000, "input": 0.02, "output": 0.06},
    "modalities": {"input": ["text"], "output": ["text"]},
    "tool_call": False,
}
SUBSCRIBER: dict[str, Any] = {
    "id": "claude-opus-5",
    "provider": "claude",
    "aliases": ["claude-opus-latest"],
    "input_cost_key": "input_tokens",
    "output_cost_key": "output_tokens",
    "costs": {"tokens": 1000000, "input_tokens": 1500, "output_tokens": 7500},
    "subscriberOnly": True,
}
DETAILS = [CLAUDE, SUBSCRIBER, GPT, OPENROUTER_FREE, TOGETHER]


@pytest.fixture
def catalogue() -> Catalogue:
    return Catalogue.from_details(DETAILS)


class TestModelInfo:
    def test_claude_entry(self) -> None:
        info = ModelInfo.from_details(CLAUDE)
        assert info == ModelInfo(
            id="claude-sonnet-4-5-20250929",
            provider="claude",
            name="Claude Sonnet 4.5",
            puter_id="anthropic:anthropic/claude-sonnet-4-5",
            aliases=(
                "claude-sonnet-4.5",
                "claude-sonnet-4-5",
                "claude-sonnet-latest",
                "anthropic/claude-sonnet-4-5",
            ),
            context=200000,
            max_output=64000,
            input_usd_per_mtok=3.0,
            output_usd_per_mtok=15.0,
            input_modalities=("text", "image", "pdf"),
            output_modalities=("text",),
            tool_call=True,
            subscriber_only=False,
        )
        assert not info.free

    def test_prices_are_read_through_the_cost_keys(self) -> None:
        info = ModelInfo.from_details(GPT)
        assert info.input_usd_per_mtok == pytest.approx(0.05)
        assert info.output_usd_per_mtok == pytest.approx(0.40)

    def test_price_unit_other_than_a_million(self) -> None:
        info = ModelInfo.from_details(TOGETHER)  # cents per 1000 tokens
        assert info.input_usd_per_mtok == pytest.approx(0.2)
        assert info.output_usd_per_mtok == pytest.approx(0.6)

    def test_openrouter_entry_without_optional_fields(self) -> None:
        info = ModelInfo.from_details(OPENROUTER_FREE)
        assert info.free
        assert info.puter_id is None
        assert info.max_output is None
        assert info.input_modalities == ()
        assert info.tool_call is None

    def test_subscriber_only(self) -> None:
        assert ModelInfo.from_details(SUBSCRIBER).subscriber_only

    def test_unreadable_price_is_not_free(self) -> None:
        # Puter's test models spell their cost keys differently and name no cost key.
        info = ModelInfo.from_details({"id": "fake", "costs": {"input-tokens": 0, "output-tokens": 0}})
        assert info.input_usd_per_mtok is None
        assert info.output_usd_per_mtok is None
        assert not info.free

    def test_one_readable_price_is_not_enough_to_be_free(self) -> None:
        info = ModelInfo.from_details(
            {"id": "x", "input_cost_key": "a", "output_cost_key": "b", "costs": {"tokens": 1000000, "a": 0}}
        )
        assert info.input_usd_per_mtok == 0
        assert not info.free

    def test_cost_keys_default_like_puter(self) -> None:
        info = ModelInfo.from_details({"id": "y", "costs": {"input_tokens": 0, "output_tokens": 0}})
        assert info.free

    @pytest.mark.parametrize(
        "costs",
        [
            {"tokens": 0, "input_tokens": 1, "output_tokens": 1},
            {"tokens": "many", "input_tokens": 1, "output_tokens": 1},
            {"input_tokens": True, "output_tokens": None},
        ],
    )
    def test_nonsense_prices_are_unknown(self, costs: dict[str, Any]) -> None:
        info = ModelInfo.from_details({"id": "z", "costs": costs})
        assert info.input_usd_per_mtok is None
        assert not info.free

    def test_numeric_strings_are_read(self) -> None:
        info = ModelInfo.from_details({"id": "s", "costs": {"input_tokens": "100", "output_tokens": "0"}})
        assert (info.input_usd_per_mtok, info.output_usd_per_mtok) == (1.0, 0.0)

    def test_minimal_entry(self) -> None:
        info = ModelInfo.from_details({"id": " bare "})
        assert info.id == "bare"
        assert (info.provider, info.name, info.aliases, info.context, info.tool_call) == (
            "",
            None,
            (),
            None,
            None,
        )

    @pytest.mark.parametrize("entry", [{}, {"id": ""}, {"id": 3}, {"name": "no id"}])
    def test_entry_without_id(self, entry: dict[str, Any]) -> None:
        with pytest.raises(ValueError, match="id"):
            ModelInfo.from_details(entry)

    def test_garbage_optional_fields_are_ignored(self) -> None:
        info = ModelInfo.from_details(
            {
                "id": "g",
                "aliases": "not-a-list",
                "context": "big",
                "max_tokens": -1,
                "modalities": ["text"],
                "tool_call": "yes",
                "costs": [],
            }
        )
        assert (info.aliases, info.context, info.max_output, info.input_modalities, info.tool_call) == (
            (),
            None,
            None,
            (),
            None,
        )


class TestFind:
    @pytest.mark.parametrize(
        "name",
        [
            "claude-sonnet-4-5-20250929",
            "CLAUDE-SONNET-4-5-20250929",
            "claude-sonnet-latest",
            "Claude-Sonnet-4.5",
            "anthropic:anthropic/claude-sonnet-4-5",
            "anthropic/claude-sonnet-4-5",
            "  claude-sonnet-4-5 ",
        ],
    )
    def test_id_alias_and_puter_id(self, catalogue: Catalogue, name: str) -> None:
        found = catalogue.find(name)
        assert found is not None
        assert found.id == "claude-sonnet-4-5-20250929"

    def test_unknown(self, catalogue: Catalogue) -> None:
        assert catalogue.find("gpt-99") is None

    def test_an_id_wins_over_another_models_alias(self) -> None:
        catalogue = Catalogue.from_details(
            [
                {"id": "alpha", "aliases": ["beta"]},
                {"id": "beta"},
            ]
        )
        found = catalogue.find("beta")
        assert found is not None
        assert found.id == "beta"

    def test_first_model_wins_a_shared_alias(self) -> None:
        catalogue = Catalogue.from_details(
            [{"id": "one", "aliases": ["shared"]}, {"id": "two", "aliases": ["shared"]}]
        )
        found = catalogue.find("shared")
        assert found is not None
        assert found.id == "one"

    def test_bad_entries_are_skipped(self) -> None:
        catalogue = Catalogue.from_details([{"id": "ok"}, {"name": "no id"}, "junk", None])
        assert [model.id for model in catalogue] == ["ok"]
        assert len(catalogue) == 1


class TestClosest:
    def test_typo(self, catalogue: Catalogue) -> None:
        assert catalogue.closest("claude-sonet-4-5")[0] in {"claude-sonnet-4-5", "claude-sonnet-4.5"}

    def test_one_name_per_model(self, catalogue: Catalogue) -> None:
        names = catalogue.closest("claude-sonnet-4.5", n=3)
        models = [catalogue.find(name) for name in names]
        assert len({model.id for model in models if model is not None}) == len(names)

    def test_fragment(self, catalogue: Catalogue) -> None:
        names = catalogue.closest("nano")
        assert names
        found = catalogue.find(names[0])
        assert found is not None
        assert found.id == "gpt-5-nano-2025-08-07"

    def test_keeps_puters_spelling(self, catalogue: Catalogue) -> None:
        assert "Qwen: Qwen3 Coder (free)" in catalogue.closest("qwen: qwen3 coder (fre)", n=5)

    def test_limits(self, catalogue: Catalogue) -> None:
        assert len(catalogue.closest("claude", n=1)) == 1
        assert catalogue.closest("claude", n=0) == []
        assert catalogue.closest("   ") == []
        assert catalogue.closest("zzzzzzzzzzzzzz") == []


class TestSearch:
    def ids(self, models: list[ModelInfo]) -> list[str]:
        return [model.id for model in models]

    def test_no_filter_is_everything_in_order(self, catalogue: Catalogue) -> None:
        assert self.ids(catalogue.search()) == [entry["id"] for entry in DETAILS]

    def test_query_matches_id_name_and_aliases(self, catalogue: Catalogue) -> None:
        assert self.ids(catalogue.search("SONNET")) == ["claude-sonnet-4-5-20250929"]
        assert self.ids(catalogue.search("GPT-5 nano")) == ["gpt-5-nano-2025-08-07"]  # the name
        assert self.ids(catalogue.search("opus-latest")) == ["claude-opus-5"]  # an alias
        assert catalogue.search("nothing-like-this") == []

    def test_provider_by_key_or_prefix(self, catalogue: Catalogue) -> None:
        assert self.ids(catalogue.search(provider="claude")) == [
            "claude-sonnet-4-5-20250929",
            "claude-opus-5",
        ]
        assert self.ids(catalogue.search(provider="anthropic")) == [
            "claude-sonnet-4-5-20250929",
            "claude-opus-5",
        ]
        assert self.ids(catalogue.search(provider="OpenRouter")) == ["openrouter:qwen/qwen3-coder:free"]
        assert self.ids(catalogue.search(provider="togetherai")) == ["togetherai:meta-llama/llama-4"]

    def test_tool_call_unknown_matches_neither(self, catalogue: Catalogue) -> None:
        assert self.ids(catalogue.search(tool_call=True)) == [
            "claude-sonnet-4-5-20250929",
            "gpt-5-nano-2025-08-07",
        ]
        assert self.ids(catalogue.search(tool_call=False)) == ["togetherai:meta-llama/llama-4"]

    def test_image_input(self, catalogue: Catalogue) -> None:
        assert self.ids(catalogue.search(image_input=True)) == [
            "claude-sonnet-4-5-20250929",
            "gpt-5-nano-2025-08-07",
        ]
        assert self.ids(catalogue.search(image_input=False)) == ["togetherai:meta-llama/llama-4"]

    def test_free(self, catalogue: Catalogue) -> None:
        assert self.ids(catalogue.search(free=True)) == ["openrouter:qwen/qwen3-coder:free"]
        assert "openrouter:qwen/qwen3-coder:free" not in self.ids(catalogue.search(free=False))
        assert catalogue.free_models() == catalogue.search(free=True)

    def test_filters_combine(self, catalogue: Catalogue) -> None:
        assert self.ids(catalogue.search("claude", provider="claude", tool_call=True, image_input=True)) == [
            "claude-sonnet-4-5-20250929"
        ]
        assert catalogue.search("claude", free=True) == []


class TestCache:
    def test_round_trip(self, catalogue: Catalogue) -> None:
        text = catalogue.to_json()
        again = Catalogue.from_json(text)
        assert again.models == catalogue.models
        found = again.find("claude-sonnet-latest")
        assert found is not None
        assert found.id == "claude-sonnet-4-5-20250929"

    def test_from_the_decoded_object(self, catalogue: Catalogue) -> None:
        assert Catalogue.from_json(json.loads(catalogue.to_json())).models == catalogue.models

    def test_free_survives_the_round_trip(self, catalogue: Catalogue) -> None:
        again = Catalogue.from_json(catalogue.to_json().encode())
        assert [model.id for model in again.free_models()] == ["openrouter:qwen/qwen3-coder:free"]

    @pytest.mark.parametrize(
        "data",
        [
            "[]",
            '{"format": 999, "models": []}',
            '{"format": 1}',
            '{"format": 1, "models": [{"name": "no id"}]}',
            '{"format": 1, "models": [{"id": "x", "aliases": 5}]}',
            "not json",
        ],
    )
    def test_damaged_cache(self, data: str) -> None:
        with pytest.raises(ValueError):  # noqa: PT011 - json, format and validation errors alike
            Catalogue.from_json(data)
