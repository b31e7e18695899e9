"""PSI over a direct link between two nodes, for volume: SecretFlow's OT-based PSI engine (spu, RR22) run by
each node in its own virtualenv (``.venv-spu``), its connections carried by an authenticated, encrypted
tunnel that the provider's node dials to the consumer's (``link``). The protocol ``psi_direct``
(compute/protocols/psi_direct.py) meets through a sealed rendezvous message on the broker; docs/protocols.md
says what each side learns and what the link does and does not protect.

    config.py       settings (host, timeout, engine's interpreter) and whether the engine is installed
    engine.py       one party of the engine as a subprocess, and the engine run bare (tests, benchmark)
    engine_main.py  the script the engine's interpreter runs (imports spu, nothing of ours)
    link.py         the handshake that proves the session key, the encrypted frames, the tunnel
    party.py        a node's side of one run (a process of the node's interpreter): link + engine
    session.py      what the protocol's steps call: start the consumer's side, run the provider's, collect
"""
