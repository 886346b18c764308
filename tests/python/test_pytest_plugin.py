# test_pytest_plugin.py: the pytest plugin (lib/testing/pytest/qlean_pytest.py),
# run the way a user runs it: pytest in a subprocess, on a test file that
# fails on purpose. Checks the reset between tests, the artifacts of the
# failed test, and --qlean-keep: the failed test's machine runs on under
# the printed name, holding what the test wrote, until `qlean stop`.
#
# SPDX-License-Identifier: MIT

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_machines

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "lib" / "testing" / "pytest"

USER_TESTS = '''
def test_writes(qlean_machine):
    assert qlean_machine.exec("echo hi > /root/mark", None).success()
    assert qlean_machine.exec("cat /root/mark", None).get_stdout_text() == "hi\\n"


def test_is_reset(qlean_machine):
    # The snapshot taken when the machine was first ready has no mark.
    assert qlean_machine.exec("test -e /root/mark", None).get_exit_status() == 1


def test_fails_on_purpose(qlean_machine):
    assert qlean_machine.exec("echo left-by-the-test > /root/kept", None).success()
    assert False, "failing on purpose"


def test_after_the_failure(qlean_machine):
    # A kept machine is a copy: this test gets a clean one of its own.
    assert qlean_machine.exec("test -e /root/kept", None).get_exit_status() == 1
'''


def qlean_cli():
    cli = os.environ.get("QLEAN_CLI")
    if not cli or not os.access(cli, os.X_OK):
        pytest.skip("QLEAN_CLI does not name the built qlean command (run through meson test)")
    return cli


def run_user_pytest(tmp_path, *options):
    test_file = tmp_path / "test_user.py"
    test_file.write_text(USER_TESTS)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGIN_DIR), env.get("PYTHONPATH")]))
    env.pop("QLEAN_TEST_KEEP", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "qlean_pytest", "-p", "no:cacheprovider",
                           "-v", "--rootdir", str(tmp_path), str(test_file), *options],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_failure_keeps_artifacts_and_machine(tmp_path):
    require_machines()
    cli = qlean_cli()
    artifacts = tmp_path / "artifacts"

    done = run_user_pytest(tmp_path, "--qlean-artifacts", str(artifacts), "--qlean-keep")
    output = done.stdout + done.stderr
    # Printed twice: as it happens, and in the failure's report.
    kept = sorted(set(re.findall(r"kept qlean-pytest as “([^”]+)”", output)))
    try:
        assert done.returncode == 1, output
        assert "1 failed, 3 passed" in output, output
        assert "test_fails_on_purpose FAILED" in output, output

        # Artifacts: only the failed test's, with the machine's logs (its
        # console may be empty: a machine reset by restore prints nothing).
        folders = [p.name for p in artifacts.iterdir()]
        assert len(folders) == 1 and "test_fails_on_purpose" in folders[0], folders
        logs = artifacts / folders[0] / "qlean-pytest"
        assert (logs / "console.log").is_file()
        assert (logs / "transcript.log").stat().st_size > 0
        assert "failing on purpose" in (artifacts / folders[0] / "failure.txt").read_text()
        assert str(artifacts / folders[0]) in output

        # Exactly one machine kept, the failed test's, with its file.
        assert len(kept) == 1, output
        listed = subprocess.run([cli, "ls"], capture_output=True, text=True, check=True).stdout
        assert kept[0] in listed, listed
        cat = subprocess.run([cli, "exec", kept[0], "--", "cat", "/root/kept"],
                             capture_output=True, text=True, timeout=60)
        assert cat.returncode == 0 and cat.stdout == "left-by-the-test\n", cat.stderr
    finally:
        for name in kept:
            subprocess.run([cli, "stop", name], capture_output=True, timeout=120)

    listed = subprocess.run([cli, "ls"], capture_output=True, text=True, check=True).stdout
    assert kept[0] not in listed, listed


def test_passing_run_keeps_nothing(tmp_path):
    require_machines()
    cli = qlean_cli()
    test_file = tmp_path / "test_ok.py"
    test_file.write_text("def test_ok(qlean_machine):\n"
                         "    assert qlean_machine.exec('true', None).success()\n")
    before = subprocess.run([cli, "ls"], capture_output=True, text=True, check=True).stdout
    env = dict(os.environ, PYTHONPATH=str(PLUGIN_DIR), QLEAN_TEST_KEEP="1")
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "qlean_pytest", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(test_file),
                           "--qlean-artifacts", str(tmp_path / "artifacts")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kept" not in done.stdout
    assert not (tmp_path / "artifacts").exists()
    after = subprocess.run([cli, "ls"], capture_output=True, text=True, check=True).stdout
    assert after == before
