"""The MQTT side: consume batches (store, then ack), pull a time range, read a gateway's status.

paho-mqtt 1.6 (Debian's python3-paho-mqtt) speaking MQTT 5, as the protocol requires.
"""
import json
import os
import sqlite3
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .control import CONTENT_TYPE as COSE_CONTENT_TYPE, ControlRefused, open_control, open_unit_message
from .wire import Refused, WireFormatError, decode_batch, follow_key, verify_batch


def _connect(url, client_id, clean_start=True):
    if not url.startswith("mqtt://"):
        raise ValueError("broker url: only mqtt://host:port here (add TLS with client.tls_set for mqtts)")
    host, _, port = url[len("mqtt://"):].partition(":")
    # paho 2 (newer distributions) asks which callback signatures to use; 1.6 (Debian 12) has one
    extra = {"callback_api_version": paho.CallbackAPIVersion.VERSION1} if hasattr(paho, "CallbackAPIVersion") else {}
    client = paho.Client(client_id=client_id, protocol=paho.MQTTv5, **extra)
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p=None: connected.set()
    props = Properties(PacketTypes.CONNECT)
    if not clean_start:
        props.SessionExpiryInterval = 7 * 86400  # keep our queue while we are away
    client.connect(host, int(port or 1883), keepalive=30, clean_start=clean_start, properties=props)
    client.loop_start()
    if not connected.wait(10):
        client.loop_stop()
        raise TimeoutError(f"no connection to {url}")
    return client


def _topics(prefix, venue, gateway):
    base = f"{prefix}/{venue}/{gateway}"
    return {"batch": base + "/batch", "ack": base + "/ack", "status": base + "/status", "req": base + "/req", "config": base + "/config", "trust": base + "/trust", "key": base + "/key"}


SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, gateway TEXT NOT NULL, venue TEXT NOT NULL,
  life TEXT NOT NULL, seq INTEGER NOT NULL, created INTEGER NOT NULL, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS encounters (gateway TEXT NOT NULL, life TEXT NOT NULL, id INTEGER NOT NULL,
  venue TEXT NOT NULL, protocol INTEGER NOT NULL, temp_id BLOB NOT NULL, metadata BLOB NOT NULL,
  first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, count INTEGER NOT NULL,
  rssi_min INTEGER NOT NULL, rssi_max INTEGER NOT NULL, rssi_mean_tenths INTEGER NOT NULL,
  attenuation_s TEXT NOT NULL, clock_synced INTEGER NOT NULL, batch_id TEXT NOT NULL,
  PRIMARY KEY (gateway, life, id));
"""


class Store:
    """Encounters in SQLite, deduplicated on (gateway, life, id) and on the batch id."""

    def __init__(self, path):
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")  # an ack must mean "on the disk"
        self.db.executescript(SCHEMA)

    def store(self, b):
        """Stores a verified batch in one transaction; returns how many encounters were new."""
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO batches VALUES (?,?,?,?,?,?,?)",
                            (b["id"], b["gateway"], b["venue"], b["life"], b["seq"], b["created"], len(b["encounters"])))
            before = self.db.total_changes
            self.db.executemany(
                "INSERT OR IGNORE INTO encounters VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(b["gateway"], b["life"], e["id"], b["venue"], e["protocol"], e["tempId"], e["metadata"],
                  e["firstSeen"], e["lastSeen"], e["count"], e["rssiMin"], e["rssiMax"], e["rssiMeanTenths"],
                  json.dumps(e["attenuationS"]), int(e["clockSynced"]), b["id"]) for e in b["encounters"]])
            return self.db.total_changes - before


def consume(url, prefix, registry, db_path, client_id, backend_key, on_event=lambda kind, detail: None, stop=None):
    """Subscribes to every gateway's batches, stores the good ones and acks them (signed) after the commit.

    Refused batches are not acknowledged: the gateway keeps them and sends them again.
    Runs until `stop` (a threading.Event) is set.
    """
    store = Store(db_path)
    client = _connect(url, client_id, clean_start=False)
    filt = f"{prefix}/+/+/batch"
    lock = threading.Lock()

    def on_message(c, userdata, msg):
        parts = msg.topic[len(prefix) + 1:].split("/")
        if len(parts) == 3 and parts[2] == "key":
            return on_key(parts[0], parts[1], msg.payload)
        with lock:
            try:
                b = decode_batch(msg.payload)
                if b["kind"] != "batch":
                    raise WireFormatError("kind", 'only "batch" belongs on a batch topic')
                if [b["venue"], b["gateway"]] != parts[:2]:
                    raise WireFormatError("gw", "batch names another gateway than its topic")
                verify_batch(b, registry)
            except (WireFormatError, Refused) as err:
                on_event("refused", str(err))
                return
            new = store.store(b)
            # The commit returned (synchronous = FULL): now the gateway may forget the batch.
            ack = backend_key.ack(b["venue"], b["gateway"], [b["id"]])
            props = Properties(PacketTypes.PUBLISH)
            props.ContentType = COSE_CONTENT_TYPE
            c.publish(_topics(prefix, b["venue"], b["gateway"])["ack"], ack, qos=1, properties=props)
            on_event("stored", {"batch": b["id"], "gateway": b["gateway"], "encounters": len(b["encounters"]), "new": new})

    def on_key(venue, gateway, payload):
        # A gateway's key rotation, as a backend registered it (signed by a backend key: this one).
        if not payload:
            return
        try:
            doc = open_control(payload, [backend_key.public], venue, gateway)
        except ControlRefused as err:
            on_event("key-refused", str(err))
            return
        if doc.get("kind") == "signingKey" and "key" in doc and "previous" in doc:
            with lock:
                if follow_key(registry, gateway, doc["previous"], doc["key"]):
                    on_event("key", {"gateway": gateway, "version": doc["version"], "key": doc["key"]})

    client.on_message = on_message
    # The retained key rotations first, so the keys are known before batches signed with them.
    client.subscribe(f"{prefix}/+/+/key", qos=1)
    client.subscribe(filt, qos=1)
    on_event("subscribed", filt)
    try:
        while stop is None or not stop.is_set():
            time.sleep(0.1)
    finally:
        client.disconnect()
        client.loop_stop()


def _ask(url, prefix, venue, gateway, body, on_reply, timeout_s, backend_key, gateway_key):
    """Sends one signed request; hands each reply to on_reply until it returns a result.

    A batch part comes as its bytes; a signed answer as its JSON, once gateway_key verified it.
    """
    client_id = f"vgw-py-{os.getpid()}-{time.monotonic_ns() % 1000000}"
    client = _connect(url, client_id)
    response_topic = f"{prefix}/replies/{client_id}"
    correlation = os.urandom(16)
    done = threading.Event()
    result = {}

    def on_message(c, userdata, msg):
        props = getattr(msg, "properties", None)
        if getattr(props, "CorrelationData", None) != correlation:
            return  # a late reply to someone else's request
        doc = None
        try:
            if getattr(props, "ContentType", None) != "application/cbor":
                doc = open_unit_message(msg.payload, gateway_key)
                if doc.get("ok") is False:
                    result["error"] = doc["error"]
                    done.set()
                    return
            value = on_reply(msg.payload, doc)
        except Exception as err:  # a bad part ends the request with its reason
            result["error"] = str(err)
            done.set()
            return
        if value is not None:
            result["value"] = value
            done.set()

    client.on_message = on_message
    subscribed = threading.Event()
    client.on_subscribe = lambda *a: subscribed.set()
    client.subscribe(response_topic, qos=1)
    subscribed.wait(5)
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = response_topic
    props.CorrelationData = correlation
    props.ContentType = COSE_CONTENT_TYPE
    # the answer's topic is named inside the signature: the gateway answers there and nowhere else
    client.publish(_topics(prefix, venue, gateway)["req"], backend_key.request(venue, gateway, response_topic, body), qos=1, properties=props)
    try:
        if not done.wait(timeout_s):
            raise TimeoutError(f"no complete answer from {venue}/{gateway} within {timeout_s} s")
    finally:
        client.disconnect()
        client.loop_stop()
    if "error" in result:
        raise RuntimeError(result["error"])
    return result["value"]


def pull(url, prefix, venue, gateway, from_ms, to_ms, backend_key, registry=None, timeout_s=30):
    """The encounters overlapping [from, to), as the decoded parts in part order.

    Pull parts need no ack: they are copies of what the gateway holds, not its outbox.
    """
    parts = {}

    def on_part(payload, _doc):
        b = decode_batch(payload)
        if b["kind"] != "pull":
            raise WireFormatError("kind", 'expected "pull" parts')
        if registry is not None:
            verify_batch(b, registry)
        parts[b["part"]] = b
        last = [p for p in parts.values() if p["last"]]
        # parts are consecutive from 0; the final one has last: true
        if last and len(parts) == last[0]["part"] + 1:
            return [parts[i] for i in range(len(parts))]
        return None

    key = _gateway_key(registry, gateway)
    return _ask(url, prefix, venue, gateway, {"op": "pull", "from": from_ms, "to": to_ms}, on_part, timeout_s, backend_key, key)


def _gateway_key(registry, gateway):
    """The gateway's registered key, or None without a registry (answers are then read unchecked)."""
    if registry is None:
        return None
    if gateway not in registry:
        raise ValueError(f'--gateway: "{gateway}" is not in the registry')
    return bytes.fromhex(registry[gateway]["signingKey"])


def status(url, prefix, venue, gateway, backend_key, registry=None, timeout_s=10):
    """The gateway's status document, asked for over request/response."""
    key = _gateway_key(registry, gateway)
    return _ask(url, prefix, venue, gateway, {"op": "status"}, lambda p, doc: doc, timeout_s, backend_key, key)


def log_level(url, prefix, venue, gateway, backend_key, level, for_s, registry=None, timeout_s=10):
    """A signed command: the gateway logs at `level` for `for_s` seconds, then falls back by itself.

    Returns its answer ({"ok": true, "level": …, "until": …}); a refusal raises with the field named.
    """
    key = _gateway_key(registry, gateway)
    body = {"op": "logLevel", "level": level, "forS": for_s}
    return _ask(url, prefix, venue, gateway, body, lambda p, doc: doc, timeout_s, backend_key, key)


def restart(url, prefix, venue, gateway, backend_key, registry=None, timeout_s=10):
    """A signed command: the gateway answers ({"ok": true, "op": "restart"}), then stops cleanly and its service starts it again."""
    key = _gateway_key(registry, gateway)
    return _ask(url, prefix, venue, gateway, {"op": "restart"}, lambda p, doc: doc, timeout_s, backend_key, key)


def doctor(url, prefix, venue, gateway, backend_key, registry=None, timeout_s=60):
    """A signed command: the gateway runs `vgw doctor` on itself; its answer holds `healthy` and the `checks`."""
    key = _gateway_key(registry, gateway)
    return _ask(url, prefix, venue, gateway, {"op": "doctor"}, lambda p, doc: doc, timeout_s, backend_key, key)


def update(url, prefix, venue, gateway, backend_key, manifest, version, downgrade=False, registry=None, timeout_s=10):
    """A signed command: the gateway takes the release whose manifest is at `manifest` (https://), of `version`.

    Its answer says it is under way ({"ok": true, "op": "update", "version": …}); it then downloads, checks,
    installs and restarts into it on trial, and its status (counters.update) says how it went.
    """
    key = _gateway_key(registry, gateway)
    body = {"op": "update", "manifest": manifest, "version": version, **({"downgrade": True} if downgrade else {})}
    return _ask(url, prefix, venue, gateway, body, lambda p, doc: doc, timeout_s, backend_key, key)


def _publish_next(url, prefix, venue, gateway, backend_key, kind, sign, wait_s, held_by=None):
    """Publishes `sign(version)` retained on the unit's `kind` topic, as the version after the one the broker holds
    (signed by `held_by`, raw public keys; default: this key)."""
    topic = _topics(prefix, venue, gateway)[kind]
    client = _connect(url, f"vgw-py-{kind}-{os.getpid()}")
    held = {}
    done = threading.Event()

    def on_message(c, userdata, msg):
        if msg.retain and msg.payload:
            held["payload"] = msg.payload
        done.set()

    client.on_message = on_message
    try:
        client.subscribe(topic, qos=1)
        done.wait(wait_s)  # no retained message: none published yet
        # what the broker holds must be this key's: a version read from anything else means nothing
        current = open_control(held["payload"], held_by or [backend_key.public], venue, gateway) if "payload" in held else {}
        version = current.get("version", 0) + 1
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = COSE_CONTENT_TYPE
        client.publish(topic, sign(version), qos=1, retain=True, properties=props).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()
    return version


def set_config(url, prefix, venue, gateway, backend_key, settings, wait_s=2):
    """Publishes `settings` for one unit, signed and retained, as the version after the one the broker holds.

    A unit takes only a version above every one it was offered, tries it behind its health gate and
    says in its status what became of it (`config.remote.last`).
    """
    if not isinstance(settings, dict):
        raise ValueError("--settings: must be a JSON object of config keys")
    version = _publish_next(url, prefix, venue, gateway, backend_key, "config", lambda v: backend_key.config(venue, gateway, v, settings), wait_s)
    return {"venue": venue, "gateway": gateway, "version": version, "settings": settings}


def set_trust(url, prefix, venue, gateway, backend_key, keys, wait_s=2):
    """Announces the backend keys a unit is to trust (docs/protocol.md, "Backend keys"), signed and retained.

    The unit takes the set only if it keeps the key that signed it (this one), and says in its
    status what became of it (`counters.control.backendKeys.last`).
    """
    keys = sorted({k.strip().lower() for k in keys if k.strip()})
    if not 1 <= len(keys) <= 8 or any(len(k) != 64 or any(c not in "0123456789abcdef" for c in k) for k in keys):
        raise ValueError("--keys: 1 to 8 Ed25519 public keys, 64 hex digits each")
    if backend_key.public.hex() not in keys:
        raise ValueError("--keys: the set leaves out the key it is signed with (--control-key): the unit would refuse it")
    # the announcement held may be signed by another key of the set (the one being retired)
    held_by = [bytes.fromhex(k) for k in keys]
    version = _publish_next(url, prefix, venue, gateway, backend_key, "trust", lambda v: backend_key.trust(venue, gateway, v, keys), wait_s, held_by)
    return {"venue": venue, "gateway": gateway, "version": version, "keys": keys}


def rotate_key(url, prefix, venue, gateway, backend_key, wait_s=2):
    """Orders a unit to rotate its signing key (docs/protocol.md, "Gateway keys"), signed and retained, as the
    rotation after the one the broker holds. A collector registers the key the unit then asks for; the unit
    signs with it once told, and says so in its status (`counters.control.signingKey`)."""
    version = _publish_next(url, prefix, venue, gateway, backend_key, "key", lambda v: backend_key.signing_key_order(venue, gateway, v), wait_s)
    return {"venue": venue, "gateway": gateway, "version": version}


def retained_status(url, prefix, venue, gateway, registry=None, timeout_s=10):
    """The retained status (or Last Will) the broker holds for a gateway, online or not, signed by the gateway."""
    key = _gateway_key(registry, gateway)
    client = _connect(url, f"vgw-py-status-{os.getpid()}")
    got = {}
    done = threading.Event()

    def on_message(c, userdata, msg):
        got["contentType"] = getattr(getattr(msg, "properties", None), "ContentType", None)
        try:
            got["doc"] = open_unit_message(msg.payload, key)
            got["verified"] = key is not None
        except ControlRefused as err:
            got["refused"] = str(err)
        done.set()

    client.on_message = on_message
    client.subscribe(_topics(prefix, venue, gateway)["status"], qos=1)
    try:
        if not done.wait(timeout_s):
            raise TimeoutError("no retained status: the gateway never connected to this broker")
    finally:
        client.disconnect()
        client.loop_stop()
    return got
