"""deploy/: the systemd unit (and its replica drop-in) is valid for systemd and keeps its
hardening; the image, compose file and proxy config of a fleet say what docs/deploy.md says.

No container engine runs on these machines: the Dockerfile and compose.yaml are read, not run;
nginx.conf is checked by Debian's nginx (`nginx -t`) and run in front of three gateway
processes when nginx is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from ruamel.yaml import YAML

from puter_mcp.settings import resolve_paths
from tests.helpers import (
    SCRIPT,
    Emulator,
    GatewayProcess,
    free_loopback_port,
    save_accounts,
    script_env,
    start_gateway_process,
)

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "puter-mcp-gateway.service"
ANALYZE = shutil.which("systemd-analyze")

needs_systemd = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def _installed_copy(tmp_path: Path) -> Path:
    """The unit as installed on this machine: its ExecStart names this checkout's script
    (systemd-analyze checks that the program exists)."""
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace("/usr/local/bin/puter-mcp", str(Path(SCRIPT).resolve())))
    return copy


@needs_systemd
def test_systemd_finds_nothing_wrong_with_the_unit(tmp_path: Path) -> None:
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "verify", str(_installed_copy(tmp_path))], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@needs_systemd
def test_the_unit_stays_hardened(tmp_path: Path) -> None:
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", str(_installed_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    # systemd rates 0 (fully locked down) to 10 (exposed); below 2 is its "OK".
    assert float(found.group(1)) < 2.0


def test_the_unit_runs_the_gateway_with_a_dynamic_user_and_a_private_state_directory() -> None:
    lines = {line.strip() for line in UNIT.read_text().splitlines()}
    assert "ExecStart=/usr/local/bin/puter-mcp gateway" in lines
    assert {"DynamicUser=yes", "StateDirectory=puter-mcp", "ProtectSystem=strict", "UMask=0077"} <= lines
    assert "Environment=PUTER_MCP_HOME=/var/lib/puter-mcp" in lines
    # The token comes from a root-only environment file, never from the command line.
    assert "EnvironmentFile=-/etc/puter-mcp/gateway.env" in lines
    assert not any("PUTER_AUTH_TOKEN=" in line for line in lines if not line.startswith("#"))


# -- one replica of a fleet under systemd: the drop-in ----------------------------------------

DEPLOY = UNIT.parent
REPLICA_DROP_IN = DEPLOY / "puter-mcp-gateway.service.d" / "replica.conf"


def _installed_replica(tmp_path: Path) -> Path:
    """The unit and its replica drop-in as installed here: systemd-analyze reads the drop-in
    directory beside the unit it is given."""
    unit = _installed_copy(tmp_path)
    drop_ins = tmp_path / REPLICA_DROP_IN.parent.name
    drop_ins.mkdir()
    script = str(Path(SCRIPT).resolve())
    (drop_ins / REPLICA_DROP_IN.name).write_text(
        REPLICA_DROP_IN.read_text().replace("/usr/local/bin/puter-mcp", script)
    )
    return unit


@needs_systemd
def test_systemd_finds_nothing_wrong_with_the_replica_drop_in(tmp_path: Path) -> None:
    assert ANALYZE is not None
    unit = _installed_replica(tmp_path)
    # A mistake in the drop-in would be reported on stderr, with its path.
    (unit.parent / REPLICA_DROP_IN.parent.name / "check.conf").write_text("[Service]\nNoSuchKey=1\n")
    spoiled = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert "check.conf" in spoiled.stderr, "systemd-analyze did not read the drop-in directory"
    (unit.parent / REPLICA_DROP_IN.parent.name / "check.conf").unlink()
    result = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    security = subprocess.run(
        [ANALYZE, "security", "--offline=yes", str(unit)], capture_output=True, text=True, timeout=60
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout)
    assert found, security.stdout + security.stderr
    assert float(found.group(1)) < 2.0


def test_the_replica_drop_in_reads_the_accounts_from_a_credential() -> None:
    lines = [line.strip() for line in REPLICA_DROP_IN.read_text().splitlines()]
    settings = [line for line in lines if line and not line.startswith("#")]
    assert "LoadCredential=puter-accounts:/etc/puter-mcp/accounts.json" in settings
    # ExecStart= empties the unit's list before the replica's command replaces it.
    assert settings.index("ExecStart=") < settings.index(
        "ExecStart=/usr/local/bin/puter-mcp gateway --accounts-file ${CREDENTIALS_DIRECTORY}/puter-accounts"
    )
    assert "Environment=PUTER_MCP_GATEWAY_REQUIRE_KEYS=1" in settings
    # The Redis URL and password go to the root-only environment file, as the token does.
    comments = "\n".join(line for line in lines if line.startswith("#"))
    assert "PUTER_MCP_STATE=redis://" in comments and "PUTER_MCP_REDIS_PASSWORD=" in comments
    assert not any("PASSWORD=" in line or "PUTER_MCP_STATE=" in line for line in settings)


# -- containers: Dockerfile, compose.yaml, nginx.conf (no container engine runs here) --------

DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
NGINX_CONF = DEPLOY / "nginx.conf"
DOCKERIGNORE = DEPLOY.parent / ".dockerignore"
GATEWAYS = ("gateway-1", "gateway-2", "gateway-3")


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    found = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def _healthcheck_code() -> str:
    """The Python code the image's HEALTHCHECK runs."""
    (healthcheck,) = [rest for word, rest in _instructions(DOCKERFILE) if word == "HEALTHCHECK"]
    command = json.loads(healthcheck[healthcheck.index("CMD") + len("CMD") :].strip())
    assert command[:2] == ["python", "-c"], command
    return command[2]


def test_the_image_runs_the_gateway_as_a_user_of_its_own_with_keys_required() -> None:
    instructions = _instructions(DOCKERFILE)
    words = [word for word, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    (user,) = [rest for word, rest in instructions if word == "USER"]
    assert user.split(":")[0] not in {"0", "root"}
    # Everything after USER runs as that user; the install before it.
    assert words.index("USER") > max(
        i for i, (word, rest) in enumerate(instructions) if "pip install" in rest
    )
    env = " ".join(rest for word, rest in instructions if word == "ENV")
    for setting in (
        "PUTER_MCP_GATEWAY_HOST=0.0.0.0",
        "PUTER_MCP_GATEWAY_REQUIRE_KEYS=1",
        "PUTER_MCP_GATEWAY_PORT=8000",
    ):
        assert setting in env.split()
    # The health check asks from inside the container: 127.0.0.1 must be a Host it answers.
    (allowed,) = [item for item in env.split() if item.startswith("PUTER_MCP_GATEWAY_ALLOWED_HOSTS=")]
    assert "127.0.0.1" in allowed.partition("=")[2].split(",")
    assert ("EXPOSE", "8000") in instructions
    assert ("CMD", '["gateway"]') in instructions and ("ENTRYPOINT", '["puter-mcp"]') in instructions
    code = _healthcheck_code()
    assert "urllib.request" in code and "http://127.0.0.1:8000/health/live" in code


def test_the_build_context_leaves_out_history_environments_and_secrets() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    assert {".git", ".venv", "deploy/secrets", ".env", "*.db"} <= ignored


def _compose() -> dict[str, Any]:
    loaded = YAML(typ="safe").load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_runs_three_replicas_on_one_redis_with_a_password() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"redis", "proxy", *GATEWAYS}
    replicas = [services[name] for name in GATEWAYS]
    assert replicas[0] == replicas[1] == replicas[2]  # one definition (a YAML anchor)
    replica = replicas[0]
    assert replica["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    env = replica["environment"]
    assert env["PUTER_MCP_STATE"] == "redis://redis:6379/0"
    assert env["PUTER_MCP_GATEWAY_HOST"] == "0.0.0.0"
    assert env["PUTER_MCP_GATEWAY_REQUIRE_KEYS"] == "1"
    assert "127.0.0.1" in env["PUTER_MCP_GATEWAY_ALLOWED_HOSTS"].split(",")  # the health check
    assert replica["depends_on"] == {"redis": {"condition": "service_healthy"}}
    # The password reaches Redis and every replica from the same secret file, never from
    # the compose file or an environment variable written in it.
    redis = services["redis"]
    assert "redis_password" in redis["secrets"] and "redis_password" in replica["secrets"]
    assert '--requirepass "$$(cat /run/secrets/redis_password)"' in " ".join(redis["command"])
    (script,) = replica["command"]
    assert 'PUTER_MCP_REDIS_PASSWORD="$$(cat /run/secrets/redis_password)"' in script
    assert not any("PASSWORD" in name for name in env)
    assert compose["secrets"]["redis_password"] == {"file": "./secrets/redis_password"}
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])


def test_compose_mounts_the_accounts_read_only_from_a_secret() -> None:
    compose = _compose()
    for name in GATEWAYS:
        replica = compose["services"][name]
        assert "puter_accounts" in replica["secrets"]
        (script,) = replica["command"]
        assert script.endswith("exec puter-mcp gateway --accounts-file /run/secrets/puter_accounts")
        # Secrets are read-only mounts; the image's own files are read-only too, and nothing
        # of the host is mounted: what the replicas share is in Redis, the rest in memory.
        assert replica["read_only"] is True
        assert "volumes" not in replica
        assert "/var/lib/puter-mcp:uid=10001,gid=10001,mode=0700" in replica["tmpfs"]
        assert replica["cap_drop"] == ["ALL"]
    assert compose["secrets"]["puter_accounts"] == {"file": "./secrets/accounts.json"}


def test_compose_puts_the_proxy_in_front_once_every_replica_is_healthy() -> None:
    proxy = _compose()["services"]["proxy"]
    assert proxy["image"].startswith("nginx:")
    assert proxy["volumes"] == ["./nginx.conf:/etc/nginx/nginx.conf:ro"]
    assert proxy["ports"] == ["8000:8000"]
    # "healthy" is the image's HEALTHCHECK on /health/live (the replicas define none of their own).
    assert proxy["depends_on"] == {name: {"condition": "service_healthy"} for name in GATEWAYS}
    assert not any("healthcheck" in _compose()["services"][name] for name in GATEWAYS)


def test_nginx_spreads_over_the_three_replicas_and_lets_streams_through() -> None:
    text = NGINX_CONF.read_text()
    upstream = re.search(r"upstream puter_mcp_gateways \{(.*?)\}", text, re.S)
    assert upstream
    servers = re.findall(r"^\s*server (\S+?)(?: [^;]*)?;", upstream.group(1), re.M)
    assert servers == [f"{name}:8000" for name in GATEWAYS]
    assert not re.search(r"^\s*(ip_hash|hash|least_conn|random)\b", upstream.group(1), re.M)  # round-robin
    directives = {line.strip() for line in text.splitlines()}
    assert {"proxy_buffering off;", "proxy_request_buffering off;", "proxy_read_timeout 600s;"} <= directives
    assert "proxy_set_header Host $http_host;" in directives
    # A POST that reached one replica is never sent to another (no `non_idempotent`).
    assert "proxy_next_upstream error timeout;" in directives


# -- nginx.conf, run: in front of three gateway processes on loopback ---------------------------

NGINX = shutil.which("nginx") or next(
    (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(path).exists()), None
)
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (.ci/run installs it)")


def _local_nginx_conf(tmp_path: Path, upstreams: list[str], port: int) -> Path:
    """deploy/nginx.conf with its replicas and port on loopback, its files under `tmp_path`,
    and one worker (so that one connection's requests meet one round-robin)."""
    text = NGINX_CONF.read_text()
    for name, address in zip(GATEWAYS, upstreams, strict=True):
        text = text.replace(f"server {name}:8000", f"server {address}")
    text = text.replace("listen 8000;", f"listen 127.0.0.1:{port};")
    text = text.replace("pid /tmp/nginx.pid;", f"pid {tmp_path}/nginx.pid;")
    text = text.replace("worker_processes auto;", "worker_processes 1;")
    temp_paths = "".join(
        f"    {kind}_temp_path {tmp_path}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text = text.replace("http {\n", "http {\n" + temp_paths, 1)
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    return conf


@needs_nginx
def test_nginx_accepts_the_config_with_its_replicas_resolved(tmp_path: Path) -> None:
    assert NGINX is not None
    conf = _local_nginx_conf(tmp_path, ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"], free_loopback_port())
    result = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.mark.slow
@needs_nginx
def test_nginx_in_front_of_three_gateways_takes_turns_and_passes_streams(
    emulator: Emulator, home: Path, tmp_path: Path
) -> None:
    assert NGINX is not None
    save_accounts(resolve_paths({"PUTER_MCP_HOME": str(home)}), emulator.paid)
    env = script_env(home, emulator)
    replicas: list[GatewayProcess] = []
    proxy: subprocess.Popen[bytes] | None = None
    try:
        for _ in GATEWAYS:
            replicas.append(start_gateway_process(env))
        port = free_loopback_port()
        conf = _local_nginx_conf(
            tmp_path, [replica.url.removeprefix("http://") for replica in replicas], port
        )
        proxy = subprocess.Popen(
            [NGINX, "-p", str(tmp_path), "-c", str(conf), "-e", "stderr", "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):  # until nginx listens (10 s at most)
            try:
                if httpx2.get(base + "/health/live", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert proxy.poll() is None, proxy.stderr.read().decode() if proxy.stderr else ""
            time.sleep(0.05)
        with openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0) as client:
            for _ in range(6):
                answer = client.chat.completions.create(
                    model="gpt-5-nano", messages=[{"role": "user", "content": "hi"}]
                )
                assert answer.choices[0].message.content
            chunks = list(
                client.chat.completions.create(
                    model="gpt-5-nano", messages=[{"role": "user", "content": "hi"}], stream=True
                )
            )
        streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        assert streamed and len(chunks) > 2
        # The replicas log a request when it ends: wait (bounded) for the stream's line.
        served: list[int] = []
        for _ in range(200):
            served = [replica.requests_logged("/v1/chat/completions") for replica in replicas]
            if sum(served) == 7:
                break
            time.sleep(0.05)
        assert sorted(served) == [2, 2, 3], served  # round-robin: six requests two each, then one more
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(timeout=10)
        for replica in replicas:
            replica.stop()


@pytest.mark.slow
def test_the_images_health_check_passes_on_a_live_gateway_and_fails_without_one(
    emulator: Emulator, home: Path
) -> None:
    """The HEALTHCHECK's own code against a gateway started with the image's environment
    (every address, keys required, its Host names), on a free port instead of 8000."""
    save_accounts(resolve_paths({"PUTER_MCP_HOME": str(home)}), emulator.paid)
    image_env = dict(
        item.split("=", 1)
        for word, rest in _instructions(DOCKERFILE)
        if word == "ENV"
        for item in rest.split()
    )
    image_env["PUTER_MCP_HOME"] = str(home)
    replica = start_gateway_process(script_env(home, emulator, **image_env))
    port = replica.url.rsplit(":", 1)[1]
    code = _healthcheck_code().replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    try:
        assert replica.url == f"http://0.0.0.0:{port}"  # bound to every address, as in the image
        live = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
        assert live.returncode == 0, live.stderr
        # Keys are required: a chat request without one is refused.
        refused = httpx2.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"model": "gpt-5-nano", "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        assert refused.status_code == 401, refused.text
    finally:
        replica.stop()
    gone = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    assert gone.returncode == 1
