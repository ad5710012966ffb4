"""FATE-style hetero (vertical) logistic regression with guest, host and arbiter.

The arbiter makes the Paillier keypair and keeps the private key. Per iteration, on a batch B
(all parties use the same sample ids), with Taylor's second-order approximation of the logistic
loss, u = X w split as u_g + u_h:

1. host   → guest:   [[u_h / 4]], [[u_h²]], [[½·α·|w_h|²]]
2. guest  → host:    [[d]] = [[u_h / 4]] + u_g / 4 − y / 2        (the fore-gradient)
   guest  → arbiter: [[loss]] = mean(log 2 − y·u/2 + u²/8) + ½·α·|w|²
3. each party        [[g]] = X_Bᵀ [[d]] / |B|  (one multi-exponentiation, no per-element powmod)
   each party → arbiter: [[g + r]] with a fresh one-time pad r uniform in Z_n per element
4. arbiter → party:  g + r mod n (decrypted);  the party subtracts r, adds α·w, steps w −= lr·g.

**What each party sees** (the arbiter learns neither gradients nor model, unlike FATE's arbiter,
which decrypts gradients in the clear):

* guest — its features X_g, the labels y, its weights w_g and gradients; ciphertexts under the
  arbiter's key ([[u_h/4]], [[u_h²]], [[½α|w_h|²]]) that it cannot decrypt.
* host — its features X_h, weights w_h and gradients; the ciphertexts [[d]].
* arbiter — the keys; per iteration each party's g + r mod n, which is uniform in Z_n whatever g
  is (a one-time pad), and the loss (one scalar, for monitoring and convergence).
* evaluation (outside training, as in FATE's prediction): the host sends its partial scores
  X_h,test · w_h to the guest, which holds the test labels and reports the AUC.

Parties exchange documented JSON (:mod:`montpipe.driver.serialization`), validated on receipt:
a ciphertext under the wrong key or out of range stops the run with :class:`ProtocolError`.
"""

from __future__ import annotations

import math
import os
import secrets
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np

from ..driver import paillier
from ..driver.encoding import decode_mantissa, signed_mantissa
from ..driver.vector import EncryptedVector
from . import accounting

__all__ = ["Arbiter", "Config", "Guest", "Host", "ProtocolError", "train_plaintext"]

LOG2 = math.log(2.0)


class ProtocolError(RuntimeError):
    """A party received something it must not accept, or a party failed; the message says which
    party, which step and which iteration."""


@dataclass
class Config:
    """Hyper-parameters (defaults: FATE's benchmark settings for the breast-cancer data)."""

    iterations: int = 30
    learning_rate: float = 0.15
    l2: float = 0.01
    batch_size: int | None = None  # None: full batch
    key_bits: int = 2048
    mask: bool = True  # False sends unmasked gradients to the arbiter (FATE's behaviour)
    seed: int = 0

    def validate(self) -> None:
        if not isinstance(self.iterations, int) or self.iterations < 1:
            raise ValueError(f"iterations must be a positive integer, not {self.iterations!r}")
        if not (isinstance(self.learning_rate, int | float) and self.learning_rate > 0):
            raise ValueError(f"learning rate must be positive, not {self.learning_rate!r}")
        if not (isinstance(self.l2, int | float) and self.l2 >= 0):
            raise ValueError(f"L2 penalty must be >= 0, not {self.l2!r}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int)
                                            or self.batch_size < 1):
            raise ValueError(f"batch size must be a positive integer, not {self.batch_size!r}")
        if not isinstance(self.key_bits, int) or self.key_bits < 256 or self.key_bits % 2:
            raise ValueError(f"key size must be an even number of bits >= 256, not "
                             f"{self.key_bits!r}")

    def as_dict(self) -> dict:
        return asdict(self)


def batches(n: int, config: Config, iteration: int) -> np.ndarray:
    """The sample indices of an iteration's batch (the same on every party)."""
    if config.batch_size is None or config.batch_size >= n:
        return np.arange(n)
    per_epoch = math.ceil(n / config.batch_size)
    epoch, k = divmod(iteration, per_epoch)
    order = np.random.default_rng(config.seed + epoch).permutation(n)
    return np.sort(order[k * config.batch_size:(k + 1) * config.batch_size])


class _Meter:
    """Seconds per category, crypto operation counts and what the party's backend counted in
    its metered steps (:mod:`.accounting`), per iteration.

    ``counters`` gives the backend's counters now (or ``None`` before the party has a key); a
    step's backend figures are the difference across it, taken at the outermost step only, so
    a step inside another is not counted twice.
    """

    def __init__(self, counters: Callable[[], dict | None] = lambda: None) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.ops: dict[str, int] = defaultdict(int)
        self.backend: dict[str, dict[str, float]] = {}
        self.counters = counters
        self._depth = 0

    @contextmanager
    def time(self, category: str):
        outer = self._depth == 0
        before = self.counters() if outer else None
        self._depth += 1
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[category] += time.perf_counter() - t0
            self._depth -= 1
            if before is not None:
                after = self.counters()
                if after is not None:
                    accounting.add(self.backend.setdefault(category, {}),
                                   accounting.difference(before, after))

    def take(self) -> dict:
        out = {"seconds": dict(self.seconds), "ops": dict(self.ops), "backend": self.backend}
        self.seconds.clear()
        self.ops.clear()
        self.backend = {}
        return out


class _Party:
    role = "party"

    def __init__(self, config: Config, backend: str | None) -> None:
        config.validate()
        self.config = config
        self.backend = backend
        self.meter = _Meter(self._counters)
        self.pk: paillier.PaillierPublicKey | None = None
        self._fail_at: tuple[int, str] | None = None

    def set_public_key(self, public_key_json: str) -> str:
        try:
            self.pk = paillier.PaillierPublicKey.from_json(public_key_json, backend=self.backend)
        except (ValueError, TypeError) as e:
            raise ProtocolError(f"{self.role} refused the public key: {e}") from None
        return self.pk.key_id

    def inject_failure(self, iteration: int, step: str, hang_seconds: float = 0.0) -> None:
        """For tests: fail (as a crashed party would) at this iteration and step, or with
        ``hang_seconds`` stop answering for that long first (as a stuck one would)."""
        self._fail_at = (iteration, step)
        self._hang = hang_seconds

    def _counters(self) -> dict | None:
        return accounting.counters(self.pk.backend) if self.pk is not None else None

    def backend_report(self) -> dict:
        """The party's backend: what it is and what it counted over its life, for every caller
        (for the summary); ``instance`` tells parties sharing one backend object apart."""
        if self.pk is None:
            return {}
        backend = self.pk.backend
        return {"describe": backend.describe(), "stats": backend.stats.as_dict(),
                "instance": f"{os.getpid()}:{id(backend)}"}

    def use_foreign_key(self, bits: int) -> str:
        """For tests: encrypt under a key of this party's own instead of the arbiter's."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", paillier.SecurityWarning)
            self.pk, _ = paillier.generate_paillier_keypair(n_length=bits, backend=self.backend)
        return self.pk.key_id

    def _maybe_fail(self, iteration: int, step: str) -> None:
        if self._fail_at == (iteration, step):
            if getattr(self, "_hang", 0.0):
                time.sleep(self._hang)
            raise RuntimeError(f"{self.role} was told to fail at iteration {iteration}, {step}")

    def _load(self, text: str, what: str, sender: str) -> EncryptedVector:
        with self.meter.time("communication"):
            try:
                return EncryptedVector.from_json(text, self.pk)
            except (ValueError, TypeError) as e:  # TypeError: not text at all (None, say)
                raise ProtocolError(f"{self.role} refused {what} from {sender}: {e}") from None

    def _load_number(self, text: str, what: str, sender: str) -> paillier.EncryptedNumber:
        with self.meter.time("communication"):
            try:
                return paillier.EncryptedNumber.from_json(text, self.pk)
            except (ValueError, TypeError) as e:
                raise ProtocolError(f"{self.role} refused {what} from {sender}: {e}") from None

    def _field(self, message, name: str, sender: str):
        """A field of a message from another party: anything else is a ProtocolError."""
        if not isinstance(message, dict) or name not in message:
            shown = f"fields {sorted(map(str, message))}" if isinstance(message, dict) else \
                f"a {type(message).__name__}"
            raise ProtocolError(f"{self.role} expected a message with field {name!r} from "
                                f"{sender}, got {shown}")
        return message[name]

    def _send(self, x) -> str:
        with self.meter.time("communication"):
            return x.to_json()

    def _masked_gradient(self, enc_grad: EncryptedVector) -> str:
        """[[g + r]] with r uniform in Z_n, remembered for :meth:`_unmask`."""
        with self.meter.time("homomorphic"):
            self._grad_exponent = enc_grad.exponent
            if self.config.mask:
                self._mask = [secrets.randbelow(self.pk.n) for _ in range(len(enc_grad))]
                enc_grad = enc_grad.add_raw(self._mask)
            else:
                self._mask = [0] * len(enc_grad)
            self.meter.ops["ct+pt"] += len(enc_grad)
        return self._send(enc_grad)

    def _unmask(self, raw: list[int]) -> np.ndarray:
        n = self.pk.n
        if not isinstance(raw, list | tuple) or not all(
                isinstance(x, int) and not isinstance(x, bool) for x in raw):
            raise ProtocolError(f"{self.role} expected the decrypted gradient as a list of "
                                f"integers, got {type(raw).__name__}")
        if len(raw) != len(self._mask):
            raise ProtocolError(f"{self.role} got {len(raw)} gradient values back, expected "
                                f"{len(self._mask)}")
        out = []
        for i, (x, r) in enumerate(zip(raw, self._mask, strict=True)):
            mantissa = signed_mantissa((int(x) - r) % n, n, self.pk.max_int)
            if mantissa is None:
                raise ProtocolError(f"{self.role}: gradient element {i} overflowed the "
                                    "fixed-point range")
            try:
                out.append(decode_mantissa(mantissa, self._grad_exponent))
            except OverflowError:
                raise ProtocolError(f"{self.role}: gradient element {i} is beyond float64"
                                    ) from None
        return np.array(out, dtype=np.float64)

    def _step(self, grad: np.ndarray) -> None:
        grad = grad + self.config.l2 * self.w
        self.w = self.w - self.config.learning_rate * grad

    def report(self) -> dict:
        return self.meter.take()

    def weights(self) -> list[float]:
        return self.w.tolist()


class Host(_Party):
    """Holds X_h and w_h; never sees labels or the guest's features."""

    role = "host"

    def set_public_key(self, public_key_json: str) -> str:
        key_id = super().set_public_key(public_key_json)
        self.pk.random_factors(1)  # the host encrypts: build its fixed-base table at set-up
        return key_id

    def __init__(self, X: np.ndarray, config: Config, backend: str | None = None,
                 X_test: np.ndarray | None = None) -> None:
        super().__init__(config, backend)
        self.X = np.asarray(X, dtype=np.float64)
        self.X_test = X_test
        self.w = np.zeros(self.X.shape[1])

    def forward(self, iteration: int, idx: np.ndarray) -> dict:
        self._maybe_fail(iteration, "forward")
        self._idx = idx
        u = self.X[idx] @ self.w
        with self.meter.time("encryption"):
            quarter = self.pk.encrypt_vector(u / 4)
            square = self.pk.encrypt_vector(u * u)
            reg = self.pk.encrypt(0.5 * self.config.l2 * float(self.w @ self.w))
            self.meter.ops["encrypt"] += 2 * len(idx) + 1
        return {"u_quarter": self._send(quarter), "u_square": self._send(square),
                "reg": self._send(reg)}

    def gradient(self, iteration: int, d_json: str) -> str:
        self._maybe_fail(iteration, "gradient")
        d = self._load(d_json, "the fore-gradient [[d]]", "guest")
        if len(d) != len(self._idx):
            raise ProtocolError(f"host got a fore-gradient of length {len(d)} for a batch of "
                                f"{len(self._idx)}")
        with self.meter.time("homomorphic"):
            g = (self.X[self._idx].T / len(self._idx)) @ d
            self.meter.ops["ct*pt"] += d.shape[0] * self.X.shape[1]
        return self._masked_gradient(g)

    def update(self, iteration: int, raw: list[int]) -> None:
        self._step(self._unmask(raw))

    def test_scores(self) -> list[float]:
        """Evaluation only: the host's partial scores X_h,test · w_h."""
        return (self.X_test @ self.w).tolist() if self.X_test is not None else []


class Guest(_Party):
    """Holds X_g, the labels and w_g; computes the fore-gradient and the encrypted loss."""

    role = "guest"

    def __init__(self, X: np.ndarray, y: np.ndarray, config: Config, backend: str | None = None,
                 X_test: np.ndarray | None = None, y_test: np.ndarray | None = None) -> None:
        super().__init__(config, backend)
        self.X = np.asarray(X, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)
        if len(self.X) != len(self.y):
            raise ValueError(f"guest has {len(self.X)} rows but {len(self.y)} labels")
        self.X_test, self.y_test = X_test, y_test
        self.w = np.zeros(self.X.shape[1])

    def residual(self, iteration: int, idx: np.ndarray, host_msg: dict) -> tuple[str, str]:
        self._maybe_fail(iteration, "residual")
        self._idx = idx
        quarter = self._load(self._field(host_msg, "u_quarter", "host"), "[[u_h/4]]", "host")
        square = self._load(self._field(host_msg, "u_square", "host"), "[[u_h²]]", "host")
        reg_h = self._load_number(self._field(host_msg, "reg", "host"), "[[½α|w_h|²]]", "host")
        if len(quarter) != len(idx) or len(square) != len(idx):
            raise ProtocolError(f"guest got host vectors of lengths {len(quarter)}, "
                                f"{len(square)} for a batch of {len(idx)}")
        y, u_g = self.y[idx], self.X[idx] @ self.w
        nb = len(idx)
        with self.meter.time("homomorphic"):
            d = quarter + (u_g / 4 - y / 2)
            # loss: sum(log2 - y u/2 + u²/8), u = u_g + u_h, over [[u_h/4]] and [[u_h²]]
            plain = float(np.sum(LOG2 - 0.5 * y * u_g + 0.125 * u_g * u_g))
            coeff = 4 * (-0.5 * y + 0.25 * u_g)  # times [[u_h/4]] gives (-y/2 + u_g/4)·u_h
            loss = (quarter.dot(coeff) + square.sum() * 0.125 + plain) * (1.0 / nb)
            loss = loss + reg_h + 0.5 * self.config.l2 * float(self.w @ self.w)
            self.meter.ops["ct+pt"] += 2 * nb + 3
            self.meter.ops["ct*pt"] += nb + 2
        self._d = d
        return self._send(d), self._send(loss)

    def gradient(self, iteration: int) -> str:
        self._maybe_fail(iteration, "gradient")
        with self.meter.time("homomorphic"):
            g = (self.X[self._idx].T / len(self._idx)) @ self._d
            self.meter.ops["ct*pt"] += len(self._idx) * self.X.shape[1]
        return self._masked_gradient(g)

    def update(self, iteration: int, raw: list[int]) -> None:
        self._step(self._unmask(raw))

    def test_auc(self, host_scores: list[float]) -> float:
        from sklearn.metrics import roc_auc_score

        scores = self.X_test @ self.w + np.asarray(host_scores)
        return float(roc_auc_score(self.y_test, scores))


class Arbiter(_Party):
    """Makes the keys, decrypts masked gradients and the loss; sees nothing else."""

    role = "arbiter"

    def __init__(self, config: Config, backend: str | None = None) -> None:
        super().__init__(config, backend)
        with warnings.catch_warnings():
            # small keys are for tests; the demo's default is 2048 bits
            warnings.simplefilter("ignore", paillier.SecurityWarning)
            self.pk, self.sk = paillier.generate_paillier_keypair(
                n_length=config.key_bits, backend=backend)

    def public_key_json(self) -> str:
        return self.pk.to_json()

    def decrypt_gradient(self, iteration: int, party: str, masked_json: str) -> list[int]:
        self._maybe_fail(iteration, "decrypt")
        v = self._load(masked_json, "a masked gradient", party)
        with self.meter.time("decryption"):
            raw = self.sk.raw_decrypt_batch(v.ciphertexts(be_secure=False))
            self.meter.ops["decrypt"] += len(v)
        return raw

    def decrypt_loss(self, iteration: int, loss_json: str) -> float:
        x = self._load_number(loss_json, "the loss", "guest")
        with self.meter.time("decryption"):
            self.meter.ops["decrypt"] += 1
            try:
                return float(self.sk.decrypt(x))
            except OverflowError as e:
                raise ProtocolError(f"arbiter: the loss overflowed the fixed-point range "
                                    f"({e})") from None


def train_plaintext(Xg, Xh, y, config: Config, Xg_test=None, Xh_test=None, y_test=None):
    """The same protocol without encryption: the reference the encrypted run must match."""
    from sklearn.metrics import roc_auc_score

    wg, wh = np.zeros(Xg.shape[1]), np.zeros(Xh.shape[1])
    losses, aucs = [], []
    for it in range(config.iterations):
        idx = batches(len(y), config, it)
        u = Xg[idx] @ wg + Xh[idx] @ wh
        yb = y[idx]
        loss = float(np.mean(LOG2 - 0.5 * yb * u + 0.125 * u * u))
        loss += 0.5 * config.l2 * float(wg @ wg + wh @ wh)
        d = u / 4 - yb / 2
        gg = Xg[idx].T @ d / len(idx) + config.l2 * wg
        gh = Xh[idx].T @ d / len(idx) + config.l2 * wh
        wg, wh = wg - config.learning_rate * gg, wh - config.learning_rate * gh
        losses.append(loss)
        if y_test is not None:
            aucs.append(float(roc_auc_score(y_test, Xg_test @ wg + Xh_test @ wh)))
    return wg, wh, losses, aucs
