"""Charts drawn on the server as SVG (CONTRACT §9: no script). A chart here is only its
geometry; the template (pages/console/_bar_chart.html) writes the markup, with a title,
a description and a text label on every bar, and pages.css gives it its colours (the CSP
allows no inline style)."""

from dataclasses import dataclass

# In the viewBox's units: the labels' column, the bars' longest length, one row's height.
LABEL_WIDTH = 150
BAR_SPACE = 380
VALUE_SPACE = 60
ROW_HEIGHT = 30
BAR_HEIGHT = 20
MARGIN = 10


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    # The bar's top and length; its text sits on the middle line.
    top: float
    length: float

    @property
    def middle(self) -> float:
        return self.top + BAR_HEIGHT / 2


@dataclass(frozen=True)
class BarChart:
    """Horizontal bars, one per (label, value), the longest as long as BAR_SPACE."""

    bars: tuple[Bar, ...]
    width: int = LABEL_WIDTH + BAR_SPACE + VALUE_SPACE
    label_end: int = LABEL_WIDTH - MARGIN
    bar_start: int = LABEL_WIDTH
    bar_height: int = BAR_HEIGHT
    value_gap: int = 6

    @property
    def height(self) -> int:
        return MARGIN * 2 + ROW_HEIGHT * len(self.bars)


def bar_chart(rows: list[tuple[str, int]]) -> BarChart:
    largest = max((value for _, value in rows), default=0)
    return BarChart(bars=tuple(
        Bar(label=label, value=value,
            top=MARGIN + n * ROW_HEIGHT + (ROW_HEIGHT - BAR_HEIGHT) / 2,
            # Every bar of a non-zero value can be seen; a zero is none.
            length=max(value / largest * BAR_SPACE, 2) if value else 0)
        for n, (label, value) in enumerate(rows)))
