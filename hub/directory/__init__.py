"""The shared resource directory (政务信息资源目录): entries, search, access workflow, enforcement.

Modules, by job: `model` (the entry and its JSON file format), `validation` (the catalog's
rules for entry files), `ngrams` (Chinese bigrams and Latin trigrams for search without
extensions), `events` (schemas, subjects and kinds of the signed directory events),
`deadlines` (working-day calendars per jurisdiction), `apply` (one batch of events checked
and applied in stream order), `rows` (entry and request rows and how they are written),
`materializer` (`dir.>` into PostgreSQL and the KV copy: the service and the commands'
inline catch-up share it), `store` (reads: entries, search with facets, requests, valid
grants), `workflow` (publish, update, withdraw, request, grant, deny, revoke, reminders and
escalation), `sharing` (the provider-side agent that seals each record to each valid
grantee, and the grantee's receive), `dcat` (the DCAT 3 JSON-LD export of open entries),
`mirror` (the KV copy a county mirrors, read offline), `service` (the `directory` service of
`govhub serve`). Its benchmark is hub/bench/directory.py. docs/directory.md describes the
design.
"""
