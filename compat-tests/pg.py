"""A real PostgreSQL for the suite under STOWAGE_TEST_METADATA=postgres:
initdb into a temporary directory (as the `postgres` user when running as
root, since PostgreSQL refuses root), pg_ctl on a free port of 127.0.0.1,
one database per Stowage server, stopped at the end of the session."""

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile

_counter = itertools.count()


def selected():
    return os.environ.get("STOWAGE_TEST_METADATA") == "postgres"


def _bin_dir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (.ci/run installs it with apt-get)")
    return os.path.dirname(found[-1])


class Postgres:
    def __init__(self):
        self.bin = _bin_dir()
        self.as_postgres = os.geteuid() == 0
        self.dir = tempfile.mkdtemp(prefix="stowage-pg-")
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = os.path.join(self.dir, "data")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w",
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
                        " -c max_connections=400", "start")

    def _cmd(self, program, *args):
        cmd = [os.path.join(self.bin, program), *args]
        return ["runuser", "-u", "postgres", "--", *cmd] if self.as_postgres else cmd

    def _run(self, program, *args):
        subprocess.run(self._cmd(program, *args), check=True, capture_output=True)

    def new_database(self):
        name = f"stowage_{os.getpid()}_{next(_counter)}"
        self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                  "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", f"CREATE DATABASE {name}")
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self):
        subprocess.run(self._cmd("pg_ctl", "-D", self.data, "-m", "fast", "stop"),
                       capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
