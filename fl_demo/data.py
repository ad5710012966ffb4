"""The data of the demo: Wisconsin breast cancer split vertically like FATE's demo, or a CSV pair.

The guest holds the label and 10 features, the host the other 20, for the same samples
(aligned by id). Each party standardises its own features with its own training statistics.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DataError", "VerticalSplit", "load_breast_cancer_split", "load_csv_pair",
           "load_synthetic_split"]


class DataError(ValueError):
    """A data file is unusable; the message names the file, the row or column, and the value."""


@dataclass
class VerticalSplit:
    """Training and test data as the two parties hold them (rows aligned by sample id)."""

    guest_train: np.ndarray
    host_train: np.ndarray
    y_train: np.ndarray
    guest_test: np.ndarray
    host_test: np.ndarray
    y_test: np.ndarray
    guest_features: list[str]
    host_features: list[str]
    source: str

    @property
    def n_train(self) -> int:
        return len(self.y_train)


def _split_and_standardise(g, h, y, names_g, names_h, test_size, seed, source):
    rng = np.random.default_rng(seed)
    idx_test, idx_train = [], []
    for label in (0, 1):  # stratified by label
        members = np.flatnonzero(y == label)
        rng.shuffle(members)
        cut = round(len(members) * test_size)
        idx_test.extend(members[:cut])
        idx_train.extend(members[cut:])
    idx_train, idx_test = np.sort(idx_train), np.sort(idx_test)
    if len(idx_train) < 2 or len(idx_test) < 2:
        raise DataError(f"{source}: too few samples ({len(y)}) for a train/test split")

    def standardise(x):
        mean, std = x[idx_train].mean(axis=0), x[idx_train].std(axis=0)
        std[std == 0] = 1.0
        return (x - mean) / std

    g, h = standardise(g), standardise(h)
    return VerticalSplit(g[idx_train], h[idx_train], y[idx_train].astype(float),
                         g[idx_test], h[idx_test], y[idx_test].astype(float),
                         names_g, names_h, source)


def load_breast_cancer_split(test_size: float = 0.2, seed: int = 0) -> VerticalSplit:
    """scikit-learn's bundled Wisconsin breast-cancer set (569 samples, no download):
    guest = label + the first 10 features, host = the other 20, as in FATE's demo."""
    from sklearn.datasets import load_breast_cancer

    ds = load_breast_cancer()
    X, y = ds.data.astype(float), ds.target.astype(int)
    names = [str(n) for n in ds.feature_names]
    return _split_and_standardise(X[:, :10], X[:, 10:], y, names[:10], names[10:], test_size,
                                  seed, "sklearn breast_cancer")


def load_synthetic_split(n_samples: int = 20_000, n_features: int = 30, test_size: float = 0.2,
                         seed: int = 0) -> VerticalSplit:
    """A larger generated set for scale: scikit-learn's ``make_classification`` (10 informative
    and 10 redundant features, shuffled among the columns, 1 % label noise), the guest holding
    the label and the first half of the features, the host the rest."""
    from sklearn.datasets import make_classification

    if n_features < 2 or n_samples < 10:
        raise DataError(f"a synthetic set needs >= 2 features and >= 10 samples, not "
                        f"{n_features} and {n_samples}")
    informative = min(10, n_features)
    X, y = make_classification(n_samples=n_samples, n_features=n_features,
                               n_informative=informative,
                               n_redundant=min(10, n_features - informative),
                               flip_y=0.01, random_state=seed)
    half = n_features // 2
    names = [f"x{i}" for i in range(n_features)]
    return _split_and_standardise(X[:, :half], X[:, half:], y.astype(int), names[:half],
                                  names[half:], test_size, seed,
                                  f"make_classification {n_samples}x{n_features}")


def _read_csv(path: Path, role: str) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise DataError(f"{role} CSV {path}: cannot read it ({e.strerror})") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{role} CSV {path}: not a CSV text file ({e})") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise DataError(f"{role} CSV {path}: empty file")
    header = [c.strip() for c in rows[0]]
    if not header or header[0].lower() != "id":
        raise DataError(f"{role} CSV {path}: the first column must be 'id', not {header[0]!r}")
    return header, rows[1:]


def _numbers(rows, header, path, role, first_col):
    out = np.empty((len(rows), len(header) - first_col))
    for r, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise DataError(
                f"{role} CSV {path}: line {r} has {len(row)} fields, the header has {len(header)}"
            )
        for c in range(first_col, len(header)):
            try:
                v = float(row[c])
            except ValueError:
                raise DataError(
                    f"{role} CSV {path}: line {r}, column {header[c]!r}: {row[c]!r} is not a "
                    "number"
                ) from None
            if not np.isfinite(v):
                raise DataError(
                    f"{role} CSV {path}: line {r}, column {header[c]!r}: {row[c]!r} is not finite"
                )
            out[r - 2, c - first_col] = v
    return out


def load_csv_pair(guest_csv: str | Path, host_csv: str | Path, test_size: float = 0.2,
                  seed: int = 0) -> VerticalSplit:
    """A CSV pair in FATE's shape: guest ``id,y,features...``, host ``id,features...``.

    Rows are matched by id (order may differ). Raises :class:`DataError` naming the file and
    line for a missing or misnamed column, a non-numeric or non-finite value, a label other than
    0/1, duplicate or unmatched ids, or no features.
    """
    gp, hp = Path(guest_csv), Path(host_csv)
    gh, grows = _read_csv(gp, "guest")
    hh, hrows = _read_csv(hp, "host")
    if len(gh) < 3 or gh[1].lower() != "y":
        raise DataError(f"guest CSV {gp}: columns must be id, y, then at least one feature")
    if len(hh) < 2:
        raise DataError(f"host CSV {hp}: columns must be id, then at least one feature")
    gids = [r[0].strip() for r in grows]
    hids = [r[0].strip() for r in hrows]
    for ids, path, role in ((gids, gp, "guest"), (hids, hp, "host")):
        seen = set()
        for i, v in enumerate(ids, start=2):
            if v in seen:
                raise DataError(f"{role} CSV {path}: line {i}: duplicate id {v!r}")
            seen.add(v)
    if set(gids) != set(hids):
        missing = sorted(set(gids) ^ set(hids))[:3]
        raise DataError(f"guest and host CSVs do not hold the same ids (e.g. {missing})")
    g = _numbers(grows, gh, gp, "guest", 1)
    y = g[:, 0]
    bad = np.flatnonzero((y != 0) & (y != 1))
    if bad.size:
        raise DataError(f"guest CSV {gp}: line {bad[0] + 2}: label y must be 0 or 1, not "
                        f"{grows[bad[0]][1]!r}")
    if len(set(y.tolist())) < 2:
        raise DataError(f"guest CSV {gp}: every label is {int(y[0])}; both classes are needed")
    h = _numbers(hrows, hh, hp, "host", 1)
    order = {v: i for i, v in enumerate(hids)}
    h = h[[order[v] for v in gids]]
    return _split_and_standardise(g[:, 1:], h, y.astype(int), gh[2:], hh[1:], test_size, seed,
                                  f"{gp.name} + {hp.name}")
