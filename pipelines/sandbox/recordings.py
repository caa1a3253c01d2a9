"""Recordings: signed, expiring URLs and the WAV file behind each one.

A recording is a short tone, deterministic per call id: its pitch and an INFO chunk naming the
call derive from the id, so two calls never share bytes and a test can compare the sha256 of
what a pipeline archived with `recording_wav(call_id)`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import struct
from array import array
from functools import lru_cache

RECORDING_TTL = 3600  # seconds a signed recording URL stays valid
SAMPLE_RATE = 8000
TONE_MS = 500


def sign(secret: bytes, call_id: str, expires: int) -> str:
    return hmac.new(secret, f"{call_id}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]


def verify(secret: bytes, call_id: str, expires: int, token: str) -> bool:
    return hmac.compare_digest(sign(secret, call_id, expires), token)


def tone_hz(call_id: str) -> int:
    """The pitch of a call's recording: 300..1199 Hz, from the call id."""
    digest = hashlib.sha256(call_id.encode()).digest()
    return 300 + int.from_bytes(digest[:4], "big") % 900


@lru_cache(maxsize=1024)
def recording_wav(call_id: str) -> bytes:
    """A valid PCM WAV (mono, 16 bit, 8 kHz, 0.5 s): a faded sine at `tone_hz(call_id)`, with a
    LIST/INFO chunk whose comment names the call."""
    n = SAMPLE_RATE * TONE_MS // 1000
    step = 2 * math.pi * tone_hz(call_id) / SAMPLE_RATE
    fade = SAMPLE_RATE // 50  # 20 ms in and out, so it does not click
    pcm = array(
        "h",
        (round(8000 * min(1.0, k / fade, (n - k) / fade) * math.sin(k * step)) for k in range(n)),
    )
    if pcm.itemsize != 2:  # pragma: no cover - every platform we run on
        raise RuntimeError("array('h') is not 16 bit here")
    fmt = struct.pack("<HHIIHH", 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16)
    comment = f"neuron sandbox recording of {call_id}".encode() + b"\0"
    info = _chunk(b"LIST", b"INFO" + _chunk(b"ICMT", comment))
    body = b"WAVE" + _chunk(b"fmt ", fmt) + info + _chunk(b"data", _little_endian(pcm))
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _chunk(tag: bytes, payload: bytes) -> bytes:
    """A RIFF chunk: tag, little-endian size, payload, padded to an even length."""
    return tag + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")


def _little_endian(samples: array[int]) -> bytes:
    if struct.pack("=h", 1) != struct.pack("<h", 1):  # pragma: no cover - big-endian hosts
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()
