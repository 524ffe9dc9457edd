#!/usr/bin/python3
"""A stand-in for `helm template`, for the one chart in deploy/helm/proxenos.

Helm cannot be installed on the build machines (not packaged in Debian 12, no network), so this
renders the chart's templates with a small, documented subset of Helm's Go-template language —
exactly the subset the chart uses — and refuses anything else, so that the chart cannot drift
into syntax that was never rendered here:

- actions `{{ ... }}`, with `{{-` / `-}}` trimming the whitespace before / after them, and
  comments `{{/* ... */}}`;
- values: `.Values...`, `.Release.Name`, `.Release.Namespace`, `.Release.Service`, `.Chart.Name`,
  `.Chart.Version`, `.Chart.AppVersion`, `.` and `$` (inside `range`, `.` is the element and `$`
  the top), string and integer literals, true/false;
- `if PIPELINE` / `else` / `end` (no `else if`), `range PIPELINE` over a list / `end`,
  `define "name"` / `end` (in any template file) and `include "name" CONTEXT`;
- the functions `toYaml`, `nindent N`, `quote` and `default VALUE`, called directly or at the
  end of a pipeline (`X | default Y` is `default Y X`).

Semantics follow Go's text/template and Helm/Sprig: emptiness (false, 0, "", nil, empty list or
map) is false for `if` and `default`; a missing map key prints as nothing (Helm replaces
"<no value>" with ""), but reading a field of a missing value is an error, as in Helm; `toYaml`
drops the final newline; `nindent N` is a newline plus every line indented by N spaces; `quote`
is Go's %q (approximated with a JSON string, identical for printable ASCII). Not exercised: Helm's
own parser, schema checks (`helm lint`), `.Capabilities`, hooks, and the API server.

    tests/e2e/helm_render.py deploy/helm/proxenos [--name proxenos] [--namespace proxenos] \\
        [--set scope.singleNamespace=true ...]
"""

import json
import os
import re
import sys

import yaml


class RenderError(Exception):
    pass


# ----------------------------------------------------------------------------------------------
# Lexing: text and actions


def _lex(text, source):
    """[("text", str) | ("action", body, line)] with the trim markers already applied."""
    out = []
    pos = 0
    trim_next = False
    while True:
        start = text.find("{{", pos)
        chunk = text[pos:] if start < 0 else text[pos:start]
        if trim_next:
            chunk = chunk.lstrip(" \t\r\n")
        out.append(("text", chunk))
        if start < 0:
            break
        line = text.count("\n", 0, start) + 1
        i = start + 2
        if text.startswith("-", i) and i + 1 < len(text) and text[i + 1] in " \t\r\n":
            out[-1] = ("text", out[-1][1].rstrip(" \t\r\n"))
            i += 2
        # Find the closing braces outside string literals and comments.
        j = i
        while True:
            if j >= len(text):
                raise RenderError(f"{source}:{line}: unclosed action")
            if text.startswith("/*", j):
                end = text.find("*/", j + 2)
                if end < 0:
                    raise RenderError(f"{source}:{line}: unclosed comment")
                j = end + 2
            elif text[j] == '"':
                j += 1
                while j < len(text) and text[j] != '"':
                    j += 2 if text[j] == "\\" else 1
                j += 1
            elif text.startswith("}}", j):
                break
            else:
                j += 1
        body = text[i:j]
        trim_next = False
        if re.search(r"[ \t\r\n]-$", body):
            body = body[:-1]
            trim_next = True
        out.append(("action", body.strip(), line))
        pos = j + 2
    return out


# ----------------------------------------------------------------------------------------------
# Parsing: a tree of nodes

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>-?\d+)
  | (?P<field>\$?(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.|\$)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<pipe>\|)
  | (?P<other>.)
""", re.X)

FUNCTIONS = {"include", "toYaml", "nindent", "quote", "default"}


def _tokens(expr, where):
    toks = []
    for m in _TOKEN.finditer(expr):
        kind = m.lastgroup
        if kind == "ws":
            continue
        if kind == "other":
            raise RenderError(f"{where}: {m.group()!r} in {expr!r} is outside the supported "
                              "subset (no parentheses, variables or operators)")
        toks.append((kind, m.group()))
    return toks


def _pipeline(expr, where):
    """A pipeline: a list of commands, each a list of tokens."""
    commands = [[]]
    for tok in _tokens(expr, where):
        if tok[0] == "pipe":
            commands.append([])
        else:
            commands[-1].append(tok)
    if any(not c for c in commands):
        raise RenderError(f"{where}: empty command in {expr!r}")
    for cmd in commands:
        head = cmd[0]
        if head[0] == "ident" and head[1] not in ("true", "false"):
            if head[1] not in FUNCTIONS:
                raise RenderError(f"{where}: function {head[1]!r} is outside the supported "
                                  f"subset ({', '.join(sorted(FUNCTIONS))})")
        elif len(cmd) > 1:
            raise RenderError(f"{where}: {expr!r}: only a function takes arguments")
    return commands


def _parse(tokens, source, defines):
    """Nodes: ("text", s) | ("out", pipeline, where) | ("if", pipeline, then, else, where) |
    ("range", pipeline, body, where). `define` blocks go to `defines`."""
    root = []
    stack = [("root", root, None)]  # (kind, current node list, the open node)
    for tok in tokens:
        nodes = stack[-1][1]
        if tok[0] == "text":
            if tok[1]:
                nodes.append(("text", tok[1]))
            continue
        body, line = tok[1], tok[2]
        where = f"{source}:{line}"
        if body.startswith("/*"):
            if not body.endswith("*/"):
                raise RenderError(f"{where}: a comment must be the whole action")
            continue
        word = body.split(None, 1)[0] if body else ""
        rest = body[len(word):].strip()
        if word == "if":
            node = ["if", _pipeline(rest, where), [], None, where]
            nodes.append(node)
            stack.append(("if", node[2], node))
        elif word == "else":
            if rest:
                raise RenderError(f"{where}: `else {rest}` is outside the supported subset")
            kind, _, node = stack[-1]
            if kind != "if" or node[3] is not None:
                raise RenderError(f"{where}: else without if")
            node[3] = []
            stack[-1] = ("else", node[3], node)
        elif word == "range":
            node = ["range", _pipeline(rest, where), [], where]
            nodes.append(node)
            stack.append(("range", node[2], node))
        elif word == "define":
            name = json.loads(rest) if rest.startswith('"') else None
            if stack[-1][0] != "root" or not isinstance(name, str):
                raise RenderError(f"{where}: define must be top-level and named by a string")
            body_nodes = []
            defines[name] = body_nodes
            stack.append(("define", body_nodes, None))
        elif word == "end":
            if rest or len(stack) == 1:
                raise RenderError(f"{where}: unexpected end")
            stack.pop()
        elif word in ("with", "template", "block", "break", "continue") or re.match(r"\$\w", word):
            raise RenderError(f"{where}: `{word}` is outside the supported subset")
        else:
            nodes.append(("out", _pipeline(body, where), where))
    if len(stack) != 1:
        raise RenderError(f"{source}: {stack[-1][0]} without end")
    return root


# ----------------------------------------------------------------------------------------------
# Evaluation


def _empty(v):
    return v is None or v is False or v == 0 and not isinstance(v, bool) or v in ("", [], {})


def _field(chain, dot, top, where):
    if chain == ".":
        return dot
    if chain == "$":
        return top
    value = top if chain.startswith("$") else dot
    for name in chain.lstrip("$").split(".")[1:]:
        if value is None:
            raise RenderError(f"{where}: nil pointer evaluating {chain} (at .{name})")
        if not isinstance(value, dict):
            raise RenderError(f"{where}: {chain}: cannot read .{name} of a {type(value).__name__}")
        value = value.get(name)
    return value


def _operand(tok, dot, top, where):
    kind, text = tok
    if kind == "string":
        return json.loads(text)
    if kind == "number":
        return int(text)
    if kind == "ident":
        return text == "true"
    return _field(text, dot, top, where)


def _to_yaml(v):
    text = yaml.safe_dump(v, default_flow_style=False, sort_keys=True, width=1 << 20)
    if text.endswith("\n...\n"):  # a bare scalar
        text = text[:-4]
    return text.rstrip("\n")


def _indent(n, s):
    pad = " " * n
    return pad + s.replace("\n", "\n" + pad)


def _call(name, args, ctx, where):
    def want(count):
        if len(args) != count:
            raise RenderError(f"{where}: {name} takes {count} argument(s), got {len(args)}")

    if name == "include":
        want(2)
        if args[0] not in ctx.defines:
            raise RenderError(f"{where}: no template named {args[0]!r}")
        return ctx.render(ctx.defines[args[0]], args[1], args[1])
    if name == "toYaml":
        want(1)
        return _to_yaml(args[0])
    if name == "nindent":
        want(2)
        if not isinstance(args[0], int):
            raise RenderError(f"{where}: nindent needs a number first")
        return "\n" + _indent(args[0], _print(args[1], where))
    if name == "quote":
        return " ".join(json.dumps(_print(a, where)) for a in args if a is not None)
    if name == "default":
        want(2)
        return args[0] if _empty(args[1]) else args[1]
    raise RenderError(f"{where}: unknown function {name}")


def _print(v, where):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, str)):
        return str(v)
    raise RenderError(f"{where}: cannot print a {type(v).__name__} (use toYaml)")


class _Context:
    def __init__(self, defines):
        self.defines = defines
        self.depth = 0

    def pipeline(self, commands, dot, top, where):
        value = None
        for i, cmd in enumerate(commands):
            head = cmd[0]
            if head[0] == "ident" and head[1] in FUNCTIONS:
                args = [_operand(t, dot, top, where) for t in cmd[1:]]
                if i > 0:
                    args.append(value)
                value = _call(head[1], args, self, where)
            else:
                if i > 0:
                    raise RenderError(f"{where}: cannot pipe into a non-function")
                value = _operand(head, dot, top, where)
        return value

    def render(self, nodes, dot, top):
        self.depth += 1
        if self.depth > 50:
            raise RenderError("include nested too deeply")
        out = []
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "out":
                out.append(_print(self.pipeline(node[1], dot, top, node[2]), node[2]))
            elif kind == "if":
                cond = self.pipeline(node[1], dot, top, node[4])
                branch = node[2] if not _empty(cond) else (node[3] or [])
                out.append(self.render(branch, dot, top))
            elif kind == "range":
                items = self.pipeline(node[1], dot, top, node[3])
                if items is None:
                    items = []
                if not isinstance(items, list):
                    raise RenderError(f"{node[3]}: range over a {type(items).__name__}; only "
                                      "lists are in the supported subset")
                for item in items:
                    out.append(self.render(node[2], item, top))
        self.depth -= 1
        return "".join(out)


# ----------------------------------------------------------------------------------------------
# Charts


def merge(base, override):
    """Helm's value coalescing for maps: override wins, maps merge recursively."""
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_set(expr):
    """`a.b=c` (as `helm --set`, without lists or escapes) -> {"a": {"b": value}}."""
    key, sep, raw = expr.partition("=")
    if not sep or not key:
        raise RenderError(f"--set {expr!r}: expected key=value")
    if raw in ("true", "false"):
        value = raw == "true"
    elif raw == "null":
        value = None
    elif re.fullmatch(r"-?\d+", raw):
        value = int(raw)
    else:
        value = raw
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def render_chart(chart_dir, release_name="proxenos", namespace="proxenos", overrides=()):
    """{template path relative to the chart: rendered text} for every template not starting with
    `_`. `overrides` is a list of dicts merged over values.yaml, in order."""
    with open(os.path.join(chart_dir, "Chart.yaml")) as f:
        chart = yaml.safe_load(f)
    with open(os.path.join(chart_dir, "values.yaml")) as f:
        values = yaml.safe_load(f) or {}
    for o in overrides:
        values = merge(values, o)
    top = {
        "Values": values,
        "Release": {"Name": release_name, "Namespace": namespace, "Service": "Helm"},
        "Chart": {"Name": chart["name"], "Version": chart["version"],
                  "AppVersion": chart.get("appVersion")},
    }
    tdir = os.path.join(chart_dir, "templates")
    defines = {}
    parsed = {}
    for name in sorted(os.listdir(tdir)):
        path = os.path.join(tdir, name)
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            text = f.read()
        rel = f"templates/{name}"
        parsed[rel] = _parse(_lex(text, rel), rel, defines)
    ctx = _Context(defines)
    return {rel: ctx.render(nodes, top, top) for rel, nodes in parsed.items()
            if not os.path.basename(rel).startswith("_")}


def manifests(rendered):
    """The Kubernetes objects in rendered templates (empty documents dropped), in file order."""
    docs = []
    for rel in sorted(rendered):
        try:
            docs.extend(d for d in yaml.safe_load_all(rendered[rel]) if d is not None)
        except yaml.YAMLError as e:
            raise RenderError(f"{rel}: the rendered template is not valid YAML: {e}\n"
                              f"--- rendered ---\n{rendered[rel]}") from e
    return docs


def crds(chart_dir):
    """The chart's crds/ documents (installed by Helm as they are, never templated)."""
    out = []
    cdir = os.path.join(chart_dir, "crds")
    for name in sorted(os.listdir(cdir)) if os.path.isdir(cdir) else []:
        if name.endswith((".yaml", ".yml")):
            with open(os.path.join(cdir, name)) as f:
                out.extend(d for d in yaml.safe_load_all(f) if d is not None)
    return out


def main(argv):
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("chart")
    p.add_argument("--name", default="proxenos")
    p.add_argument("--namespace", default="proxenos")
    p.add_argument("--set", action="append", default=[], dest="sets")
    args = p.parse_args(argv)
    try:
        rendered = render_chart(args.chart, args.name, args.namespace,
                                [parse_set(s) for s in args.sets])
        manifests(rendered)  # fail on YAML that does not parse
    except RenderError as e:
        print(f"helm_render: {e}", file=sys.stderr)
        return 1
    chart = os.path.basename(os.path.normpath(args.chart))
    for rel, text in sorted(rendered.items()):
        if text.strip():
            print(f"---\n# Source: {chart}/{rel}\n{text.strip(chr(10))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
