"""Puter's model catalogue, read from ``GET /puterai/chat/models/details`` (pure: no I/O).

The catalogue changes monthly and has several hundred entries from a dozen providers, each
describing its prices in its own keys. This module turns every entry into one `ModelInfo`
with prices in dollars per million tokens, resolves names the way Puter does (case-insensitive
over ids, aliases and ``puterId``) and answers the questions the tools ask: is this name known,
what did the user probably mean, which models are free, which match a search.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, computed_field

__all__ = ["Catalogue", "ModelInfo"]

_CACHE_FORMAT = 1
_DEFAULT_PRICE_UNIT = 1_000_000  # Puter's `costs.tokens` is always this today.


def _number(value: Any) -> float | None:
    """A price as a float, or None when it is absent or not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return int(value)


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        return ()
    return tuple(item for item in value if isinstance(item, str) and item)


def _usd_per_mtok(costs: Mapping[str, Any], key: Any) -> float | None:
    """US cents per ``costs.tokens`` tokens, converted to US dollars per million tokens."""
    if not isinstance(key, str):
        return None
    cents = _number(costs.get(key))
    if cents is None:
        return None
    unit = _number(costs.get("tokens", _DEFAULT_PRICE_UNIT))
    if unit is None or unit <= 0:
        return None
    return cents / 100 * (1_000_000 / unit)


class ModelInfo(BaseModel):
    """One model of Puter's catalogue, with prices read through its own cost keys."""

    model_config = ConfigDict(frozen=True)

    id: str
    provider: str = ""
    """Puter's provider key (``claude``, ``openai-completion``, ``openrouter``, ...); Puter always
    gives one, an entry without it gets an empty string."""
    name: str | None = None
    puter_id: str | None = None
    aliases: tuple[str, ...] = ()
    context: int | None = None
    max_output: int | None = None
    input_usd_per_mtok: float | None = None
    """None when Puter's entry does not give a readable price."""
    output_usd_per_mtok: float | None = None
    input_modalities: tuple[str, ...] = ()
    """Empty when Puter does not say (OpenRouter entries)."""
    output_modalities: tuple[str, ...] = ()
    tool_call: bool | None = None
    """None when Puter does not say."""
    subscriber_only: bool = False

    @computed_field
    @property
    def free(self) -> bool:
        """Free only when both prices were readable and are zero: an unreadable price is not free."""
        return self.input_usd_per_mtok == 0 and self.output_usd_per_mtok == 0

    @property
    def names(self) -> tuple[str, ...]:
        """Every name Puter accepts for this model."""
        extra = (self.puter_id,) if self.puter_id else ()
        return (self.id, *extra, *self.aliases)

    @classmethod
    def from_details(cls, details: Mapping[str, Any]) -> ModelInfo:
        """Build from one entry of ``/puterai/chat/models/details``; optional fields may be missing.

        Prices are read through ``input_cost_key``/``output_cost_key`` because each provider
        names them differently; when an entry names no key, Puter itself falls back on
        ``input_tokens``/``output_tokens``, and so does this.

        Raises:
            ValueError: the entry has no usable ``id``.
        """
        model_id = details.get("id")
        if not isinstance(model_id, str) or not model_id.strip():
            raise ValueError("a catalogue entry needs a string id")
        costs = details.get("costs")
        if not isinstance(costs, Mapping):
            costs = {}
        modalities = details.get("modalities")
        if not isinstance(modalities, Mapping):
            modalities = {}
        tool_call = details.get("tool_call")
        puter_id = details.get("puterId")
        name = details.get("name")
        provider = details.get("provider")
        return cls(
            id=model_id.strip(),
            provider=provider if isinstance(provider, str) else "",
            name=name if isinstance(name, str) and name else None,
            puter_id=puter_id if isinstance(puter_id, str) and puter_id else None,
            aliases=_strings(details.get("aliases")),
            context=_positive_int(details.get("context")),
            max_output=_positive_int(details.get("max_tokens")),
            input_usd_per_mtok=_usd_per_mtok(costs, details.get("input_cost_key", "input_tokens")),
            output_usd_per_mtok=_usd_per_mtok(costs, details.get("output_cost_key", "output_tokens")),
            input_modalities=_strings(modalities.get("input")),
            output_modalities=_strings(modalities.get("output")),
            tool_call=tool_call if isinstance(tool_call, bool) else None,
            subscriber_only=details.get("subscriberOnly") is True,
        )


# Company names people type, and Puter's provider key for the company's own service.
_PROVIDER_NAMES: Mapping[str, str] = {
    "anthropic": "claude",
    "openai": "openai-completion",
    "google": "gemini",
}


def _provider_matches(model: ModelInfo, wanted: str) -> bool:
    """Match the provider that serves the model: Puter's provider key, the company's name for
    it ("anthropic" for ``claude``), or the prefix of a resold id (``openrouter:``,
    ``togetherai:``). Never the maker named in ``puterId``: groq's ``gpt-oss-120b`` is
    ``openai:...`` there, yet served by groq."""
    provider = model.provider.lower()
    if wanted in (provider, provider.replace("-", "")) or _PROVIDER_NAMES.get(wanted) == provider:
        return True
    return ":" in model.id and model.id.split(":", 1)[0].lower() == wanted


class Catalogue:
    """Puter's models, indexed once for name lookups.

    Names resolve like Puter resolves them: case-insensitively against ids, ``puterId`` and
    aliases. When two models claim the same name, an id wins over an alias, and otherwise the
    first model in Puter's order (provider, then id) wins.
    """

    def __init__(self, models: Iterable[ModelInfo], unlisted: Iterable[ModelInfo] = ()) -> None:
        self._models: tuple[ModelInfo, ...] = tuple(models)
        listed = {model.id.lower() for model in self._models}
        # Models Puter answers but does not list (its test models, which the chat driver's
        # `models` method names): found by name, never offered (not searched, never a fallback).
        self._unlisted: tuple[ModelInfo, ...] = tuple(m for m in unlisted if m.id.lower() not in listed)
        self._index: dict[str, ModelInfo] = {}
        self._spelling: dict[str, str] = {}  # lower-case name -> the spelling Puter uses
        for model in self._models:  # ids first, so an alias never shadows another model's id
            self._index.setdefault(model.id.lower(), model)
            self._spelling.setdefault(model.id.lower(), model.id)
        for model in self._models:
            for name in model.names:
                self._index.setdefault(name.lower(), model)
                self._spelling.setdefault(name.lower(), name)
        for model in self._unlisted:
            for name in (model.id, *model.names):
                self._index.setdefault(name.lower(), model)

    @classmethod
    def from_details(cls, entries: Iterable[Any], unlisted: Iterable[Any] = ()) -> Catalogue:
        """Build from the ``models`` list of the details endpoint, skipping entries without an id.

        `unlisted`: entries of the chat driver's `models` method; those the details do not list
        are known by name only (see `unlisted`).
        """
        return cls(_infos(entries), _infos(unlisted))

    @property
    def unlisted(self) -> tuple[ModelInfo, ...]:
        """Models Puter answers that its model list leaves out (a self-hosted Puter without
        vendor keys answers only these: ``fake``, ``costly``, ``abuse``)."""
        return self._unlisted

    @property
    def models(self) -> tuple[ModelInfo, ...]:
        return self._models

    def __len__(self) -> int:
        return len(self._models)

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(self._models)

    def find(self, name: str) -> ModelInfo | None:
        """The model Puter would use for ``name``, or None if Puter would answer "Model not found"."""
        return self._index.get(name.strip().lower())

    def closest(self, name: str, n: int = 3) -> list[str]:
        """Up to ``n`` known names that look like ``name``, best first, one per model.

        Spelling mistakes are found by similarity (difflib); a fragment such as "sonnet" is
        too short for that, so names containing it fill the remaining places, shortest first.
        """
        if n <= 0:
            return []
        wanted = name.strip().lower()
        if not wanted:
            return []
        candidates = difflib.get_close_matches(wanted, self._spelling.keys(), n=n * 4, cutoff=0.5)
        containing = sorted((key for key in self._spelling if wanted in key), key=lambda key: (len(key), key))
        chosen: list[str] = []
        seen: set[str] = set()
        for key in [*candidates, *containing]:
            model = self._index[key]
            if model.id in seen:
                continue
            seen.add(model.id)
            chosen.append(self._spelling[key])
            if len(chosen) == n:
                break
        return chosen

    def free_models(self) -> list[ModelInfo]:
        """Models whose both prices are known to be zero."""
        return [model for model in self._models if model.free]

    def search(
        self,
        query: str | None = None,
        provider: str | None = None,
        tool_call: bool | None = None,
        image_input: bool | None = None,
        free: bool | None = None,
    ) -> list[ModelInfo]:
        """Models matching every filter given (None means "any"), in catalogue order.

        ``query`` is a case-insensitive substring of the id, name or any alias. ``tool_call``
        and ``image_input`` only match models whose entry says so: unknown is neither.
        """
        needle = query.strip().lower() if query else ""
        wanted_provider = provider.strip().lower() if provider else ""
        found: list[ModelInfo] = []
        for model in self._models:
            if needle and not any(needle in text.lower() for text in (*model.names, model.name or "")):
                continue
            if wanted_provider and not _provider_matches(model, wanted_provider):
                continue
            if tool_call is not None and model.tool_call is not tool_call:
                continue
            if image_input is not None:
                if not model.input_modalities:
                    continue
                if ("image" in model.input_modalities) is not image_input:
                    continue
            if free is not None and model.free is not free:
                continue
            found.append(model)
        return found

    def to_json(self) -> str:
        """Serialise for a disk cache; `from_json` reads it back."""
        return json.dumps(
            {
                "format": _CACHE_FORMAT,
                "models": [model.model_dump(mode="json", exclude={"free"}) for model in self._models],
                "unlisted": [model.model_dump(mode="json", exclude={"free"}) for model in self._unlisted],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any]) -> Catalogue:
        """Read a cache written by `to_json` (the text, or the object it decodes to).

        Raises:
            ValueError: the cache is not one this version wrote (the caller refetches).
        """
        raw = json.loads(data) if isinstance(data, str | bytes) else data
        if not isinstance(raw, Mapping) or raw.get("format") != _CACHE_FORMAT:
            raise ValueError("not a model catalogue cache of a known format")
        entries = raw.get("models")
        if not isinstance(entries, list):
            raise ValueError("the model catalogue cache has no model list")
        unlisted = raw.get("unlisted", [])
        if not isinstance(unlisted, list):
            raise ValueError("the model catalogue cache's unlisted models are not a list")
        try:
            return cls(
                [ModelInfo.model_validate(entry) for entry in entries],
                [ModelInfo.model_validate(entry) for entry in unlisted],
            )
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise ValueError(f"the model catalogue cache is damaged: {exc}") from exc


def _infos(entries: Iterable[Any]) -> list[ModelInfo]:
    models: list[ModelInfo] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        try:
            models.append(ModelInfo.from_details(entry))
        except ValueError:
            continue
    return models
