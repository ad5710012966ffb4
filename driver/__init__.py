"""The montpipe driver: a python-paillier-compatible Paillier library over batch backends.

``from montpipe.driver import paillier`` is a drop-in for ``from phe import paillier``; see
:mod:`montpipe.driver.paillier` for what differs, :mod:`montpipe.driver.vector` for the batch
API and :mod:`montpipe.driver.backend` for the backend protocol.
"""

from . import paillier
from .backend import Backend, available_backends, default_backend, get_backend
from .paillier import (
    EncodedNumber,
    EncryptedNumber,
    PaillierPrivateKey,
    PaillierPrivateKeyring,
    PaillierPublicKey,
    SecurityWarning,
    generate_paillier_keypair,
)
from .vector import EncryptedVector

__all__ = [
    "Backend",
    "EncodedNumber",
    "EncryptedNumber",
    "EncryptedVector",
    "PaillierPrivateKey",
    "PaillierPrivateKeyring",
    "PaillierPublicKey",
    "SecurityWarning",
    "available_backends",
    "default_backend",
    "generate_paillier_keypair",
    "get_backend",
    "paillier",
]
