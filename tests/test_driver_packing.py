"""Packing, grouped sums and cipher compression: exact against plain integer arithmetic, on
every backend path, and loud about anything that would overflow."""

import numpy as np
import pytest

from montpipe.driver import packing
from montpipe.driver.backends import cpu as cpu_module
from montpipe.driver.backends.cpu import CPUBackend
from montpipe.driver.backends.model import ModelBackend
from montpipe.driver.vector import EncryptedVector


def _naive(values, groups, n_groups, modulus):
    out = [1 % modulus] * n_groups
    for v, g in zip(values, groups):
        if g >= 0:
            out[g] = out[g] * v % modulus
    return out


@pytest.mark.parametrize("backend", ["gmpy2", "native", "native-split", "model"])
def test_group_prodmod_matches_plain_products(backend, monkeypatch):
    if backend == "native-split":  # force the batch over two threads, however small
        monkeypatch.setattr(cpu_module, "_PARALLEL_THRESHOLD_NS", 0)
    b = {"gmpy2": lambda: CPUBackend(use_native=False), "model": ModelBackend}.get(
        backend, lambda: CPUBackend(workers=2))()
    if backend != "gmpy2" and not cpu_module.native_available():
        pytest.skip("the GMP kernels are not built")
    rng = np.random.default_rng(5)
    modulus = (1 << 521) - 1
    values = [int(x) for x in rng.integers(1, 2**62, 300)]
    groups = rng.integers(-1, 40, 300)
    groups[groups == 7] = 8  # an empty group in the middle
    assert b.group_prodmod(values, groups, 45, modulus) == _naive(values, groups, 45, modulus)
    assert b.group_prodmod([], np.empty(0, dtype=int), 3, modulus) == [1, 1, 1]
    if backend == "model":
        assert b.stats.extra["grouped_mulmods"] == int(np.sum(groups >= 0))
        assert b.stats.extra["projected_grouped_product_seconds"] > 0
        assert b.stats.extra["projected_device_seconds"] == 0  # the device has no product operation
    b.close()


def test_group_prodmod_rejects_bad_indices():
    b = CPUBackend()
    with pytest.raises(ValueError, match=r"groups\[1\] is 3; expected -1 \(left out\) or a "
                                         r"group in \[0, 3\)"):
        b.group_prodmod([2, 3], [0, 3], 3, 101)
    with pytest.raises(ValueError, match=r"got 2 values but a group index of shape \(3,\)"):
        b.group_prodmod([2, 3], [0, 1, 2], 3, 101)
    with pytest.raises(ValueError, match="must be integers"):
        b.group_prodmod([2, 3], [0.0, 1.0], 3, 101)


def test_pack_and_unpack_round_trip_and_refuse_overflow():
    layout = packing.SlotLayout([5, 7, 3])
    cols = [[0, 31, 7], [127, 0, 64], [1, 7, 0]]
    packed = layout.pack(cols)
    assert packed[0] == 0 | 127 << 5 | 1 << 12
    assert [list(c) for c in layout.unpack(packed)] == cols
    with pytest.raises(ValueError, match=r"column 0, row 1: 32 is outside the field's range "
                                         r"\[0, 2\*\*5\)"):
        layout.pack([[0, 32, 0], [0, 0, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="does not fit its 15-bit layout"):
        layout.unpack([1 << 15])
    assert packing.slot_bits(255, 1) == 8 and packing.slot_bits(255, 2) == 9
    with pytest.raises(ValueError, match="field widths"):
        packing.SlotLayout([3, 0])


def test_group_sum_and_compression_decrypt_to_the_plain_sums(keypair_factory):
    pk, sk = keypair_factory(512)
    rng = np.random.default_rng(2)
    plain = [int(x) for x in rng.integers(0, 2**20, 120)]
    groups = rng.integers(-1, 13, 120)
    v = EncryptedVector(pk, pk.raw_encrypt_batch(plain), 0)
    sums = packing.group_sum(v, groups, 14)
    expected = [sum(p for p, g in zip(plain, groups) if g == k) for k in range(14)]
    assert sk.raw_decrypt_batch(sums.ciphertexts(be_secure=False)) == expected
    bits = packing.slot_bits(2**20 - 1, 120)
    per = packing.slots_per_plaintext(pk, bits)
    assert per == (pk.n.bit_length() - 1) // bits >= 5
    packed = packing.compress(sums, bits, 5)        # 14 sums: 3 ciphertexts, the last of 4
    assert len(packed) == 3
    raw = sk.raw_decrypt_batch(packed.ciphertexts())
    assert packing.decompress(raw, bits, 5, 14) == expected
    with pytest.raises(ValueError, match="do not fit this 512-bit key"):
        packing.compress(sums, bits, per + 1)
    with pytest.raises(ValueError, match="exponent 0"):
        packing.compress(pk.encrypt_vector([0.5, 1.5]), bits, 2)
    with pytest.raises(ValueError, match="wider than its 4 slots"):
        packing.decompress([raw[0], raw[1], raw[2] | 1 << (4 * bits)], bits, 5, 14)
    with pytest.raises(ValueError, match="per_ciphertext must be at least 1, not 0"):
        packing.decompress(raw, bits, 0, 14)
    with pytest.raises(ValueError, match="a packed plaintext needs 600 bits"):
        packing.SlotLayout([300, 300]).check_fits(pk)


def test_packed_plaintexts_add_field_by_field(keypair_factory):
    """The point of packing: one homomorphic addition adds every field."""
    pk, sk = keypair_factory(256)
    layout = packing.SlotLayout([10, 10])
    a = layout.pack([[3, 1000], [7, 20]])
    b = layout.pack([[4, 23], [9, 3]])
    ea = EncryptedVector(pk, pk.raw_encrypt_batch(a), 0)
    eb = EncryptedVector(pk, pk.raw_encrypt_batch(b), 0)
    total = sk.raw_decrypt_batch((ea + eb).ciphertexts())
    assert [list(c) for c in layout.unpack(total)] == [[7, 1023], [16, 23]]
