"""How a share or a probability reads in words: the one percent formatter, the probability
wording and what a posterior's window holds, shared by figure titles and report sentences so
that the two never disagree."""


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


def probability(p):
    """A probability in words that never rounds to a certainty it is not: 0.9997 -> 'above 0.99'."""
    return "above 0.99" if p > 0.99 else f"{p:.2g}"


# A window holds "the whole posterior" when at most this share of the posterior lies at its edge, or
# outside it on a coarse grid of the plane: then no KL or contour computed on it shows the rest.
WHOLE_POSTERIOR_SHARE = 1e-3


def window_holds(*shares):
    """What windows hold, given the shares (lists, one per window) of each posterior at their edges
    and outside them: 'the whole posterior' if none is above WHOLE_POSTERIOR_SHARE, else 'most of the
    posterior' while every share is below one half, else 'part of the posterior'."""
    largest = max(max(share) for share in shares)
    if largest <= WHOLE_POSTERIOR_SHARE:
        return "the whole posterior"
    return "most of the posterior" if largest < 0.5 else "part of the posterior"
