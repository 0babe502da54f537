"""What the backend tells a gateway, signed: COSE_Sign1 (RFC 9052) with EdDSA over the message as JSON.

A gateway acts on an ack, a request or a temp-ID answer only when it is signed by a backend key it
trusts and names it (venue and gateway) as the addressee; a request also carries issuedAt and a
random nonce, and names in `replyTo` where its answer goes (docs/protocol.md, "Control messages").
"""
import hashlib
import json
import os
import time

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .wire import PROTOCOL_VERSION

CONTROL_AAD = b"vgw-control-v3"
UNIT_AAD = b"vgw-unit-v3"
CONTENT_TYPE = 'application/cose; cose-type="cose-sign1"'


class BackendKey:
    """An Ed25519 key from a file of 64 hex digits (`vgw backend-key --out` writes one)."""

    def __init__(self, seed):
        self.private = Ed25519PrivateKey.from_private_bytes(seed)
        self.public = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.kid = hashlib.sha256(self.public).digest()[:8]

    @classmethod
    def load(cls, path):
        text = open(path).read().strip()
        if len(text) != 64:
            raise ValueError(f"{path}: expected 64 hex digits (an Ed25519 seed)")
        return cls(bytes.fromhex(text))

    def sign(self, message):
        """COSE_Sign1 bytes of `message` (a dict, given v); the protected header is {1: -8, 4: kid}."""
        payload = json.dumps({"v": PROTOCOL_VERSION, **message}, separators=(",", ":")).encode()
        protected = cbor2.dumps({1: -8, 4: self.kid})
        to_be_signed = cbor2.dumps(["Signature1", protected, CONTROL_AAD, payload])
        signature = self.private.sign(to_be_signed)
        return cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]))

    def ack(self, venue, gateway, ids):
        return self.sign({"kind": "ack", "venue": venue, "gateway": gateway, "acks": ids})

    def config(self, venue, gateway, version, settings):
        """A unit's configuration (docs/protocol.md, "Configuration"): publish it retained on <base>/config."""
        return self.sign({
            "kind": "config", "venue": venue, "gateway": gateway, "version": version, "issuedAt": int(time.time() * 1000),
            "settings": settings, "layers": [{"layer": "gateway", "version": version}],
        })

    def trust(self, venue, gateway, version, keys):
        """The backend keys a unit is to trust (docs/protocol.md, "Backend keys"): publish it retained on <base>/trust."""
        return self.sign({"kind": "trust", "venue": venue, "gateway": gateway, "version": version, "issuedAt": int(time.time() * 1000), "keys": list(keys)})

    def signing_key_order(self, venue, gateway, version):
        """An order to rotate a unit's signing key (docs/protocol.md, "Gateway keys"): publish it retained on <base>/key."""
        return self.sign({"kind": "signingKey", "venue": venue, "gateway": gateway, "version": version, "issuedAt": int(time.time() * 1000)})

    def request(self, venue, gateway, reply_to, body):
        return self.sign({
            "kind": "request", "venue": venue, "gateway": gateway, "issuedAt": int(time.time() * 1000),
            "nonce": os.urandom(16).hex(), "replyTo": reply_to, **body,
        })


class ControlRefused(Exception):
    """A control message a gateway would refuse; `reason` is its counters.control.refused key."""

    def __init__(self, reason, detail):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _read_cose(payload):
    """(protected bytes, protected header, payload, signature) of a COSE_Sign1 message; ControlRefused otherwise."""
    if payload[:1] in (b"{", b" ") or (payload and 0xA0 <= payload[0] <= 0xBF):
        raise ControlRefused("unsigned", "a bare message: protocol 3 takes only COSE_Sign1")
    try:
        msg = cbor2.loads(payload)
    except Exception:
        raise ControlRefused("malformed", "not CBOR")
    if isinstance(msg, cbor2.CBORTag) and msg.tag == 18:
        msg = msg.value
    if not (isinstance(msg, list) and len(msg) == 4):
        raise ControlRefused("malformed", "not a COSE_Sign1 message")
    protected, _unprotected, body, signature = msg
    return protected, (cbor2.loads(protected) if protected else {}), body, signature


def _verify(key, protected, header, aad, body, signature):
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    try:
        if header.get(1) != -8:
            raise InvalidSignature()
        Ed25519PublicKey.from_public_bytes(key).verify(signature, cbor2.dumps(["Signature1", protected, aad, body]))
    except InvalidSignature:
        raise ControlRefused("badSignature", "the signature does not verify")


def open_unit_message(payload, public_key):
    """The JSON a gateway signed with its own key (a status, an answer to a request, a temp-ID request).

    public_key is the gateway's registered signingKey (bytes); None reads the message unchecked.
    """
    protected, header, body, signature = _read_cose(payload)
    if public_key is not None:
        _verify(public_key, protected, header, UNIT_AAD, body, signature)
    return json.loads(body)


def open_control(payload, public_keys, venue, gateway):
    """The JSON payload of a control message meant for venue/gateway, checked as a gateway checks it."""
    protected, header, body, signature = _read_cose(payload)
    keys = {hashlib.sha256(k).digest()[:8]: k for k in public_keys}
    key = keys.get(header.get(4))
    if key is None:
        raise ControlRefused("unknownKey", "kid is not a trusted backend key")
    _verify(key, protected, header, CONTROL_AAD, body, signature)
    doc = json.loads(body)
    if doc.get("venue") != venue or doc.get("gateway") != gateway:
        raise ControlRefused("wrongGateway", f"meant for {doc.get('venue')}/{doc.get('gateway')}")
    return doc
