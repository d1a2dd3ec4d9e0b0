"""The few calls to Dagster's webserver GraphQL API that the UI itself makes, for the demo and
end-to-end tests: wait for the webserver, launch a partition backfill, follow it to the end."""

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
    ... on PartitionSetNotFoundError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { invalidOutputName }
    ... on RunConflict { message }
    ... on InvalidSubsetError { message }
  }
}
"""
BACKFILL_STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { id status }
    ... on PythonError { message }
  }
}
"""
FINAL_STATUSES = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


class DagsterApiError(RuntimeError):
    pass


def graphql(webserver: str, query: str, variables: dict) -> dict:
    request = urllib.request.Request(
        f"{webserver}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as err:
        raise DagsterApiError(f"{webserver}/graphql answered {err.code}: {err.read()[:2000]!r}") from None
    if body.get("errors"):
        raise DagsterApiError(json.dumps(body["errors"])[:2000])
    return body["data"]


def wait_for_webserver(webserver: str, timeout_seconds: float) -> None:
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            with urllib.request.urlopen(f"{webserver}/server_info", timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise DagsterApiError(f"the Dagster webserver at {webserver} did not answer within {timeout_seconds}s") from None
            time.sleep(1)


def launch_backfill(webserver: str, asset_path: list[str], partition_names: list[str], title: str = "") -> str:
    """Launches a backfill of some partitions of one asset; returns its id."""
    params = {"assetSelection": [{"path": asset_path}], "partitionNames": partition_names, "fromFailure": False, "title": title}
    result = graphql(webserver, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise DagsterApiError(f"backfill of {'/'.join(asset_path)} not launched: {result}")
    return result["backfillId"]


def backfill_status(webserver: str, backfill_id: str) -> str:
    result = graphql(webserver, BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
    if result["__typename"] != "PartitionBackfill":
        raise DagsterApiError(f"backfill {backfill_id}: {result}")
    return result["status"]


def wait_for_backfills(webserver: str, backfill_ids: list[str], timeout_seconds: float,
                       alive: Callable[[], bool] = lambda: True) -> dict[str, str]:
    """Final status of each backfill; raises when time runs out or ``alive()`` says the processes
    running them are gone. A poll the webserver does not answer in time (it shares a loaded machine
    with the runs) is retried at the next poll, not fatal."""
    deadline = time.monotonic() + timeout_seconds
    statuses: dict[str, str] = {}
    while True:
        if not alive():
            raise DagsterApiError(f"the Dagster processes stopped before the backfills finished: {statuses}")
        try:
            statuses = {b: backfill_status(webserver, b) for b in backfill_ids}
        except (TimeoutError, ConnectionError, urllib.error.URLError) as err:  # graphql() turns HTTP errors into DagsterApiError
            statuses = {b: f"unknown ({type(err).__name__})" for b in backfill_ids}
        if all(s in FINAL_STATUSES for s in statuses.values()):
            return statuses
        if time.monotonic() > deadline:
            raise DagsterApiError(f"backfills not finished after {timeout_seconds}s: {statuses}")
        time.sleep(2)
