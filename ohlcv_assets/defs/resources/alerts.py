"""Where alerts go: a webhook URL (secret) from OHLCV_ALERT_WEBHOOK_URL; empty means log only."""

import dagster as dg

from ohlcv_assets.ops.alerts import send_alert

ALERT_WEBHOOK_ENV = "OHLCV_ALERT_WEBHOOK_URL"


class AlertResource(dg.ConfigurableResource):
    webhook_url: str = ""

    def send(self, title: str, lines: list[str]) -> bool:
        return send_alert(self.webhook_url, title, lines)
