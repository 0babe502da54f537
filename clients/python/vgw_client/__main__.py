"""python3 -m vgw_client: decode, verify, check the conformance vectors, consume, pull, status."""
import argparse
import json
import sys
import threading
from datetime import datetime
from pathlib import Path

from . import mqtt as vmqtt
from .control import BackendKey, ControlRefused, open_control, open_unit_message
from .wire import PROTOCOL_VERSION, Refused, WireFormatError, batch_to_json, decode_batch, load_registry, signed_bytes, verify_batch


def _time_ms(text):
    if text.isdigit():
        return int(text)
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _registry(path):
    return load_registry(json.loads(Path(path).read_text())) if path else None


def check_payload(payload, registry):
    """A batch's verdict as the reference collector gives it: decoded JSON, or the refusal."""
    try:
        b = decode_batch(payload)
    except WireFormatError as err:
        return {"refused": "decode", "field": err.field, "reason": str(err)}
    if registry is not None:
        try:
            verify_batch(b, registry)
        except Refused as err:
            return {"refused": "verify", "code": err.code, "reason": str(err)}
    return {"batch": batch_to_json(b), "signedBytes": signed_bytes(b).hex()}


def check_vectors(directory):
    """Every conformance vector of docs/vectors: decoded as expected, or refused as expected."""
    root = Path(directory)
    index = json.loads((root / "index.json").read_text())
    registry = load_registry(json.loads((root / index["registry"]).read_text()))
    results = []
    backend_keys = [bytes.fromhex(index["backendKey"])]
    for v in index["vectors"]:
        if v["type"] in ("ack", "request", "tempids", "config", "trust", "signing-key"):
            # control messages: signed by the backend key for the gateway of their topic, or refused as the vector says
            venue, gateway = v["topic"].split("/")[-3:-1] if "topic" in v else ("mall-01", "gw-spec")
            try:
                doc = open_control((root / v["payload"]).read_bytes(), backend_keys, venue, gateway)
                # a bad request's signature holds; its fields are what the gateway refused ("answer")
                got = "accepted" if doc.get("v") == PROTOCOL_VERSION or "answer" in v else "wrong version"
            except ControlRefused as err:
                got = err.reason
            want = v.get("controlRefusal", "accepted")
            results.append({"name": v["name"], "ok": got == want, "why": None if got == want else f"expected {want}, got {got}"})
            continue
        if v["type"] not in ("batch", "pull-part"):
            # what a gateway signs besides batches (statuses, answers): its registered key must verify it
            try:
                doc = open_unit_message((root / v["payload"]).read_bytes(), bytes.fromhex(registry[v["signedBy"]]["signingKey"]))
                why = None if doc.get("v") == PROTOCOL_VERSION else f"v is not {PROTOCOL_VERSION}"
            except ControlRefused as err:
                why = str(err)
            results.append({"name": v["name"], "ok": why is None, "why": why})
            continue
        got = check_payload((root / v["payload"]).read_bytes(), registry)
        if "expect" in v:
            expected = json.loads((root / v["expect"]).read_text())
            ok = got.get("batch") == expected and got.get("signedBytes") == v["signedBytes"]
            why = None if ok else got.get("reason", "decoded JSON or signed bytes differ")
        else:
            want = v["refusal"]
            ok = got.get("refused") == want["stage"] and got.get("field", got.get("code")) == want.get("field", want.get("code"))
            why = None if ok else f"expected refusal {want}, got {got.get('reason', 'accepted')}"
        results.append({"name": v["name"], "ok": ok, "why": why})
    return results


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m vgw_client", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("decode", help="print batch payload files as JSON (as `vgw decode` does)")
    d.add_argument("files", nargs="+")
    d.add_argument("--registry", help="verify signatures against these registration records")
    v = sub.add_parser("vectors", help="check the conformance vectors of a directory (docs/vectors)")
    v.add_argument("directory")
    for name in ("consume", "pull", "status", "log-level", "restart", "doctor", "update", "config-set", "trust-set", "key-rotate"):
        s = sub.add_parser(name)
        s.add_argument("--url", required=True, help="mqtt://host:port")
        s.add_argument("--prefix", default="vgw/v3")
        s.add_argument("--control-key", help="backend key file (64 hex digits): acks, requests and commands are signed with it", required=name != "status")
        if name == "consume":
            s.add_argument("--registry", required=True)
            s.add_argument("--db", required=True)
            s.add_argument("--client-id", default="vgw-py-consumer")
            s.add_argument("--seconds", type=float, help="stop after this long (default: until interrupted)")
        else:
            s.add_argument("--venue", required=True)
            s.add_argument("--gateway", required=True)
        if name == "pull":
            s.add_argument("--from", dest="from_", required=True, help="ISO-8601 or unix ms")
            s.add_argument("--to", required=True)
            s.add_argument("--registry")
        if name == "status":
            s.add_argument("--retained", action="store_true", help="read the retained status (or Will) instead of asking")
            s.add_argument("--registry", help="registration records: the status must verify with the gateway's key")
        if name == "log-level":
            s.add_argument("--level", required=True, choices=["fatal", "error", "warn", "info", "debug", "trace"])
            s.add_argument("--for-s", type=int, required=True, help="seconds (1-86400); the gateway falls back by itself")
            s.add_argument("--registry", help="registration records: the answer must verify with the gateway's key")
        if name == "config-set":
            s.add_argument("--settings", required=True, help='config keys as JSON, e.g. {"uplink":{"statusIntervalS":300}}')
        if name == "trust-set":
            s.add_argument("--keys", required=True, help="the whole set of backend public keys to trust, comma-separated hex; it must keep --control-key's")
        if name == "update":
            s.add_argument("--manifest", required=True, help="https:// URL of the release manifest (make release writes it beside the tarball)")
            s.add_argument("--release-version", required=True, help="the version the manifest must be of")
            s.add_argument("--downgrade", action="store_true", help="allow a version older than the running one")
        if name in ("restart", "doctor", "update"):
            s.add_argument("--registry", help="registration records: the answer must verify with the gateway's key")
            s.add_argument("--timeout-s", type=float, default=60 if name == "doctor" else 10)
    a = p.parse_args(argv)

    if a.cmd == "decode":
        registry = _registry(a.registry)
        for f in a.files:
            print(json.dumps({"file": f, **check_payload(Path(f).read_bytes(), registry)}))
        return 0
    if a.cmd == "vectors":
        results = check_vectors(a.directory)
        print(json.dumps({"vectors": len(results), "failed": [r for r in results if not r["ok"]]}))
        return 0 if all(r["ok"] for r in results) else 1
    if a.cmd == "consume":
        stop = threading.Event()
        if a.seconds:
            threading.Timer(a.seconds, stop.set).start()
        def event(kind, detail):
            print(json.dumps({"event": kind, "detail": detail}), flush=True)
        try:
            vmqtt.consume(a.url, a.prefix, _registry(a.registry), a.db, a.client_id, BackendKey.load(a.control_key), event, stop)
        except KeyboardInterrupt:
            pass
        return 0
    if a.cmd == "pull":
        parts = vmqtt.pull(a.url, a.prefix, a.venue, a.gateway, _time_ms(a.from_), _time_ms(a.to), BackendKey.load(a.control_key), _registry(a.registry))
        print(json.dumps([batch_to_json(b) for b in parts]))
        return 0
    if a.cmd == "log-level":
        print(json.dumps(vmqtt.log_level(a.url, a.prefix, a.venue, a.gateway, BackendKey.load(a.control_key), a.level, a.for_s, _registry(a.registry))))
        return 0
    if a.cmd == "config-set":
        print(json.dumps(vmqtt.set_config(a.url, a.prefix, a.venue, a.gateway, BackendKey.load(a.control_key), json.loads(a.settings))))
        return 0
    if a.cmd == "trust-set":
        print(json.dumps(vmqtt.set_trust(a.url, a.prefix, a.venue, a.gateway, BackendKey.load(a.control_key), a.keys.split(","))))
        return 0
    if a.cmd == "key-rotate":
        print(json.dumps(vmqtt.rotate_key(a.url, a.prefix, a.venue, a.gateway, BackendKey.load(a.control_key))))
        return 0
    if a.cmd == "restart":
        print(json.dumps(vmqtt.restart(a.url, a.prefix, a.venue, a.gateway, BackendKey.load(a.control_key), _registry(a.registry), a.timeout_s)))
        return 0
    if a.cmd == "update":
        print(json.dumps(vmqtt.update(a.url, a.prefix, a.venue, a.gateway, BackendKey.load(a.control_key), a.manifest, a.release_version, a.downgrade, _registry(a.registry), a.timeout_s)))
        return 0
    if a.cmd == "doctor":
        answer = vmqtt.doctor(a.url, a.prefix, a.venue, a.gateway, BackendKey.load(a.control_key), _registry(a.registry), a.timeout_s)
        print(json.dumps(answer))
        return 0 if answer.get("healthy") is True else 1
    if a.cmd == "status":
        if a.retained:
            print(json.dumps(vmqtt.retained_status(a.url, a.prefix, a.venue, a.gateway, _registry(a.registry))))
        else:
            if not a.control_key:
                raise ValueError("--control-key: a gateway answers signed requests only (or read --retained)")
            print(json.dumps(vmqtt.status(a.url, a.prefix, a.venue, a.gateway, BackendKey.load(a.control_key), _registry(a.registry))))
        return 0
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (TimeoutError, RuntimeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(3)
