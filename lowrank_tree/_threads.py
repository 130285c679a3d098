"""Keep small LAPACK calls on one BLAS thread (no array library imported here).

Small SVDs and QRs gain nothing from BLAS threads and, when the cores are
busy, lose a great deal to them: threads spin and wait for each other.  The
fit's per-order loop and the budget allocation run their factorisations
inside :func:`small_blas` when the matrices are small.  Without threadpoolctl
BLAS is left alone.  PyTorch's CPU operations run on its own intra-op threads
(its LAPACK and OpenMP are its own, out of threadpoolctl's reach): when torch
is already imported, its thread count is held at one as well (a 72×20 QR took
1.9 ms on two threads of a busy two-core machine against 58 µs on one).

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
_torch_threads = None  # torch's thread count before the limit, when the limit changed it


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
    global _users, _limiter, _torch_threads
    with _lock:
        if _users == 0:
            _limiter = ctl.limit(limits=1, user_api="blas") if ctl else None
            _torch_threads = _torch_to_one_thread()
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                if _limiter is not None:
                    _limiter.restore_original_limits()
                    _limiter = None
                if _torch_threads is not None:
                    sys.modules["torch"].set_num_threads(_torch_threads)
                    _torch_threads = None


def _torch_to_one_thread():
    """Set torch's intra-op threads to one if torch is loaded (never imported here); the old count, or None."""
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "get_num_threads"):
        return None
    before = torch.get_num_threads()
    if before <= 1:
        return None
    torch.set_num_threads(1)
    return before


def small_blas(small):
    """Context manager: BLAS (and torch's CPU threads) limited to one thread when ``small``, else a no-op.

    Parameters
    ----------
    small : bool
        Whether the work inside is made of small factorisations.
    """
    if not small:
        return contextlib.nullcontext()
    with _lock:
        ctl = _get_controller()
    if not ctl and "torch" not in sys.modules:
        return contextlib.nullcontext()
    return _one_thread(ctl)
