"""Vertical federated logistic regression (joint modelling): the cryptographic core, pure and independent of
Django and of the job engine. ``lr.py`` holds the parties and their per-iteration steps, ``ckks.py`` the keys,
masks and byte messages, ``metrics.py`` the released metrics. docs/protocols.md ("Joint modelling: vertical
logistic regression (core)") gives the messages, the leakage and the security model."""
