"""What a generation cost: tokens times the price table in settings.DWC_MODEL_PRICES.

Prices are US dollars per million tokens, per provider and model: {"openai": {"gpt-4o-mini":
{"input": 0.15, "output": 0.6}}}. A model matches its own entry or, failing that, the longest entry
its name starts with, so dated snapshots ("gpt-4o-mini-2024-07-18") find their family's price.
Unknown models cost 0 (the template provider always does).
"""

from decimal import Decimal

from django.conf import settings

PER_TOKENS = Decimal(1_000_000)


def price(provider: str, model: str) -> dict | None:
    table = settings.DWC_MODEL_PRICES.get(provider, {})
    if model in table:
        return table[model]
    matches = [name for name in table if model.startswith(name)]
    return table[max(matches, key=len)] if matches else None


def cost(provider: str, model: str, tokens_in: int, tokens_out: int) -> Decimal:
    entry = price(provider, model)
    if entry is None:
        return Decimal(0)
    total = Decimal(str(entry.get("input", 0))) * tokens_in + Decimal(str(entry.get("output", 0))) * tokens_out
    return (total / PER_TOKENS).quantize(Decimal("0.000001"))
