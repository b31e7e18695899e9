"""The node: an organisation's own compute agent, run by that organisation on its own host.

It holds the organisation's secrets (vault key, sealing key, signing key, chain account key) in its home
directory, wrapped under a secret only the node has; it keeps its tables encrypted in its vault and its
index and protocol state in a local SQLite store; it runs protocol steps that arrive as signed messages on
its broker queue ``node.<slug>`` and signs its own chain writes. It never connects to the marketplace's
database and never imports marketplace code: it shares only ``compute.crypto``, ``compute.protocols``,
``compute.tabular`` and the message formats (``compute.messages``) with the marketplace side.
"""
