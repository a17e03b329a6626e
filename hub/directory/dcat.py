"""The open-data catalog: entries marked open, as a W3C DCAT 3 catalog in JSON-LD.

For the government information disclosure portal (政府信息公开). The `@context` is inline (no
remote context to fetch, so the document is self-contained and expands offline); every
dataset carries the DCAT-AP mandatory properties (`dct:title`, `dct:description`, a
distribution with `dcat:accessURL`) and the catalog core metadata mapped as in
docs/directory.md. Sharing type and secrecy, which DCAT has no term for, use the `govhub:`
namespace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from hub.directory.model import SHARING_METHODS, Entry
from hub.participants import ParticipantCache
from hub.timetext import rfc3339

CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "adms": "http://www.w3.org/ns/adms#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "govhub": "https://govhub.example/ns/directory#",
}
FREQUENCY = "http://publications.europa.eu/resource/authority/frequency/"
ACCESS_RIGHT = "http://publications.europa.eu/resource/authority/access-right/"
_FREQUENCIES = {
    "realtime": "CONT",
    "daily": "DAILY",
    "weekly": "WEEKLY",
    "monthly": "MONTHLY",
    "quarterly": "QUARTERLY",
    "semiannual": "ANNUAL_2",
    "annual": "ANNUAL",
    "irregular": "IRREG",
}
_LATIN = re.compile(r"^[\x00-\x7f]*$")


def default_base(scenario: str) -> str:
    """The IRI base of a scenario's directory (a name, not necessarily a reachable URL)."""
    return f"https://{scenario}.govhub.example/directory"


def _text(zh: str, en: str | None) -> list[dict[str, str]]:
    out = [{"@value": zh, "@language": "zh"}]
    if en:
        out.append({"@value": en, "@language": "en"})
    return out


def _time(moment: datetime) -> dict[str, str]:
    return {"@value": rfc3339(moment), "@type": "xsd:dateTime"}


def dataset(
    entry: Entry,
    *,
    base: str,
    modified: datetime,
    publisher_name: str,
    version_ids: Sequence[int] = (),
) -> dict[str, Any]:
    """One entry as a dcat:Dataset."""
    own = f"{base}/resource/{entry.code}"
    access = entry.access_url or own
    methods = entry.sharing_methods or ("event_stream",)
    distributions = []
    for method in methods:
        dist: dict[str, Any] = {
            "@id": f"{own}/distribution/{method}",
            "@type": "dcat:Distribution",
            "dct:title": _text(SHARING_METHODS[method], method.replace("_", " ")),
            "dcat:accessURL": {"@id": access},
            "dct:format": entry.format,
            "dct:conformsTo": {"@id": f"{base}/schema/{entry.schema_name}"},
        }
        if "/" in entry.format:
            dist["dcat:mediaType"] = {
                "@id": f"https://www.iana.org/assignments/media-types/{entry.format}"
            }
        if entry.license:
            dist["dct:license"] = _license(entry.license)
        distributions.append(dist)
    out: dict[str, Any] = {
        "@id": own,
        "@type": "dcat:Dataset",
        "dct:identifier": entry.code,
        "dct:title": _text(entry.title, entry.title_en),
        "dct:description": _text(entry.abstract, entry.abstract_en),
        "dct:publisher": {
            "@id": f"{base}/participant/{entry.provider}",
            "@type": "foaf:Agent",
            "foaf:name": publisher_name,
            "dct:identifier": entry.provider_code or entry.provider,
        },
        "dcat:keyword": [
            {"@value": k, "@language": "en" if _LATIN.match(k) else "zh"} for k in entry.keywords
        ],
        "dcat:theme": {
            "@id": f"{base}/class/{entry.class_code}",
            "@type": "skos:Concept",
            "skos:notation": entry.class_code,
            "skos:prefLabel": {"@value": entry.class_name, "@language": "zh"},
            "skos:inScheme": {"@id": f"{base}/classification"},
        },
        "dct:issued": {"@value": entry.issued.isoformat(), "@type": "xsd:date"},
        "dct:modified": _time(modified),
        "dct:accrualPeriodicity": {"@id": FREQUENCY + _FREQUENCIES[entry.update_cycle]},
        "dct:accessRights": {"@id": ACCESS_RIGHT + "PUBLIC"},
        "dcat:version": str(entry.version),
        "dcat:distribution": distributions,
        "govhub:sharingType": entry.sharing_type.value,
        "govhub:secrecy": entry.secrecy,
    }
    if entry.open_conditions:
        out["dct:rights"] = {
            "@type": "dct:RightsStatement",
            "rdfs:label": {"@value": entry.open_conditions, "@language": "zh"},
        }
    if entry.theme:
        out["govhub:theme"] = {"@value": entry.theme, "@language": "zh"}
    if entry.contact:
        out["dcat:contactPoint"] = {"@type": "vcard:Kind", "vcard:fn": entry.contact}
    if entry.spatial:
        out["dct:spatial"] = {
            "@type": "dct:Location",
            "skos:prefLabel": {"@value": entry.spatial, "@language": "zh"},
        }
    period = _period(entry.temporal)
    if period is not None:
        out["dct:temporal"] = period
    if entry.related:
        out["dct:relation"] = [{"@id": f"{base}/resource/{code}"} for code in entry.related]
    if entry.access_url:
        out["dcat:landingPage"] = {"@id": entry.access_url}
    if len(version_ids) > 1:
        out["dcat:previousVersion"] = {"@id": f"{own}/version/{version_ids[-2]}"}
    return out


def _license(text: str) -> dict[str, Any]:
    if text.startswith(("http://", "https://")):
        return {"@id": text}
    return {"@type": "dct:LicenseDocument", "rdfs:label": text}


def _period(text: str | None) -> dict[str, Any] | None:
    match = re.match(r"^(\d{4})/(\d{4})$", text or "")
    if match is None:
        return None
    return {
        "@type": "dct:PeriodOfTime",
        "dcat:startDate": {"@value": match.group(1), "@type": "xsd:gYear"},
        "dcat:endDate": {"@value": match.group(2), "@type": "xsd:gYear"},
    }


async def export_catalog(
    pool: Any,
    participants: ParticipantCache,
    *,
    base: str,
    title: str,
    publisher: str,
) -> dict[str, Any]:
    """The DCAT 3 catalog (JSON-LD) of every active entry marked open to the public."""
    rows = await pool.fetch(
        "SELECT e.entry, e.modified_at, array_agg(v.version ORDER BY v.version) AS versions"
        " FROM directory_entries e JOIN directory_search s USING (code)"
        " JOIN directory_versions v USING (code)"
        " WHERE e.status = 'active' AND s.open_public GROUP BY e.code, e.entry, e.modified_at"
        " ORDER BY e.code"
    )
    datasets = []
    for row in rows:
        entry = Entry.from_record(json.loads(row["entry"]))
        who = participants.get(entry.provider)
        datasets.append(
            dataset(
                entry,
                base=base,
                modified=row["modified_at"],
                publisher_name=who.name if who is not None else entry.provider,
                version_ids=list(row["versions"]),
            )
        )
    operator = participants.get(publisher)
    return {
        "@context": CONTEXT,
        "@id": f"{base}/catalog",
        "@type": "dcat:Catalog",
        "dct:title": _text(title, "Open government data catalog"),
        "dct:description": _text(
            "政务信息资源目录中向社会开放的资源 (DCAT 3)",
            "Resources of the government information resource directory open to the public",
        ),
        "dct:publisher": {
            "@id": f"{base}/participant/{publisher}",
            "@type": "foaf:Agent",
            "foaf:name": operator.name if operator is not None else publisher,
        },
        "dct:modified": _time(datetime.now(UTC)),
        "dcat:themeTaxonomy": {
            "@id": f"{base}/classification",
            "@type": "skos:ConceptScheme",
            "dct:title": _text("政务信息资源分类 (GB/T 21063.4)", "Resource classification"),
        },
        "dcat:dataset": datasets,
    }
