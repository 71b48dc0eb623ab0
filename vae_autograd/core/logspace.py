"""Stable log-space primitives every layer uses: softplus, sigmoid, logsumexp and erf, each with
its exact gradient for autograd."""
import math

import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp, primitive


@primitive
def softplus(a):
    """log(1 + exp(a)), exact for any finite a: max(a, 0) + log1p(exp(-|a|)).

    An array is computed in two arrays instead of six (each step writes into the first): the
    training step's and the decoders' largest arrays pass through here.
    """
    out = np.abs(a, dtype=np.result_type(a, 0.0))
    if np.ndim(out) == 0:  # a scalar: nothing to write into
        return np.maximum(a, 0.0) + np.log1p(np.exp(-out))
    np.negative(out, out=out)
    np.exp(out, out=out)
    np.log1p(out, out=out)
    out += np.maximum(a, 0.0)
    return out


# d softplus / da = sigmoid(a) = exp(a - softplus(a)); reusing the answer costs one exp.
defvjp(softplus, lambda ans, a: lambda g: g * anp.exp(a - ans))


def sigmoid(a):
    """1 / (1 + exp(-a)) without overflow: exp(-softplus(-a))."""
    return anp.exp(-softplus(-a))


@primitive
def erf(x):
    """The error function, elementwise, to double precision (math.erf); x any shape -> float64."""
    return np.vectorize(math.erf, otypes=[float])(x)


# d erf / dx = 2 / sqrt(pi) exp(-x^2)
defvjp(erf, lambda ans, x: lambda g: g * 1.1283791670955126 * anp.exp(-anp.square(x)))


@primitive
def logsumexp(a, axis=None, keepdims=False):
    """log(sum(exp(a))) along axis without overflow or underflow.

    Shifts by the maximum, so [1000, 1000] gives 1000 + log 2 and [-1000, -1000] gives
    -1000 + log 2; -inf entries contribute nothing; all -inf gives -inf. Integers and
    booleans are summed as float64 (their log-sum-exp is not an integer).
    """
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.inexact):
        a = a.astype(np.float64)
    shift = np.max(a, axis=axis, keepdims=True, initial=-np.inf)
    shift = np.where(np.isfinite(shift), shift, 0.0)  # all -inf (or +inf): no shift
    with np.errstate(divide="ignore"):  # log(0) = -inf is the right answer for all -inf
        out = np.log(np.sum(np.exp(a - shift), axis=axis, keepdims=True)) + shift
    return out if keepdims else np.squeeze(out, axis=axis)


def _logsumexp_vjp(ans, a, axis=None, keepdims=False):
    full = ans if keepdims or axis is None else anp.expand_dims(ans, axis)
    if axis is None and not keepdims:
        full = anp.reshape(ans, (1,) * anp.ndim(a))
    # d/da logsumexp(a) = softmax(a) = exp(a - ans)
    return lambda g: anp.reshape(g, anp.shape(full)) * anp.exp(a - full)


defvjp(logsumexp, _logsumexp_vjp)
