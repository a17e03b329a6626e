"""Parallel approval (网上并联审批): one application, several departments deciding in parallel.

The lead department (牵头部门) opens a case and assigns it to every co-reviewing department
at once; each signs its own opinion within its statutory time limit (working days on a
holiday calendar, paused while its request for more material, 补正, is open); the case is
decided when every opinion is in, or at once by a binding refusal. Every step is a signed
event on the bus; PostgreSQL holds a projection rebuilt from the stream.

Modules, by job: `model` (events, subjects, states), `casetypes` (case types and the holiday
calendar from TOML), `clock` (deadlines in working days with pauses: pure functions),
`projection` (the state machine applied to a batch of events), `tracker` (the `approval`
service: the projection, the lead's decisions, the operator's deadline sweeps), `workflow`
(the write side: checks before signing), `views` (办件进度, a case, the supervisor's list).
Its benchmark is hub/bench/approval.py. docs/approval.md describes the design.
"""
