"""Per-run TLS material for the replica: a throw-away CA and a server certificate for
127.0.0.1 / localhost / ::1, made with the `openssl` command line tool.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


class TLSError(RuntimeError):
    """openssl is missing or failed; the message says what to do."""


def make_certs(out: Path) -> tuple[Path, Path, Path]:
    """Write ca.pem, server.pem (leaf + CA chain) and server.key into `out`.

    Returns (ca_file, cert_file, key_file). The CA key is deleted once the leaf is signed.
    Raises TLSError with one line on failure.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise TLSError("openssl not found: run `make setup` (apt-get install openssl)")
    out.mkdir(parents=True, exist_ok=True)
    ca_key, ca = out / "ca.key", out / "ca.pem"
    key, csr, leaf, cert = out / "server.key", out / "server.csr", out / "leaf.pem", out / "server.pem"
    ext = out / "server.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    cmds = [
        [openssl, "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "3",
         "-subj", "/CN=dltc replica test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        [openssl, "req", "-new", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1"],
        [openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
         "-CAcreateserial", "-out", str(leaf), "-days", "2", "-extfile", str(ext)],
    ]
    for c in cmds:
        p = subprocess.run(c, capture_output=True, text=True)
        if p.returncode != 0:
            last = (p.stderr.strip().splitlines() or ["?"])[-1]
            raise TLSError(f"openssl {c[1]} failed: {last}")
    cert.write_bytes(leaf.read_bytes() + ca.read_bytes())
    for f in (ca_key, csr, ext, out / "ca.srl"):
        f.unlink(missing_ok=True)
    key.chmod(0o600)
    return ca, cert, key
