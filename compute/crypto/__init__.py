"""Cryptography of the compute layer: hash-to-curve, sealing between nodes, encryption at rest."""
