"""Cost per record from a price table kept as data (``harness/prices.toml``), extended by a user's TOML file.

Prices are USD per million tokens, keyed by model spec or an fnmatch pattern (``openai:gpt-4o-*``):
an exact key wins, then the longest matching pattern.
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

    def cost(self, tokens_in: int | None, tokens_out: int | None) -> float | None:
        if tokens_in is None and tokens_out is None:
            return None
        return ((tokens_in or 0) * self.input_per_million + (tokens_out or 0) * self.output_per_million) / 1e6


def _parse(table: dict, source: str) -> dict[str, Price]:
    prices = {}
    for key, entry in table.items():
        try:
            prices[key] = Price(float(entry["input"]), float(entry["output"]))
        except (TypeError, KeyError, ValueError):
            raise HarnessError(
                f"{source}: price entry {key!r} needs numeric `input` and `output` (USD per million tokens)"
            ) from None
    return prices


def load_prices(override: Path | None = None) -> dict[str, Price]:
    """The packaged table, updated by ``override`` when given."""
    packaged = resources.files("harness").joinpath("prices.toml").read_text(encoding="utf-8")
    prices = _parse(tomllib.loads(packaged), "harness/prices.toml")
    if override is not None:
        try:
            data = tomllib.loads(Path(override).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise HarnessError(f"{override}: price file not found") from None
        except tomllib.TOMLDecodeError as error:
            raise HarnessError(f"{override}: not valid TOML ({error})") from None
        prices.update(_parse(data, str(override)))
    return prices


def price_for(spec: str, prices: dict[str, Price]) -> Price | None:
    """The price of a model spec: an exact key, else the longest matching pattern."""
    if spec in prices:
        return prices[spec]
    matches = [key for key in prices if fnmatch.fnmatchcase(spec, key)]
    return prices[max(matches, key=len)] if matches else None
