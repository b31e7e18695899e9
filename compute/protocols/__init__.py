"""Privacy-preserving protocols: each party's step is a pure function of (its state, the incoming message)."""
