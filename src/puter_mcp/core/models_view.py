"""Listing models: a page of the catalogue, or the virtual models with their members today."""

from __future__ import annotations

from collections.abc import Mapping

from puter_mcp.core.calls import ModelsQuery
from puter_mcp.core.catalogue_cache import CatalogueCache
from puter_mcp.core.results import ModelRecord, ModelsPage, VirtualModelRecord
from puter_mcp.puter.catalogue import Catalogue, ModelInfo
from puter_mcp.routing import chains

__all__ = ["list_models", "model_record", "virtual_models"]


async def list_models(
    query: ModelsQuery,
    cache: CatalogueCache,
    every_chain: Mapping[str, chains.VirtualModel],
    *,
    fallback_to_free: bool,
    sandbox: bool = False,
) -> ModelsPage:
    entry = await cache.entry()
    catalogue = entry.catalogue
    if query.virtual:
        return ModelsPage(
            total=len(every_chain),
            offset=0,
            limit=query.limit,
            virtual_models=virtual_models(catalogue, every_chain, fallback_to_free=fallback_to_free),
            stale=entry.stale,
            sandbox=sandbox,
        )
    found = catalogue.search(
        query.query,
        provider=query.provider,
        tool_call=query.tool_calling,
        image_input=query.image_input,
        free=query.free,
    )
    page = found[query.offset : query.offset + query.limit]
    return ModelsPage(
        total=len(found),
        offset=query.offset,
        limit=query.limit,
        models=[model_record(model) for model in page],
        stale=entry.stale,
        sandbox=sandbox,
    )


def virtual_models(
    catalogue: Catalogue, every_chain: Mapping[str, chains.VirtualModel], *, fallback_to_free: bool
) -> list[VirtualModelRecord]:
    """Each virtual model with the members the catalogue has today (and those it skipped)."""
    resolved_all = chains.resolve_all(catalogue, chains=every_chain, fallback_to_free=fallback_to_free)
    records = []
    for name, chain in every_chain.items():
        resolved = resolved_all[name]
        records.append(
            VirtualModelRecord(
                name=name,
                description=chain.description,
                members=[model.id for model in resolved.models],
                skipped=list(resolved.skipped),
                free_fallback=chain.free_fallback and fallback_to_free,
            )
        )
    return records


def model_record(model: ModelInfo) -> ModelRecord:
    return ModelRecord(
        id=model.id,
        provider=model.provider,
        name=model.name,
        context=model.context,
        max_output=model.max_output,
        input_usd_per_mtok=model.input_usd_per_mtok,
        output_usd_per_mtok=model.output_usd_per_mtok,
        free=model.free,
        input_modalities=list(model.input_modalities),
        output_modalities=list(model.output_modalities),
        tool_calling=model.tool_call,
        subscriber_only=model.subscriber_only,
        aliases=list(model.aliases)[:6],
    )
