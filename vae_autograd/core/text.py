"""How a share, a bound or a probability reads in words: the percent formatters, a value rounded up
for "at most", the probability wording and what a posterior's window holds, shared by figure titles
and report sentences so that the two never disagree."""
import math


def percent(share):
    """A share as a percentage with two significant digits and no exponent.

    0.0045 -> '0.45%', 0.0123 -> '1.2%', 0.5 -> '50%', 0.998 -> 'above 99%', 1 -> '100%', 0 -> '0%',
    2e-6 -> 'below 0.001%': never 0% or 100% for a share in between.
    """
    value = 100 * share
    if 0 < value < 0.001:
        return "below 0.001%"
    if 99.5 <= value < 100:
        return "above 99%"
    return f"{value:.0f}%" if value >= 9.95 else f"{value:.2g}%"


def table_percent(share):
    """A share for a table cell, to one decimal ('9.2%'), but never '0.0%' for a share above 0 nor '100.0%' for
    one below 1: those take percent's two significant digits ('0.01%', 'below 0.001%') or 'above 99.9%'.
    0 is '0%' and 1 '100%'."""
    if share in (0, 1):
        return f"{share:.0%}"
    text = f"{share:.1%}"
    if text == "0.0%":
        return percent(share)
    return "above 99.9%" if text == "100.0%" else text


def share_below(share, limit):
    """A share known to be below limit, for a table or a sentence: table_percent(share), or 'under' limit
    where that would print limit or more (0.00996 below 0.01 is 'under 1%', not '1.0%')."""
    text = table_percent(share)
    return f"under {percent(limit)}" if share < limit <= float(text.split()[-1].rstrip("%")) / 100 else text


def pieces_share(shares, limit):
    """The mass of separate pieces too small to count as modes (shares, each below limit), as figures and report
    print it: one piece's share_below, or several's table_percent of their sum."""
    return share_below(shares[0], limit) if len(shares) == 1 else table_percent(sum(shares))


def at_most(value, digits=2):
    """value rounded up, never down, to digits significant digits ("3.1e-05" for 3.05e-05): what
    a sentence saying "at most" may print."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    exponent = math.floor(math.log10(abs(value))) - digits + 1
    rounded = math.ceil(value / 10.0**exponent * (1 - 1e-12)) * 10.0**exponent  # 3e-5 / 1e-6 is 30.000000000000004
    if abs(rounded) < 1e-3 or abs(rounded) >= 1e5:
        return f"{rounded:.{digits - 1}e}"
    return f"{rounded:.{max(0, -exponent)}f}"


def probability(p):
    """A probability in words that never rounds to a certainty it is not: 0.9997 -> 'above 0.99'."""
    return "above 0.99" if p > 0.99 else f"{p:.2g}"


# A window holds "the whole posterior" when at most this share of the posterior lies at its edge, or
# outside it (study.posterior.whole_posterior_windows): then no KL or contour computed on it misses the rest.
WHOLE_POSTERIOR_SHARE = 1e-3


def window_holds(*shares):
    """What windows hold, given the shares (lists, one per window) of each posterior at their edges
    and outside them: 'the whole posterior' if none is above WHOLE_POSTERIOR_SHARE, else 'most of the
    posterior' while every share is below one half, else 'part of the posterior'."""
    largest = max(max(share) for share in shares)
    if largest <= WHOLE_POSTERIOR_SHARE:
        return "the whole posterior"
    return "most of the posterior" if largest < 0.5 else "part of the posterior"


# The per-window shares of a posterior that part 6's summaries hold: at a window's edge, outside it, and (6.2) of
# the whole image's p(z|x), drawn on the same windows, outside them.
WINDOW_SHARES = ("edge_mass", "mass_outside_window", "whole_image_outside_window")


def held_by(*summaries):
    """window_holds of every per-window share (WINDOW_SHARES) that each summary (part 6's) holds: what figures
    and report alike say those windows hold."""
    return window_holds(*(summary[key] for summary in summaries for key in WINDOW_SHARES if key in summary))
