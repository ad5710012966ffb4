"""Vertical SecureBoost (FATE's HeteroSecureBoost) between a guest and a host, encrypted.

The guest holds the labels, some features and the Paillier keypair; the host holds the other
features of the same samples. Per tree (:mod:`.secureboost` has the algorithm):

1. guest → host: the tree's rows and, per row, ``[[h' + g'·2^b_h]]`` — g and h in fixed point,
   **packed** into one plaintext (``--no-pack``: ``[[g']]`` and ``[[h']]`` apart), with the
   field widths that leave room for the largest bin sum (:func:`.secureboost.gh_layout`).
2. per level, guest → host: each row's node (or "settled") and the nodes to split;
   host → guest: per node and host feature, the cumulative encrypted sums of every bin but the
   last, and the sample counts. The host sums by bin in one grouped-product call for the
   smaller child of each pair and gets its sibling by subtracting from the parent's histogram
   (FATE's histogram subtraction); before sending, it shifts as many sums as fit into one
   ciphertext (FATE's cipher compression) and re-randomises them.
3. guest: decrypts (a fraction of the sums, thanks to compression), unpacks, adds its own
   histograms in the clear and picks each node's best split over both parties.
   guest → host: the splits that are the host's, as "host feature k, bin b";
   host → guest: which of the node's rows go left. The host stores the threshold; the guest
   never learns it.
4. after the tree: prediction walks it jointly — the guest sends, for the rows standing at a
   host node, the node; the host answers left or right — for the training rows outside a
   subsample and (evaluation) the test rows.

**What each party sees.** Guest: its features, the labels, g and h, the trees' shape, its own
thresholds and every leaf weight; per node and host feature the bin sums of g and h and the
bin counts (as FATE's guest does); which host feature and bin each host split uses, but no
threshold; which of a node's rows go left at a host split, and at prediction the host's answer
for each row at each host node on its path. Host: its features and thresholds; ciphertexts of g
and h under the guest's key, which it cannot decrypt; which rows are in which node at each
level and which nodes split on its features at which bin (as FATE's host does); no labels, no
leaf weights, no guest feature.

Messages are documented JSON for ciphertexts (:mod:`montpipe.driver.serialization`, validated on
receipt) and plain lists and arrays for the rest, checked on receipt: anything malformed stops
the run with :class:`~montpipe.fl_demo.protocol.ProtocolError`.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..driver import paillier
from ..driver.packing import (
    compress,
    decompress,
    group_sum,
    slots_per_plaintext,
    unpack,
)
from ..driver.vector import EncryptedVector
from .protocol import ProtocolError, _Party
from .secureboost import (
    Binning,
    SBConfig,
    TreeGrower,
    base_score,
    gh_layout,
    gradients,
    node_slots,
    quantize,
    split_index,
    tree_rows,
)

__all__ = ["SBGuest", "SBHost"]

CATEGORIES = ("encryption", "histogram", "compression", "decryption", "split finding",
              "communication")


def _slot_bits(widths: list[int], packed: bool) -> int:
    """The width of one compressed slot: a packed (h', g') pair, or the wider of g' and h'."""
    return sum(widths) if packed else max(widths)


class SBHost(_Party):
    """Holds its features and thresholds; sums encrypted gradients by bin; never decrypts."""

    role = "host"

    def __init__(self, X: np.ndarray, config: SBConfig, backend: str | None = None,
                 X_test: np.ndarray | None = None) -> None:
        super().__init__(config, backend)
        self.X = np.asarray(X, dtype=np.float64)
        self.X_test = None if X_test is None else np.asarray(X_test, dtype=np.float64)
        self.binning = Binning(self.X, config.bins)
        self.bins = self.binning.transform(self.X)
        self.thresholds: dict[tuple[int, int], tuple[int, float]] = {}
        self._tree = -1

    def bins_per_feature(self) -> list[int]:
        """How many bins each host feature has (the guest needs it to read histograms)."""
        return [int(b) for b in self.binning.n_bins]

    def receive_gradients(self, tree: int, msg: dict) -> None:
        self._maybe_fail(tree, "gradients")
        rows = np.asarray(msg.get("rows"))
        if rows.ndim != 1 or rows.dtype.kind not in "iu" or len(rows) < 1 or \
                rows.min() < 0 or rows.max() >= len(self.X) or np.any(np.diff(rows) <= 0):
            raise ProtocolError(f"host got tree {tree}'s rows as {rows.dtype}{rows.shape}; "
                                f"expected increasing row indices in [0, {len(self.X)})")
        widths = msg.get("widths")
        if (not isinstance(widths, list) or len(widths) != 2
                or not all(isinstance(w, int) and 1 <= w <= 512 for w in widths)):
            raise ProtocolError(f"host got field widths {widths!r}; expected two ints")
        packed = bool(msg.get("packed"))
        vectors = [self._load(text, f"tree {tree}'s gradients", "guest") for text in msg["gh"]]
        if len(vectors) != (1 if packed else 2) or any(len(v) != len(rows) for v in vectors):
            raise ProtocolError(f"host got {[len(v) for v in vectors]} gradient ciphertexts "
                                f"for {len(rows)} rows ({'packed' if packed else 'g and h'})")
        if _slot_bits(widths, packed) > self.pk.n.bit_length() - 1:
            raise ProtocolError(f"host: slots of {_slot_bits(widths, packed)} bits do not fit "
                                f"the {self.pk.n.bit_length()}-bit key")
        self._tree, self._rows, self._widths, self._packed = tree, rows, widths, packed
        self._cts = [c for v in vectors for c in v.ciphertexts(be_secure=False)]
        self._hist: dict[int, list[int]] = {}   # last level's per-bin histograms, by node

    def histograms(self, tree: int, plan: dict) -> dict:
        """The level's encrypted cumulative histograms, compressed, and the bin counts."""
        self._maybe_fail(tree, "histograms")
        if tree != self._tree:
            raise ProtocolError(f"host: histograms asked for tree {tree}, but the gradients "
                                f"are tree {self._tree}'s")
        nodes = [int(x) for x in plan.get("nodes", [])]
        parents = {int(k): int(v) for k, v in plan.get("parents", {}).items()}
        assign = np.asarray(plan.get("assign"))
        if assign.shape != self._rows.shape or assign.dtype.kind not in "iu":
            raise ProtocolError(f"host: the node of each row came as {assign.dtype}"
                                f"{assign.shape}, expected {len(self._rows)} integers")
        bad = ~np.isin(assign, [*nodes, -1])
        if bad.any():
            raise ProtocolError(f"host: row {int(np.flatnonzero(bad)[0])} is at node "
                                f"{int(assign[bad][0])}, which is not one of this level's "
                                f"nodes {nodes}")
        self._assign, self._nodes = assign, nodes
        pk = self.pk
        total = self.binning.total_bins
        F = self.bins.shape[1]
        copies = 1 if self._packed else 2
        width = copies * total                       # one node's histogram, in ciphertexts
        counts = {nd: int(np.sum(assign == nd)) for nd in nodes}
        # histogram subtraction: of two siblings whose parent's histogram is kept, sum the
        # smaller one and take the other from the parent
        derived: dict[int, tuple[int, int]] = {}
        for nd in nodes:
            p = parents.get(nd, -1)
            sib = [s for s in nodes if s != nd and parents.get(s, -1) == p]
            if p in self._hist and sib and nd not in derived and sib[0] not in derived:
                small, big = sorted((nd, sib[0]), key=lambda x: (counts[x], x))
                derived[big] = (p, small)
        direct = [nd for nd in nodes if nd not in derived]
        with self.meter.time("histogram"):
            slot = {nd: i for i, nd in enumerate(direct)}
            rows = np.flatnonzero(np.isin(assign, direct))
            k = node_slots(assign[rows], direct)
            grp = (k[:, None] * width + self.binning.offsets[:-1][None, :]
                   + self.bins[self._rows[rows]]).reshape(-1)
            n = len(self._rows)
            values = [self._cts[c * n + r] for c in range(copies) for r in rows for _ in range(F)]
            groups = np.concatenate([grp + c * total for c in range(copies)]) if copies > 1 \
                else grp
            sums = group_sum(EncryptedVector(pk, values, 0) if values else
                             EncryptedVector(pk, [1], 0), groups if values else [-1],
                             len(direct) * width).ciphertexts(be_secure=False)
            self.meter.ops["ct+ct"] += len(values)
            hist = {nd: sums[i * width:(i + 1) * width] for nd, i in slot.items()}
            if derived:
                subtrahends = [c for nd in derived for c in hist[derived[nd][1]]]
                inverses = pk.backend.powmod(subtrahends, -1, pk.nsquare)
                parents_ = [c for nd in derived for c in self._hist[derived[nd][0]]]
                diff = pk.backend.mulmod(parents_, inverses, pk.nsquare)
                for i, nd in enumerate(derived):
                    hist[nd] = diff[i * width:(i + 1) * width]
                self.meter.ops["ct-ct"] += len(subtrahends)
            self._hist = hist
            cum = self._cumulative([hist[nd] for nd in nodes], copies)
        with self.meter.time("compression"):
            bits = _slot_bits(self._widths, self._packed)
            per = slots_per_plaintext(pk, bits)
            out = compress(EncryptedVector(pk, cum, 0), bits, per) if cum else None
            if out is not None:
                out.obfuscate()
                self.meter.ops["shift"] += len(cum) - len(out)
                self.meter.ops["obfuscate"] += len(out)
        # the bin counts in the clear (as FATE's host sends them): the guest needs them to
        # remove g's offset
        grp_all = np.flatnonzero(assign >= 0)
        kk = node_slots(assign[grp_all], nodes)
        cgrp = (kk[:, None] * total + self.binning.offsets[:-1][None, :]
                + self.bins[self._rows[grp_all]]).reshape(-1)
        C = np.bincount(cgrp, minlength=len(nodes) * total).reshape(len(nodes), total)
        cum_counts = np.concatenate([self._cum_plain(C[i]) for i in range(len(nodes))]) \
            if nodes else np.empty(0, dtype=np.int64)
        return {"nodes": nodes, "hist": self._send(out) if out is not None else None,
                "counts": cum_counts.astype(np.int64)}

    def _cum_plain(self, c: np.ndarray) -> np.ndarray:
        o = self.binning.offsets
        return np.concatenate([np.cumsum(c[o[f]:o[f + 1]])[:-1] for f in range(len(o) - 1)])

    def _cumulative(self, hists: list[list[int]], copies: int) -> list[int]:
        """Per node, copy and feature, the running products over the bins but the last (one
        mulmod call per bin position for all of them)."""
        pk = self.pk
        o = self.binning.offsets
        total = self.binning.total_bins
        runs = [(h, c * total + o[f], int(o[f + 1] - o[f]))
                for h in hists for c in range(copies) for f in range(len(o) - 1)]
        cur = [h[start] for h, start, _ in runs]
        cols = [[c] for c in cur]
        longest = max((nb for _, _, nb in runs), default=0)
        for b in range(1, longest - 1):
            live = [i for i, (_, _, nb) in enumerate(runs) if b < nb - 1]
            prod = pk.backend.mulmod([cur[i] for i in live],
                                     [runs[i][0][runs[i][1] + b] for i in live], pk.nsquare)
            for i, c in zip(live, prod, strict=True):
                cur[i] = c
                cols[i].append(c)
            self.meter.ops["ct+ct"] += len(live)
        return [c for (_, _, nb), col in zip(runs, cols, strict=True) for c in col[:nb - 1]]

    def split(self, tree: int, splits: list) -> dict[int, np.ndarray]:
        """Carry out the guest's choice of host splits: remember each threshold, say which of
        the node's rows go left."""
        self._maybe_fail(tree, "split")
        sides = {}
        n_bins = self.binning.n_bins
        for item in splits:
            try:
                nd, f, b = (int(x) for x in item)
            except (TypeError, ValueError):
                raise ProtocolError(f"host got the split {item!r}; expected (node, feature, "
                                    f"bin)") from None
            if nd not in self._nodes:
                raise ProtocolError(f"host got a split of node {nd}, not one of this level's "
                                    f"{self._nodes}")
            if not 0 <= f < len(n_bins) or not 0 <= b < n_bins[f] - 1:
                raise ProtocolError(f"host got a split at feature {f}, bin {b}; it has "
                                    f"{len(n_bins)} features with {n_bins.tolist()} bins")
            self.thresholds[(tree, nd)] = (f, self.binning.threshold(f, b))
            members = self._rows[self._assign == nd]
            sides[nd] = self.bins[members, f] <= b
        return sides

    def walk(self, dataset: str, queries: dict) -> dict:
        """Prediction: for ``{(tree, node): rows}`` at host nodes, which rows go left."""
        X = {"train": self.X, "test": self.X_test}.get(dataset)
        if X is None:
            raise ProtocolError(f"host has no {dataset!r} data to predict")
        out = {}
        for key, rows in queries.items():
            if tuple(key) not in self.thresholds:
                raise ProtocolError(f"host has no split {tuple(key)} (tree, node)")
            f, thr = self.thresholds[tuple(key)]
            rows = np.asarray(rows, dtype=np.int64)
            if rows.size and (rows.min() < 0 or rows.max() >= len(X)):
                raise ProtocolError(f"host: {dataset} rows out of range for node {key}")
            out[key] = X[rows, f] <= thr
        return out


class SBGuest(_Party):
    """Holds the labels, its features and the keys; decrypts histograms and grows the trees."""

    role = "guest"

    def __init__(self, X: np.ndarray, y: np.ndarray, config: SBConfig, backend: str | None = None,
                 X_test: np.ndarray | None = None, y_test: np.ndarray | None = None) -> None:
        super().__init__(config, backend)
        self.X = np.asarray(X, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)
        if len(self.X) != len(self.y):
            raise ValueError(f"guest has {len(self.X)} rows but {len(self.y)} labels")
        self.X_test, self.y_test = X_test, y_test
        with warnings.catch_warnings():
            # small keys are for tests; the demo's default is 2048 bits
            warnings.simplefilter("ignore", paillier.SecurityWarning)
            self.pk, self.sk = paillier.generate_paillier_keypair(
                n_length=config.key_bits, backend=backend)
        self.pk.random_factors(1)  # the guest encrypts: build its fixed-base table at set-up
        self.binning = Binning(self.X, config.bins)
        self.bins = self.binning.transform(self.X)
        self.base = base_score(self.y)
        self.scores = np.full(len(self.y), self.base)
        self.test_scores = None if X_test is None else np.full(len(X_test), self.base)
        self.trees = []
        self._walks: dict = {}

    def public_key_json(self) -> str:
        return self.pk.to_json()

    def set_host_bins(self, n_bins: list[int]) -> None:
        n_bins = np.asarray(n_bins)
        if n_bins.ndim != 1 or n_bins.dtype.kind not in "iu" or np.any(n_bins < 1):
            raise ProtocolError(f"guest got host bin counts {n_bins!r}; expected positive ints")
        self.host_bins = n_bins.astype(np.int64)
        self.host_index = split_index(self.host_bins)

    def start_tree(self, tree: int) -> dict:
        """g and h of the tree's rows, encrypted (packed unless ``pack`` is off)."""
        self._maybe_fail(tree, "gradients")
        cfg = self.config
        rows = tree_rows(len(self.y), cfg, tree)
        with self.meter.time("split finding"):
            g, h = gradients(self.y[rows], self.scores[rows])
            gq, hq = quantize(g, h, cfg.precision_bits)
        with self.meter.time("encryption"):
            layout = gh_layout(cfg.precision_bits, len(rows))
            self._layout = layout
            bits = _slot_bits(layout.widths, cfg.pack)
            if bits > self.pk.n.bit_length() - 1:
                raise ValueError(f"a {bits}-bit gradient slot does not fit a {cfg.key_bits}-bit "
                                 "key; use a larger key or fewer precision bits")
            cols = [[int(x) for x in hq], [int(x) for x in gq]]
            # packed: h' low, g' high; unpacked: [[g']] then [[h']], the order the host's
            # histograms keep and the guest reads them back in
            plains = [layout.pack(cols)] if cfg.pack else [cols[1], cols[0]]
            vectors = [EncryptedVector(self.pk, self.pk.raw_encrypt_batch(p), 0, obfuscated=True)
                       for p in plains]
            self.meter.ops["encrypt"] += sum(len(p) for p in plains)
        self._grower = TreeGrower(gq, hq, rows, self.bins, self.binning, self.host_bins, cfg)
        self._tree = tree
        return {"rows": rows, "widths": layout.widths, "packed": cfg.pack,
                "gh": [self._send(v) for v in vectors]}

    def plan(self, tree: int) -> dict:
        with self.meter.time("split finding"):
            return self._grower.plan()

    def find_splits(self, tree: int, msg: dict) -> list[tuple[int, int, int]]:
        """Decrypt and unpack the host's histograms, split every node; the host's splits."""
        self._maybe_fail(tree, "find_splits")
        grower, cfg = self._grower, self.config
        nodes = list(grower.open)
        if [int(x) for x in msg.get("nodes", [])] != nodes:
            raise ProtocolError(f"guest got histograms of nodes {msg.get('nodes')}, asked for "
                                f"{nodes}")
        per_node = len(self.host_index[0])
        counts = np.asarray(msg.get("counts"))
        if counts.shape != (len(nodes) * per_node,) or (counts.size and
                                                         (counts.dtype.kind not in "iu"
                                                          or counts.min() < 0)):
            raise ProtocolError(f"guest got bin counts of shape {counts.shape}, expected "
                                f"({len(nodes) * per_node},) non-negative integers")
        host_cum = {}
        if per_node and nodes:
            enc = self._load(msg["hist"], "the host's histograms", "host")
            copies = 1 if cfg.pack else 2
            entries = len(nodes) * per_node * copies
            bits = _slot_bits(self._layout.widths, cfg.pack)
            per = slots_per_plaintext(self.pk, bits)
            if len(enc) != -(-entries // per):
                raise ProtocolError(f"guest got {len(enc)} compressed histogram ciphertexts, "
                                    f"expected {-(-entries // per)}")
            with self.meter.time("decryption"):
                raw = self.sk.raw_decrypt_batch(enc.ciphertexts(be_secure=False))
                self.meter.ops["decrypt"] += len(raw)
                try:
                    slots = decompress(raw, bits, per, entries)
                    if cfg.pack:
                        H, G = unpack(slots, self._layout.widths)
                    else:
                        G, H = self._split_copies(slots, len(nodes), per_node)
                except ValueError as e:
                    raise ProtocolError(f"guest: the host's histograms do not unpack: "
                                        f"{e}") from None
            for i, nd in enumerate(nodes):
                sl = slice(i * per_node, (i + 1) * per_node)
                host_cum[nd] = (G[sl], H[sl], counts[sl])
        with self.meter.time("split finding"):
            return grower.choose(host_cum)

    @staticmethod
    def _split_copies(slots: list[int], nodes: int, per_node: int):
        # unpacked: per node, the g' sums of every bin, then the h' sums
        G = np.empty(nodes * per_node, dtype=object)
        H = np.empty(nodes * per_node, dtype=object)
        for i in range(nodes):
            base = 2 * i * per_node
            G[i * per_node:(i + 1) * per_node] = slots[base:base + per_node]
            H[i * per_node:(i + 1) * per_node] = slots[base + per_node:base + 2 * per_node]
        return G, H

    def apply_splits(self, tree: int, sides: dict) -> dict:
        """Apply the level's splits (the host's sides for its own); the next level's plan."""
        with self.meter.time("split finding"):
            try:
                self._grower.apply(sides)
            except ValueError as e:
                raise ProtocolError(f"guest: {e}") from None
            return self._grower.plan()

    def finish_tree(self, tree: int) -> None:
        with self.meter.time("split finding"):
            t, weights = self._grower.finish()
            self.trees.append(t)
            rows = self._grower.rows
            self.scores[rows] += weights
            self._outside = np.setdiff1d(np.arange(len(self.y)), rows)

    # -- joint prediction ------------------------------------------------------------------

    def walk_start(self, tree: int, dataset: str) -> dict:
        """Start walking tree ``tree`` for ``"train"`` rows outside its subsample or all
        ``"test"`` rows; the first queries for the host (empty: nothing to ask)."""
        X = self.X if dataset == "train" else self.X_test
        rows = self._outside if dataset == "train" else np.arange(len(X))
        self._walks[dataset] = {"tree": tree, "X": X, "rows": rows,
                                "pos": np.zeros(len(rows), dtype=np.int64),
                                "out": np.full(len(rows), np.nan)}
        return self._walk_advance(dataset, {})

    def walk_step(self, dataset: str, answers: dict) -> dict:
        return self._walk_advance(dataset, answers)

    def _walk_advance(self, dataset: str, answers: dict) -> dict:
        w = self._walks[dataset]
        tree, nodes = w["tree"], self.trees[w["tree"]].nodes
        pos, out = w["pos"], w["out"]
        for key, left in answers.items():
            nd = int(key[1])
            members = np.flatnonzero((pos == nd) & np.isnan(out))
            left = np.asarray(left, dtype=bool)
            if left.shape != members.shape:
                raise ProtocolError(f"guest got {left.shape} answers for node {nd}'s "
                                    f"{len(members)} rows")
            pos[members[left]] = nodes[nd]["left"]
            pos[members[~left]] = nodes[nd]["right"]
        queries = {}
        while True:  # follow leaves and guest splits until only host questions remain
            moved = False
            for nd in np.unique(pos[np.isnan(out)]):
                node = nodes[int(nd)]
                m = (pos == nd) & np.isnan(out)
                if "weight" in node:
                    out[m] = node["weight"]
                elif node["party"] == "guest":
                    idx = np.flatnonzero(m)
                    left = w["X"][w["rows"][idx], node["feature"]] <= node["threshold"]
                    pos[idx[left]] = node["left"]
                    pos[idx[~left]] = node["right"]
                    moved = True
                else:
                    queries[(tree, int(nd))] = w["rows"][np.flatnonzero(m)]
            if not moved:
                break
        if not queries:
            target = self.scores if dataset == "train" else self.test_scores
            target[w["rows"]] += out
        return queries

    def test_auc(self) -> float:
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(self.y_test, self.test_scores))

    def model(self) -> list:
        """The trees as the guest holds them (node dicts, host thresholds absent)."""
        return [t.nodes for t in self.trees]
