"""Cost per record from a price table kept as data (``harness/prices.toml``), extended by a user's TOML file.

Prices are USD per million tokens, keyed by model spec or an fnmatch pattern (``openai:gpt-4o-*``):
an exact key wins, then the longest matching pattern. ``[batch_discount]`` gives per provider (the spec's
plugin) the share its batch API takes off the price of a request (0.5: half price); an entry's own
``batch_discount`` wins.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from harness.errors import HarnessError


@dataclass(frozen=True)
class Price:
    input_per_million: float
    output_per_million: float
    batch_discount: float = 0.0  # the share taken off for a request answered by a provider batch

    def cost(self, tokens_in: int | None, tokens_out: int | None, batch: bool = False) -> float | None:
        if tokens_in is None and tokens_out is None:
            return None
        full = ((tokens_in or 0) * self.input_per_million + (tokens_out or 0) * self.output_per_million) / 1e6
        return full * (1.0 - self.batch_discount) if batch else full


DISCOUNT_TABLE = "batch_discount"


def _parse(table: dict, source: str, discounts: dict[str, float]) -> dict[str, Price]:
    """The price entries of one file; ``discounts``: the batch discounts per provider known so far (updated)."""
    for provider, share in (table.get(DISCOUNT_TABLE) or {}).items():
        if not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise HarnessError(f"{source}: [{DISCOUNT_TABLE}] {provider} = {share!r}: expected a share from 0 to 1")
        discounts[provider] = float(share)
    prices = {}
    for key, entry in table.items():
        if key == DISCOUNT_TABLE:
            continue
        try:
            share = float(entry.get(DISCOUNT_TABLE, discounts.get(key.split(":")[0], 0.0)))
            prices[key] = Price(float(entry["input"]), float(entry["output"]), share)
        except (TypeError, KeyError, ValueError, AttributeError):
            raise HarnessError(
                f"{source}: price entry {key!r} needs numeric `input` and `output` (USD per million tokens)"
            ) from None
    return prices


def load_prices(override: Path | None = None) -> dict[str, Price]:
    """The packaged table, updated by ``override`` when given."""
    packaged = resources.files("harness").joinpath("prices.toml").read_text(encoding="utf-8")
    discounts: dict[str, float] = {}
    prices = _parse(tomllib.loads(packaged), "harness/prices.toml", discounts)
    if override is not None:
        try:
            data = tomllib.loads(Path(override).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise HarnessError(f"{override}: price file not found") from None
        except tomllib.TOMLDecodeError as error:
            raise HarnessError(f"{override}: not valid TOML ({error})") from None
        prices.update(_parse(data, str(override), discounts))
    return prices


def price_for(spec: str, prices: dict[str, Price]) -> Price | None:
    """The price of a model spec: an exact key, else the longest matching pattern."""
    if spec in prices:
        return prices[spec]
    matches = [key for key in prices if fnmatch.fnmatchcase(spec, key)]
    return prices[max(matches, key=len)] if matches else None
