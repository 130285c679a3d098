"""Keep small LAPACK calls on one BLAS thread (no array library imported here).

Small SVDs and QRs gain nothing from BLAS threads and, when the cores are
busy, lose a great deal to them: threads spin and wait for each other.  The
fit's per-order loop and the budget allocation run their factorisations
inside :func:`small_blas` when the matrices are small.  Without threadpoolctl
nothing changes.

BLAS's thread count is process-wide, so overlapping users (two fits in two
threads) share one limit: the first to enter sets it, the last to leave
restores the original count.  Each restoring its own snapshot instead would
leave BLAS on one thread for good whenever the exits interleave.
"""

import contextlib
import sys
import threading

__all__ = ["small_blas"]

_lock = threading.Lock()
_controller = None
_modules_seen = 0
_users = 0
_limiter = None


def _get_controller():
    # A controller sees the BLAS libraries loaded when it was made (making one
    # scans them: about a millisecond); make a new one only when modules were
    # imported since, which is when a new BLAS (SciPy's, say) can have appeared.
    global _controller, _modules_seen
    if _controller is None or (_controller and len(sys.modules) != _modules_seen):
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _controller = False
        else:
            _controller = ThreadpoolController()
            _modules_seen = len(sys.modules)
    return _controller


@contextlib.contextmanager
def _one_thread(ctl):
    global _users, _limiter
    with _lock:
        if _users == 0:
            _limiter = ctl.limit(limits=1, user_api="blas")
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                _limiter.restore_original_limits()
                _limiter = None


def small_blas(small):
    """Context manager: BLAS limited to one thread when ``small``, else a no-op.

    Parameters
    ----------
    small : bool
        Whether the work inside is made of small factorisations.
    """
    if not small:
        return contextlib.nullcontext()
    with _lock:
        ctl = _get_controller()
    if not ctl:
        return contextlib.nullcontext()
    return _one_thread(ctl)
