"""Alerts to a webhook (Slack-compatible JSON: {"text": ...}) and to the log. No Dagster here."""

import json
import logging
import urllib.error
import urllib.request

log = logging.getLogger("ohlcv_assets.ops.alerts")


def send_alert(webhook_url: str, title: str, lines: list[str]) -> bool:
    """Logs the alert and posts it to the webhook if one is configured; True if delivered."""
    text = "\n".join([f"*{title}*", *lines])
    log.warning("ALERT %s", text)
    if not webhook_url:
        return False
    request = urllib.request.Request(webhook_url, data=json.dumps({"text": text}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, TimeoutError) as err:
        log.error("alert not delivered to the webhook: %s", err)  # the URL may hold a secret: not logged
        return False


SEPARATE_ALERTS_MAX = 10  # more new (or resolved) incidents than this in one check are one alert
LISTED_IN_SUMMARY = 20


def incident_alerts(title: str, incidents: list[str]) -> list[tuple[str, list[str]]]:
    """The alerts for incidents found in one check: one each, or, when there are more than
    ``SEPARATE_ALERTS_MAX`` (a failed backfill leaves thousands of failing days), one that counts
    them and lists the first ones. One POST per incident would flood the receiver and outlast the
    sensor's time limit, so that the tick fails, its cursor is never saved, and the next tick sends
    them all again."""
    incidents = sorted(incidents)
    if len(incidents) <= SEPARATE_ALERTS_MAX:
        return [(title, [incident]) for incident in incidents]
    more = len(incidents) - LISTED_IN_SUMMARY
    return [(f"{title}: {len(incidents)}", [*incidents[:LISTED_IN_SUMMARY],
                                            *([f"… and {more} more (ohlcv-status lists them)"] if more > 0 else [])])]

