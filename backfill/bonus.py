"""The SUN-ES money: the "documents de sortie" (D1) amount, the window's rate, the history bonus.

Every figure comes from the programme's table (seed `000_…`, "Répartition du financement à
l'usage" and "Indicateurs d'usage volets 1 et 2"): the D1 amount grows linearly with the 2019
combined activity inside the establishment's category, between the category's minimum and
maximum (the maximum of one category is the minimum of the next, so the amount is continuous);
each measurement window pays a share of it; the history bonus is 10 % of the D1 amount received,
exists from S2 2022 on (DS1.4 is "/" in the first window), and needs DS1.1 and DS1.2 met.

Amounts are exact (`Decimal`), rounded to the cent only when shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from backfill.errors import BackfillError

__all__ = [
    "BONUS_SHARE",
    "CATEGORIES",
    "MAX_ACTIVITY",
    "WINDOWS",
    "BonusError",
    "Category",
    "Condition",
    "Estimate",
    "Window",
    "category_of",
    "d1_amount",
    "estimate",
    "window_named",
]


class BonusError(BackfillError):
    """An activity or a window outside the programme's table (exit 2: fix the command line)."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class Category:
    """One row of the table: activity from `low` to `high`, D1 from `amount_min` to `amount_max` (€, at 100 %)."""

    name: str
    low: int
    high: int
    amount_min: int
    amount_max: int


CATEGORIES: tuple[Category, ...] = (
    Category("A", 0, 7_000, 18_000, 24_000),
    Category("B", 7_000, 22_500, 24_000, 48_000),
    Category("C", 22_500, 230_000, 48_000, 150_000),
    Category("D", 230_000, 1_600_000, 150_000, 320_000),
)
MAX_ACTIVITY = CATEGORIES[-1].high
BONUS_SHARE = Fraction(1, 10)


@dataclass(frozen=True, slots=True)
class Window:
    """A measurement window: the share of the D1 amount it pays and its targets (fractions)."""

    name: str
    d1_rate: Fraction
    ds11_target: Fraction  # discharge letters (LDL)
    ds12_target: Fraction  # discharge prescriptions
    ds14_target: Fraction | None  # history of the DPI: None where the table says "/"


WINDOWS: tuple[Window, ...] = (
    Window("S1-2022", Fraction(100, 100), Fraction(49, 100), Fraction(40, 100), None),
    Window("S2-2022", Fraction(90, 100), Fraction(59, 100), Fraction(48, 100), Fraction(1, 2)),
    Window("S1-2023", Fraction(85, 100), Fraction(64, 100), Fraction(59, 100), Fraction(1, 2)),
    Window("S2-2023", Fraction(80, 100), Fraction(69, 100), Fraction(63, 100), Fraction(1, 2)),
)


def window_named(name: str) -> Window:
    """The window called `name` (case-insensitive, `S2-2022` or `S2 2022`), or a BonusError."""
    wanted = name.strip().upper().replace(" ", "-")
    for window in WINDOWS:
        if window.name == wanted:
            return window
    accepted = ", ".join(w.name for w in WINDOWS)
    raise BonusError(f"--window {name!r} is not a measurement window; accepted: {accepted}")


def category_of(activity: int | Fraction) -> Category:
    """The category of an activity; a boundary value belongs to the lower one (same amount either way)."""
    if activity < 0 or activity > MAX_ACTIVITY:
        raise BonusError(
            f"--activity {activity} is outside the programme's table: the 2019 combined activity "
            f"must be between 0 and {MAX_ACTIVITY:_}".replace("_", " ")
        )
    for category in CATEGORIES:
        if activity <= category.high:
            return category
    raise AssertionError("unreachable: MAX_ACTIVITY is the last category's high")


def d1_amount(activity: int | Fraction) -> Fraction:
    """The D1 amount at 100 % for a 2019 combined activity, exact."""
    c = category_of(activity)
    span = Fraction(activity - c.low, c.high - c.low)
    return c.amount_min + (c.amount_max - c.amount_min) * span


@dataclass(frozen=True, slots=True)
class Condition:
    """One usage target and where the establishment stands (`value` None: not measured)."""

    indicator: str
    target: Fraction
    value: Fraction | None

    @property
    def met(self) -> bool | None:
        return None if self.value is None else self.value >= self.target


@dataclass(frozen=True, slots=True)
class Estimate:
    activity: int
    category: Category
    window: Window
    d1_full: Fraction  # at 100 %
    d1: Fraction  # times the window's rate
    history_bonus: Fraction | None  # None: the bonus does not exist in this window
    conditions: tuple[Condition, ...]  # DS1.1, DS1.2 (the bonus' prerequisites), then DS1.4

    @property
    def bonus_payable(self) -> bool | None:
        """True/False when every condition is measured, None when one is not."""
        if self.history_bonus is None:
            return False
        states = [c.met for c in self.conditions]
        if any(s is False for s in states):
            return False
        return None if any(s is None for s in states) else True


def estimate(
    activity: int,
    window: Window,
    *,
    ds11: Fraction | None = None,
    ds12: Fraction | None = None,
    ds14: Fraction | None = None,
) -> Estimate:
    """The amounts for `activity` in `window`, and the bonus' conditions with the measured values."""
    category = category_of(activity)
    full = d1_amount(activity)
    d1 = full * window.d1_rate
    bonus = None if window.ds14_target is None else d1 * BONUS_SHARE
    conditions = [
        Condition("DS1.1", window.ds11_target, ds11),
        Condition("DS1.2", window.ds12_target, ds12),
    ]
    if window.ds14_target is not None:
        conditions.append(Condition("DS1.4", window.ds14_target, ds14))
    return Estimate(activity, category, window, full, d1, bonus, tuple(conditions))


def euros(amount: Fraction) -> Decimal:
    """An exact amount rounded to the cent, for display."""
    value = Decimal(amount.numerator) / Decimal(amount.denominator)
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


def format_euros(amount: Fraction) -> str:
    """`48 000,00 €` the way the programme's documents write amounts."""
    text = f"{euros(amount):,.2f}".replace(",", " ").replace(".", ",")
    return f"{text} €"
