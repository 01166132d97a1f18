"""nginx as a real origin for the tests: the configuration around a test's own `http` directives."""

from __future__ import annotations

import os
from pathlib import Path


def write_config(work: Path, http: str, error_log_level: str = "warn") -> Path:
    """`work/nginx.conf`: one worker in the foreground, temporary files in `work/tmp`, then `http`.
    Workers started by root stay root, so they can read the test's private temporary directory."""
    (work / "tmp").mkdir(exist_ok=True)
    user = "user root;" if os.geteuid() == 0 else ""
    conf = work / "nginx.conf"
    conf.write_text(f"""worker_processes 1; {user}
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log {error_log_level};
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {work}/tmp; proxy_temp_path {work}/tmp; fastcgi_temp_path {work}/tmp;
    uwsgi_temp_path {work}/tmp; scgi_temp_path {work}/tmp;
{http}
}}
""")
    return conf
