"""The tree's class docstring maps every public method and property to its cost."""

import re

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from lowrank_tree import LowRankSegmentTree


def test_method_map_names_every_public_member():
    doc = LowRankSegmentTree.__doc__
    table = doc[doc.index("**Methods and their cost.**") : doc.index("**Layout.**")]
    public = {name for name in dir(LowRankSegmentTree) if not name.startswith("_")}
    missing = {name for name in public if not re.search(rf"\b{name}\b", table)}
    assert not missing, f"method map lacks {sorted(missing)}"


@given(K=st.integers(1, 40), k=st.integers(0, 40))
def test_canonical_nodes_are_the_set_bits_of_k(K, k):
    k = min(k, K)
    u = np.ones((3, 1))
    tree = LowRankSegmentTree(np.eye(3), [(u, u)] * K)
    nodes = tree.canonical_nodes(k)
    # independent reference: one node of size 2^h per set bit h of k, highest first, tiling [1, k]
    sizes = [1 << h for h in reversed(range(k.bit_length())) if k >> h & 1]
    assert [nd.last - nd.first + 1 for nd in nodes] == sizes
    assert [nd.level for nd in nodes] == [s.bit_length() - 1 for s in sizes]
    starts = np.cumsum([1] + sizes[:-1]).tolist()
    assert [nd.first for nd in nodes] == starts[: len(nodes)]
    assert all(nd.first == nd.index * 2**nd.level + 1 for nd in nodes)
