"""A throw-away PKI made with the `openssl` command: a CA, server certificates for given names
(also expired, or valid for the wrong name or for client auth only), client certificates, and
Kubernetes `kubernetes.io/tls` Secrets holding them."""

import base64
import os
import subprocess


def _run(args, cwd):
    subprocess.run(["openssl"] + args, cwd=cwd, check=True, capture_output=True, timeout=60)


class Pki:
    def __init__(self, directory, name="Proxenos Test CA"):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.ca_key = os.path.join(self.dir, "ca.key")
        self.ca_crt = os.path.join(self.dir, "ca.crt")
        _run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-keyout", self.ca_key, "-out", self.ca_crt, "-days", "30", "-subj", f"/CN={name}",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], self.dir)
        # `openssl ca` state, for certificates with explicit validity dates.
        for f, content in (("index.txt", ""), ("serial", "1000\n")):
            with open(os.path.join(self.dir, f), "w") as fh:
                fh.write(content)
        with open(os.path.join(self.dir, "ca.cnf"), "w") as fh:
            fh.write(f"""[ca]
default_ca = test_ca
[test_ca]
dir = {self.dir}
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir
certificate = {self.ca_crt}
private_key = {self.ca_key}
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = copy
[anything]
commonName = supplied
""")

    def issue(self, label, cn, dns=(), ips=(), usage="serverAuth", start=None, end=None,
              days=30):
        """Returns (cert_path, key_path). `start`/`end` as YYYYMMDDHHMMSSZ make odd validity."""
        key = os.path.join(self.dir, f"{label}.key")
        csr = os.path.join(self.dir, f"{label}.csr")
        crt = os.path.join(self.dir, f"{label}.crt")
        sans = [f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips]
        req = ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
               "-keyout", key, "-out", csr, "-subj", f"/CN={cn}",
               "-addext", f"extendedKeyUsage={usage}",
               "-addext", "basicConstraints=critical,CA:FALSE"]
        if sans:
            req += ["-addext", "subjectAltName=" + ",".join(sans)]
        _run(req, self.dir)
        args = ["ca", "-batch", "-config", os.path.join(self.dir, "ca.cnf"), "-in", csr,
                "-out", crt, "-notext"]
        if start and end:
            args += ["-startdate", start, "-enddate", end]
        else:
            args += ["-days", str(days)]
        _run(args, self.dir)
        return crt, key

    def server(self, label, *names, **kw):
        return self.issue(label, names[0], dns=names, **kw)

    def expired(self, label, *names):
        return self.issue(label, names[0], dns=names, start="20200101000000Z",
                          end="20200102000000Z")

    def client(self, label, cn, uri=None):
        crt, key = self.issue(label, cn, usage="clientAuth")
        return crt, key

    @staticmethod
    def read(path):
        with open(path) as f:
            return f.read()


def tls_secret(name, crt_path, key_path, namespace=None, ca_path=None):
    """A kubernetes.io/tls Secret as a config document (base64 data, as Kubernetes stores it)."""
    def b64(path):
        with open(path, "rb") as f:
            return base64.b64encode(f.read()).decode()
    data = {"tls.crt": b64(crt_path), "tls.key": b64(key_path)}
    if ca_path:
        data["ca.crt"] = b64(ca_path)
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "kubernetes.io/tls",
            "data": data}


def ca_secret(name, ca_path, namespace=None):
    with open(ca_path, "rb") as f:
        data = {"tls.crt": base64.b64encode(f.read()).decode()}
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
            "data": data}
