"""Batches of the venue-gateway protocol, version 3: decode, check and verify.

Written from docs/protocol.md and docs/protocol.cddl alone. Standard library plus python3-cbor2
and python3-cryptography (Debian packages).
"""
import hashlib
import re
import struct
import time
import zlib
from datetime import datetime, timezone

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

PROTOCOL_VERSION = 3
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_INFLATED_BYTES = 16 * 1024 * 1024
FLAG_CLOCK_UNSYNCED = 1
RSSI_UNAVAILABLE = 127
# Bytes of temp ID and of metadata per protocol byte (column 1); None: the metadata follows a
# one-byte length, at most the second number of bytes (BlueTrace, protocol.md).
PROTOCOL_SIZES = {0: (16, 4), 1: (61, None)}
BLUETRACE_MAX_METADATA = 100

ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SIGNATURE_DOMAIN = b"vgw-batch-v2"  # protocol 3 keeps protocol 2's batches byte for byte
KIND_CODES = {"batch": 1, "pull": 2}
NO_PART = 0xFFFFFFFFFFFFFFFF
NO_LAST = 0xFF


class WireFormatError(Exception):
    """A payload that is not a well-formed batch; `field` names what is wrong."""

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}")
        self.field = field


class Refused(Exception):
    """A well-formed batch that does not come from the gateway it names; `code` says why."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def _uint(v):
    # bool is an int in Python; CBOR true/false are not integers.
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _expect(ok, field, expected):
    if not ok:
        raise WireFormatError(field, f"expected {expected}")


def iso_ms(ms):
    """Unix milliseconds as the protocol prints them: 2026-11-23T06:37:41.000Z."""
    t = datetime.fromtimestamp(ms // 1000, tz=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def decode_batch(payload):
    """Decodes and checks a batch or pull part; raises WireFormatError naming the field."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise WireFormatError("payload", f"larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        m = cbor2.loads(payload)
    except Exception:
        raise WireFormatError("payload", "not CBOR")
    _expect(isinstance(m, dict), "payload", "a CBOR map")
    if m.get("v") == 1:
        raise WireFormatError("v", "protocol version 1 is retired: update the gateway to protocol 3")
    if m.get("v") == 2:
        raise WireFormatError("v", "protocol version 2 is retired: update the gateway to protocol 3")
    _expect(m.get("v") == PROTOCOL_VERSION, "v", f"protocol version {PROTOCOL_VERSION}")
    kind = m.get("kind")
    _expect(kind in ("batch", "pull"), "kind", '"batch" or "pull"')
    for key, what in (("id", "a ULID"), ("life", "a ULID")):
        _expect(isinstance(m.get(key), str) and ULID.match(m[key]), key, what)
    for key in ("gw", "venue"):
        _expect(isinstance(m.get(key), str) and NAME.match(m[key]), key, "an id of 1-64 letters, digits, _ . -")
    for key in ("seq", "created", "n"):
        _expect(_uint(m.get(key)), key, "an unsigned integer")
    enc = m.get("enc")
    _expect(isinstance(enc, bytes), "enc", "a byte string")
    _expect(isinstance(m.get("hash"), bytes) and len(m["hash"]) == 32, "hash", "a 32-byte SHA-256")
    if hashlib.sha256(enc).digest() != m["hash"]:
        raise WireFormatError("hash", "does not match the content of enc (corrupted or altered)")
    part, last = m.get("part"), m.get("last")
    if part is not None:
        _expect(_uint(part), "part", "an unsigned integer")
    if last is not None:
        _expect(isinstance(last, bool), "last", "a boolean")
    if kind == "pull":
        _expect(part is not None, "part", "a part number on every pull part")
        _expect(last is not None, "last", "true or false on every pull part")
    else:
        _expect(part is None, "part", "no part on an outbox batch")
        _expect(last is None, "last", "no last on an outbox batch")
    sig = m.get("sig")
    if sig is not None:
        _expect(isinstance(sig, bytes) and len(sig) == 64, "sig", "a 64-byte Ed25519 signature")
    return {
        "kind": kind, "id": m["id"], "gateway": m["gw"], "venue": m["venue"], "life": m["life"],
        "seq": m["seq"], "created": m["created"], "part": part, "last": last,
        "hash": m["hash"], "sig": sig, "encounters": _decode_columns(enc, m["n"]),
    }


def _decode_columns(enc, n):
    try:
        d = zlib.decompressobj(-15)  # raw DEFLATE, RFC 1951
        raw = d.decompress(enc, MAX_INFLATED_BYTES)
        if d.unconsumed_tail or not d.eof:
            raise ValueError("too large or truncated")
        cols = cbor2.loads(raw)
    except Exception:
        raise WireFormatError("enc", "not deflated CBOR columns")
    _expect(isinstance(cols, list) and len(cols) == 12, "enc", "12 columns")
    ids, protocols, temp_ids, ends, durations, counts, rssi_max, spread, mean_vs_mid, buckets, att, flags = cols

    def column(name, col, check, what, length=n):
        _expect(isinstance(col, list) and len(col) == length and all(check(x) for x in col), f"enc.{name}", what)

    column("ids", ids, _int, f"{n} integers")
    _expect(isinstance(protocols, bytes) and len(protocols) == n, "enc.protocols", f"{n} bytes")
    _expect(isinstance(temp_ids, bytes), "enc.tempIds", "a byte string")
    column("ends", ends, _int, f"{n} integers")
    column("rssiMeanVsMid", mean_vs_mid, _int, f"{n} integers")
    for name, col in (("durations", durations), ("counts", counts), ("rssiSpread", spread), ("flags", flags)):
        column(name, col, _uint, f"{n} unsigned integers")
    column("rssiMax", rssi_max, lambda x: _int(x) and -127 <= x <= 127, f"{n} dBm values")
    _expect(_uint(buckets) and buckets <= 16, "enc.buckets", "a bucket count up to 16")
    column("attenuation", att, _int, f"{n}x{buckets} integers", n * buckets)
    out, offset, eid, end = [], 0, 0, 0
    for i in range(n):
        sizes = PROTOCOL_SIZES.get(protocols[i])
        if sizes is None:
            raise WireFormatError("enc.protocols", f"unknown protocol {protocols[i]}")
        meta_at = offset + sizes[0] + (1 if sizes[1] is None else 0)
        if meta_at > len(temp_ids):
            raise WireFormatError("enc.tempIds", "too short for the protocols listed")
        meta_len = temp_ids[meta_at - 1] if sizes[1] is None else sizes[1]
        if sizes[1] is None and meta_len > BLUETRACE_MAX_METADATA:
            raise WireFormatError("enc.tempIds", f"encounter {i}: metadata of {meta_len} bytes, more than protocol {protocols[i]} allows")
        if meta_at + meta_len > len(temp_ids):
            raise WireFormatError("enc.tempIds", "too short for the protocols listed")
        eid += ids[i]
        end += ends[i]
        duration = durations[i]
        rmax = rssi_max[i]
        rmin = rmax - spread[i]
        a = list(att[i * buckets:(i + 1) * buckets])
        if buckets:
            a[-1] = duration - sum(a[:-1]) - a[-1]  # the residual is what no bucket was credited with
        if end - duration < 0 or any(x < 0 for x in a):
            raise WireFormatError("enc", f"encounter {i} decodes to negative times")
        out.append({
            "id": eid,
            "protocol": protocols[i],
            "tempId": temp_ids[offset:offset + sizes[0]],
            "metadata": temp_ids[meta_at:meta_at + meta_len],
            "firstSeen": (end - duration) * 1000,
            "lastSeen": end * 1000,
            "count": counts[i],
            "rssiMin": rmin,
            "rssiMax": rmax,
            "rssiMeanTenths": mean_vs_mid[i] + 5 * (rmax + rmin),
            "attenuationS": a,
            "clockSynced": (flags[i] & FLAG_CLOCK_UNSYNCED) == 0,
        })
        offset = meta_at + meta_len
    if offset != len(temp_ids):
        raise WireFormatError("enc.tempIds", "longer than the protocols listed")
    return out


def signed_bytes(b):
    """The exact bytes a batch signature covers (protocol.md, "Signature"); no CBOR involved."""
    texts = b"".join(bytes([len(t)]) + t for t in (s.encode("utf-8") for s in (b["id"], b["gateway"], b["venue"], b["life"])))
    part = NO_PART if b["part"] is None else b["part"]
    last = NO_LAST if b["last"] is None else int(b["last"])
    return SIGNATURE_DOMAIN + bytes([KIND_CODES[b["kind"]]]) + texts + struct.pack(">QQQB", b["seq"], b["created"], part, last) + b["hash"]


def load_registry(records):
    """Registration records (a list of dicts, as `vgw provision` prints them) by gateway id."""
    return {r["gateway"]: r for r in records}


def verify_batch(b, registry):
    """Checks who sent a decoded batch; raises Refused with a code and the reason."""
    record = registry.get(b["gateway"])
    if record is None:
        raise Refused("not-registered", f'gateway "{b["gateway"]}" is not registered: add its registration record')
    if record["venue"] != b["venue"]:
        raise Refused("wrong-venue", f'gateway "{b["gateway"]}" is registered at venue "{record["venue"]}", not "{b["venue"]}"')
    if b["sig"] is None:
        raise Refused("unsigned", f'unsigned batch: gateway "{b["gateway"]}" must sign every batch')
    data = signed_bytes(b)
    keys = accepted_keys(record)
    for i in range(len(keys) - 1, -1, -1):  # the current key first
        try:
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(keys[i])).verify(b["sig"], data)
        except InvalidSignature:
            continue
        _used(record, keys[i])
        return
    raise Refused("bad-signature", f'signature does not verify with the registered key of "{b["gateway"]}"')


KEY_OVERLAP_S = 3600


def accepted_keys(record, now=None):
    """The keys a gateway's batches may be signed with: the registry's and its rotations' (docs/protocol.md,
    "Gateway keys"); a key's predecessor is dropped an hour after the key was first used."""
    keys = record.setdefault("acceptedKeys", [record["signingKey"]])
    used = record.setdefault("keyFirstUsed", {})
    now = time.time() if now is None else now
    while len(keys) > 1 and keys[1] in used and now - used[keys[1]] >= KEY_OVERLAP_S:
        keys.pop(0)
    return keys


def _used(record, key):
    record.setdefault("keyFirstUsed", {}).setdefault(key, time.time())


def follow_key(registry, gateway, previous, key):
    """A gateway's new key, as the backend registered it (a signed control-signing-key with key and previous):
    accepted when it succeeds the key in use. Returns whether it was taken."""
    record = registry.get(gateway)
    if record is None:
        return False
    keys = accepted_keys(record)
    if key in keys or previous != keys[-1]:
        return False
    keys.append(key)
    return True


def batch_to_json(b):
    """The same JSON `vgw decode` prints, field for field."""
    out = {
        "v": PROTOCOL_VERSION, "kind": b["kind"], "id": b["id"], "gateway": b["gateway"], "venue": b["venue"],
        "life": b["life"], "seq": b["seq"], "createdAt": iso_ms(b["created"]),
    }
    if b["part"] is not None:
        out["part"] = b["part"]
        out["last"] = b["last"]
    out["hash"] = b["hash"].hex()
    out["sig"] = b["sig"].hex() if b["sig"] is not None else None
    out["encounters"] = [{
        "id": e["id"], "protocol": e["protocol"], "tempId": e["tempId"].hex(), "metadata": e["metadata"].hex(),
        "firstSeen": iso_ms(e["firstSeen"]), "lastSeen": iso_ms(e["lastSeen"]), "count": e["count"],
        "rssiMin": e["rssiMin"], "rssiMax": e["rssiMax"], "rssiMean": rssi_mean(e),
        "attenuationS": e["attenuationS"], "clockSynced": e["clockSynced"],
    } for e in b["encounters"]]
    return out


def rssi_mean(e):
    """The mean RSSI in dBm to 0.1 (an int when whole, as JSON prints it); 127 = not available."""
    tenths = e["rssiMeanTenths"]
    return tenths // 10 if tenths % 10 == 0 else tenths / 10
