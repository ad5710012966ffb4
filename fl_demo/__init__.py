"""Federated learning on the montpipe driver: FATE-style vertical logistic regression and
vertical SecureBoost.

Logistic regression: three parties — guest (labels and some features), host (other features),
arbiter (the Paillier keys) — run as Ray actors; see :mod:`montpipe.fl_demo.protocol` for the
protocol and what each party sees, :mod:`montpipe.fl_demo.run` for running it (``make demo``).
SecureBoost: guest (labels, some features, the keys) and host; see
:mod:`montpipe.fl_demo.sb_protocol`, :mod:`montpipe.fl_demo.secureboost` (the algorithm and the
plaintext reference) and :mod:`montpipe.fl_demo.sb_run` (``make demo DEMO=secureboost``).
"""
