"""Thread safety of the tree: concurrent queries, and updates/appends beside them.

The contract: any number of threads may query at once; ``update``/``append``
may run beside queries; every query answers for a state the tree had during
the call; no cache outlives the state it was built from.  The interleaving
tests pause a query at the exact point where a stale cache entry used to be
stored; the stress test checks every answer against the dense states the
tree went through.
"""

import random
import sys
import threading

import numpy as np
import pytest

from lowrank_tree import LowRankSegmentTree

WAIT = 10  # seconds; only reached when a test is about to fail
NUMPY_BACKED = ["numpy", "numba"]


def family(rng, K, m=7, n=5, r=2):
    base = rng.standard_normal((m, n))
    return base, [(rng.standard_normal((m, r)), rng.standard_normal((n, r))) for _ in range(K)]


def dense_states(base, deltas):
    W = [base.copy()]
    for U, V in deltas:
        W.append(W[-1] + U @ V.T)
    return W


def close(a, b):
    return np.linalg.norm(a - b) <= 1e-9 * max(1.0, np.linalg.norm(b))


def run_paused(tree, monkeypatch, method, call, pause_count=1):
    """Start ``call`` in ``pause_count`` threads; each pauses right after ``tree.<method>`` returns.

    Returns ``(release, join)``: ``release()`` lets the paused threads go on,
    ``join()`` waits for them and returns their results.
    """
    original = getattr(tree, method)
    arrived = threading.Barrier(pause_count + 1, timeout=WAIT)
    go = threading.Event()
    workers = []

    def paused(*args):
        out = original(*args)
        if threading.current_thread() in workers:
            arrived.wait()
            assert go.wait(WAIT)
        return out

    monkeypatch.setattr(tree, method, paused)
    results = [None] * pause_count

    def work(slot):
        results[slot] = call()

    workers += [threading.Thread(target=work, args=(i,)) for i in range(pause_count)]
    for t in workers:
        t.start()
    arrived.wait()  # every worker has built its cache entry from the current state

    def release():
        go.set()

    def join():
        for t in workers:
            t.join(WAIT)
            assert not t.is_alive()
        return results

    return release, join


@pytest.mark.parametrize("backend", NUMPY_BACKED)
def test_query_overlapping_update_leaves_no_stale_cache(backend, monkeypatch):
    rng = np.random.default_rng(0)
    base, deltas = family(rng, 6)
    tree = LowRankSegmentTree(base, deltas, backend=backend)
    X = rng.standard_normal((5, 3))
    old = dense_states(base, deltas)
    new_delta = (rng.standard_normal((7, 1)), rng.standard_normal((5, 1)))
    new = dense_states(base, [new_delta] + deltas[1:])
    release, join = run_paused(tree, monkeypatch, "_assemble", lambda: tree.query(5, X))
    tree.update(1, new_delta)  # lands between the query's assembly and its cache insertion
    release()
    (Y,) = join()
    assert close(Y, old[5] @ X)  # the state when the query began
    tree._check()  # no cache entry from the old state survived
    for k in range(7):
        assert close(tree.query(k, X), new[k] @ X)


@pytest.mark.parametrize("backend", NUMPY_BACKED)
def test_all_orders_overlapping_append_and_update_leaves_no_stale_stacks(backend, monkeypatch):
    rng = np.random.default_rng(1)
    base, deltas = family(rng, 4)
    tree = LowRankSegmentTree(base, deltas, backend=backend)
    X = rng.standard_normal((5, 2))
    old = dense_states(base, deltas)
    release, join = run_paused(tree, monkeypatch, "_build_stacks", lambda: tree.all_orders(X))
    extra = (rng.standard_normal((7, 3)), rng.standard_normal((5, 3)))
    tree.append(extra)
    new_delta = (rng.standard_normal((7, 2)), rng.standard_normal((5, 2)))
    tree.update(2, new_delta)
    release()
    (A,) = join()
    assert A.shape == (5, 7, 2) and all(close(A[k], old[k] @ X) for k in range(5))
    tree._check()
    new = dense_states(base, [deltas[0], new_delta] + deltas[2:] + [extra])
    A = tree.all_orders(X)
    assert A.shape == (6, 7, 2) and all(close(A[k], new[k] @ X) for k in range(6))


@pytest.mark.parametrize("backend", NUMPY_BACKED)
def test_two_readers_missing_the_same_order_count_its_bytes_once(backend, monkeypatch):
    """Used to double the byte counter; once over ``cache_bytes`` every query raised KeyError."""
    rng = np.random.default_rng(2)
    base, deltas = family(rng, 6)
    X = rng.standard_normal((5, 2))
    probe = LowRankSegmentTree(base, deltas, backend=backend)
    probe.query(3, X)
    size = probe.cache_nbytes  # room for exactly this one entry
    tree = LowRankSegmentTree(base, deltas, backend=backend, cache_bytes=size)
    release, join = run_paused(tree, monkeypatch, "_assemble", lambda: tree.query(3, X), pause_count=2)
    release()
    Y1, Y2 = join()
    W = dense_states(base, deltas)
    assert close(Y1, W[3] @ X) and close(Y2, W[3] @ X)
    assert tree.cache_nbytes == size
    tree._check()
    monkeypatch.undo()
    for k in [0, 1, 2, 3, 4, 5, 6, 3, 5]:  # single-threaded queries after the race still work
        assert close(tree.query(k, X), W[k] @ X)
        tree._check()


def blas_limits():
    from threadpoolctl import threadpool_info

    return sorted((d["internal_api"], d["num_threads"]) for d in threadpool_info())


@pytest.mark.parametrize("cache_bytes", [2**28, 600])
@pytest.mark.parametrize("backend", NUMPY_BACKED)
def test_readers_and_a_writer(backend, cache_bytes, monkeypatch):
    """Readers (query, mixed query, range query, all orders) beside a writer (update, append).

    Every answer must be that of a state the tree had during the call; the
    writer publishes each state's dense matrices before and after the change
    under a lock the readers take to note which states their call spans.
    """
    if backend == "numba":
        # send every merge and every all-orders pass through the parallel
        # kernels, so that concurrent kernel calls are exercised too
        from lowrank_tree.backends import _numba

        monkeypatch.setattr(_numba, "SERIAL_KERNEL_MIN_WIDTH", 0)
        monkeypatch.setattr(_numba, "FUSED_MIN_BATCH", 1)
        monkeypatch.setattr(_numba, "FUSED_MIN_OUTPUT", 0)
    limits = blas_limits()
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # interleave the threads finely
    rng = np.random.default_rng(3)
    m, n = 7, 5
    base, deltas = family(rng, 5, m, n)
    tree = LowRankSegmentTree(base, deltas, backend=backend, cache_bytes=cache_bytes)
    states = [dense_states(base, deltas)]  # states[v][k] = W_k of version v
    history = threading.Lock()
    done = threading.Event()
    failures = []

    def window(call):
        with history:
            first = len(states) - 1
        out = call()
        with history:
            last = len(states) - 1
        return out, states[first : last + 1]

    def writer():
        wrng = np.random.default_rng(4)
        current = list(deltas)
        try:
            for step in range(150):
                r = int(wrng.integers(0, 3))
                delta = (wrng.standard_normal((m, r)), wrng.standard_normal((n, r)))
                with history:  # readers cannot start or finish mid-change: windows are exact
                    if step % 3 == 2:
                        tree.append(delta)
                        current.append(delta)
                    else:
                        i = int(wrng.integers(1, len(current) + 1))
                        tree.update(i, delta)
                        current[i - 1] = delta
                    states.append(dense_states(base, current))
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(f"writer: {exc!r}")
        finally:
            done.set()

    def reader(seed):
        rr = random.Random(seed)
        X = np.random.default_rng(seed).standard_normal((n, 3))
        try:
            while not done.is_set():
                K = tree.max_order
                kind = rr.randrange(5)
                if kind == 4:
                    tree.clear_cache()  # more cache misses: more entries built beside changes
                    continue
                if kind == 0:
                    k = rr.randint(0, K)
                    Y, seen = window(lambda: tree.query(k, X))
                    ok = any(close(Y, W[k] @ X) for W in seen)
                elif kind == 1:
                    ks = np.array([rr.randint(0, K) for _ in range(3)])
                    Y, seen = window(lambda: tree.query(ks, X))
                    ok = any(all(close(Y[:, j], W[ks[j]] @ X[:, j]) for j in range(3)) for W in seen)
                elif kind == 2 and K:
                    first = rr.randint(1, K)
                    last = rr.randint(first, K)
                    Y, seen = window(lambda: tree.range_query(first, last, X))
                    ok = any(close(Y, (W[last] - W[first - 1]) @ X) for W in seen)
                else:
                    A, seen = window(lambda: tree.all_orders(X))
                    ok = any(len(W) == A.shape[0] and all(close(A[k], W[k] @ X) for k in range(len(W))) for W in seen)
                if not ok:
                    failures.append(f"reader {seed}: kind {kind} answered for no state of its call")
                    return
        except Exception as exc:
            failures.append(f"reader {seed}: {exc!r}")

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(3)]
    threads.append(threading.Thread(target=writer))
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        sys.setswitchinterval(switch)
    assert not any(t.is_alive() for t in threads)
    assert not failures, failures[:3]
    tree._check()
    final = states[-1]
    X = rng.standard_normal((n, 2))
    for k, Wk in enumerate(final):
        assert close(tree.query(k, X), Wk @ X)
    assert blas_limits() == limits  # no thread left BLAS limited
