"""The few calls to Dagster's webserver GraphQL API that the UI itself makes, for the demo and
end-to-end tests: wait for the webserver, launch a partition backfill or a run of a job, follow
them to the end."""

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from ohlcv_assets.core.names import partition_tags

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
LAUNCH_RUN = """
mutation LaunchRun($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PipelineNotFoundError { message }
    ... on UnauthorizedError { message }
  }
}
"""
RUN_STATUSES = """
query Runs($ids: [String!]) {
  runsOrError(filter: {runIds: $ids}) {
    __typename
    ... on Runs { results { runId status } }
    ... on PythonError { message }
  }
}
"""
FINAL_RUN_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}
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


def launch_run(webserver: str, job_name: str, first_partition: str, last_partition: str | None = None,
               tags: dict[str, str] | None = None, location: str = "ohlcv_assets") -> str:
    """Launches (queues) one run of a partitioned job over one partition or a range of them, as the
    UI's Launch button does; returns its id. Unlike a backfill it does not wait for the backfill
    daemon's next tick (every 30 s)."""
    selector = {"repositoryLocationName": location, "repositoryName": "__repository__", "jobName": job_name}
    run_tags = [{"key": k, "value": v} for k, v in {**partition_tags(first_partition, last_partition), **(tags or {})}.items()]
    params = {"selector": selector, "executionMetadata": {"tags": run_tags}}
    result = graphql(webserver, LAUNCH_RUN, {"params": params})["launchRun"]
    if result["__typename"] != "LaunchRunSuccess":
        raise DagsterApiError(f"run of {job_name} for {first_partition}..{last_partition} not launched: {result}")
    return result["run"]["runId"]


def wait_for_runs(webserver: str, run_ids: list[str], timeout_seconds: float,
                  alive: Callable[[], bool] = lambda: True) -> dict[str, str]:
    """Final status of each run (SUCCESS, FAILURE, CANCELED); raises as ``wait_for_backfills`` does."""
    return _wait(lambda: _run_statuses(webserver, run_ids), run_ids, FINAL_RUN_STATUSES, "runs", timeout_seconds, alive)


def _run_statuses(webserver: str, run_ids: list[str]) -> dict[str, str]:
    result = graphql(webserver, RUN_STATUSES, {"ids": run_ids})["runsOrError"]
    if result["__typename"] != "Runs":
        raise DagsterApiError(f"runs {run_ids}: {result}")
    found = {r["runId"]: r["status"] for r in result["results"]}
    return {r: found.get(r, "unknown (not found)") for r in run_ids}


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
    return _wait(lambda: {b: backfill_status(webserver, b) for b in backfill_ids}, backfill_ids, FINAL_STATUSES,
                 "backfills", timeout_seconds, alive)


def _wait(poll: Callable[[], dict[str, str]], ids: list[str], final: set[str], what: str, timeout_seconds: float,
          alive: Callable[[], bool]) -> dict[str, str]:
    deadline = time.monotonic() + timeout_seconds
    statuses: dict[str, str] = {}
    while True:
        if not alive():
            raise DagsterApiError(f"the Dagster processes stopped before the {what} finished: {statuses}")
        try:
            statuses = poll()
        except (TimeoutError, ConnectionError, urllib.error.URLError) as err:  # graphql() turns HTTP errors into DagsterApiError
            statuses = {i: f"unknown ({type(err).__name__})" for i in ids}
        if all(s in final for s in statuses.values()):
            return statuses
        if time.monotonic() > deadline:
            raise DagsterApiError(f"{what} not finished after {timeout_seconds}s: {statuses}")
        time.sleep(2)
