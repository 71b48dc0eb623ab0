"""The training step's gradient: autograd's value_and_grad with one tape root per array.

Why it exists: ``autograd.value_and_grad`` boxes the nested parameters
(enc_params, dec_params) as one container, and the first gradient to reach each level of
it allocates and fills zeros for the whole level: a third of a training step, measured by
``benchmarks/bench_train.py``. Here each W and b is boxed on its own and the tape is walked
back as autograd's ``backward_pass`` does, with autograd's own vector-Jacobian products.

What it relies on: autograd's tracing internals (``VJPNode.new_root``, ``new_box``,
``trace_stack``, ``toposort``, ``add_outgrads``, ``vspace`` and a box's ``_value``,
``_node`` and ``_trace``), the same in autograd 1.7 to 1.9; setup.cfg bounds autograd
below 1.10 for that reason. ``tests/core/test_fast_grad.py`` guards it: the value and every
gradient equal ``autograd.value_and_grad``'s, stay float32, and a loss that does not
depend on the parameters gets zero gradients and autograd's warning, as ``autograd.grad``.
"""
import warnings

import numpy as np
from autograd.core import VJPNode, add_outgrads, vspace
from autograd.tracer import isbox, new_box, toposort, trace_stack

from .model import layer_like


def flat_arrays(params):
    """The arrays of (enc_params, dec_params) in a fixed order: W, b of each layer."""
    return [array for net in params for layer in net for array in layer]


def _nest_like(params, arrays):
    """Arrays in flat_arrays order -> the (enc_params, dec_params) structure of params, each layer
    of its kind in params (a relu layer stays one: the activation travels with the layer)."""
    it = iter(arrays)
    return tuple([layer_like(layer, next(it), next(it)) for layer in net] for net in params)


def value_and_grad_per_array(fun):
    """value_and_grad of fun(params, *args) with respect to params = (enc_params, dec_params).

    Returns a function giving (value, grads), grads shaped like params. fun must return
    a scalar.
    """
    def value_and_grads(params, *args):
        arrays = flat_arrays(params)
        roots = [VJPNode.new_root() for _ in arrays]
        with trace_stack.new_trace() as trace:
            end = fun(_nest_like(params, [new_box(a, trace, r) for a, r in zip(arrays, roots)]), *args)
        if not isbox(end) or end._trace != trace:
            # As autograd.grad: an output that does not depend on the input has zero gradient.
            warnings.warn("Output seems independent of input.", stacklevel=2)
            return end, _nest_like(params, [np.zeros_like(a) for a in arrays])
        value, end_node = end._value, end._node
        outgrads = {end_node: vspace(value).ones()}
        for node in toposort(end_node):
            if node.parents:  # not a root (a parameter array), whose gradient stays in outgrads
                for parent, parent_grad in zip(node.parents, node.vjp(outgrads.pop(node))):
                    outgrads[parent] = _add_grad(outgrads.get(parent), parent_grad)
        # Zeros only for an array the loss does not use (a default argument to dict.get would
        # allocate and fill one for every array, every step).
        return value, _nest_like(params, [outgrads[r] if r in outgrads else np.zeros_like(a)
                                          for r, a in zip(roots, arrays)])
    return value_and_grads


def _add_grad(total, grad):
    """total + grad (total None for a node's first gradient), as autograd's add_outgrads sums them.

    Plain arrays are added directly: add_outgrads goes through vspace and a primitive call per
    sum, a tenth of the training step's tape overhead. Anything else (the sparse gradient of an
    indexing operation, a scalar) goes through add_outgrads, on a copy of total as it would make.
    """
    if type(grad) is np.ndarray and type(total) in (type(None), np.ndarray):
        return grad if total is None else total + grad
    return add_outgrads(None if total is None else (total, False), grad)[0]

