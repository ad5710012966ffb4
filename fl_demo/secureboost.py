"""SecureBoost's algorithm without the cryptography: binning, fixed-point gradients, histograms,
split finding and trees, shared by the encrypted protocol (:mod:`.sb_protocol`) and the
plaintext reference (:func:`train_plaintext`).

Gradient boosting with the logistic loss, second order (XGBoost's): per tree, ``g = p - y`` and
``h = p(1 - p)`` at the current scores; a node with sums ``G, H`` splits where
``G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ)`` is largest and positive, both children keeping at
least one sample and a hessian sum of ``min_child_weight``; a leaf's weight is ``−G/(H+λ)``,
scaled by the learning rate. Features are cut at per-feature quantiles (``bins``); a split at
bin ``b`` sends ``x ≤ edges[b]`` left.

**Fixed point.** g and h travel as integers: ``g' = round(g·2^P) + 2^P ∈ [0, 2^(P+1)]`` (offset
so that it is non-negative, which packing needs) and ``h' = round(h·2^P) ∈ [0, 2^(P−2)]``, with
``P = precision_bits``. Every sum is exact integer arithmetic, in the clear and under Paillier
alike, so the encrypted protocol and this reference see the same integers and build the same
trees, bit for bit. A sum over ``c`` samples gives back ``G = (ΣG' − c·2^P) / 2^P``.

**The packing bound.** A bin sum over at most ``N`` samples (``N`` = the samples of the tree)
is at most ``N·2^(P+1)`` for g' and ``N·2^(P−2)`` for h', so g' takes
``slot_bits(2^(P+1), N)`` bits and h' ``slot_bits(2^(P−2), N)``
(:func:`gh_layout`; ``(max·N).bit_length()``): ``2P + 2·bitlen(N) − 1`` bits in all (N not a
power of two), 81 for ``P = 32`` and 456 samples, 91 for 16 000. No sum can carry into the
next field, and a 2048-bit plaintext holds 25 or 22 such sums side by side.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..driver.packing import SlotLayout, slot_bits

__all__ = ["Binning", "SBConfig", "Tree", "TreeGrower", "best_splits", "gh_layout",
           "node_slots", "plain_histograms", "predict_plain", "quantize", "train_plaintext"]


@dataclass
class SBConfig:
    """Hyper-parameters, named as FATE's HeteroSecureBoost names them (defaults: FATE's but
    the number of trees)."""

    trees: int = 10              # FATE: 5; ten reach scikit-learn on both data sets
    depth: int = 3
    learning_rate: float = 0.3
    bins: int = 32
    min_child_weight: float = 0.0
    l2: float = 0.1               # FATE's criterion_params[0], XGBoost's lambda
    subsample: float = 1.0        # rows drawn (without replacement) for each tree
    key_bits: int = 2048
    pack: bool = True             # False: g and h in separate ciphertexts (for comparison)
    precision_bits: int = 32      # g, h to 2^-32: each bit more costs compression, decryption
    seed: int = 0

    def validate(self) -> None:
        def positive_int(name, lo=1, hi=None):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo or (hi and v > hi):
                rng = f"an integer in [{lo}, {hi}]" if hi else f"an integer >= {lo}"
                raise ValueError(f"{name.replace('_', ' ')} must be {rng}, not {v!r}")

        positive_int("trees")
        positive_int("depth", 1, 16)
        positive_int("bins", 2, 1024)
        positive_int("precision_bits", 8, 60)
        if not (isinstance(self.learning_rate, int | float) and 0 < self.learning_rate <= 10):
            raise ValueError(f"learning rate must be in (0, 10], not {self.learning_rate!r}")
        if not (isinstance(self.min_child_weight, int | float) and self.min_child_weight >= 0):
            raise ValueError(f"min child weight must be >= 0, not {self.min_child_weight!r}")
        if not (isinstance(self.l2, int | float) and self.l2 >= 0 and math.isfinite(self.l2)):
            raise ValueError(f"lambda (L2) must be a finite number >= 0, not {self.l2!r}")
        if not (isinstance(self.subsample, int | float) and 0 < self.subsample <= 1):
            raise ValueError(f"subsample must be in (0, 1], not {self.subsample!r}")
        if not isinstance(self.key_bits, int) or self.key_bits < 256 or self.key_bits % 2:
            raise ValueError(f"key size must be an even number of bits >= 256, not "
                             f"{self.key_bits!r}")

    def as_dict(self) -> dict:
        return asdict(self)


# -- binning --------------------------------------------------------------------------------

class Binning:
    """Per-feature quantile cut points of one party's training features (kept by that party).

    ``edges[f]`` are increasing and below the feature's maximum; feature ``f`` has
    ``len(edges[f]) + 1`` bins and ``len(edges[f])`` candidate splits.
    """

    def __init__(self, X: np.ndarray, bins: int) -> None:
        X = np.asarray(X, dtype=np.float64)
        qs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
        self.edges = []
        for f in range(X.shape[1]):
            col = X[:, f]
            e = np.unique(np.quantile(col, qs)) if len(col) else np.empty(0)
            self.edges.append(e[e < col.max()] if len(col) else e)
        self.n_bins = np.array([len(e) + 1 for e in self.edges], dtype=np.int64)
        #: where feature f's bins start in a node's histogram (all features side by side)
        self.offsets = np.concatenate([[0], np.cumsum(self.n_bins)]).astype(np.int64)

    @property
    def total_bins(self) -> int:
        return int(self.offsets[-1])

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Bin indices, shape (rows, features): bin ``b`` holds ``edges[b-1] < x ≤ edges[b]``."""
        X = np.asarray(X, dtype=np.float64)
        out = np.empty(X.shape, dtype=np.int64)
        for f, e in enumerate(self.edges):
            out[:, f] = np.searchsorted(e, X[:, f], side="left")
        return out

    def threshold(self, feature: int, b: int) -> float:
        return float(self.edges[feature][b])


# -- fixed point -----------------------------------------------------------------------------

def quantize(g: np.ndarray, h: np.ndarray, precision_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """``(g', h')`` as int64: ``round(g·2^P) + 2^P`` and ``round(h·2^P)`` (module docstring)."""
    one = 1 << precision_bits
    g, h = np.asarray(g, dtype=np.float64), np.asarray(h, dtype=np.float64)
    if not (np.all(np.abs(g) <= 1) and np.all((h >= 0) & (h <= 0.25))):
        raise ValueError("logistic-loss gradients must lie in [-1, 1] and hessians in "
                         "[0, 1/4]")
    gq = np.rint(g * one).astype(np.int64) + one
    hq = np.rint(h * one).astype(np.int64)
    return gq, hq


def gh_layout(precision_bits: int, samples: int) -> SlotLayout:
    """The packed (h', g') fields for bin sums over up to ``samples`` samples: h' in the low
    field, g' above it (the bound in the module docstring)."""
    one = 1 << precision_bits
    return SlotLayout([slot_bits(one >> 2, samples), slot_bits(2 * one, samples)])


def _exact_bincount(values: np.ndarray, groups: np.ndarray, n: int) -> np.ndarray:
    """Exact integer sums of int64 ``values < 2^62`` by group, as Python ints (object array):
    two 31-bit halves summed in float64, exact while a half-sum stays below 2^53, so while no
    group has 2^22 terms or more."""
    lo = (values & ((1 << 31) - 1)).astype(np.float64)
    hi = (values >> 31).astype(np.float64)
    largest = int(np.bincount(groups, minlength=n).max()) if len(groups) else 0
    if largest >= 1 << 22:
        raise ValueError(f"a group of {largest} terms is too large for exact float sums "
                         f"(at most {(1 << 22) - 1})")
    s_lo = np.bincount(groups, weights=lo, minlength=n).astype(np.int64)
    s_hi = np.bincount(groups, weights=hi, minlength=n).astype(np.int64)
    return s_hi.astype(object) * (1 << 31) + s_lo.astype(object)


def plain_histograms(gq: np.ndarray, hq: np.ndarray, bins: np.ndarray, offsets: np.ndarray,
                     node_of: np.ndarray, nodes: list[int]) -> dict[int, tuple]:
    """Per node in ``nodes``, per bin of every feature: the exact sums ``(ΣG', ΣH', count)``
    over the samples with ``node_of == node`` (arrays of ``offsets[-1]`` entries)."""
    total = int(offsets[-1])
    slot = {nd: i for i, nd in enumerate(nodes)}
    rows = np.flatnonzero(np.isin(node_of, nodes))
    k = node_slots(node_of[rows], nodes)
    F = bins.shape[1]
    grp = (k[:, None] * total + offsets[:-1][None, :] + bins[rows]).reshape(-1)
    n = len(nodes) * total
    G = _exact_bincount(np.repeat(gq[rows], F), grp, n)
    H = _exact_bincount(np.repeat(hq[rows], F), grp, n)
    C = np.bincount(grp, minlength=n).astype(np.int64)
    return {nd: (G[i * total:(i + 1) * total], H[i * total:(i + 1) * total],
                 C[i * total:(i + 1) * total]) for nd, i in slot.items()}


def node_slots(node_ids: np.ndarray, nodes: list[int]) -> np.ndarray:
    """The position in ``nodes`` of each of ``node_ids`` (all of which are in ``nodes``)."""
    if not nodes:
        return np.empty(0, dtype=np.int64)
    lookup = np.full(max(nodes) + 1, -1, dtype=np.int64)
    lookup[np.asarray(nodes, dtype=np.int64)] = np.arange(len(nodes))
    return lookup[np.asarray(node_ids, dtype=np.int64)]


def cumulative(hist: tuple, offsets: np.ndarray) -> tuple:
    """Per feature, the cumulative sums over bins ``0..b`` for every split ``b`` (all bins but
    the last of each feature): what a party reports for split finding."""
    G, H, C = hist
    keep = np.concatenate([np.arange(offsets[f], offsets[f + 1] - 1)
                           for f in range(len(offsets) - 1)]).astype(np.int64)
    outs = []
    for arr in (G, H, C):
        cum = arr.copy()
        for f in range(len(offsets) - 1):
            a, b = offsets[f], offsets[f + 1]
            cum[a:b] = np.cumsum(arr[a:b])
        outs.append(cum[keep])
    return tuple(outs)


def split_index(n_bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(feature, bin) of each entry of :func:`cumulative`'s arrays."""
    feats = np.concatenate([np.full(nb - 1, f) for f, nb in enumerate(n_bins)]).astype(np.int64)
    bins = np.concatenate([np.arange(nb - 1) for nb in n_bins]).astype(np.int64)
    return feats, bins


# -- split finding ---------------------------------------------------------------------------

def _to_float(x, scale: int) -> np.ndarray:
    # Python's int / int is correctly rounded, so both parties get identical floats
    return np.array([int(v) / scale for v in x], dtype=np.float64)


def node_gain(G: float, H: float, l2: float) -> float:
    return G * G / (H + l2)


def best_splits(candidates: list[tuple], totals: tuple, config: SBConfig):
    """The best split of a node over several parties' candidates, or ``None``.

    ``candidates`` is ``[(party, feature, bin, cum_G', cum_H', cum_count), ...]`` (the arrays
    of :func:`cumulative`, in a fixed party order); ``totals`` the node's ``(ΣG', ΣH', count)``.
    Ties go to the first candidate in that order. Returns ``(party, feature, bin, gain)``.
    """
    one = 1 << config.precision_bits
    G_tot, H_tot, C_tot = totals
    g_all = (int(G_tot) - int(C_tot) * one) / one
    h_all = int(H_tot) / one
    parent = node_gain(g_all, h_all, config.l2)
    best = None
    for party, feats, bins, cg, ch, cc in candidates:
        if len(cc) == 0:
            continue
        cc = np.asarray(cc, dtype=np.int64)
        gl = _to_float([int(a) - int(c) * one for a, c in zip(cg, cc, strict=True)], one)
        hl = _to_float(ch, one)
        gr = _to_float([int(G_tot) - int(C_tot) * one - (int(a) - int(c) * one)
                        for a, c in zip(cg, cc, strict=True)], one)
        hr = _to_float([int(H_tot) - int(x) for x in ch], one)
        gain = gl * gl / (hl + config.l2) + gr * gr / (hr + config.l2) - parent
        ok = ((cc >= 1) & (C_tot - cc >= 1) & (hl >= config.min_child_weight)
              & (hr >= config.min_child_weight) & (gain > 0))
        if not ok.any():
            continue
        gain = np.where(ok, gain, -np.inf)
        i = int(np.argmax(gain))
        if best is None or gain[i] > best[3]:
            best = (party, int(feats[i]), int(bins[i]), float(gain[i]))
    return best


def leaf_weight(totals: tuple, config: SBConfig) -> float:
    one = 1 << config.precision_bits
    G_tot, H_tot, C_tot = totals
    g = (int(G_tot) - int(C_tot) * one) / one
    h = int(H_tot) / one
    return -g / (h + config.l2) * config.learning_rate


# -- trees -----------------------------------------------------------------------------------

@dataclass
class Tree:
    """A tree as the guest holds it. ``nodes[id]`` is a dict: a leaf has ``weight``; a split
    has ``party`` (``"guest"``/``"host"``), ``feature``, ``bin``, ``left``, ``right``, and for
    the guest's own splits ``threshold`` (a host split's threshold stays with the host)."""

    nodes: dict = field(default_factory=dict)

    def structure(self) -> list:
        """Everything but the guest's thresholds, for comparing trees."""
        return sorted((i, tuple(sorted((k, v) for k, v in nd.items() if k != "threshold")))
                      for i, nd in self.nodes.items())


class TreeGrower:
    """The guest's side of growing one tree, level by level (the same code serves the encrypted
    protocol and the plaintext reference).

    Parameters
    ----------
    gq, hq:
        Fixed-point g', h' of the tree's rows (:func:`quantize`).
    rows:
        The training rows in the tree (indices into the training set).
    bins, binning:
        The guest's binned training features (all rows) and its :class:`Binning`.
    host_bins:
        The number of bins of each host feature.
    """

    def __init__(self, gq, hq, rows, bins, binning: Binning, host_bins, config: SBConfig):
        self.gq, self.hq, self.rows = gq, hq, np.asarray(rows)
        self.bins = bins[self.rows]
        self.binning, self.config = binning, config
        self.host_n_bins = np.asarray(host_bins, dtype=np.int64)
        self.host_split_index = split_index(self.host_n_bins)
        self.guest_split_index = split_index(binning.n_bins)
        self.node_of = np.zeros(len(self.rows), dtype=np.int64)  # position of each row
        self.tree = Tree()
        self.depth = 0
        self.open = [0]       # nodes still to split at this level
        self.parent: dict[int, int] = {}
        self.next_id = 1
        self.totals: dict[int, tuple] = {}
        self.pending: dict[int, tuple] = {}

    def _node_totals(self, nodes: list[int]) -> None:
        for nd in nodes:
            m = self.node_of == nd
            self.totals[nd] = (int(self.gq[m].astype(object).sum()),
                               int(self.hq[m].astype(object).sum()), int(m.sum()))

    def plan(self) -> dict:
        """What the host needs for this level: each row's node (-1: settled) and the nodes
        to histogram with their parents (for histogram subtraction). Nodes that cannot split
        (at the depth limit, or with fewer than two samples) become leaves here."""
        self._node_totals(self.open)
        still = []
        for nd in self.open:
            if self.depth < self.config.depth and self.totals[nd][2] >= 2:
                still.append(nd)
            else:
                self.tree.nodes[nd] = {"weight": leaf_weight(self.totals[nd], self.config)}
        self.open = still
        assign = np.where(np.isin(self.node_of, self.open), self.node_of, -1)
        return {"depth": self.depth, "assign": assign, "nodes": list(self.open),
                "parents": {nd: self.parent.get(nd, -1) for nd in self.open}}

    def choose(self, host_cum: dict[int, tuple]) -> list[tuple]:
        """Split this level's nodes given the host's cumulative sums per node (as the guest
        holds them after decryption); return the host splits to carry out:
        ``[(node, feature, bin), ...]``."""
        own = plain_histograms(self.gq, self.hq, self.bins, self.binning.offsets,
                               self.node_of, self.open)
        host_splits, self.pending = [], {}
        for nd in self.open:
            gcum = cumulative(own[nd], self.binning.offsets)
            cands = [("guest", *self.guest_split_index, *gcum)]
            if nd in host_cum:
                cands.append(("host", *self.host_split_index, *host_cum[nd]))
            best = best_splits(cands, self.totals[nd], self.config)
            if best is None:
                continue
            party, f, b, _gain = best
            self.pending[nd] = (party, f, b)
            if party == "host":
                host_splits.append((nd, f, b))
        return host_splits

    def apply(self, host_sides: dict[int, np.ndarray]) -> None:
        """Carry out this level's splits; ``host_sides[node]`` says, for the node's rows in
        row order, which go left (from the host, for its splits)."""
        new_open = []
        for nd in self.open:
            if nd not in self.pending:
                continue
            party, f, b = self.pending[nd]
            members = np.flatnonzero(self.node_of == nd)
            if party == "guest":
                left = self.bins[members, f] <= b
            else:
                left = np.asarray(host_sides.get(nd), dtype=bool)
                if left.shape != members.shape:
                    raise ValueError(f"host split of node {nd}: {left.shape} sides for "
                                     f"{len(members)} rows")
            lid, rid = self.next_id, self.next_id + 1
            self.next_id += 2
            self.node_of[members[left]] = lid
            self.node_of[members[~left]] = rid
            node = {"party": party, "feature": f, "bin": b, "left": lid, "right": rid}
            if party == "guest":
                node["threshold"] = self.binning.threshold(f, b)
            self.tree.nodes[nd] = node
            self.parent[lid] = self.parent[rid] = nd
            new_open += [lid, rid]
        for nd in self.open:
            if nd not in self.pending:
                self.tree.nodes[nd] = {"weight": leaf_weight(self.totals[nd], self.config)}
        self.open = new_open
        self.depth += 1

    def finish(self) -> tuple[Tree, np.ndarray]:
        """Leaves for the nodes left open; the tree and each row's leaf weight."""
        self._node_totals(self.open)
        for nd in self.open:
            self.tree.nodes[nd] = {"weight": leaf_weight(self.totals[nd], self.config)}
        self.open = []
        weights = np.array([self.tree.nodes[int(nd)]["weight"] for nd in self.node_of])
        return self.tree, weights


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def gradients(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = sigmoid(scores)
    return p - y, p * (1.0 - p)


def base_score(y: np.ndarray) -> float:
    """The starting score: the log-odds of the training labels (as scikit-learn's)."""
    p = float(np.clip(np.mean(y), 1e-12, 1 - 1e-12))
    return math.log(p / (1 - p))


def tree_rows(n: int, config: SBConfig, tree: int) -> np.ndarray:
    """The training rows of a tree: all, or a ``subsample`` share drawn from ``seed``."""
    if config.subsample >= 1:
        return np.arange(n)
    k = max(2, round(config.subsample * n))
    rng = np.random.default_rng([config.seed, tree])
    return np.sort(rng.choice(n, size=k, replace=False))


def predict_plain(tree: Tree, host_thresholds: dict, Xg: np.ndarray, Xh: np.ndarray,
                  tree_index: int) -> np.ndarray:
    """One tree's weights for rows of both parties' features, in the clear (the reference)."""
    out = np.empty(len(Xg))
    pos = np.zeros(len(Xg), dtype=np.int64)
    done = np.zeros(len(Xg), dtype=bool)
    while not done.all():
        for nd in np.unique(pos[~done]):
            node = tree.nodes[int(nd)]
            m = (pos == nd) & ~done
            if "weight" in node:
                out[m] = node["weight"]
                done |= m
                continue
            if node["party"] == "guest":
                left = Xg[m, node["feature"]] <= node["threshold"]
            else:
                f, thr = host_thresholds[(tree_index, int(nd))]
                left = Xh[m, f] <= thr
            idx = np.flatnonzero(m)
            pos[idx[left]] = node["left"]
            pos[idx[~left]] = node["right"]
    return out


def train_plaintext(Xg, Xh, y, config: SBConfig, Xg_test=None, Xh_test=None, y_test=None):
    """The same algorithm in the clear: the reference the encrypted protocol must equal.

    Returns ``(trees, host_thresholds, aucs)``: the trees as the guest would hold them, the
    host's thresholds by ``(tree, node)`` and the test AUC after each tree.
    """
    from sklearn.metrics import roc_auc_score

    config.validate()
    gbin, hbin = Binning(Xg, config.bins), Binning(Xh, config.bins)
    Bg, Bh = gbin.transform(Xg), hbin.transform(Xh)
    scores = np.full(len(y), base_score(y))
    test_scores = None if Xg_test is None else np.full(len(Xg_test), base_score(y))
    trees, thresholds, aucs = [], {}, []
    for t in range(config.trees):
        rows = tree_rows(len(y), config, t)
        g, h = gradients(y[rows], scores[rows])
        gq, hq = quantize(g, h, config.precision_bits)
        grower = TreeGrower(gq, hq, rows, Bg, gbin, hbin.n_bins, config)
        host_B = Bh[rows]
        while True:
            plan = grower.plan()
            if not plan["nodes"]:
                break
            hists = plain_histograms(gq, hq, host_B, hbin.offsets, plan["assign"],
                                     plan["nodes"])
            host_cum = {nd: cumulative(hists[nd], hbin.offsets) for nd in plan["nodes"]}
            sides = {}
            for nd, f, b in grower.choose(host_cum):
                members = np.flatnonzero(grower.node_of == nd)
                sides[nd] = host_B[members, f] <= b
                thresholds[(t, nd)] = (f, hbin.threshold(f, b))
            grower.apply(sides)
        tree, _ = grower.finish()
        trees.append(tree)
        scores += predict_plain(tree, thresholds, Xg, Xh, t)
        if test_scores is not None:
            test_scores += predict_plain(tree, thresholds, Xg_test, Xh_test, t)
            aucs.append(float(roc_auc_score(y_test, test_scores)))
    return trees, thresholds, aucs
