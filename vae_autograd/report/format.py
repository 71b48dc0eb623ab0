"""Number and list formatting for the report's sentences and tables (shares, bounds and probabilities:
core.text, which the figure titles share)."""


NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
                9: "nine", 10: "ten"}


def count(n):
    """A count for a sentence: 'four' for 4, '12' for 12."""
    return NUMBER_WORDS.get(n, str(n))


def article(number):
    """'an' before a number read with a vowel sound (8, 80, ...), else 'a'."""
    return "an" if str(number).startswith("8") else "a"


def number(value):
    """A ratio for a sentence: three significant digits, no exponent below 10^5."""
    return f"{value:,.3g}" if value < 1e5 else f"{value:.2e}"


def join(items):
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def span(values, digits=2):
    """'a-b' for the smallest and largest of values, or 'a' when they round alike."""
    low, high = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
    return low if low == high else f"{low}-{high}"


def panel_list(indices):
    """'panel 2' or 'panels 1 and 3' (1-based, as the figure reads left to right)."""
    return ("panel " if len(indices) == 1 else "panels ") + join(str(i + 1) for i in indices)


def table_row(*cells):
    """One row of a markdown table."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def with_se(row, key, digits):
    """row[key] ± row[key + "_se"], both with the given digits."""
    return f"{row[key]:.{digits}f} ± {row[key + '_se']:.{digits}f}"


def plural(n, noun):
    """'1 image', '2 images', '1,000 images': a count and its noun, in agreement."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def fixed(value, digits=2):
    """value with digits decimals, as a sentence prints it, never '-0.00' (a negative that rounds to 0)."""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def printed(value, digits=2):
    """The number a sentence shows for value at digits decimals: what its claims are decided on."""
    return float(fixed(value, digits))


def nats_apart(difference, digits=2):
    """Where a number lies against another, difference = it - the other, as a sentence prints it:
    '1.23 nats above', '1.23 nats below', or 'level (to 2 decimals) with' when the difference prints as 0
    at digits decimals (never '0.00 nats below')."""
    if printed(abs(difference), digits) == 0:
        return f"level (to {digits} decimals) with"
    return f"{fixed(abs(difference), digits)} nats {'above' if difference > 0 else 'below'}"
