"""Signed document exchange (电子公文交换): claim-check storage, HPKE sealing, receipts, state.

Modules, by job: `model` (manifest, states, subjects), `store` (chunked content in the
sender's JetStream domain), `access` (each participant's own connection, and which copy of a
store it reads), `send` and `fetch` (the two ends of a transfer), `receipts` (signed receipts
and notices), `state` (the state machine), `tracker` (the state tracker service), `ledger`
(status, inbox and the 收发文 register), `agent` (the recipient agent). HPKE key sealing and
chunk encryption are hub/crypto.py, shared with the directory and enrollment. Its benchmark
is hub/bench/documents.py. docs/exchange.md describes the design; docs/protocol.md fixes the
states, events and store layout.
"""
