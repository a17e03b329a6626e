"""hub.plugin is the public face for plug-in authors: exactly these names, and the only hub
module the built-in connectors and adapters import.

A change to the list is a change to what department packages may rely on: make it here on
purpose, with the docstring of hub/plugin.py, not as a side effect of a refactoring.
"""

from __future__ import annotations

import ast
from pathlib import Path

import hub.plugin

ROOT = Path(__file__).resolve().parent.parent

PUBLIC = {
    # the connector seam
    "Check",
    "ConnectorContext",
    "ConnectorFactory",
    "Delivery",
    "Outcome",
    "Record",
    "Sink",
    "Source",
    "Verdict",
    # adapters
    "Adapter",
    "AdapterContext",
    "DOCUMENT",
    "to_event",
    "to_row",
    # reading native values
    "day",
    "integer",
    "moment",
    "number",
    # configuration and errors
    "Secret",
    "ConfigError",
    "GovhubError",
    "InputError",
    "Reason",
    "ServerUnavailable",
    # documents
    "Classification",
    "Urgency",
    "safe_file_name",
    # webhook signing
    "H_EVENT_ID",
    "H_IDEMPOTENCY",
    "H_SIGNATURE",
    "H_TIMESTAMP",
    "signature",
    "signed_headers",
    "verify_signature",
    # helpers
    "check_participant_id",
    "dumps",
    "rfc3339",
    "parse_address",
    "reason",
    "redact",
    "start_site",
    "to_jsonable",
    "unit_of",
    "wait_event",
}


def _plugin_files() -> list[Path]:
    return sorted((ROOT / "connectors").rglob("*.py")) + sorted((ROOT / "adapters").rglob("*.py"))


def _hub_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every import of a hub module in a file, at any depth."""
    found: list[tuple[str, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "hub":
                found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name.split(".")[0] == "hub"]
    return found


def test_the_public_face_lists_exactly_what_plugins_may_use() -> None:
    assert set(hub.plugin.__all__) == PUBLIC
    assert len(hub.plugin.__all__) == len(PUBLIC)  # no name listed twice
    for name in PUBLIC:
        assert getattr(hub.plugin, name) is not None


def test_built_in_connectors_and_adapters_import_hub_only_through_the_public_face() -> None:
    outside = {
        f"{path.relative_to(ROOT)}: {module} {name}".strip()
        for path in _plugin_files()
        for module, name in _hub_imports(path)
        if module != "hub.plugin" or name not in PUBLIC
    }
    assert not outside, "import these through hub.plugin: " + ", ".join(sorted(outside))
