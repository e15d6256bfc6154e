"""The emulator's model catalogue: realistic data shaped like Puter's `/puterai/chat/models/details`.

Puter's real catalogue has hundreds of entries and changes monthly; this one is small, fixed
and deterministic, but it has every feature a client must cope with (docs/puter-protocol.md, "Models"):
provider-specific cost keys, OpenRouter entries without `puterId`/`modalities`/`tool_call`,
free `:free` models, subscriber-only models, aliases that differ from the canonical id,
models that take images and models that do not (DeepSeek, Codestral, Groq's), one that cannot
call tools (`deepseek-reasoner`), and Puter's hidden test models `fake`, `costly` and `abuse`. The ids look current (2026) but are
illustrative: no test should treat one as permanent beyond this module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "DEFAULT_MODEL",
    "PROVIDERS",
    "TEST_MODEL_IDS",
    "Catalogue",
    "ModelSpec",
    "ProviderSpec",
    "default_catalogue",
    "fake_chat_model",
    "self_hosted_catalogue",
]

AnswerShape = Literal["anthropic", "openai"]
UsageStyle = Literal["anthropic", "openai", "openrouter"]

COSTS_PER_TOKENS = 1_000_000
"""Every price is in US cents per this many tokens (Puter's `costs.tokens`)."""

DEFAULT_MODEL = "gpt-5-nano"
"""What Puter answers with when a request names no model."""

TEST_MODEL_IDS = ("fake", "costly", "abuse")


@dataclass(frozen=True)
class ProviderSpec:
    """How one of Puter's providers answers: message shape, usage spelling and cost keys."""

    key: str
    """Puter's provider key: the catalogue's `provider` and the answer's `metadata.service_used`."""
    shape: AnswerShape
    usage_style: UsageStyle
    input_cost_key: str
    output_cost_key: str


PROVIDERS: Mapping[str, ProviderSpec] = {
    spec.key: spec
    for spec in (
        ProviderSpec("claude", "anthropic", "anthropic", "input_tokens", "output_tokens"),
        ProviderSpec("openai-completion", "openai", "openai", "prompt_tokens", "completion_tokens"),
        ProviderSpec("gemini", "openai", "openai", "prompt_tokens", "completion_tokens"),
        ProviderSpec("deepseek", "openai", "openai", "prompt_tokens", "completion_tokens"),
        ProviderSpec("xai", "openai", "openai", "prompt_tokens", "completion_tokens"),
        ProviderSpec("mistral", "openai", "openai", "prompt_tokens", "completion_tokens"),
        ProviderSpec("groq", "openai", "openai", "prompt_tokens", "completion_tokens"),
        ProviderSpec("openrouter", "openai", "openrouter", "prompt", "completion"),
        ProviderSpec("togetherai", "openai", "openai", "input", "output"),
        ProviderSpec("fake-chat", "anthropic", "anthropic", "input-tokens", "output-tokens"),
    )
}


@dataclass(frozen=True)
class ModelSpec:
    """One catalogue entry, plus what the emulator needs to answer as that model."""

    id: str
    provider: str
    name: str | None
    aliases: tuple[str, ...]
    context: int
    max_tokens: int
    input_cost: float
    """US cents per `COSTS_PER_TOKENS` input tokens."""
    output_cost: float
    puter_id: str | None = None
    input_modalities: tuple[str, ...] | None = ("text",)
    output_modalities: tuple[str, ...] | None = ("text",)
    tool_call: bool | None = True
    subscriber_only: bool = False
    open_weights: bool | None = None
    knowledge: str | None = None
    release_date: str | None = None
    hidden: bool = False
    """Puter's test models: only visible through the driver methods `models`/`list`."""
    stream_seconds: float = 0.0
    """How long this model's streams last, their lines evenly spaced (the sandbox's slow model,
    which lets a person watch progress notifications and cancel); 0: as fast as the state's pace."""

    @property
    def provider_spec(self) -> ProviderSpec:
        return PROVIDERS[self.provider]

    @property
    def is_test_model(self) -> bool:
        """Test models are never charged and report `usd_cents: null`."""
        return self.provider == "fake-chat"

    @property
    def listed_id(self) -> str:
        """The name `/puterai/chat/models` lists: the puterId, else the id."""
        return self.puter_id or self.id

    @property
    def usage_model_name(self) -> str:
        """The model part of a metering usage type (`openrouter:<vendor>/<model>:prompt`)."""
        prefix = self.provider + ":"
        return self.id[len(prefix) :] if self.id.startswith(prefix) else self.id

    def names(self) -> tuple[str, ...]:
        """Every name the model answers to (id, aliases, puterId), as given."""
        extra = (self.puter_id,) if self.puter_id else ()
        return (self.id, *self.aliases, *extra)

    def cost_microcents(self, input_tokens: int, output_tokens: int) -> tuple[int, int]:
        """(input, output) cost in microcents; a cent per million tokens is a microcent per token."""
        scale = 1_000_000 / COSTS_PER_TOKENS
        return (
            math.ceil(input_tokens * self.input_cost * scale),
            math.ceil(output_tokens * self.output_cost * scale),
        )

    def details(self) -> dict[str, Any]:
        """The entry exactly as `/puterai/chat/models/details` spells it (optional keys omitted)."""
        spec = self.provider_spec
        out: dict[str, Any] = {"id": self.id, "provider": self.provider}
        if self.puter_id:
            out["puterId"] = self.puter_id
        if self.name:
            out["name"] = self.name
        out["aliases"] = list(self.aliases)
        out["context"] = self.context
        out["max_tokens"] = self.max_tokens
        out["costs_currency"] = "usd-cents"
        out["input_cost_key"] = spec.input_cost_key
        out["output_cost_key"] = spec.output_cost_key
        out["costs"] = {
            "tokens": COSTS_PER_TOKENS,
            spec.input_cost_key: self.input_cost,
            spec.output_cost_key: self.output_cost,
        }
        if self.input_modalities is not None and self.output_modalities is not None:
            out["modalities"] = {"input": list(self.input_modalities), "output": list(self.output_modalities)}
        if self.tool_call is not None:
            out["tool_call"] = self.tool_call
        if self.open_weights is not None:
            out["open_weights"] = self.open_weights
        if self.knowledge is not None:
            out["knowledge"] = self.knowledge
        if self.release_date is not None:
            out["release_date"] = self.release_date
        if self.subscriber_only:
            out["subscriberOnly"] = True
        return out


class Catalogue:
    """The models the emulator knows, with a case-insensitive index over every name.

    Real Puter may serve one name from several providers; the emulator insists on unique
    names so that which model answers is never ambiguous in a test.
    """

    def __init__(self, models: Iterable[ModelSpec]) -> None:
        self._models = tuple(models)
        index: dict[str, ModelSpec] = {}
        for model in self._models:
            for name in model.names():
                key = name.lower()
                other = index.get(key)
                if other is not None and other is not model:
                    raise ValueError(f"model name {name!r} belongs to both {other.id!r} and {model.id!r}")
                index[key] = model
        self._index = index

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)

    def find(self, name: str) -> ModelSpec | None:
        """The model `name` designates (id, alias or puterId, any case), hidden ones included."""
        return self._index.get(name.strip().lower())

    def public(self) -> list[ModelSpec]:
        """Everything but the hidden test models."""
        return [m for m in self._models if not m.hidden]

    def listed_ids(self) -> list[str]:
        """`GET /puterai/chat/models`: each model's puterId or id, sorted, no test models."""
        return sorted(m.listed_id for m in self.public())

    def details(self, *, include_hidden: bool = False) -> list[dict[str, Any]]:
        """Detail entries sorted by provider then id (hidden models only for the driver methods)."""
        models = list(self._models) if include_hidden else self.public()
        return [m.details() for m in sorted(models, key=lambda m: (m.provider, m.id))]

    def all_listed_ids(self) -> list[str]:
        """The driver method `list`: like `listed_ids` but with the hidden test models."""
        return sorted(m.listed_id for m in self._models)


def _direct(
    provider: str,
    vendor: str,
    model_id: str,
    name: str,
    costs: tuple[float, float],
    *,
    context: int,
    max_tokens: int,
    stable: tuple[str, ...] = (),
    image_input: bool = True,
    tool_call: bool = True,
    subscriber_only: bool = False,
    open_weights: bool | None = None,
    knowledge: str | None = None,
    release_date: str | None = None,
) -> ModelSpec:
    """An entry of a provider Puter calls directly: puterId `<vendor>:<vendor>/<id>` and aliases."""
    puter_id = f"{vendor}:{vendor}/{model_id}"
    return ModelSpec(
        id=model_id,
        provider=provider,
        name=name,
        aliases=(*stable, f"{vendor}/{model_id}", puter_id),
        context=context,
        max_tokens=max_tokens,
        input_cost=costs[0],
        output_cost=costs[1],
        puter_id=puter_id,
        input_modalities=("text", "image") if image_input else ("text",),
        output_modalities=("text",),
        tool_call=tool_call,
        subscriber_only=subscriber_only,
        open_weights=open_weights,
        knowledge=knowledge,
        release_date=release_date,
    )


def _openrouter(vendor_model: str, name: str, costs: tuple[float, float], *, context: int) -> ModelSpec:
    """An OpenRouter entry: no puterId, modalities or tool_call, as Puter lists them."""
    return ModelSpec(
        id=f"openrouter:{vendor_model}",
        provider="openrouter",
        name=name,
        aliases=(vendor_model,),
        context=context,
        max_tokens=min(context, 32_768),
        input_cost=costs[0],
        output_cost=costs[1],
        puter_id=None,
        input_modalities=None,
        output_modalities=None,
        tool_call=None,
    )


def _together(vendor_model: str, name: str, costs: tuple[float, float], *, context: int) -> ModelSpec:
    """A Together AI entry: id `togetherai:<Vendor>/<Model>`, puterId lower-cased by vendor."""
    vendor = vendor_model.split("/", 1)[0].lower()
    puter_id = f"{vendor}:{vendor_model.lower()}"
    return ModelSpec(
        id=f"togetherai:{vendor_model}",
        provider="togetherai",
        name=name,
        aliases=(vendor_model, puter_id),
        context=context,
        max_tokens=min(context, 32_768),
        input_cost=costs[0],
        output_cost=costs[1],
        puter_id=puter_id,
        open_weights=True,
    )


def fake_chat_model(model_id: str, costs: tuple[float, float] = (0, 0)) -> ModelSpec:
    """One of Puter's hidden test models (provider `fake-chat`, never charged)."""
    return ModelSpec(
        id=model_id,
        provider="fake-chat",
        name=None,
        aliases=(),
        context=8_192,
        max_tokens=4_096,
        input_cost=costs[0],
        output_cost=costs[1],
        input_modalities=None,
        output_modalities=None,
        tool_call=None,
        hidden=True,
    )


def default_catalogue() -> Catalogue:
    """The catalogue an `EmulatorState` uses unless given another."""
    claude = [
        _direct("claude", "anthropic", "claude-opus-5", "Claude Opus 5", (500, 2500),
                context=200_000, max_tokens=64_000, stable=("claude-opus-latest",),
                subscriber_only=True, knowledge="2025-10", release_date="2026-02-05"),
        _direct("claude", "anthropic", "claude-sonnet-5", "Claude Sonnet 5", (300, 1500),
                context=1_000_000, max_tokens=64_000, stable=("claude-sonnet-latest",),
                knowledge="2025-10", release_date="2026-02-17"),
        _direct("claude", "anthropic", "claude-opus-4-1-20250805", "Claude Opus 4.1", (1500, 7500),
                context=200_000, max_tokens=32_000, stable=("claude-opus-4-1",),
                subscriber_only=True, knowledge="2025-03", release_date="2025-08-05"),
        _direct("claude", "anthropic", "claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", (300, 1500),
                context=200_000, max_tokens=64_000, stable=("claude-sonnet-4-5",),
                knowledge="2025-07", release_date="2025-09-29"),
        _direct("claude", "anthropic", "claude-haiku-4-5-20251001", "Claude Haiku 4.5", (100, 500),
                context=200_000, max_tokens=64_000, stable=("claude-haiku-4-5", "claude-haiku-latest"),
                knowledge="2025-02", release_date="2025-10-15"),
    ]  # fmt: skip
    openai = [
        _direct("openai-completion", "openai", "gpt-5.2-2025-12-11", "GPT-5.2", (175, 1400),
                context=400_000, max_tokens=128_000, stable=("gpt-5.2", "gpt-latest"),
                knowledge="2025-08", release_date="2025-12-11"),
        _direct("openai-completion", "openai", "gpt-5.1-codex", "GPT-5.1 Codex", (125, 1000),
                context=400_000, max_tokens=128_000, knowledge="2024-09", release_date="2025-11-13"),
        _direct("openai-completion", "openai", "gpt-5-mini-2025-08-07", "GPT-5 mini", (25, 200),
                context=400_000, max_tokens=128_000, stable=("gpt-5-mini",), release_date="2025-08-07"),
        _direct("openai-completion", "openai", "gpt-5-nano-2025-08-07", "GPT-5 nano", (5, 40),
                context=400_000, max_tokens=128_000, stable=("gpt-5-nano",), release_date="2025-08-07"),
        _direct("openai-completion", "openai", "gpt-5-pro-2025-10-06", "GPT-5 pro", (1500, 12000),
                context=400_000, max_tokens=272_000, stable=("gpt-5-pro",), subscriber_only=True,
                release_date="2025-10-06"),
        _direct("openai-completion", "openai", "gpt-4.1-2025-04-14", "GPT-4.1", (200, 800),
                context=1_047_576, max_tokens=32_768, stable=("gpt-4.1",), release_date="2025-04-14"),
        _direct("openai-completion", "openai", "o4-mini-2025-04-16", "o4-mini", (110, 440),
                context=200_000, max_tokens=100_000, stable=("o4-mini",), release_date="2025-04-16"),
    ]  # fmt: skip
    gemini = [
        _direct("gemini", "google", "gemini-3-pro-preview", "Gemini 3 Pro (preview)", (200, 1200),
                context=1_048_576, max_tokens=65_536, stable=("gemini-pro-latest",),
                subscriber_only=True, knowledge="2025-01", release_date="2025-11-18"),
        _direct("gemini", "google", "gemini-3-flash-preview", "Gemini 3 Flash (preview)", (50, 300),
                context=1_048_576, max_tokens=65_536, stable=("gemini-flash-latest",),
                release_date="2025-12-17"),
        _direct("gemini", "google", "gemini-2.5-flash", "Gemini 2.5 Flash", (30, 250),
                context=1_048_576, max_tokens=65_536, release_date="2025-06-17"),
        _direct("gemini", "google", "gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite", (10, 40),
                context=1_048_576, max_tokens=65_536, stable=("gemini-flash-lite-latest",),
                release_date="2025-07-22"),
    ]  # fmt: skip
    others = [
        _direct("deepseek", "deepseek", "deepseek-v3.2", "DeepSeek V3.2", (28, 42),
                context=128_000, max_tokens=8_192, stable=("deepseek-chat",), image_input=False,
                open_weights=True, release_date="2025-12-01"),
        _direct("deepseek", "deepseek", "deepseek-v3.2-thinking", "DeepSeek V3.2 (thinking)", (28, 42),
                context=128_000, max_tokens=65_536, stable=("deepseek-reasoner",), image_input=False,
                tool_call=False, open_weights=True, release_date="2025-12-01"),
        _direct("xai", "x-ai", "grok-4-0709", "Grok 4", (300, 1500),
                context=256_000, max_tokens=64_000, stable=("grok-4", "grok-latest"), release_date="2025-07-09"),
        _direct("xai", "x-ai", "grok-4-1-fast", "Grok 4.1 Fast", (20, 50),
                context=2_000_000, max_tokens=30_000, stable=("grok-4.1-fast",), release_date="2025-11-19"),
        _direct("xai", "x-ai", "grok-code-fast-1", "Grok Code Fast 1", (20, 150),
                context=256_000, max_tokens=10_000, image_input=False, release_date="2025-08-28"),
        _direct("mistral", "mistralai", "mistral-large-2512", "Mistral Large 3", (50, 150),
                context=256_000, max_tokens=32_768, stable=("mistral-large-latest",), open_weights=True,
                release_date="2025-12-02"),
        _direct("mistral", "mistralai", "mistral-medium-2508", "Mistral Medium 3.1", (40, 200),
                context=131_072, max_tokens=32_768, stable=("mistral-medium-latest",),
                release_date="2025-08-12"),
        _direct("mistral", "mistralai", "codestral-2508", "Codestral", (30, 90),
                context=256_000, max_tokens=32_768, stable=("codestral-latest",), image_input=False,
                release_date="2025-08-01"),
        _direct("groq", "meta-llama", "llama-3.3-70b-versatile", "Llama 3.3 70B (Groq)", (59, 79),
                context=131_072, max_tokens=32_768, image_input=False, open_weights=True),
        _direct("groq", "openai", "gpt-oss-120b", "gpt-oss-120b (Groq)", (15, 60),
                context=131_072, max_tokens=65_536, image_input=False, open_weights=True),
    ]  # fmt: skip
    openrouter = [
        _openrouter("anthropic/claude-sonnet-4.5", "Anthropic: Claude Sonnet 4.5", (300, 1500), context=1_000_000),
        _openrouter("openai/gpt-5-mini", "OpenAI: GPT-5 Mini", (25, 200), context=400_000),
        _openrouter("z-ai/glm-4.6", "Z.AI: GLM 4.6", (40, 175), context=202_752),
        _openrouter("moonshotai/kimi-k2-thinking", "MoonshotAI: Kimi K2 Thinking", (60, 250), context=262_144),
        _openrouter("meta-llama/llama-3.3-70b-instruct:free", "Meta: Llama 3.3 70B Instruct (free)", (0, 0),
                    context=131_072),
        _openrouter("deepseek/deepseek-chat-v3.1:free", "DeepSeek: DeepSeek V3.1 (free)", (0, 0), context=163_840),
        _openrouter("qwen/qwen3-coder:free", "Qwen: Qwen3 Coder 480B A35B (free)", (0, 0), context=262_144),
        _openrouter("google/gemma-3-27b-it:free", "Google: Gemma 3 27B (free)", (0, 0), context=131_072),
        _openrouter("mistralai/mistral-small-3.2-24b-instruct:free", "Mistral: Mistral Small 3.2 24B (free)",
                    (0, 0), context=131_072),
        _openrouter("openai/gpt-oss-20b:free", "OpenAI: gpt-oss-20b (free)", (0, 0), context=131_072),
    ]  # fmt: skip
    together = [
        _together("meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8", "Llama 4 Maverick", (27, 85),
                  context=1_048_576),
        _together("Qwen/Qwen3-235B-A22B-Instruct-2507-tput", "Qwen3 235B A22B Instruct 2507", (20, 60),
                  context=262_144),
        _together("deepseek-ai/DeepSeek-R1", "DeepSeek R1", (300, 700), context=163_840),
    ]  # fmt: skip
    slow = ModelSpec(
        id="sandbox-slow", provider="fake-chat", name="Sandbox slow model (streams for ~10 s)",
        aliases=("fake-chat:sandbox-slow",), puter_id="fake-chat:sandbox-slow", context=8_192,
        max_tokens=4_096, input_cost=5, output_cost=40, stream_seconds=10.0,
    )  # fmt: skip
    return Catalogue([*claude, *openai, *gemini, *others, *openrouter, *together, slow, *_test_models()])


def self_hosted_catalogue() -> Catalogue:
    """The catalogue of a self-hosted Puter without vendor keys: only the hidden test models.

    `/puterai/chat/models/details` then lists nothing; the chat driver's `models` method (signed
    in) names `fake`, `costly` and `abuse`, and those answer. Pass it as `EmulatorState(catalogue=...)`.
    """
    return Catalogue(_test_models())


def _test_models() -> list[ModelSpec]:
    return [
        fake_chat_model("fake", (0, 0)),
        fake_chat_model("costly", (1_000_000, 1_000_000)),
        fake_chat_model("abuse", (0, 0)),
    ]
