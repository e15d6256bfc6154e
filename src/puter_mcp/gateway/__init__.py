"""The HTTP gateway (placeholder until the skeleton lands)."""
