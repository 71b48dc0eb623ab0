"""Number and list formatting shared by every sentence of the report."""


def _percent(fraction):
    """0.0123 -> '1.2%', 0.5 -> '50%', 0 -> '0%': two significant digits."""
    return f"{100 * fraction:.2g}%"


def _probability(p):
    """A probability in words that never rounds to a certainty it is not: 0.9997 -> 'above 0.99'."""
    return "above 0.99" if p > 0.99 else f"{p:.2g}"


NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}


def percent(share):
    return f"{100 * share:.0f}%" if share >= 0.01 else f"{100 * share:.1f}%"


def article(number):
    return "an" if str(number).startswith("8") else "a"


def _number(value):
    """A ratio for a sentence: three significant digits, no exponent below 10^5."""
    return f"{value:,.3g}" if value < 1e5 else f"{value:.2e}"


def _join(items):
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def span(values, digits=2):
    """'a-b' for the smallest and largest of values, or 'a' when they round alike."""
    low, high = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
    return low if low == high else f"{low}-{high}"


def panel_list(indices):
    """'panel 2' or 'panels 1 and 3' (1-based, as the figure reads left to right)."""
    names = [str(i + 1) for i in indices]
    return ("panel " if len(names) == 1 else "panels ") + (
        names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1])


def table_row(*cells):
    """One row of a markdown table."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def with_se(row, key, digits):
    """row[key] ± row[key + "_se"], both with the given digits."""
    return f"{row[key]:.{digits}f} ± {row[key + '_se']:.{digits}f}"
