"""Fixtures for the end-to-end suite: binaries, echo backends, gateways, HTTP clients.

Run: PROXENOS_BUILD=/abs/build /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e
PROXENOS_SANITIZED=1 stretches every deadline (ASan builds).
`-m "not slow"` leaves out the tests that mostly wait on multi-second timers (the sanitized pass of
`make test` does: the Release pass runs them, and waiting finds no memory errors).
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import harness  # noqa: E402


def _require(path):
    if not harness.BUILD:
        pytest.fail("PROXENOS_BUILD is not set (absolute path of a build directory)", pytrace=False)
    if not os.access(path, os.X_OK):
        pytest.fail(f"binary not built: {path}", pytrace=False)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: waits on multi-second timers (skipped by the sanitized pass)")


@pytest.fixture
def proxenos_bin():
    _require(harness.proxenos_bin())
    return harness.proxenos_bin()


@pytest.fixture(autouse=True)
def _track_processes():
    """Every process a test starts is stopped (SIGTERM, then SIGKILL) by PID at teardown."""
    harness.Proc.registry = []
    harness.FakeUpstream.registry = []
    yield
    for fake in harness.FakeUpstream.registry:
        fake.stop()
    harness.FakeUpstream.registry = []
    # A crash fails the test that provoked it, even if its assertions passed.
    problems = [p.crash_report() for p in harness.Proc.registry + harness.Proc.shared]
    for proc in reversed(harness.Proc.registry):
        try:
            proc.stop()
        except Exception:  # teardown must reach every process
            pass
    problems += [p.sanitizer_report() for p in harness.Proc.registry]
    harness.Proc.registry = []
    problems = [p for p in problems if p]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        for proc in harness.Proc.registry + harness.Proc.shared:
            try:
                report.sections.append((f"process {proc.label}", proc.describe()))
            except Exception:
                pass


@pytest.fixture
def start_echo(tmp_path):
    _require(harness.echo_bin())

    def start(name="echo"):
        return harness.EchoBackend(str(tmp_path / "procs"), name=name)

    return start


@pytest.fixture
def echo(start_echo):
    return start_echo("echo")


@pytest.fixture
def start_gateway(tmp_path, proxenos_bin):
    """start_gateway(files, **kw) -> harness.Gateway. `files` is {relative name: text or list of
    resources}, or a plain list of resources (written to routes.yaml)."""
    counter = {"n": 0}

    def start(files, **kw):
        if isinstance(files, list):
            files = {"routes.yaml": files}
        last = None
        # A port picked with bind(0) can be taken by someone else before proxenos binds it: retry
        # with fresh ports when the failure says so.
        for _ in range(3):
            counter["n"] += 1
            workdir = str(tmp_path / f"gw{counter['n']}")
            try:
                return harness.Gateway(workdir, files, **kw)
            except harness.HarnessError as e:
                last = e
                text = str(e).lower()
                if "in use" not in text:
                    raise
        raise last

    return start


@pytest.fixture
def http():
    s = harness.client()
    yield s
    s.close()


@pytest.fixture
def T():
    """Deadline scaler: T(5) is 5 s, or more under sanitizers."""
    return harness.scaled


@pytest.fixture(scope="module")
def shared_gateway(tmp_path_factory):
    """One echo backend and one gateway (Mapping "/" -> echo, rewrite "") for a whole module of
    cheap single-request tests. Yields (gateway, echo)."""
    _require(harness.proxenos_bin())
    _require(harness.echo_bin())
    base = tmp_path_factory.mktemp("shared")
    saved = harness.Proc.registry
    harness.Proc.registry = []
    procs = []
    try:
        echo = harness.EchoBackend(str(base / "procs"), name="echo")
        procs.append(echo)
        gw = harness.Gateway(str(base / "gw"), {"routes.yaml": [
            harness.mapping("root", "/", echo.addr, rewrite="")]})
        procs.append(gw)
    except harness.HarnessError:
        for p in harness.Proc.registry:
            p.stop()
        raise
    finally:
        harness.Proc.registry = saved
    harness.Proc.shared.extend(procs)
    yield gw, echo
    for p in reversed(procs):
        p.stop()
        harness.Proc.shared.remove(p)
