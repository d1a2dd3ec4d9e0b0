"""The leak checks (``conftest._nothing_left_running`` at the session's end, ``_e2e_test_left_nothing_running``
after each e2e test) see what a test leaves running: a process in its own session (as servers are
started) and one orphaned to init, with the test that started them."""

import os
import subprocess

from ohlcv_assets_tests.conftest import SESSION_TAG
from ohlcv_assets_tests.processes import TAG_ENV, processes_started_by, stop_leftovers, wait_until


def test_processes_a_test_leaves_behind_are_found_with_the_test_that_started_them(request):
    assert os.environ[TAG_ENV] == f"{SESSION_TAG} {request.node.nodeid}"
    own_session = subprocess.Popen(["sleep", "300"], start_new_session=True)
    orphan_parent = subprocess.run(["sh", "-c", "sleep 301 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True, check=True)
    orphan = int(orphan_parent.stdout)
    try:
        def both():
            listed = processes_started_by(SESSION_TAG, os.getpid())
            return listed if {own_session.pid, orphan} <= set(listed) else None

        found = wait_until(both, 10, interval=0.1, what="both sleepers listed")
        assert found[own_session.pid] == f"sleep 300 (started during {request.node.nodeid})"
        assert found[orphan] == f"sleep 301 (started during {request.node.nodeid})"
        assert os.getpid() not in found
        assert {own_session.pid, orphan} <= set(processes_started_by(SESSION_TAG, os.getpid(), test=request.node.nodeid))
        assert not {own_session.pid, orphan} & set(processes_started_by(SESSION_TAG, os.getpid(), test="another::test"))
    finally:
        left = stop_leftovers(SESSION_TAG, os.getpid(), grace_seconds=0)
        own_session.wait()
    assert {own_session.pid, orphan} <= set(left)
    wait_until(lambda: not processes_started_by(SESSION_TAG, os.getpid()), 10, interval=0.1, what="both killed")
