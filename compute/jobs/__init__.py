"""The marketplace's side of compute: it issues signed job specs and requests to the nodes, and updates its
job, table, import and export rows from the nodes' signed messages. It never holds a node secret and
never sees a row: what it relays (uploaded files, protocol messages, results) is sealed to a node or to
a buyer."""
