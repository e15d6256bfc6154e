"""Virtual models (chains): which models to try, in which order, for a name the user gave.

A user asks for a *name*: a concrete model (``gpt-5-nano``), a chain (``coding-elite``, or one
they wrote in ``config.toml``) or ``auto``. The router needs an ordered list of real models to
try. This module turns the one into the other, against the live catalogue, without I/O:

- A chain lists stable aliases (``claude-sonnet-latest``), never dated ids, because Puter's
  catalogue changes monthly. Each entry is looked up in the catalogue; an entry Puter retired is
  *skipped* (and reported), not an error, so a chain written today keeps working.
- A concrete model is a chain of one.
- Unless the user turned it off, the catalogue's free models come last, as a last resort that
  costs nothing (`free_tail_order` documents their order).
- ``auto`` first picks a chain from the last user message (`puter_mcp.routing.auto`).

It also validates user chains from ``config.toml``. (Translating a reasoning request into the
one effort level Puter takes is Puter's rule: `puter_mcp.puter.wire.reasoning_effort`.)

The catalogue type lives in ``puter_mcp.puter.catalogue``; this module only needs the small
`ModelCatalogue` protocol, so that routing stays testable with a tiny fake.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Generic, Protocol, TypeVar

from puter_mcp.routing.auto import AutoChoice, AutoRouter

__all__ = [
    "AUTO",
    "AUTO_DESCRIPTION",
    "BUILTIN_CHAINS",
    "CatalogueModel",
    "ChainConfigError",
    "ModelCatalogue",
    "Needs",
    "ResolvedChain",
    "UnknownModelError",
    "UnmetNeedsError",
    "VirtualModel",
    "free_tail_order",
    "merge_chains",
    "parse_user_chains",
    "resolve",
    "resolve_all",
    "resolve_auto",
]

AUTO = "auto"
"""The name of the automatic router; no chain may take it."""

AUTO_DESCRIPTION = (
    "Picks a chain per request from the last user message: coding-elite (or coding-fast when "
    "speed is asked) for code, chat-smart for reasoning, planning and open questions, chat-fast "
    "for short or quick ones."
)
"""One line for ``puter-models``, next to the chains ``auto`` can pick."""


# --- what we need from the catalogue ------------------------------------------------------------


class CatalogueModel(Protocol):
    """A model as this module sees it. ``context`` (int | None), when present, orders free models;
    ``input_modalities`` (strings) and ``tool_call`` (bool | None), when present, say what it can
    take (see `Needs`)."""

    @property
    def id(self) -> str: ...

    @property
    def free(self) -> bool: ...


M = TypeVar("M", bound=CatalogueModel)
M_co = TypeVar("M_co", bound=CatalogueModel, covariant=True)


class ModelCatalogue(Protocol[M_co]):
    """The live catalogue, as this module uses it."""

    def find(self, name: str) -> M_co | None:
        """The model whose id, alias or puterId equals ``name`` case-insensitively, else None."""
        ...

    def free_models(self) -> Sequence[M_co]:
        """Every model whose price is readable and zero."""
        ...


# --- chains -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VirtualModel:
    """A named, ordered preference list of models.

    Attributes:
        name: what the user asks for (a slug, never ``auto``).
        models: catalogue ids or aliases, most preferred first.
        free_fallback: whether the catalogue's free models follow the list (the global
            ``fallback_to_free`` switch can still turn them off).
        description: one line for ``puter-models``.
        origin: ``"built-in"`` or the config file the chain came from.
    """

    name: str
    models: tuple[str, ...]
    free_fallback: bool = True
    description: str = ""
    origin: str = "built-in"


def _builtin(name: str, description: str, *models: str) -> tuple[str, VirtualModel]:
    return name, VirtualModel(name=name, models=models, description=description)


BUILTIN_CHAINS: Mapping[str, VirtualModel] = MappingProxyType(
    dict(
        (
            # Where a vendor has a "-latest" alias it comes first; a well-known undated alias
            # (gpt-5) follows as a second chance for catalogues that lack the "-latest" one.
            _builtin(
                "coding-elite",
                "Strongest coding models first: Claude Opus, Claude Sonnet, GPT, Gemini Pro, DeepSeek.",
                "claude-opus-latest",
                "claude-sonnet-latest",
                "gpt-latest",
                "gpt-5",
                "gemini-pro-latest",
                "deepseek-reasoner",
            ),
            _builtin(
                "coding-fast",
                "Quick, inexpensive code help: Claude Haiku, GPT-5 mini, Gemini Flash, DeepSeek, Codestral.",
                "claude-haiku-latest",
                "gpt-5-mini",
                "gemini-flash-latest",
                "deepseek-chat",
                "codestral-latest",
            ),
            _builtin(
                "chat-smart",
                "Careful answers for reasoning, planning and open questions: Claude Sonnet, GPT, "
                "Gemini Pro, DeepSeek Reasoner.",
                "claude-sonnet-latest",
                "gpt-latest",
                "gpt-5",
                "gemini-pro-latest",
                "deepseek-reasoner",
            ),
            _builtin(
                "chat-fast",
                "Fast, cheap replies to short questions: GPT-5 mini, Gemini Flash, Claude Haiku, GPT-5 nano.",
                "gpt-5-mini",
                "gemini-flash-latest",
                "claude-haiku-latest",
                "gpt-5-nano",
                "deepseek-chat",
            ),
        )
    )
)
"""The built-in chains, written with aliases that follow each vendor's current model.

Entries missing from the live catalogue are skipped at resolution; ``puter-models`` shows what
each chain currently resolves to. A user chain with the same name replaces the built-in one
(see `merge_chains`).
"""


def merge_chains(user_chains: Mapping[str, VirtualModel]) -> dict[str, VirtualModel]:
    """The chains in effect: the built-ins, each replaced by a user chain of the same name.

    Replacing (not merging members) is deliberate: a user who redefines ``coding-elite`` wants
    exactly their list, and can copy the built-in entries if they want them too.
    """
    merged = dict(BUILTIN_CHAINS)
    merged.update(user_chains)
    return merged


# --- user chains from config.toml ---------------------------------------------------------------


class ChainConfigError(ValueError):
    """One or more ``[chains.*]`` tables in a config file are invalid.

    The message names the file, each bad chain and key, and what was expected, one problem per
    line, so the user can fix them all at once.
    """

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            message = f"{source}: {self.problems[0]}"
        else:
            message = f"{source}: {len(self.problems)} problems in [chains]:\n" + "\n".join(
                f"  - {problem}" for problem in self.problems
            )
        super().__init__(message)


_CHAIN_KEYS = ("models", "free_fallback", "description")
_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_BARE_TOML_KEY = re.compile(r"[A-Za-z0-9_-]+")
_EXAMPLE = '[chains.review] with models = ["claude-sonnet-latest", "gpt-5-nano"]'


def _describe(value: object) -> str:
    """How a wrong value reads in an error: its TOML type and, for scalars, the value."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value!r}" if value.strip() else "an empty string"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an empty list" if not value else "a list"
    return f"a {type(value).__name__}"


def _header(name: str) -> str:
    key = name if _BARE_TOML_KEY.fullmatch(name) else '"' + name.replace('"', '\\"') + '"'
    return f"[chains.{key}]"


def _check_name(name: str) -> str | None:
    if name.lower() == AUTO:
        return f'{_header(name)}: "auto" is reserved for the automatic router; pick another name'
    if not _SLUG.fullmatch(name):
        hint = f' (e.g. "{_suggest_slug(name)}")' if _suggest_slug(name) else ""
        return (
            f"{_header(name)}: a chain name must be a simple slug: lowercase letters, digits, "
            f'"-" and "_", starting with a letter or digit, at most 64 characters{hint}'
        )
    return None


def _suggest_slug(name: str) -> str:
    """A valid name close to ``name`` ("My Chain" -> "my-chain"), or "" if there is none."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.strip().lower()).strip("-_")[:64]
    return slug if slug and slug != AUTO else ""


def _check_body(name: str, body: Mapping[str, object]) -> list[str]:
    where = _header(name)
    if body and "models" not in body and all(isinstance(value, Mapping) for value in body.values()):
        # [chains.gpt.fast] is TOML for a table "fast" inside a table "gpt".
        return [
            f"{_header(name)[:-1]}.{key}]: a chain name cannot contain dots "
            f'(e.g. "{_suggest_slug(f"{name}-{key}")}")'
            for key in body
        ]
    problems: list[str] = []
    for key in body:
        if key in _CHAIN_KEYS:
            continue
        close = difflib.get_close_matches(key, _CHAIN_KEYS, n=1, cutoff=0.6)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        problems.append(f'{where}: unknown key "{key}"{hint}; allowed keys: {", ".join(_CHAIN_KEYS)}')

    if "models" not in body:
        problems.append(
            f"{where}: missing models: expected a non-empty list of model names, "
            'e.g. models = ["claude-sonnet-latest", "gpt-5-nano"]'
        )
    else:
        models = body["models"]
        if not isinstance(models, list | tuple):
            tip = f" (write models = [{models!r}])" if isinstance(models, str) and models.strip() else ""
            problems.append(
                f"{where}: models: expected a non-empty list of model names, got {_describe(models)}{tip}"
            )
        elif not models:
            problems.append(f"{where}: models: expected a non-empty list of model names, got an empty list")
        else:
            for index, entry in enumerate(models):
                if not isinstance(entry, str) or not entry.strip():
                    problems.append(
                        f"{where}: models[{index}]: expected a model name (a non-empty string), "
                        f"got {_describe(entry)}"
                    )

    if "free_fallback" in body and not isinstance(body["free_fallback"], bool):
        problems.append(
            f"{where}: free_fallback: expected true or false (unquoted), got {_describe(body['free_fallback'])}"
        )
    if "description" in body and not isinstance(body["description"], str):
        problems.append(f"{where}: description: expected a string, got {_describe(body['description'])}")
    return problems


def parse_user_chains(table: Mapping[str, object], *, source: str) -> dict[str, VirtualModel]:
    """Validate the ``[chains.*]`` tables of a config file and build their chains.

    Args:
        table: the value of the config's ``chains`` key (name -> table), as `tomllib` gives it.
        source: the config file's path, named in every error.

    Each chain is ``models`` (required: a non-empty list of non-empty strings, tried in order),
    ``free_fallback`` (optional bool, default true: the catalogue's free models come last) and
    ``description`` (optional string). The name must be a lowercase slug other than ``auto``.
    A chain with a built-in's name replaces that built-in (`merge_chains`).

    Raises:
        ChainConfigError: listing every problem found, each naming the chain and the key.
    """
    if not isinstance(table, Mapping):
        raise ChainConfigError(
            source,
            [f"[chains]: expected tables of chains such as {_EXAMPLE}, got {_describe(table)}"],
        )
    problems: list[str] = []
    chains: dict[str, VirtualModel] = {}
    for name, body in table.items():
        name_problem = _check_name(str(name))
        if name_problem:
            problems.append(name_problem)
        if not isinstance(body, Mapping):
            problems.append(
                f"{_header(str(name))}: expected a table with a models list, such as "
                f"{_EXAMPLE.replace('review', str(name))}, got {_describe(body)}"
            )
            continue
        body_problems = _check_body(str(name), body)
        problems.extend(body_problems)
        if name_problem or body_problems:
            continue
        models = body["models"]
        assert isinstance(models, list | tuple)  # checked above; narrows the type
        description = body.get("description", "")
        chains[str(name)] = VirtualModel(
            name=str(name),
            models=tuple(str(entry).strip() for entry in models),
            free_fallback=bool(body.get("free_fallback", True)),
            description=description.strip() if isinstance(description, str) else "",
            origin=source,
        )
    if problems:
        raise ChainConfigError(source, problems)
    return chains


# --- resolution ---------------------------------------------------------------------------------


class UnknownModelError(LookupError):
    """The name is neither a chain, ``auto``, nor a model in the catalogue.

    Attributes:
        name: what was asked for.
        closest: names that are close (chains first, then catalogue models), maybe empty.
    """

    def __init__(self, name: str, closest: Sequence[str]) -> None:
        self.name = name
        self.closest = list(closest)
        message = f"Unknown model {name!r}: no model in Puter's catalogue and no chain has that name."
        if self.closest:
            message += f" Did you mean: {', '.join(self.closest)}?"
        super().__init__(message)


@dataclass(frozen=True)
class Needs:
    """What a call needs of the model that answers it.

    Attributes:
        images: the call has image parts: only models whose catalogue entry lists image
            input can answer (an entry that says nothing is not known to take images, and a
            model sent an image it cannot read refuses the whole request).
        tools: the call offers tools or carries tool calls: models whose entry says they
            cannot call tools are left out; an entry that says nothing counts as able.
    """

    images: bool = False
    tools: bool = False

    def __bool__(self) -> bool:
        return self.images or self.tools

    def describe(self) -> str:
        """The abilities needed, as a phrase: "take images and call tools"."""
        wanted = [
            words for needed, words in ((self.images, "take images"), (self.tools, "call tools")) if needed
        ]
        return " and ".join(wanted)

    def missing(self, model: object) -> str | None:
        """What ``model`` lacks of these needs, as a phrase ("takes no images"), or None."""
        lacks: list[str] = []
        if self.images and "image" not in (getattr(model, "input_modalities", None) or ()):
            lacks.append("takes no images")
        if self.tools and getattr(model, "tool_call", None) is False:
            lacks.append("cannot call tools")
        return " and ".join(lacks) or None


class UnmetNeedsError(LookupError):
    """No model left for ``requested`` can do what the call needs.

    Attributes:
        requested: the model or chain asked for.
        needs: what the call needs.
        left_out: each model left out, with what it lacks.
    """

    def __init__(self, requested: str, chain: str | None, needs: Needs, left_out: Mapping[str, str]) -> None:
        self.requested = requested
        self.chain = chain
        self.needs = needs
        self.left_out = dict(left_out)
        if chain is None and len(self.left_out) == 1:
            model, lack = next(iter(self.left_out.items()))
            named = repr(requested) + ("" if requested.casefold() == model.casefold() else f" ({model})")
            message = (
                f"model {named} {lack} (so says Puter's catalogue): name a model that can {needs.describe()}"
            )
        else:
            listing = "; ".join(f"{model} {lack}" for model, lack in self.left_out.items())
            message = f"no model of {requested!r} can {needs.describe()}: " + (
                listing if listing else "none is in the catalogue today"
            )
        super().__init__(message)


@dataclass(frozen=True)
class ResolvedChain(Generic[M]):
    """The models to try for one request, in order.

    Attributes:
        requested: the name the user gave.
        chain: the chain that was used, or None for a concrete model.
        models: catalogue models to try, most preferred first, each once (deduplicated by id,
            the first occurrence keeps its place), the free tail included.
        skipped: chain entries that the catalogue does not know (retired or misspelt).
        free_tail: ids of the free models appended after the chain's own members.
        left_out: models the catalogue knows but that cannot do what the call needs (`Needs`),
            each with what it lacks.
    """

    requested: str
    chain: str | None
    models: list[M]
    skipped: list[str]
    free_tail: list[str]
    left_out: dict[str, str] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return [model.id for model in self.models]


def free_tail_order(models: Sequence[M]) -> list[M]:
    """The order in which free models are tried: largest context window first, then by id.

    A free model is the fallback for whatever the chain's models would have taken, so the
    larger windows are the ones most likely to fit the conversation; models whose context is
    unknown come after those with a known one. The id breaks ties, so the order is stable
    whatever order the catalogue lists them in.
    """

    def key(model: M) -> tuple[int, str]:
        context = getattr(model, "context", None)
        known = context if isinstance(context, int) and not isinstance(context, bool) else -1
        return (-known, model.id.casefold())

    return sorted(models, key=key)


def _chain_named(name: str, chains: Mapping[str, VirtualModel]) -> VirtualModel | None:
    chain = chains.get(name)
    if chain is not None:
        return chain
    folded = name.casefold()
    for key, candidate in chains.items():
        if key.casefold() == folded:
            return candidate
    return None


def _suggestions(
    name: str,
    catalogue: ModelCatalogue[CatalogueModel],
    chains: Mapping[str, VirtualModel],
    closest: Callable[[str], Sequence[str]] | None,
) -> list[str]:
    """Close names: chains (and ``auto``) by difflib, then the catalogue's own suggestions.

    Without a ``closest`` callable only the free models' ids can be compared: the protocol
    exposes no full listing, and the real catalogue brings its own ``closest``.
    """
    folded = name.casefold()
    chain_names = [*chains, AUTO]
    found = difflib.get_close_matches(folded, chain_names, n=2, cutoff=0.6)
    if closest is not None:
        found.extend(closest(name))
    else:
        ids = [model.id for model in catalogue.free_models()]
        found.extend(difflib.get_close_matches(name, ids, n=3, cutoff=0.6))
    return list(dict.fromkeys(found))[:5]


def resolve(
    requested: str,
    catalogue: ModelCatalogue[M],
    *,
    chains: Mapping[str, VirtualModel],
    fallback_to_free: bool,
    closest: Callable[[str], Sequence[str]] | None = None,
    needs: Needs = Needs(),
) -> ResolvedChain[M]:
    """The models to try for ``requested``, in order.

    Args:
        requested: a chain name (case-insensitive) or a model id/alias/puterId. Chains are
            looked up first, so a user chain may shadow a model name on purpose.
        catalogue: the live catalogue.
        chains: the chains in effect (`merge_chains`).
        fallback_to_free: the global switch (config ``fallback_to_free``, or the request's
            ``fallback`` argument, already combined by the caller). When False no free tail is
            added, whatever the chain says.
        closest: suggests names for an unknown model (e.g. the catalogue's ``closest``).
        needs: what the call needs (images, tools); models that cannot do it are left out
            (``left_out``), from the chain and from the free tail alike.

    A chain gives its members found in the catalogue (the rest go to ``skipped``), then, when
    both the chain's ``free_fallback`` and ``fallback_to_free`` allow it, the free models in
    `free_tail_order`. A concrete model gives itself, then the free models unless switched off.
    The result may be empty (a chain whose members are all gone, without free fallback): the
    caller reports that, with ``skipped`` as the explanation.

    Raises:
        UnknownModelError: ``requested`` is neither a chain nor a model in the catalogue.
        UnmetNeedsError: the model named cannot do what the call needs (the free tail does
            not stand in for it: the caller named that model), or no model of the chain can.
        ValueError: ``requested`` is empty or ``auto`` (use `resolve_auto`).
    """
    name = requested.strip()
    if not name:
        raise ValueError("no model given: name a model, a chain or auto")
    if name.casefold() == AUTO:
        raise ValueError("auto depends on the message: resolve it with resolve_auto()")

    chain = _chain_named(name, chains)
    found: list[M] = []
    skipped: list[str] = []
    if chain is not None:
        for entry in chain.models:
            model = catalogue.find(entry)
            if model is None:
                skipped.append(entry)
            else:
                found.append(model)
        with_free = fallback_to_free and chain.free_fallback
    else:
        model = catalogue.find(name)
        if model is None:
            raise UnknownModelError(name, _suggestions(name, catalogue, chains, closest))
        found.append(model)
        with_free = fallback_to_free

    models: list[M] = []
    seen: set[str] = set()
    left_out: dict[str, str] = {}

    def keep(model: M) -> bool:
        if model.id.casefold() in seen:
            return False
        seen.add(model.id.casefold())
        lack = needs.missing(model) if needs else None
        if lack is not None:
            left_out[model.id] = lack
            return False
        return True

    models.extend(model for model in found if keep(model))
    if chain is None and left_out:
        raise UnmetNeedsError(name, None, needs, left_out)
    free_tail: list[str] = []
    if with_free:
        for model in free_tail_order(catalogue.free_models()):
            if keep(model):
                models.append(model)
                free_tail.append(model.id)
    if not models and left_out:
        raise UnmetNeedsError(name, chain.name if chain is not None else None, needs, left_out)
    return ResolvedChain(
        requested=requested,
        chain=chain.name if chain is not None else None,
        models=models,
        skipped=skipped,
        free_tail=free_tail,
        left_out=left_out,
    )


def resolve_auto(
    last_user_message: str,
    catalogue: ModelCatalogue[M],
    *,
    chains: Mapping[str, VirtualModel],
    fallback_to_free: bool,
    router: AutoRouter | None = None,
    needs: Needs = Needs(),
) -> tuple[AutoChoice, ResolvedChain[M]]:
    """Resolve ``auto``: choose a chain from the message, then resolve that chain.

    The chain is looked up in ``chains`` first (so a user's override of ``chat-smart`` is what
    ``auto`` uses), and in the built-ins if the router names one that ``chains`` lacks.
    ``needs`` filters the chain's models as in `resolve`.

    Raises:
        UnmetNeedsError: no model of the chosen chain can do what the call needs.
    """
    choice = (router or _ROUTER).choose(last_user_message)
    effective = chains if _chain_named(choice.chain, chains) is not None else merge_chains(chains)
    resolved = resolve(
        choice.chain, catalogue, chains=effective, fallback_to_free=fallback_to_free, needs=needs
    )
    return choice, ResolvedChain(
        requested=AUTO,
        chain=resolved.chain,
        models=resolved.models,
        skipped=resolved.skipped,
        free_tail=resolved.free_tail,
        left_out=resolved.left_out,
    )


_ROUTER = AutoRouter()


def resolve_all(
    catalogue: ModelCatalogue[M],
    *,
    chains: Mapping[str, VirtualModel],
    fallback_to_free: bool,
) -> dict[str, ResolvedChain[M]]:
    """Every chain resolved against the catalogue, for ``puter-models``'s list of virtual models."""
    return {
        name: resolve(name, catalogue, chains=chains, fallback_to_free=fallback_to_free) for name in chains
    }
