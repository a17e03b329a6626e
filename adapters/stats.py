"""Statistics (统计): a bureau's statistics system posts monthly figures to its webhook adapter.

`to_hub`: the system POSTs its monthly release as JSON; the mapping makes it a
`gov.stats.v1.MonthlyFigures` event of the posting bureau (its unit is taken from the
participant id, never from the body). The event's time is the release's own `published_at`,
so a re-post of the same release becomes the same event id. `from_hub`: the figures are
forwarded to a consumer's REST API as a flat JSON document.

Native body (artux.stats's statistics system):

```json
{"period": "2026-11", "published_at": "2026-12-05T10:00:00+08:00", "revision": 0,
 "indicators": [{"code": "A01", "name": "地区生产总值", "value": 58.2, "unit": "亿元"}]}
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hub.plugin import (
    Adapter,
    AdapterContext,
    Record,
    integer,
    moment,
    number,
    to_event,
    to_row,
    unit_of,
)

SCHEMA = "gov.stats.v1.MonthlyFigures"
_PERIOD = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")

SAMPLE: dict[str, Any] = {
    "period": "2026-11",
    "published_at": "2026-12-05T10:00:00+08:00",
    "revision": 0,
    "indicators": [
        {"code": "A01", "name": "地区生产总值", "value": 58.2, "unit": "亿元"},
        {"code": "B03", "name": "社会消费品零售总额", "value": 9.7, "unit": "亿元"},
        {"code": "C11", "name": "城镇登记失业率", "value": 2.9, "unit": "%"},
    ],
}


def figures_to_hub(record: Record, ctx: AdapterContext) -> Record:
    """A posted monthly release → a MonthlyFigures event of the posting bureau."""
    body = record.value
    period = str(body["period"])
    if not _PERIOD.match(period):
        raise ValueError(f"period {period!r} must be YYYY-MM")
    published = moment(body["published_at"], "published_at")
    indicators = body["indicators"]
    if not isinstance(indicators, list) or not indicators:
        raise ValueError("indicators must be a non-empty list")
    figures = []
    for index, item in enumerate(indicators):
        if not isinstance(item, Mapping):
            raise ValueError(f"indicators[{index}] is not an object")
        figures.append(
            {
                "code": str(item["code"]),
                "name": str(item["name"]),
                "value": number(item["value"], f"indicators[{index}].value"),
                "measure": str(item["unit"]),
            }
        )
    value = {
        "unit": unit_of(ctx.participant),
        "period": period,
        "revision": integer(body.get("revision", 0), "revision"),
        "published_at": published,
        "figures": figures,
    }
    return to_event(record, SCHEMA, value, time=published)


def figures_from_hub(event: Record, ctx: AdapterContext) -> Record | None:
    """A MonthlyFigures event → the flat JSON a consumer's API takes."""
    if event.kind != SCHEMA:
        return None
    v = event.value
    document = {
        "unit": v["unit"],
        "period": v["period"],
        "revision": v["revision"],
        "published_at": v["published_at"],
        "figures": {
            f["code"]: {"name": f["name"], "value": f["value"], "unit": f["measure"]}
            for f in v["figures"]
        },
    }
    return to_row(event, document)


ADAPTER = Adapter(
    name="monthly_statistics",
    description="统计 monthly figures: statistics system webhook → events; events → REST API",
    to_hub=figures_to_hub,
    from_hub=figures_from_hub,
    schemas=(SCHEMA,),
    sample=SAMPLE,
    subjects=("evt.*.stats.monthly_figures",),
)
