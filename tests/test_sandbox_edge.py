"""The sandbox's recordings and rate-limit headers, and what importing it loads."""

from __future__ import annotations

import asyncio
import hashlib
import io
import subprocess
import sys
import wave
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pipelines.sandbox import Sandbox
from pipelines.sandbox.recordings import recording_wav
from tests.helpers import client

Make = Callable[..., Sandbox]


def fresh_url(sb: Sandbox, call_id: str) -> str:
    with client(sb) as c:
        url: str = c.get(f"/calls/{call_id}").json()["recording_url"]
    return url


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


# -- recordings ------------------------------------------------------------------------------
def test_recordings_are_deterministic_valid_wavs_per_call(make_sandbox: Make) -> None:
    sb = make_sandbox()
    first, second = [x["id"] for x in sb.truth()["calls"] if x["recording_url"]][:2]
    url = fresh_url(sb, first)
    sb.advance(60)
    later = fresh_url(sb, first)
    assert later != url  # a fresh signature and expiry
    a, b = httpx.get(url), httpx.get(later)
    assert a.status_code == b.status_code == 200
    assert sha(a.content) == sha(b.content) == sha(sb.recording_bytes(first))
    for r in (a, b):
        assert r.headers["content-type"] == "audio/wav"
        assert int(r.headers["content-length"]) == len(r.content)
    other = httpx.get(fresh_url(sb, second))
    assert other.status_code == 200 and sha(other.content) != sha(a.content)
    assert sha(other.content) == sha(sb.recording_bytes(second))
    for content in (a.content, other.content):
        with wave.open(io.BytesIO(content)) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
            assert w.getnframes() == 4000  # 0.5 s
            assert any(w.readframes(4000))  # a tone, not silence
        assert content[:4] == b"RIFF" and content[8:12] == b"WAVE"
        assert int.from_bytes(content[4:8], "little") == len(content) - 8
    assert first.encode() in a.content  # the INFO comment names the call
    assert recording_wav(first) == a.content  # bytes from the call id alone
    assert sb.stats()["by_endpoint_status"]["recording"] == {"200": 3}  # admin reads not counted


def test_refused_recording_answers_403_on_fresh_urls(make_sandbox: Make) -> None:
    sb = make_sandbox()
    truth = sb.truth()
    call = next(x["id"] for x in truth["calls"] if x["recording_url"])
    sb.refuse_recording(call)
    assert sb.drift()["refused_recordings"] == [call]
    for _ in range(2):
        r = httpx.get(fresh_url(sb, call))
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert truth_unchanged(sb, truth)  # the call still advertises its recording
    sb.refuse_recording(call, refuse=False)
    assert httpx.get(fresh_url(sb, call)).status_code == 200
    no_recording = next(
        x["id"] for x in truth["calls"] if x["status"] == "completed" and not x["recording_url"]
    )
    with pytest.raises(ValueError, match="no recording"):
        sb.refuse_recording(no_recording)
    with pytest.raises(KeyError):
        sb.recording_bytes(no_recording)
    with pytest.raises(KeyError):
        sb.recording_bytes("cal_doesnotexist")
    r = httpx.post(f"{sb.admin_url}/calls/{call}/refuse-recording", json={"refuse": "yes"})
    assert r.status_code == 400


def truth_unchanged(sb: Sandbox, before: dict[str, Any]) -> bool:
    """The calls are as before, but for the signature and expiry of their recording URLs."""

    def calls(truth: dict[str, Any]) -> dict[str, Any]:
        return {c["id"]: {**c, "recording_url": bool(c["recording_url"])} for c in truth["calls"]}

    return calls(sb.truth()) == calls(before)


# -- rate-limit headers ------------------------------------------------------------------------
RATE_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "ratelimit-policy")


def test_rate_limit_headers_are_off_by_default(make_sandbox: Make) -> None:
    sb = make_sandbox(rate_limit=5)
    with client(sb) as c:
        responses = [c.get("/calls", params={"limit": 1}) for _ in range(8)]
    assert {r.status_code for r in responses} == {200, 429}
    assert not any(h in r.headers for r in responses for h in RATE_HEADERS)


def test_rate_limit_headers_tell_the_limit(make_sandbox: Make) -> None:
    sb = make_sandbox(rate_limit=3, rate_limit_headers=True)
    with client(sb) as c:
        responses = [c.get("/calls", params={"limit": 1}) for _ in range(8)]
        missing = c.get("/calls/cal_doesnotexist")
    first = responses[0]
    assert first.status_code == 200
    assert first.headers["RateLimit-Limit"] == "3"
    assert first.headers["RateLimit-Remaining"] == "2"
    assert first.headers["RateLimit-Reset"] == "1"
    assert first.headers["RateLimit-Policy"] == "3;w=1"
    remaining = [int(r.headers["RateLimit-Remaining"]) for r in responses]
    assert remaining[:3] == [2, 1, 0]
    limited = [r for r in responses if r.status_code == 429]
    assert limited
    for r in limited:
        assert r.headers["RateLimit-Remaining"] == "0" and r.headers["RateLimit-Limit"] == "3"
        assert int(r.headers["Retry-After"]) >= 1 and int(r.headers["RateLimit-Reset"]) >= 1
    assert "RateLimit-Limit" in missing.headers  # every metered response, errors included
    # a request without the key is refused before the limit: nothing metered, no headers
    r = httpx.get(f"{sb.base_url}/calls")
    assert r.status_code == 401 and "RateLimit-Limit" not in r.headers


def test_rate_limit_headers_at_runtime(make_sandbox: Make) -> None:
    sb = make_sandbox()
    config = f"{sb.admin_url}/config"
    r = httpx.post(config, json={"rate_limit": 50, "rate_limit_headers": True})
    assert r.json() == {
        "latency_ms": 0.0,
        "fault_rate": 0.0,
        "rate_limit": 50.0,
        "rate_limit_headers": True,
        "max_offset": None,
    }
    with client(sb) as c:
        assert c.get("/calls").headers["RateLimit-Limit"] == "50"
    assert httpx.post(config, json={"rate_limit_headers": "on"}).status_code == 400
    sb.configure(rate_limit_headers=False)
    with client(sb) as c:
        assert "RateLimit-Limit" not in c.get("/calls").headers
    sb.configure(rate_limit_headers=True)
    httpx.post(config, json={"rate_limit": None})  # headers only while a limit is set
    with client(sb) as c:
        assert "RateLimit-Limit" not in c.get("/calls").headers


# -- imports -----------------------------------------------------------------------------------
WEB = "('starlette', 'uvicorn', 'uvloop', 'httptools')"
CHECK = f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {WEB})"


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    "code",
    [
        "import pipelines.cli",
        "import pipelines.cli; pipelines.cli._parser()",
        "import pipelines.sandbox",
        "from pipelines.sandbox import add_arguments, run_from_args, Sandbox, serve",
        "from pipelines.sandbox import Sandbox; Sandbox(calls=20).truth()",
        "import pipelines.cli, contextlib\n"
        "with contextlib.suppress(SystemExit): pipelines.cli.main(['sync', '--help'])",
    ],
)
def test_no_web_server_module_until_a_sandbox_starts(code: str) -> None:
    done = run_python(f"import sys\n{code}\n{CHECK}\nassert not loaded, loaded")
    assert done.returncode == 0, done.stderr


def test_the_import_check_sees_a_started_sandbox() -> None:
    code = "from pipelines.sandbox import Sandbox\nwith Sandbox(calls=20): pass"
    done = run_python(f"import sys\n{code}\n{CHECK}\nprint(loaded)")
    assert done.returncode == 0, done.stderr
    assert "starlette" in done.stdout and "uvicorn" in done.stdout


# -- admin: loopback only ----------------------------------------------------------------------
@pytest.mark.parametrize(("peer", "status"), [("10.1.2.3", 403), ("127.0.0.1", 200), ("::1", 200)])
def test_admin_answers_only_loopback_clients(peer: str, status: int) -> None:
    from pipelines.sandbox.app import build_app

    sb = Sandbox(calls=20, now="2026-11-01T12:00:00Z")
    transport = httpx.ASGITransport(app=build_app(sb.state), client=(peer, 40000))

    async def ask() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as c:
            admin = await c.post(f"/_sandbox/calls/{sb.state.data.calls[0].id}/erase")
            api = await c.get("/v1/calls", headers={"Authorization": f"Bearer {sb.api_key}"})
            return admin, api

    admin, api = asyncio.run(ask())
    assert admin.status_code == status
    assert api.status_code == 200  # the API itself answers anyone with the key
    assert len(sb.state.data.erased) == (1 if status == 200 else 0)


def test_sandbox_without_its_web_stack_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['uvicorn'] = None  # as if not installed\n"
        "from pipelines.cli import main\n"
        "raise SystemExit(main(['sandbox', '--port', '0', '--calls', '5']))"
    )
    done = run_python(code)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "neuron-calls sandbox: uvicorn is not installed; the sandbox needs its web stack: "
        "pip install 'neuron-calls[sandbox]'"
    ]


def test_max_offset_refuses_deeper_offsets_with_a_400_and_can_be_lifted(make_sandbox: Make) -> None:
    sb = make_sandbox(calls=120, max_offset=50)
    config = f"{sb.admin_url}/config"
    with client(sb) as c:
        assert c.get("/calls", params={"limit": 100, "offset": 50}).status_code == 200
        refused = c.get("/calls", params={"limit": 100, "offset": 51})
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "invalid_request"
        assert "offset" in refused.json()["error"]["message"]
        assert httpx.post(config, json={"max_offset": None}).json()["max_offset"] is None
        assert c.get("/calls", params={"limit": 100, "offset": 100}).status_code == 200
        assert httpx.post(config, json={"max_offset": -1}).status_code == 400
