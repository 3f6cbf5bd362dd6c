"""The project's own `deploy/nginx.conf`, run by Debian's real nginx on a loopback port.

The config is used as written, templated only where a test machine differs from the compose
network: the gateways' addresses, the listen address, and where nginx keeps its own files (pid,
logs, temp) — all in the test's directory, so that nginx runs as the current user, without
touching the machine's own. The access log names the upstream(s) each request went to.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.procs import ROOT, free_port, spawn, stop, wait_for_port

NGINX = Path("/usr/sbin/nginx")
CONF = ROOT / "deploy" / "nginx.conf"
#: Where the compose file's nginx finds the gateways and listens.
_UPSTREAM = re.compile(r"^(\s*server )(gateway-\d+:8000)(\s)", re.M)
_LISTEN = re.compile(r"^(\s*)listen 8080;$", re.M)


@dataclass
class Nginx:
    port: int
    workdir: Path
    proc: subprocess.Popen

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access_log(self) -> list[dict[str, str]]:
        """One entry a request: method, uri, status, upstreams (each tried) and their statuses."""
        lines = (self.workdir / "access.log").read_text().splitlines()
        return [dict(field.split("=", 1) for field in line.split("\t")) for line in lines]

    def error_log(self) -> str:
        return (self.workdir / "error.log").read_text()


def render(conf: str, gateway_ports: list[int], port: int, workdir: Path) -> str:
    """`conf` with the gateways at `127.0.0.1:<gateway_ports>` and nginx on `127.0.0.1:<port>`."""
    upstreams = _UPSTREAM.findall(conf)
    assert len(upstreams) == len(gateway_ports), f"{CONF.name} names {len(upstreams)} gateways"
    ports = iter(gateway_ports)
    conf = _UPSTREAM.sub(lambda m: f"{m[1]}127.0.0.1:{next(ports)}{m[3]}", conf)
    conf, listens = _LISTEN.subn(rf"\g<1>listen 127.0.0.1:{port};", conf)
    assert listens == 1, f"{CONF.name} should listen on 8080 once"
    own_files = "".join(
        f"    {kind}_temp_path {workdir / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    own_files += (
        "    log_format upstreams 'method=$request_method\\turi=$request_uri\\tstatus=$status"
        "\\tupstreams=$upstream_addr\\tupstream_statuses=$upstream_status';\n"
        f"    access_log {workdir / 'access.log'} upstreams;\n"
    )
    conf, https = re.subn(r"^http \{\n", lambda m: m[0] + own_files, conf, flags=re.M)
    assert https == 1
    return conf


def _globals(workdir: Path) -> str:
    directives = f"daemon off; pid {workdir / 'nginx.pid'};"
    if os.geteuid() == 0:
        # Run as root, nginx would hand its workers to `nobody`, who cannot use our directory.
        user = pwd.getpwuid(os.geteuid()).pw_name
        directives += f" user {user} {grp.getgrgid(os.getegid()).gr_name};"
    return directives


@contextlib.contextmanager
def nginx(workdir: Path, gateway_ports: list[int]) -> Iterator[Nginx]:
    """Debian's nginx with the project's config in front of the gateways on `gateway_ports`."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(render(CONF.read_text(), gateway_ports, port, workdir))
    args = [str(NGINX), "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf)]
    args += ["-g", _globals(workdir)]
    check = subprocess.run([*args, "-t"], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    proc = spawn(args, log=workdir / "nginx.out")
    try:
        wait_for_port(port, proc=proc)
        yield Nginx(port, workdir, proc)
    finally:
        stop(proc)
