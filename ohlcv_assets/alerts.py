"""Alerts to a webhook (Slack-compatible JSON: {"text": ...}) and to the log. No Dagster here."""

import json
import logging
import urllib.error
import urllib.request

log = logging.getLogger("ohlcv_assets.alerts")


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
