"""What `status`, `accounts` and `chat` print for people."""

from __future__ import annotations

from puter_mcp.models import AccountsOverview, CooldownInfo


def test_a_cooldown_without_an_end_reads_as_one_phrase() -> None:
    overview = AccountsOverview(
        model_cooldowns=[CooldownInfo(scope="model", model="gpt-x", kind="model_down")]
    )
    text = overview.display_text()
    assert "gpt-x: model_down until further notice" in text
    assert "until until" not in text


def test_a_cooldown_with_an_end_names_the_time_once() -> None:
    line = CooldownInfo(scope="model", model="gpt-x", kind="rate_limited", until=0.0).describe()
    assert line == "gpt-x: rate_limited until 00:00:00 UTC"
