"""Federated learning on the montpipe driver: FATE-style vertical logistic regression.

Three parties — guest (labels and some features), host (other features), arbiter (the Paillier
keys) — run as Ray actors; see :mod:`montpipe.fl_demo.protocol` for the protocol and what each
party sees, :mod:`montpipe.fl_demo.run` for running it (``make demo``).
"""
