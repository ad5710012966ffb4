"""Federated learning (vertical logistic regression) on the montpipe driver.

Empty until the federated-learning issue lands; ``make demo`` meanwhile walks through the
Paillier API (:mod:`montpipe.driver.walkthrough`).
"""
