"""`proxenos version`, `proxenos validate`, `proxenos routes`."""

import re

import pytest

from harness import listener, mapping, run_cli, to_yaml_docs

GOOD = """\
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata:
  name: good-one
  namespace: team-a
spec:
  hostname: "*"
  prefix: /good/
  service: 127.0.0.1:9
"""

# The bad Mapping is the second document; its lines are 11-18 of the file.
BAD = """\
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata:
  name: fine
spec:
  hostname: "*"
  prefix: /fine/
  service: 127.0.0.1:9
---
# a Mapping with an invalid regex
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata:
  name: broken-regex
  namespace: team-b
spec:
  hostname: "*"
  prefix: "/api/(["
  prefix_regex: true
  service: 127.0.0.1:9
"""
BAD_FIRST_LINE, BAD_LAST_LINE = 10, 20


def write(tmp_path, files):
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return str(tmp_path)


def test_version(proxenos_bin):
    r = run_cli(["version"])
    assert r.returncode == 0, r.stderr
    assert re.search(r"\d+\.\d+\.\d+", r.stdout + r.stderr), r.stdout


def test_unknown_subcommand_fails(proxenos_bin):
    r = run_cli(["no-such-command"])
    assert r.returncode != 0


def test_validate_good_config_exits_0(proxenos_bin, tmp_path):
    d = write(tmp_path / "cfg", {"a.yaml": GOOD})
    r = run_cli(["validate", d])
    assert r.returncode == 0, r.stdout + r.stderr
    assert not re.search(r"(?i)\berror:", r.stdout + r.stderr), r.stdout + r.stderr


def test_validate_single_file(proxenos_bin, tmp_path):
    d = write(tmp_path / "cfg", {"a.yaml": GOOD})
    r = run_cli(["validate", d + "/a.yaml"])
    assert r.returncode == 0, r.stdout + r.stderr


def test_validate_bad_regex_reports_file_line_resource_field(proxenos_bin, tmp_path):
    d = write(tmp_path / "cfg", {"good.yaml": GOOD, "sub/bad.yaml": BAD})
    r = run_cli(["validate", d])
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    m = re.search(r"(\S*bad\.yaml):(\d+)", out)
    assert m, f"no file:line for bad.yaml in:\n{out}"
    assert BAD_FIRST_LINE <= int(m.group(2)) <= BAD_LAST_LINE, out
    line = next(l for l in out.splitlines() if "bad.yaml" in l and "broken-regex" in l)
    assert "Mapping/team-b/broken-regex" in line, out
    assert "prefix" in line, out
    assert "error" in line.lower(), out
    # The good resources are not reported.
    assert "good-one" not in out and "Mapping/default/fine" not in out, out


def test_validate_reports_every_problem(proxenos_bin, tmp_path):
    two_bad = """\
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata:
  name: no-prefix
spec:
  hostname: "*"
  service: 127.0.0.1:9
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata:
  name: bad-redirect-code
spec:
  hostname: "*"
  prefix: /x/
  service: example.com
  host_redirect: true
  redirect_response_code: 299
"""
    d = write(tmp_path / "cfg", {"a.yaml": two_bad, "b.yaml": BAD})
    r = run_cli(["validate", d])
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "Mapping/default/no-prefix" in out and "prefix" in out, out
    assert "Mapping/default/bad-redirect-code" in out and "redirect_response_code" in out, out
    assert "Mapping/team-b/broken-regex" in out, out


def test_validate_yaml_syntax_error_has_file_and_line(proxenos_bin, tmp_path):
    broken = "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata:\n  name: x\nspec: [unclosed\n"
    d = write(tmp_path / "cfg", {"good.yaml": GOOD, "broken.yaml": broken})
    r = run_cli(["validate", d])
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert re.search(r"broken\.yaml:\d+", out), out


def test_validate_warns_about_mapping_attached_to_no_host(proxenos_bin, tmp_path):
    orphan = """\
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata:
  name: orphan
spec:
  prefix: /orphan/
  service: 127.0.0.1:9
"""
    d = write(tmp_path / "cfg", {"a.yaml": orphan})
    r = run_cli(["validate", d])
    out = r.stdout + r.stderr
    assert r.returncode == 0, out  # a warning is not an error
    line = next((l for l in out.splitlines() if "orphan" in l), "")
    assert "warn" in line.lower(), out
    assert "Mapping/default/orphan" in line, out


def test_validate_missing_path_fails(proxenos_bin, tmp_path):
    r = run_cli(["validate", str(tmp_path / "does-not-exist")])
    assert r.returncode != 0


def test_validate_rejects_unsupported_envoy_override(proxenos_bin, tmp_path):
    text = to_yaml_docs([mapping("ovr", "/o/", "127.0.0.1:9", envoy_override={"x": 1})])
    d = write(tmp_path / "cfg", {"a.yaml": text})
    r = run_cli(["validate", d])
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "envoy_override" in out and "Mapping/default/ovr" in out, out


def _route_order(output, names):
    """The order in which `names` first appear on route lines."""
    seen = []
    for line in output.splitlines():
        for n in names:
            if re.search(rf"Mapping/\S*/{re.escape(n)}\b", line) and n not in seen:
                seen.append(n)
    return seen


def test_routes_lists_routes_in_match_order(proxenos_bin, tmp_path):
    # File order is deliberately scrambled relative to match order.
    resources = [
        listener("l", 18080),
        mapping("m-root", "/", "127.0.0.1:9"),
        mapping("m-mid", "/a/b/", "127.0.0.1:9"),
        mapping("m-prec", "/a/", "127.0.0.1:9", precedence=10),
        mapping("m-long", "/a/b/c/", "127.0.0.1:9"),
        mapping("m-hdr", "/a/b/", "127.0.0.1:9", headers={"x-team": "blue"}),
    ]
    d = write(tmp_path / "cfg", {"a.yaml": to_yaml_docs(resources)})
    r = run_cli(["routes", d])
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    names = ["m-root", "m-mid", "m-prec", "m-long", "m-hdr"]
    assert _route_order(r.stdout, names) == ["m-prec", "m-long", "m-hdr", "m-mid", "m-root"], out
    # One line per route: each Mapping names exactly one line for the single listener/host.
    for n in names:
        assert len([l for l in r.stdout.splitlines() if re.search(rf"/{n}\b", l)]) == 1, out
    assert "18080" in r.stdout, out


def test_routes_shows_hosts(proxenos_bin, tmp_path):
    resources = [
        listener("l", 18080),
        {"apiVersion": "getambassador.io/v3alpha1", "kind": "Host",
         "metadata": {"name": "h1"}, "spec": {"hostname": "one.example.com",
                                              "requestPolicy": {"insecure": {"action": "Route"}}}},
        mapping("m1", "/one/", "127.0.0.1:9", hostname="one.example.com"),
    ]
    d = write(tmp_path / "cfg", {"a.yaml": to_yaml_docs(resources)})
    r = run_cli(["routes", d])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "one.example.com" in r.stdout and "m1" in r.stdout, r.stdout


@pytest.mark.parametrize("api", ["getambassador.io/v2", "getambassador.io/v3alpha1"])
def test_validate_accepts_v2_and_v3(proxenos_bin, tmp_path, api):
    text = f"""\
apiVersion: {api}
kind: Mapping
metadata:
  name: versioned
spec:
  host: v.example.com
  prefix: /v/
  service: 127.0.0.1:9
"""
    d = write(tmp_path / "cfg", {"a.yaml": text})
    r = run_cli(["validate", d])
    assert r.returncode == 0, r.stdout + r.stderr
