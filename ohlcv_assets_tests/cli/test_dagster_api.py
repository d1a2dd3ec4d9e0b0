"""Following a backfill over GraphQL survives a webserver that is slow to answer one poll."""

import pytest

from ohlcv_assets.cli import dagster_api


def test_a_poll_that_times_out_is_retried_not_fatal(monkeypatch):
    answers = iter([TimeoutError("timed out"), "REQUESTED", ConnectionResetError(), "COMPLETED_SUCCESS"])

    def status(webserver, backfill_id):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(dagster_api, "backfill_status", status)
    monkeypatch.setattr(dagster_api.time, "sleep", lambda seconds: None)
    assert dagster_api.wait_for_backfills("http://127.0.0.1:1", ["b1"], timeout_seconds=60) == {"b1": "COMPLETED_SUCCESS"}


def test_an_error_answer_is_still_fatal(monkeypatch):
    def status(webserver, backfill_id):
        raise dagster_api.DagsterApiError("backfill b1: PythonError")

    monkeypatch.setattr(dagster_api, "backfill_status", status)
    with pytest.raises(dagster_api.DagsterApiError, match="PythonError"):
        dagster_api.wait_for_backfills("http://127.0.0.1:1", ["b1"], timeout_seconds=60)
