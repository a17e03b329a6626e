"""Federation: the prefecture hub, one leaf node per county with its own JetStream domain, the
region link, and server-enforced permissions, all generated from the scenario and registry.

```
plan.py         which nodes exist (hub node(s), county leafs, region leaf), ports, domains
credentials.py  NATS nkeys: participants' (next to their signing keys), services', uplinks'
permissions.py  what each participant may publish and subscribe, as server users
nats_config.py  the one generator of nats-server configs (local topology and production)
streams.py      county outbound streams, hub sourcing, mirrors back to counties
servers.py      the local multi-node topology under a home (start, stop, reload, cut links)
links.py        participants' own connections to their unit's node
arrival.py      whether events published at a county have reached the hub stream yet
monitor.py      source lag and leaf state from the servers' monitoring endpoints
```

docs/federation.md explains the design; docs/operations.md how to run it for real.
"""
