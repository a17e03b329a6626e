"""Signed document exchange (电子公文交换): claim-check storage, HPKE sealing, receipts, state.

Modules, by job: `model` (manifest, states, subjects), `crypto` (HPKE key sealing and chunk
encryption, reused by the directory), `store` (chunked content in the sender's JetStream
domain), `access` (each participant's own connection, and which copy of a store it reads),
`send` and `fetch` (the two ends of a transfer), `receipts` (signed receipts and notices),
`state` (the state machine), `tracker` (the state tracker service), `ledger` (status, inbox and
the 收发文 register), `agent` (the recipient agent). Its benchmark is hub/bench/documents.py.
docs/exchange.md describes the design; docs/protocol.md fixes the states, events and store
layout.
"""
