"""What each participant may do on the bus, as nats-server users generated from the registry.

The client library already refuses to sign for subjects a participant does not own; these
server users make the *server* refuse them too, so a compromised or buggy department system
cannot publish as another department, delete streams, or read raw traffic outside JetStream.

A participant `akto.civil` connects to its own unit's node with its own nkey and may:

- publish on its own subjects `evt|doc|dir|adm.akto.civil.>` (the wire contract's rule),
  on its own prefix of its unit's document store `dstore.docs_akto.civil.>` (the content of
  the documents it sends), and on `quarantine.>` (a verifying reader files refused events);
- use the read-only part of the JetStream API (stream info, direct get, create/fetch/ack its
  consumers) locally and in the hub's domain `pref`, never stream create/update/delete/purge
  (so documents are read from the sender's node or the hub's copy of its store);
- subscribe only to its own inboxes (`_INBOX.>`): everything it reads comes through
  JetStream consumers, which verify each event.

Revoked participants and participants without an nkey are simply absent, so a config reload
closes their connections and refuses new ones. Hub services use the `service` user; each node
has a local admin user; leaf uplinks authenticate with a user allowed only as a leaf node.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hub.federation.plan import HUB_ROLE, REGION_ROLE, Node, Plan
from hub.subjects import CHANNELS, QUARANTINE_PREFIX, check_participant_id
from hub.topology import HUB_DOMAIN, document_store_prefix, document_subject_root

ACCOUNT = "GOV"

# The JetStream API calls a reader needs; nothing that creates, changes or deletes a stream.
JS_READ_CALLS = (
    "INFO",
    "STREAM.INFO.*",
    "STREAM.NAMES",
    "STREAM.LIST",
    "STREAM.MSG.GET.*",
    "DIRECT.GET.>",
    "CONSUMER.CREATE.>",
    "CONSUMER.DURABLE.CREATE.>",
    "CONSUMER.INFO.>",
    "CONSUMER.MSG.NEXT.>",
    "CONSUMER.DELETE.>",
    "CONSUMER.NAMES.>",
    "CONSUMER.LIST.>",
)


@dataclass(frozen=True)
class UserEntry:
    """One server user: a public nkey, who it is (for people reading the config), its rights."""

    nkey: str
    who: str
    permissions: Mapping[str, Any] | None = None
    leaf_only: bool = False

    def to_conf(self) -> dict[str, Any]:
        """The user as a nats-server config object."""
        entry: dict[str, Any] = {"nkey": self.nkey}
        if self.permissions is not None:
            entry["permissions"] = dict(self.permissions)
        if self.leaf_only:
            entry["allowed_connection_types"] = ["LEAFNODE"]
        return entry


def api_prefixes(node: Node) -> list[str]:
    """JetStream API prefixes a participant on this node may call: local, and the hub's."""
    prefixes = ["$JS.API", f"$JS.{HUB_DOMAIN}.API"]
    if node.domain and node.domain != HUB_DOMAIN:
        prefixes.append(f"$JS.{node.domain}.API")
    return prefixes


def participant_permissions(participant: str, node: Node) -> dict[str, Any]:
    """The publish and subscribe allow-lists of one participant on its node."""
    unit, dept = check_participant_id(participant)
    publish = [f"{channel}.{unit}.{dept}.>" for channel in CHANNELS]
    # Its own prefix of its unit's document store: content it sends, never another's.
    publish.append(f"{document_store_prefix(participant)}.>")
    publish += [f"{QUARANTINE_PREFIX}.>", "$JS.ACK.>", "$JS.FC.>"]
    publish += [f"{prefix}.{call}" for prefix in api_prefixes(node) for call in JS_READ_CALLS]
    return {"publish": {"allow": publish}, "subscribe": {"allow": ["_INBOX.>"]}}


# Hub JetStream API calls that change or remove streams, their messages or the cluster: no
# leaf uplink may make them, whatever the county server behind it does.
HUB_ADMIN_CALLS = (
    "STREAM.CREATE.>",
    "STREAM.UPDATE.>",
    "STREAM.DELETE.>",
    "STREAM.PURGE.>",
    "STREAM.MSG.DELETE.>",
    "STREAM.RESTORE.>",
    "STREAM.PEER.>",
    "STREAM.LEADER.>",
    "META.>",
    "SERVER.>",
    "ACCOUNT.>",
)


def uplink_permissions(plan: Plan, leaf: Node) -> dict[str, Any]:
    """What a leaf's uplink may send into the hub account: everything its node legitimately
    relays, nothing that rewrites the hub or speaks for another unit.

    A compromised county *server* (not a department: those are confined on their own node)
    could otherwise delete `GOVHUB` through `$JS.pref.API` or inject events on another unit's
    subjects. Deny-lists, not allow-lists: sourcing, mirrors, flow control and consumer
    traffic use server-chosen subjects, and nats-server #4832 reports leaf allow-lists with
    wildcards refusing more than they say. Tested: a county admin connection can no longer
    delete or purge a hub stream or publish as another unit, while sourcing, mirrors, reads
    at the hub and quarantine still work.
    """
    deny = [f"$JS.{HUB_DOMAIN}.API.{call}" for call in HUB_ADMIN_CALLS]
    units = {plan.hub_unit, *plan.hub_units, *(n.unit for n in plan.leafs)}
    for unit in sorted(units - set(leaf.units)):
        deny += [f"{channel}.{unit}.>" for channel in CHANNELS]
        deny.append(f"{document_subject_root(unit)}.>")
    return {"publish": {"deny": deny}}


def node_users(
    plan: Plan,
    node: Node,
    participants: Iterable[tuple[str, str]],
    services: Mapping[str, str],
) -> list[UserEntry]:
    """The users of one node.

    `participants` are (id, public nkey) of *active* participants; only those of the node's
    units get a user here. `services` maps `service`, `node-<name>` and `uplink-<unit>` to
    public nkeys.
    """
    users: list[UserEntry] = []
    if node.role == HUB_ROLE and "service" in services:
        users.append(UserEntry(services["service"], "hub services"))
    admin = services.get(f"node-{node.name}")
    if admin is not None:
        users.append(UserEntry(admin, f"{node.name} local admin"))
    if node.role == HUB_ROLE:
        for leaf in plan.leafs:
            uplink = services.get(f"uplink-{leaf.unit}")
            if uplink is not None:
                users.append(
                    UserEntry(
                        uplink,
                        f"uplink of {leaf.name}",
                        uplink_permissions(plan, leaf),
                        leaf_only=True,
                    )
                )
    for participant, public in sorted(participants):
        if participant.split(".", 1)[0] in node.units:
            users.append(UserEntry(public, participant, participant_permissions(participant, node)))
    return users


def auth_config(node: Node, users: Iterable[UserEntry]) -> str:
    """The node's `auth.conf`: one account holding every user, with JetStream where it runs."""
    lines = [
        "# Generated by govhub from the participant registry; do not edit by hand.",
        "# Reload the server after a change: nats-server --signal reload=<pid>",
        "accounts {",
        f"  {ACCOUNT}: {{",
    ]
    if node.role != REGION_ROLE:
        lines.append("    jetstream: enabled")
    lines.append("    users: [")
    for user in users:
        lines.append(f"      # {user.who}")
        lines.append(f"      {json.dumps(user.to_conf())}")
    lines += ["    ]", "  }", "}", ""]
    return "\n".join(lines)
