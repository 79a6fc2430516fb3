"""Fixtures for the compatibility suite: one Stowage server per session, and
real clients (boto3, the aws CLI, s5cmd) configured the way a user would
configure them against it.

The server binary is $STOWAGE_BIN (default: target/release/stowage). It runs
with an empty config file, a temporary data directory and a free port; its
log is attached to every failing test's report, and its tail and path are
printed at the end of a run that had failures. `start_server` starts further
servers with a config of the test's choosing, reported the same way.
"""

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

import pg

ACCESS_KEY = "stowage"
SECRET_KEY = "stowage-dev-secret"
REGION = "us-east-1"

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LISTENING = re.compile(r"stowage listening on (https?://[0-9.]+:[0-9]+)")

# Keep the user's own AWS configuration (profiles, checksum settings,
# endpoints) out of every client this process creates.
for _name in list(os.environ):
    if _name.startswith("AWS_"):
        del os.environ[_name]
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


# Environment variables that would replace the first configured credential.
SERVER_ENV_DROPPED = ("STOWAGE_ACCESS_KEY_ID", "STOWAGE_SECRET_ACCESS_KEY")


class Server:
    """A running stowage process and its log file. `config_text` is written to
    its config.toml (empty: every default, and the dev credential)."""

    def __init__(self, binary, workdir, config_text="", name="stowage"):
        self.name = name
        self.log_path = workdir / "stowage.log"
        config = workdir / "config.toml"
        config.write_text(config_text)
        data_dir = workdir / "data"
        self.log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.log = open(self.log_path, "ab")
        # Under STOWAGE_TEST_METADATA=postgres every data directory has a
        # database of its own, kept across restarts.
        engine = []
        if pg.selected() and "metadata_url" not in config_text:
            url_file = workdir / "metadata_url"
            if not url_file.exists():
                url_file.write_text(_postgres().new_database())
            engine = ["--metadata-url", url_file.read_text()]
        self.proc = subprocess.Popen(
            [str(binary), "--config", str(config),
             "--listen", "127.0.0.1:0", "--data-dir", str(data_dir), *engine],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if k not in SERVER_ENV_DROPPED},
        )
        self.endpoint = self._wait_for_listening(timeout=30)

    def _wait_for_listening(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = LISTENING.search(self.read_log(self.log_start))
            if match:
                return match.group(1)
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"stowage exited with {self.proc.returncode} before listening:\n"
                    + self.read_log())
            time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError("stowage did not log its listening line in time:\n"
                           + self.read_log())

    def log_size(self):
        return self.log_path.stat().st_size

    def read_log(self, start=0):
        with open(self.log_path, "rb") as f:
            f.seek(start)
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


_postgres_server = None


def _postgres():
    """The session's PostgreSQL, started on first use."""
    global _postgres_server
    if _postgres_server is None:
        _postgres_server = pg.Postgres()
    return _postgres_server


def pytest_sessionfinish(session, exitstatus):
    if _postgres_server is not None:
        _postgres_server.stop()


_server = None  # the session's Server, for the reporting hooks below
_extra_servers = []  # servers from start_server, likewise
_LOG_START = pytest.StashKey[dict]()


def stowage_binary():
    binary = Path(os.environ.get("STOWAGE_BIN", REPO / "target/release/stowage"))
    if not binary.is_file():
        pytest.exit(f"no stowage binary at {binary}: build it or set STOWAGE_BIN", 2)
    return binary


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    global _server
    _server = Server(stowage_binary(), tmp_path_factory.mktemp("stowage"))
    yield _server
    died = _server.proc.poll()
    _server.stop()
    if died is not None:
        pytest.fail(f"stowage died during the session (exit status {died})")


@pytest.fixture(scope="session")
def start_server(tmp_path_factory):
    """start_server(config_text, name) starts another stowage whose
    config.toml is `config_text` and returns its Server; every server started
    this way is stopped at the end of the session. Their logs are reported
    like the main server's."""
    started = []

    def start(config_text, name="stowage-extra"):
        server = Server(stowage_binary(), tmp_path_factory.mktemp(name),
                        config_text=config_text, name=name)
        started.append(server)
        _extra_servers.append(server)
        return server

    yield start
    died = [(s.name, s.proc.poll()) for s in started if s.proc.poll() is not None]
    for s in started:
        s.stop()  # stays in _extra_servers for the terminal summary
    if died:
        pytest.fail(f"servers died during the session (name, exit status): {died}")


@pytest.fixture(scope="session")
def endpoint(server):
    return server.endpoint


# The README's client recipes are the files in recipes/, written for
# http://127.0.0.1:9000; the suite runs each as written, on its own endpoint.
RECIPES = HERE / "recipes"
RECIPE_ENDPOINT = "http://127.0.0.1:9000"


def recipe(name, endpoint):
    """The text of recipes/`name`, pointed at `endpoint`."""
    text = (RECIPES / name).read_text()
    host = endpoint.split("://", 1)[1]
    return text.replace(RECIPE_ENDPOINT, endpoint).replace("127.0.0.1:9000", host)


def run_recipe(name, endpoint, value):
    """Runs the Python recipe `name` and returns the variable it defines."""
    scope = {}
    exec(compile(recipe(name, endpoint), str(RECIPES / name), "exec"), scope)
    return scope[value]


def make_client(endpoint):
    """A boto3 client as the README's recipe makes it: default settings
    except path-style addressing."""
    return run_recipe("boto3_client.py", endpoint, "s3")


@pytest.fixture(scope="session")
def s3(endpoint):
    """A boto3 client with default settings except path-style addressing."""
    return make_client(endpoint)


def _checksum_in_trailer(params, model, **_):
    algorithm = params["context"].get("checksum", {}).get("request_algorithm")
    if model.has_streaming_input and isinstance(algorithm, dict) \
            and algorithm.get("in") == "header":
        algorithm["in"] = "trailer"


@pytest.fixture(scope="session")
def s3_chunked(endpoint):
    """A boto3 client that sends PutObject/UploadPart bodies as it does to AWS
    over HTTPS: `aws-chunked` with an unsigned CRC32 trailer
    (STREAMING-UNSIGNED-PAYLOAD-TRAILER). Over plain HTTP boto3 would put the
    checksum in a header instead, so this flips botocore's choice."""
    client = make_client(endpoint)
    client.meta.events.register("before-call.s3", _checksum_in_trailer)
    return client


def unique_bucket_name(tag="compat"):
    return f"{tag}-{uuid.uuid4().hex[:16]}"


def empty_and_delete(s3, bucket):
    """Best-effort cleanup: abort uploads, delete objects, delete the bucket."""
    try:
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for u in page.get("Uploads", []):
                s3.abort_multipart_upload(Bucket=bucket, Key=u["Key"],
                                          UploadId=u["UploadId"])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=bucket)
    except ClientError:
        pass


@pytest.fixture
def bucket(s3):
    """A fresh, empty bucket for one test, removed afterwards."""
    name = unique_bucket_name()
    s3.create_bucket(Bucket=name)
    yield name
    empty_and_delete(s3, name)


@pytest.fixture(scope="session")
def cli_env(endpoint, tmp_path_factory):
    """Environment for the aws CLI and s5cmd: the dev credential, the region,
    and an aws config file that asks for path-style addressing."""
    home = tmp_path_factory.mktemp("cli-home")
    (home / ".aws").mkdir()
    (home / ".aws" / "stowage-config").write_text(recipe("aws-config", endpoint))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        HOME=str(home),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_PAGER="",
    )
    # The recipe's exports, as a shell would expand them.
    for line in recipe("aws-env.sh", endpoint).splitlines():
        name, value = line.removeprefix("export ").split("=", 1)
        env[name] = value.replace("~", str(home), 1)
    return env


def _tool(name):
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed (compat-tests/run installs it)")
    return found


def _runner(argv0, endpoint, env):
    def run(*args, check=True, cwd=None, timeout=600):
        cmd = [argv0, "--endpoint-url", endpoint, *map(str, args)]
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} exited with {proc.returncode}\n"
                        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc
    return run


@pytest.fixture(scope="session")
def aws(endpoint, cli_env):
    """Runs `aws --endpoint-url URL ARGS...`; returns the CompletedProcess."""
    return _runner(_tool("aws"), endpoint, cli_env)


@pytest.fixture(scope="session")
def s5cmd(endpoint, cli_env):
    """Runs `s5cmd --endpoint-url URL ARGS...`; returns the CompletedProcess."""
    return _runner(_tool("s5cmd"), endpoint, cli_env)


# --- reporting: the server logs beside each failure --------------------------

def _all_servers():
    return ([_server] if _server is not None else []) + _extra_servers


def pytest_runtest_setup(item):
    # A server started by this test's fixtures is not here yet: its whole
    # log is reported.
    item.stash[_LOG_START] = {id(s): s.log_size() for s in _all_servers()}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    starts = item.stash.get(_LOG_START, {})
    for server in _all_servers():
        lines = server.read_log(starts.get(id(server), 0)).splitlines()
        if not lines and server is not _server:
            continue  # an extra server this test did not use
        text = "\n".join(lines[-200:])
        if server.proc.poll() is not None:
            text += f"\n[{server.name} has exited with status {server.proc.returncode}]"
        report.sections.append((f"{server.name} log during this test", text))


def pytest_terminal_summary(terminalreporter, exitstatus):
    if exitstatus == 0:
        return
    for server in _all_servers():
        lines = server.read_log().splitlines()
        terminalreporter.section(f"{server.name} log (last 20 lines)")
        for line in lines[-20:]:
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"full log: {server.log_path}")
