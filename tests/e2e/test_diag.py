"""The diagnostics page (/ambassador/v0/diag/, ?json=true) and /config_dump on the admin port,
checked as JSON with requests and as a page in headless Chromium (Debian's `chromium`), whose
screenshot is kept as an artifact: $PROXENOS_ARTIFACTS/diag.png, by default
$PROXENOS_BUILD/artifacts/diag.png."""

import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile

import pytest

import harness
from harness import mapping

CHROMIUM = "/usr/bin/chromium"


def artifacts_dir():
    path = os.environ.get("PROXENOS_ARTIFACTS") or os.path.join(harness.BUILD, "artifacts")
    os.makedirs(path, exist_ok=True)
    return path


def run_chromium(args, timeout, workdir):
    """Runs headless Chromium with `args`; returns (exit code, stdout bytes). Chromium forks
    helpers (zygote, renderers), so it runs in its own session and, on timeout, that whole process
    group (led by the PID started here) is killed."""
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir)
    argv = [
        CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
        f"--user-data-dir={profile}",
        # Nothing but the page under test: no proxy, no background fetches of any kind.
        "--no-proxy-server", "--no-first-run", "--disable-extensions", "--disable-sync",
        "--disable-background-networking", "--disable-component-update", "--disable-breakpad",
        "--disable-dev-shm-usage",
    ] + list(args)
    env = dict(os.environ, HOME=workdir)
    with open(os.path.join(workdir, "chromium.stderr"), "ab") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)
            pytest.fail(f"chromium {' '.join(args)} did not finish in {timeout} s")
        finally:
            # Helpers left behind by a crashed browser go with their group.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    shutil.rmtree(profile, ignore_errors=True)
    return proc.returncode, out


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


def find_route(model, path):
    for listener in model["listeners"]:
        for host in listener["hosts"]:
            for route in host["routes"]:
                if route["match"]["path"] == path:
                    return route
    return None


@pytest.fixture
def diag_gateway(start_gateway, start_echo, http, T):
    stable, canary, flaky = start_echo("stable"), start_echo("canary"), start_echo("flaky")
    gw = start_gateway({"routes.yaml": [
        mapping("stable", "/shop/", stable.addr),
        mapping("canary", "/shop/", canary.addr, weight=30, rewrite="/v2/"),
        mapping("mirror", "/shop/", canary.addr, shadow=True, weight=50),
        mapping("flaky", "/flaky/", flaky.addr),
        mapping("bad", "/bad/(", stable.addr, prefix_regex=True),
    ]})
    # 3 of 10 requests to the flaky backend fail with 503.
    for i in range(10):
        headers = {"x-echo-status": "503"} if i < 3 else {}
        r = http.get(gw.url(f"/flaky/{i}"), headers=headers, timeout=T(5))
        assert r.status_code == (503 if i < 3 else 200)
    return gw, {"stable": stable, "canary": canary, "flaky": flaky}


def test_diag_json_and_config_dump(diag_gateway, http, T):
    gw, echoes = diag_gateway
    r = http.get(gw.admin_url + "/ambassador/v0/diag/?json=true", timeout=T(5))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    model = r.json()

    assert model["generation"] >= 1
    assert 0 <= model["ageSeconds"] < 60
    assert model["summary"]["errors"] == 1

    listeners = [l for l in model["listeners"] if l["port"] == gw.port]
    assert len(listeners) == 1
    assert listeners[0]["name"] == "Listener/default/e2e-http"
    assert listeners[0]["protocol"] == "HTTP"
    assert listeners[0]["securityModel"] == "XFP"
    assert listeners[0]["hosts"], "no hosts on the listener"

    shop = find_route(model, "/shop/")
    assert shop is not None
    weights = {t["source"]: t["weight"] for t in shop["targets"]}
    assert weights == {"Mapping/default/stable": 70, "Mapping/default/canary": 30}
    canary = [t for t in shop["targets"] if t["source"] == "Mapping/default/canary"][0]
    assert canary["rewrite"] == "/v2/"
    assert canary["service"] == echoes["canary"].addr
    assert re.search(r"/routes\.yaml:\d+$", canary["origin"])
    assert shop["shadow"]["source"] == "Mapping/default/mirror"
    assert shop["shadow"]["weight"] == 50
    assert find_route(model, "/bad/(") is None  # the invalid Mapping serves nothing

    bad = [res for res in model["resources"] if res["resource"] == "Mapping/default/bad"]
    assert len(bad) == 1
    assert bad[0]["status"] == "error"
    assert re.search(r"/routes\.yaml:\d+$", bad[0]["origin"])
    assert "invalid regex" in bad[0]["errors"][0]["message"]
    assert model["resources"][0]["resource"] == "Mapping/default/bad"  # trouble is listed first

    flaky = [c for c in model["clusters"] if c["service"] == echoes["flaky"].addr]
    assert len(flaky) == 1
    assert flaky[0]["endpoints"] == [echoes["flaky"].addr]
    assert flaky[0]["requestsTotal"] == 10
    assert flaky[0]["responses5xx"] == 3
    assert flaky[0]["recentErrorRate"] == pytest.approx(0.3)
    assert flaky[0]["mappings"] == ["Mapping/default/flaky"]

    # Without the trailing slash the same page is served.
    r = http.get(gw.admin_url + "/ambassador/v0/diag", timeout=T(5))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")

    r = http.get(gw.admin_url + "/config_dump", timeout=T(5))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    dump = r.json()
    assert dump["generation"] == model["generation"]
    assert any(l["port"] == gw.port for l in dump["listeners"])
    services = {f'{c["host"]}:{c["port"]}' for c in dump["clusters"]}
    assert echoes["flaky"].addr in services and echoes["canary"].addr in services
    assert dump["module"]["server_name"] == "envoy"
    # HEAD announces the GET's length and sends no body.
    head = http.head(gw.admin_url + "/config_dump", timeout=T(5))
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == len(r.content)
    assert head.content == b""

    r = http.get(gw.admin_url + "/ambassador/v0/diag/?json=false", timeout=T(5))
    assert r.headers["content-type"].startswith("text/html")


def test_diag_page_in_headless_chromium(diag_gateway, http, tmp_path, T):
    gw, echoes = diag_gateway
    generation = http.get(gw.admin_url + "/ambassador/v0/diag/?json=true",
                          timeout=T(5)).json()["generation"]
    assert os.access(CHROMIUM, os.X_OK), "chromium is a required dependency (scripts/install-deps)"
    url = gw.admin_url + "/ambassador/v0/diag/"
    workdir = str(tmp_path / "chromium")
    os.makedirs(workdir, exist_ok=True)

    rc, dom = run_chromium(["--dump-dom", url], T(60), workdir)
    assert rc == 0, open(os.path.join(workdir, "chromium.stderr"), errors="replace").read()[-3000:]
    dom = dom.decode("utf-8", "replace")
    art = artifacts_dir()
    with open(os.path.join(art, "diag.html"), "w") as f:
        f.write(dom)
    assert "Proxenos diagnostics" in dom
    assert f'<span class="value" id="generation">{generation}</span>' in dom
    assert '<code class="path">/shop/</code>' in dom
    assert ">70%<" in dom and ">30%<" in dom and ">50%<" in dom
    assert "shadow" in dom
    assert "Mapping/default/canary" in dom and "routes.yaml:" in dom
    assert 'invalid regex "/bad/("' in dom
    assert echoes["flaky"].addr in dom
    assert "30.0%" in dom  # the flaky cluster's recent error rate
    assert "<script" not in dom

    shot = os.path.join(art, "diag.png")
    if os.path.exists(shot):
        os.unlink(shot)
    rc, _ = run_chromium([f"--screenshot={shot}", "--window-size=1400,2000",
                          "--hide-scrollbars", url], T(60), workdir)
    assert rc == 0, open(os.path.join(workdir, "chromium.stderr"), errors="replace").read()[-3000:]
    assert os.path.exists(shot), "chromium wrote no screenshot"
    assert png_size(shot) == (1400, 2000)
    # A blank 1400x2000 page compresses to a few KB; a rendered page with tables does not.
    assert os.path.getsize(shot) > 30_000, os.path.getsize(shot)
