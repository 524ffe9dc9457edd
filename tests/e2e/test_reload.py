"""Automatic reload: `proxenos run` watches --config with inotify and reloads once per burst of
changes; `--no-watch` turns that off (SIGHUP still reloads)."""

import os
import re
import signal
import time

import harness
import requests
from harness import RawConn, get_request, listener, mapping, to_yaml_docs

GENERATION_RE = re.compile(r"config generation \d+:")


def status(gw, path, T):
    """The status the gateway answers for GET `path`, or None if the exchange failed."""
    try:
        with RawConn(gw.port, timeout=T(2)) as c:
            return c.request(get_request(path)).status
    except (OSError, harness.IncompleteResponse):
        return None


def wait_status(gw, path, want, T, timeout=5):
    return harness.wait_until(lambda: status(gw, path, T) == want, T(timeout))


def write(path, resources):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(resources if isinstance(resources, str) else to_yaml_docs(resources))


def generations(gw):
    return len(GENERATION_RE.findall(gw.stderr()))


def test_new_file_is_picked_up(start_gateway, echo, T):
    gw = start_gateway({"a.yaml": [mapping("a", "/a/", echo.addr)]})
    assert status(gw, "/b/x", T) == 404
    write(os.path.join(gw.config_dir, "b.yaml"), [mapping("b", "/b/", echo.addr)])
    assert wait_status(gw, "/b/x", 200, T), gw.stderr()
    assert status(gw, "/a/x", T) == 200
    assert "config change detected: reloading " + gw.config_dir in gw.stderr()


def test_new_subfolder_is_watched(start_gateway, echo, T):
    gw = start_gateway({"a.yaml": [mapping("a", "/a/", echo.addr)]})
    # A folder created after start, with a file written into it straight away, then a second file
    # later: the second write only reaches us through a watch added for the new folder.
    write(os.path.join(gw.config_dir, "team", "b.yaml"), [mapping("b", "/b/", echo.addr)])
    assert wait_status(gw, "/b/x", 200, T), gw.stderr()
    write(os.path.join(gw.config_dir, "team", "c.yaml"), [mapping("c", "/c/", echo.addr)])
    assert wait_status(gw, "/c/x", 200, T), gw.stderr()
    assert status(gw, "/a/x", T) == 200


def test_removed_file_drops_its_routes(start_gateway, echo, T):
    gw = start_gateway({
        "a.yaml": [mapping("a", "/a/", echo.addr)],
        "b.yaml": [mapping("b", "/b/", echo.addr)],
    })
    assert status(gw, "/b/x", T) == 200
    os.unlink(os.path.join(gw.config_dir, "b.yaml"))
    assert wait_status(gw, "/b/x", 404, T), gw.stderr()
    assert status(gw, "/a/x", T) == 200


def test_broken_file_keeps_other_routes_serving(start_gateway, echo, T):
    gw = start_gateway({"a.yaml": [mapping("a", "/a/", echo.addr)]})
    before = generations(gw)
    write(os.path.join(gw.config_dir, "broken.yaml"),
          "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nspec: [oops\n")
    line = harness.wait_until(
        lambda: next((l for l in gw.stderr().splitlines()
                      if "broken.yaml" in l and " error " in l), None), T(5))
    assert line, gw.stderr()
    assert generations(gw) > before
    assert gw.alive()
    assert status(gw, "/a/x", T) == 200
    assert gw.ready_status() == 200


def test_burst_of_writes_reloads_few_times(start_gateway, echo, T):
    gw = start_gateway({"a.yaml": [mapping("a", "/a/", echo.addr)]})
    before = generations(gw)
    path = os.path.join(gw.config_dir, "burst.yaml")
    # 20 rewrites spread over ~200 ms: each one re-arms the debounce timer.
    for i in range(20):
        write(path, [mapping(f"burst-{i}", f"/burst-{i}/", echo.addr)])
        time.sleep(0.01)
    assert wait_status(gw, "/burst-19/x", 200, T), gw.stderr()
    assert status(gw, "/burst-0/x", T) == 404
    new = generations(gw) - before
    assert 1 <= new < 5, f"{new} reloads for one burst\n{gw.stderr()}"


def test_single_file_replaced_by_rename(start_gateway, echo, T):
    # Editors save by writing a temporary file and renaming it over the original: the watch on
    # the file's folder must catch that, and later saves too.
    port = harness.free_port("0.0.0.0")

    def config(prefix):
        return to_yaml_docs([listener("e2e-http", port), mapping("m", prefix, echo.addr)])

    gw = start_gateway({"gateway.yaml": config("/a/")}, listen=False, config_file="gateway.yaml")
    gw.port = port
    assert harness.wait_for_tcp("127.0.0.1", port, T(5), gw)
    assert status(gw, "/a/x", T) == 200
    target = os.path.join(gw.config_dir, "gateway.yaml")
    for prefix in ("/b/", "/c/"):
        tmp = os.path.join(gw.config_dir, ".gateway.yaml.swp")
        with open(tmp, "w") as f:
            f.write(config(prefix))
        os.replace(tmp, target)
        assert wait_status(gw, prefix + "x", 200, T), gw.stderr()
        assert status(gw, "/a/x", T) == 404


def test_configmap_data_symlink_swap(start_gateway, echo, T):
    # The layout kubelet gives a ConfigMap volume: visible names are symlinks through `..data`,
    # and an update swaps `..data` atomically to a new hidden folder.
    gw = start_gateway({})
    d = gw.config_dir
    write(os.path.join(d, "..2026_01", "routes.yaml"), [mapping("a", "/a/", echo.addr)])
    os.symlink("..2026_01", os.path.join(d, "..data"))
    os.symlink("..data/routes.yaml", os.path.join(d, "routes.yaml"))
    assert wait_status(gw, "/a/x", 200, T), gw.stderr()
    write(os.path.join(d, "..2026_02", "routes.yaml"), [mapping("b", "/b/", echo.addr)])
    os.symlink("..2026_02", os.path.join(d, "..data_tmp"))
    os.rename(os.path.join(d, "..data_tmp"), os.path.join(d, "..data"))
    assert wait_status(gw, "/b/x", 200, T), gw.stderr()
    assert status(gw, "/a/x", T) == 404


def test_no_watch_needs_sighup(start_gateway, echo, T):
    gw = start_gateway({"a.yaml": [mapping("a", "/a/", echo.addr)]}, extra_args=["--no-watch"])
    write(os.path.join(gw.config_dir, "b.yaml"), [mapping("b", "/b/", echo.addr)])
    # A negative check has to watch for a while: 1.5 s is far beyond the 200 ms debounce.
    changed = harness.wait_until(lambda: status(gw, "/b/x", T) == 200, 1.5, interval=0.1)
    assert not changed, "the new file took effect with --no-watch"
    assert "config change detected" not in gw.stderr()
    gw.signal(signal.SIGHUP)
    assert wait_status(gw, "/b/x", 200, T), gw.stderr()
    assert status(gw, "/a/x", T) == 200


def metric(gw, name):
    body = requests.get(gw.admin_url + "/metrics", timeout=5).text
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def reply_header(gw, path, name, T):
    with RawConn(gw.port, timeout=T(2)) as c:
        r = c.request(get_request(path))
        return r.status, r.header(name)


def test_invalid_update_keeps_last_good_version(start_gateway, echo, T):
    good = mapping("a", "/a/", echo.addr, add_response_headers={"x-version": "1"})
    gw = start_gateway({"a.yaml": [good], "b.yaml": [mapping("b", "/b/", echo.addr)]})
    assert reply_header(gw, "/a/x", "x-version", T) == (200, "1")

    # The new version of `a` has a field of the wrong type: `a` keeps serving version 1, the
    # error is reported on it, and other changes still apply.
    before = generations(gw)
    bad = mapping("a", "/a-new/", echo.addr, add_response_headers={"x-version": "2"},
                  timeout_ms="soon")
    write(os.path.join(gw.config_dir, "a.yaml"), [bad])
    write(os.path.join(gw.config_dir, "b.yaml"), [mapping("b", "/b2/", echo.addr)])
    assert wait_status(gw, "/b2/x", 200, T), gw.stderr()
    assert harness.wait_until(lambda: generations(gw) > before, T(5))
    assert reply_header(gw, "/a/x", "x-version", T) == (200, "1")
    assert status(gw, "/a-new/x", T) == 404
    log = gw.stderr()
    assert "error: Mapping/default/a: spec.timeout_ms" in log, log
    assert "Mapping/default/a: serving its last good version" in log, log
    assert metric(gw, "proxenos_config_errors") == 1
    assert metric(gw, "proxenos_config_resources_kept_last_good") == 1

    # Fixed: version 2 serves, the report clears.
    write(os.path.join(gw.config_dir, "a.yaml"),
          [mapping("a", "/a-new/", echo.addr, add_response_headers={"x-version": "2"})])
    assert wait_status(gw, "/a-new/x", 200, T), gw.stderr()
    assert reply_header(gw, "/a-new/x", "x-version", T) == (200, "2")
    assert status(gw, "/a/x", T) == 404
    assert harness.wait_until(lambda: metric(gw, "proxenos_config_errors") == 0, T(5))
    assert metric(gw, "proxenos_config_resources_kept_last_good") == 0


def test_file_that_stops_parsing_keeps_its_routes(start_gateway, echo, T):
    gw = start_gateway({"a.yaml": [mapping("a", "/a/", echo.addr)],
                        "b.yaml": [mapping("b", "/b/", echo.addr)]})
    before = generations(gw)
    # Half-saved: the file is no longer valid YAML.
    write(os.path.join(gw.config_dir, "a.yaml"),
          "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nspec: {prefix: [\n")
    write(os.path.join(gw.config_dir, "b.yaml"), [mapping("b", "/b2/", echo.addr)])
    assert wait_status(gw, "/b2/x", 200, T), gw.stderr()
    assert generations(gw) > before
    assert status(gw, "/a/x", T) == 200
    log = gw.stderr()
    assert re.search(r"a\.yaml:\d+: error", log), log
    # Deleting the file, unlike breaking it, removes its routes.
    os.unlink(os.path.join(gw.config_dir, "a.yaml"))
    assert wait_status(gw, "/a/x", 404, T), gw.stderr()
