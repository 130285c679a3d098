"""Keep small LAPACK calls on one BLAS thread (no array library imported here).

Small SVDs and QRs gain nothing from BLAS threads and, when the cores are
busy, lose a great deal to them: threads spin and wait for each other.  The
fit's per-order loop and the budget allocation run their factorisations
inside :func:`small_blas` when the matrices are small.  Without threadpoolctl
nothing changes.
"""

import contextlib

__all__ = ["small_blas"]

_controller = None


def _get_controller():
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _controller = False
        else:
            _controller = ThreadpoolController()
    return _controller


def small_blas(small):
    """Context manager: BLAS limited to one thread when ``small``, else a no-op.

    Parameters
    ----------
    small : bool
        Whether the work inside is made of small factorisations.
    """
    if not small:
        return contextlib.nullcontext()
    ctl = _get_controller()
    if not ctl:
        return contextlib.nullcontext()
    return ctl.limit(limits=1, user_api="blas")
