"""An account's state id and the tier it is paced by: one rule each, used by every part."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from puter_mcp.accounts.identity import (
    account_id,
    choose_tier,
    env_account_id,
    every_account_id,
)
from puter_mcp.accounts.store import Account
from puter_mcp.puter.client import WhoAmI
from puter_mcp.puter.tiers import STATED_TIERS, Tier
from puter_mcp.settings import Settings

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJlLWZvci10ZXN0cw"


def saved(*, tier: str | None = None, override: str | None = None, uuid: str | None = "u-1") -> Account:
    account = Account.create(username="alice", token=TOKEN, uuid=uuid, tier=tier)
    return account if override is None else account.model_copy(update={"tier_override": Tier(override)})


# --- tier precedence ----------------------------------------------------------------------------


def test_the_config_wins_over_every_other_voice() -> None:
    choice = choose_tier(configured=Tier.PAID, account=saved(tier="free", override="temp"), learned=Tier.TEMP)
    assert (choice.tier, choice.source, choice.set_by_user) == (Tier.PAID, "config", True)


def test_the_override_wins_over_sign_in_and_puter() -> None:
    choice = choose_tier(account=saved(tier="free", override="paid"), learned=Tier.TEMP)
    assert (choice.tier, choice.source, choice.set_by_user) == (Tier.PAID, "override", True)


def test_the_saved_tier_wins_over_what_puter_said_to_this_process() -> None:
    choice = choose_tier(account=saved(tier="free"), learned=Tier.PAID)
    assert (choice.tier, choice.source, choice.set_by_user) == (Tier.FREE, "sign-in", False)


def test_puter_is_heard_only_when_nobody_else_spoke() -> None:
    assert choose_tier(account=saved(), learned=Tier.PAID).tier is Tier.PAID
    assert choose_tier(learned=Tier.TEMP).source == "puter"  # the PUTER_AUTH_TOKEN account


def test_with_no_voice_the_tier_is_unknown_and_not_known() -> None:
    for choice in (choose_tier(), choose_tier(account=saved()), choose_tier(learned=Tier.UNKNOWN)):
        assert (choice.tier, choice.source, choice.known) == (Tier.UNKNOWN, "none", None)


def test_the_account_record_follows_the_same_rule() -> None:
    assert saved(tier="free", override="paid").effective_tier is Tier.PAID
    assert saved(tier="temp").effective_tier is Tier.TEMP
    assert saved().effective_tier is None


# --- one tier type --------------------------------------------------------------------------------


def test_every_record_accepts_the_stated_tiers_as_plain_strings() -> None:
    for name in ("paid", "free", "temp"):
        assert Account.create(username="a", token=TOKEN, tier=name).tier is Tier(name)
        assert WhoAmI(username="a", tier=name).tier is Tier(name)  # pyright: ignore[reportArgumentType]
        assert Settings.model_validate({"account_tiers": {"main": name}}).account_tiers["main"] is Tier(name)
    assert {str(tier) for tier in STATED_TIERS} == {"paid", "free", "temp"}


@pytest.mark.parametrize("bad", ["unknown", "gold", "", 3])
def test_nobody_may_state_the_unknown_tier_or_another_name(bad: object) -> None:
    for build in (
        lambda: Account.model_validate({"username": "a", "token": TOKEN, "tier": bad}),
        lambda: WhoAmI.model_validate({"username": "a", "tier": bad}),
        lambda: Settings.model_validate({"account_tiers": {"main": bad}}),
    ):
        with pytest.raises(ValidationError, match="must be one of paid, free, temp"):
            build()


# --- state ids ------------------------------------------------------------------------------------


def test_an_account_is_keyed_by_its_uuid_else_by_its_username() -> None:
    assert account_id(saved(uuid="u-1")) == "u-1"
    assert account_id(saved(uuid=None)) == "user:alice"


def test_sign_in_clears_every_id_the_account_was_ever_keyed_by() -> None:
    assert every_account_id(saved(uuid="u-1")) == ("u-1", "user:alice")
    assert every_account_id(saved(uuid=None)) == ("user:alice",)


def test_the_environment_token_is_keyed_by_a_digest_never_the_token() -> None:
    state_id = env_account_id(TOKEN)
    assert state_id.startswith("env:")
    assert TOKEN not in state_id
    assert state_id == env_account_id(TOKEN)
    assert state_id != env_account_id(TOKEN + "x")
