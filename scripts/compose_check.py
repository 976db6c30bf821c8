"""The compose stack's static checks (no Docker needed), called by monitoring_check.py.

- compose.yaml validates against the compose specification's JSON schema (vendored:
  infra/compose/compose-spec.schema.json, see infra/compose/README.md for its source);
- every image (compose and Dockerfile FROM lines) is pinned to a version, never `latest`;
- every depends_on condition names a service that exists (and has a healthcheck when the
  condition is service_healthy);
- the services' Dockerfile copies the manifest of every workspace member (or its cached
  dependency layer would not build);
- the brokers' settings equal the native cluster's (infra/native/kafka.sh print-config);
- the topic init creates the services' topics and their dead-letter topics;
- the compose Prometheus config is valid and loads the same rules file;
- Grafana's provisioning parses and every panel's data source is provisioned;
- every URL `make up` prints (scripts/urls.sh) is served: its port is published by
  compose.yaml, or is a default port of the native scripts.
"""

import json
import pathlib
import re
import subprocess
import tempfile

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
COMPOSE_DIR = ROOT / "infra/compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
SCHEMA = COMPOSE_DIR / "compose-spec.schema.json"

# Broker properties that differ between the two set-ups by design (addresses, paths, the
# quorum's bootstrap form); everything else must be equal.
TOPOLOGY_KEYS = {
    "node.id", "listeners", "advertised.listeners", "controller.quorum.bootstrap.servers",
    "log.dirs", "listener.security.protocol.map",
}
# KAFKA_* variables of the image that are not broker properties of the native nodes.
IMAGE_ONLY_ENV = {
    "KAFKA_NODE_ID", "KAFKA_LISTENERS", "KAFKA_ADVERTISED_LISTENERS",
    "KAFKA_CONTROLLER_QUORUM_VOTERS", "KAFKA_LOG_DIRS", "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
    "KAFKA_HEAP_OPTS", "KAFKA_OPTS",
}


def pinned(image):
    """name:tag where the tag carries a version number and is not latest."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return False
    return tag != "latest" and re.search(r"\d", tag) is not None


def run(problem):
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc.get("services", {})
    checked = []

    # 1. The compose specification's schema.
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_cls(schema).iter_errors(doc), key=lambda e: list(e.path))
    for e in errors:
        problem(f"compose.yaml: schema: {'/'.join(map(str, e.path))}: {e.message}")
    checked.append("schema")

    # 2. Pinned images.
    for name, svc in services.items():
        image = svc.get("image")
        if image is None:
            problem(f"compose.yaml: service {name} has no image tag (build results must be tagged too)")
        elif not pinned(image):
            problem(f"compose.yaml: service {name}: image '{image}' is not pinned to a version")
    for dockerfile in sorted(COMPOSE_DIR.rglob("Dockerfile")):
        for line in dockerfile.read_text().splitlines():
            m = re.match(r"\s*FROM\s+(\S+)", line, re.IGNORECASE)
            if m and m.group(1) not in {"deps", "build"} and not pinned(m.group(1)):
                problem(f"{dockerfile.relative_to(ROOT)}: base image '{m.group(1)}' is not pinned")
    checked.append("pinned images")

    # 3. depends_on.
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            if dep not in services:
                problem(f"compose.yaml: {name} depends on unknown service {dep}")
            elif cond.get("condition") == "service_healthy" and "healthcheck" not in services[dep]:
                problem(f"compose.yaml: {name} waits for {dep} to be healthy, but {dep} has no healthcheck")
    checked.append("depends_on")

    # 4. The Dockerfile copies every workspace member's manifest.
    cargo = (ROOT / "Cargo.toml").read_text()
    members = re.findall(r'"([^"]+)"', cargo.split("members", 1)[1].split("]", 1)[0])
    dockerfile = (COMPOSE_DIR / "Dockerfile").read_text()
    for m in members:
        if f"COPY {m}/Cargo.toml {m}/" not in dockerfile:
            problem(f"infra/compose/Dockerfile: does not copy {m}/Cargo.toml into the dependency layer")
    checked.append(f"Dockerfile manifests ({len(members)} members)")

    # 5. Broker settings equal to the native cluster's.
    native = subprocess.run(
        ["bash", str(ROOT / "infra/native/kafka.sh"), "print-config", "1"],
        env={"PATH": "/usr/bin:/bin", "KAFKA_CLUSTER": "compose-check", "KAFKA_PORT_BASE": "9092",
             "STATE_DIR": tempfile.mkdtemp()},
        capture_output=True, text=True, check=True,
    ).stdout
    props = dict(
        line.split("=", 1) for line in native.splitlines() if line and not line.startswith("#")
    )
    kafka_nodes = [n for n in services if re.fullmatch(r"kafka-\d", n)]
    if len(kafka_nodes) != 3:
        problem(f"compose.yaml: expected 3 Kafka nodes, found {kafka_nodes}")
    for node in kafka_nodes:
        env = {k: str(v) for k, v in services[node].get("environment", {}).items()}
        for key, value in props.items():
            if key in TOPOLOGY_KEYS:
                continue
            var = "KAFKA_" + key.upper().replace(".", "_")
            if env.get(var) != value:
                problem(f"compose.yaml: {node}: {var}={env.get(var)!r}, native {key}={value!r}")
        for var in env:
            if var.startswith("KAFKA_") and var not in IMAGE_ONLY_ENV:
                key = var[len("KAFKA_"):].lower().replace("_", ".")
                if key not in props:
                    problem(f"compose.yaml: {node}: {var} has no counterpart in the native cluster's settings")
        if f"KAFKA_NODE_ID" not in env or env["KAFKA_NODE_ID"] != node.split("-")[1]:
            problem(f"compose.yaml: {node}: KAFKA_NODE_ID must be {node.split('-')[1]}")
    checked.append(f"broker settings ({len(props) - len(TOPOLOGY_KEYS & props.keys())} properties x {len(kafka_nodes)} nodes)")

    # 6. Topics: the services' defaults and their dead-letter topics.
    init = json.dumps(services.get("kafka-topics", {}).get("command", ""))
    defaults = set()
    for config in ROOT.glob("services/*/src/config.rs"):
        defaults |= set(re.findall(r'"([a-z-]+-events)"', config.read_text()))
    for topic in sorted(defaults):
        for name in (topic, topic + ".dlq"):
            if not re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", init):
                problem(f"compose.yaml: kafka-topics does not create {name}")
    if "min.insync.replicas=2" not in init or "--replication-factor 3" not in init:
        problem("compose.yaml: kafka-topics must create the topics with RF 3 and min.insync.replicas=2")
    checked.append(f"topics {sorted(defaults)} + .dlq")

    # 7. Prometheus: valid config, the same rules file.
    prom = COMPOSE_DIR / "prometheus/prometheus.yml"
    mounts = services.get("prometheus", {}).get("volumes", [])
    if "../prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" not in mounts:
        problem("compose.yaml: prometheus must mount ../prometheus/alerts.yml, the rules the native one loads")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = pathlib.Path(tmp) / "prometheus.yml"
        cfg.write_text(prom.read_text().replace("/etc/prometheus/alerts.yml", str(ROOT / "infra/prometheus/alerts.yml")))
        r = subprocess.run(["promtool", "check", "config", str(cfg)], capture_output=True, text=True)
        if r.returncode != 0:
            problem(f"infra/compose/prometheus/prometheus.yml: promtool check config: {r.stdout}{r.stderr}")
    checked.append("prometheus config")

    # 8. Grafana provisioning and dashboards.
    uids = set()
    for f in (COMPOSE_DIR / "grafana/provisioning").rglob("*.yaml"):
        d = yaml.safe_load(f.read_text())
        uids |= {ds["uid"] for ds in d.get("datasources", [])}
    dashboards = sorted((COMPOSE_DIR / "grafana/dashboards").glob("*.json"))
    if not dashboards:
        problem("infra/compose/grafana/dashboards: no dashboard")
    for f in dashboards:
        try:
            d = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            problem(f"{f.relative_to(ROOT)}: not valid JSON: {e}")
            continue
        for p in d.get("panels", []):
            uid = (p.get("datasource") or {}).get("uid")
            if p.get("type") != "row" and uid not in uids:
                problem(f"{f.relative_to(ROOT)}: panel '{p.get('title')}' uses data source {uid!r}, not provisioned")
    checked.append(f"grafana ({len(dashboards)} dashboard(s))")

    # 9. The URLs `make up` prints.
    published = set()
    for svc in services.values():
        for p in svc.get("ports", []):
            published.add(int(str(p).split(":")[-2]) if str(p).count(":") >= 1 else int(p))
    urls_script = ROOT / "scripts/urls.sh"
    compose_out = subprocess.run(["bash", str(urls_script), "compose"], capture_output=True, text=True, check=True).stdout
    for port in sorted({int(p) for p in re.findall(r"localhost:(\d+)", compose_out)}):
        if port not in published:
            problem(f"scripts/urls.sh compose prints port {port}, which compose.yaml does not publish")
    native_ports = native_default_ports()
    native_out = subprocess.run(["bash", str(urls_script), "native"], capture_output=True, text=True, check=True).stdout
    printed = {int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", native_out)}
    printed |= {int(p) for p in re.findall(r"\s:(\d+)", native_out)}
    for port in sorted(printed):
        if port not in native_ports:
            problem(f"scripts/urls.sh native prints port {port}, which no native script serves by default")
    checked.append(f"urls (compose {len(published)} published ports, native {len(printed)} printed)")

    # 10. Least privilege: loopback only, a Redis password, no anonymous Grafana admin,
    #     no service logging in as the Postgres superuser.
    for name, svc in services.items():
        for p in svc.get("ports", []):
            if not str(p).startswith("127.0.0.1:"):
                problem(f"compose.yaml: {name} publishes {p} on every interface; bind it to 127.0.0.1")
    redis_cmd = " ".join(map(str, services.get("redis", {}).get("command", [])))
    if "--requirepass" not in redis_cmd:
        problem("compose.yaml: redis runs without --requirepass")
    grafana_env = services.get("grafana", {}).get("environment", {})
    if str(grafana_env.get("GF_AUTH_ANONYMOUS_ENABLED", "false")).lower() == "true" and \
            str(grafana_env.get("GF_AUTH_ANONYMOUS_ORG_ROLE", "Viewer")) != "Viewer":
        problem("compose.yaml: grafana gives anonymous visitors more than Viewer")
    for name in ("order-service", "payment-service"):
        env = services.get(name, {}).get("environment", {})
        url = str(env.get("DATABASE_URL", ""))
        if re.match(r"postgres(ql)?://postgres[:@]", url):
            problem(f"compose.yaml: {name} connects to Postgres as the superuser `postgres`")
        if not re.match(r"redis://:[^@]+@", str(env.get("REDIS_URL", ""))):
            problem(f"compose.yaml: {name}'s REDIS_URL has no password")
    init = (COMPOSE.parent / "postgres/init.sh").read_text()
    for role in ("order_service", "payment_service"):
        if not re.search(rf"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE", init):
            problem(f"infra/compose/postgres/init.sh: role {role} is not created without privileges")
    checked.append("least privilege (loopback ports, Redis password, Grafana Viewer, service roles)")

    print(f"monitoring check: compose stack checked: {', '.join(checked)}")


def native_default_ports():
    """The ports the native scripts listen on by default."""
    ports = set()
    kafka = ROOT / "infra/native/kafka.sh"
    env = {"PATH": "/usr/bin:/bin", "KAFKA_CLUSTER": "compose-check", "KAFKA_PORT_BASE": "9092",
           "STATE_DIR": tempfile.mkdtemp()}
    for cmd in ("bootstrap", "metrics-targets"):
        out = subprocess.run(["bash", str(kafka), cmd], env=env, capture_output=True, text=True, check=True).stdout
        ports |= {int(p) for p in re.findall(r":(\d+)", out)}
    services = (ROOT / "infra/native/services.sh").read_text()
    ports |= {int(p) for p in re.findall(r"_PORT:-(\d+)", services)}
    prometheus = (ROOT / "infra/native/prometheus.sh").read_text()
    ports |= {int(p) for p in re.findall(r"PROMETHEUS_PORT:-(\d+)", prometheus)}
    return ports
