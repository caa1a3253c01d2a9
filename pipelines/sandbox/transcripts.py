"""Transcripts: phrase banks and the deterministic transcript of a call.

`make_transcript` is the transcript the vendor produced first, from (seed, call position);
`remake_transcript` is a re-generated one (the sandbox's `retranscribe` drift) with a chosen
number of segments, drawn from another stream so its text differs.
"""

from __future__ import annotations

import random
from typing import Any, Protocol


class Call(Protocol):
    """What a transcript is made from: `data.Call` has it (data.py imports this module)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def phone(self) -> str: ...
    @property
    def language(self) -> str: ...
    @property
    def duration(self) -> int: ...
    @property
    def disposition(self) -> str: ...
    @property
    def job_id(self) -> str | None: ...


EXTRA_SHARE = 0.01 * 3  # transcripts or segments carrying fields the docs do not list

PHRASES: dict[str, dict[str, list[str]]] = {
    "hi": {
        "agent": [
            "नमस्ते {name} जी, मैं VInfer की तरफ़ से बात कर रहा हूँ।",
            "आपके लोन रिन्यूअल का समय आ गया है।",
            "क्या आप अभी दो मिनट बात कर सकते हैं?",
            "हमारे पास आपके लिए प्रोसेसिंग फ़ीस पर ₹2,000 की छूट है।",
            "मैं आपको हमारे वरिष्ठ सलाहकार से जोड़ रहा हूँ।",
            "धन्यवाद, आपका दिन शुभ हो।",
        ],
        "customer": [
            "हाँ, बताइए।",
            "ठीक है, मुझे और जानकारी चाहिए।",
            "ब्याज दर क्या है?",
            "अभी मैं व्यस्त हूँ, बाद में कॉल करें।",
            "मुझे इसमें कोई रुचि नहीं है।",
            "कृपया मुझे दोबारा कॉल मत कीजिए।",
            "मुझे किसी से बात करनी है।",
        ],
    },
    "hi-latn": {
        "agent": [
            "Namaste, {name} ji. Main VInfer ki taraf se baat kar raha hoon.",
            "Kya aap abhi baat kar sakte hain?",
            "Aapka loan renewal ka time aa gaya hai. Kya aap is baare mein baat karna chahenge?",
            "Processing fee par ₹2,000 ki chhoot hai.",
            "Dhanyavaad, aapka din shubh ho.",
        ],
        "customer": [
            "Haan, bataiye.",
            "Interest rate kitna hai?",
            "Abhi busy hoon, baad mein call karo.",
            "Mujhe interest nahi hai.",
            "Please mujhe dobara call mat karna.",
            "Haan, mujhe kisi se baat karni hai. Please mujhe connect karein.",
        ],
    },
    "ta": {
        "agent": [
            "வணக்கம் {name}, நான் VInfer-இல் இருந்து பேசுகிறேன்.",
            "உங்கள் கடன் புதுப்பிப்பு நேரம் வந்துவிட்டது.",
            "இப்போது பேச முடியுமா?",
            "செயலாக்கக் கட்டணத்தில் ₹2,000 தள்ளுபடி உள்ளது.",
            "நன்றி, நல்ல நாள்!",
        ],
        "customer": [
            "சரி, சொல்லுங்கள்.",
            "வட்டி விகிதம் என்ன?",
            "எனக்கு விருப்பம் இல்லை.",
            "பிறகு அழைக்கவும்.",
            "தயவுசெய்து மீண்டும் அழைக்க வேண்டாம்.",
            "ஒருவரிடம் பேச வேண்டும்.",
        ],
    },
    "te": {
        "agent": [
            "నమస్కారం {name} గారు, నేను VInfer నుండి మాట్లాడుతున్నాను.",
            "మీ లోన్ రెన్యూవల్ సమయం వచ్చింది.",
            "ధన్యవాదాలు!",
        ],
        "customer": ["సరే, చెప్పండి.", "నాకు ఆసక్తి లేదు.", "తర్వాత కాల్ చేయండి."],
    },
    "mr": {
        "agent": [
            "नमस्कार {name}, मी VInfer कडून बोलत आहे.",
            "तुमच्या कर्जाचे नूतनीकरण बाकी आहे.",
            "धन्यवाद!",
        ],
        "customer": ["हो, सांगा.", "मला रस नाही.", "नंतर फोन करा."],
    },
    "en": {
        "agent": [
            "Hello {name}, this is Neuron calling on behalf of VInfer.",
            "Your loan renewal is due — may I take two minutes?",
            "We're offering ₹2,000 off the processing fee this month.",
            "I'll connect you to a senior advisor right away.",
            "Thank you, have a nice day!",
        ],
        "customer": [
            "Yes, go ahead.",
            "What's the interest rate?",
            "I'm not interested, thanks.",
            "Can you call me back tomorrow?",
            "Please don't call me again.",
            "I'd like to speak to a person.",
        ],
    },
}
SUMMARIES = {
    "interested": "Customer expressed interest in the loan renewal and asked for the new rates.",
    "not_interested": "Customer declined the renewal offer.",
    "callback": "Customer was busy and asked to be called back later.",
    "dnd": "Customer asked not to be called again; added to do-not-disturb.",
    "escalated": "Customer requested escalation to a human agent.",
    "voicemail": "Call reached voicemail; no conversation took place.",
    "not_reachable": "Contact could not be reached.",
}
MOOD = {
    "interested": 0.5,
    "escalated": 0.15,
    "callback": 0.1,
    "not_interested": -0.25,
    "dnd": -0.6,
    "voicemail": 0.0,
    "not_reachable": 0.0,
}


def _score(x: float) -> float:
    return round(max(-1.0, min(1.0, x)), 2)


def _bank(rng: random.Random, language: str) -> dict[str, list[str]]:
    lang = language.split("-")[0]
    if lang == "hi" and rng.random() < 0.5:
        lang = "hi-latn"
    return PHRASES.get(lang, PHRASES["en"])


def _segment(rng: random.Random, k: int, slot: float, speaker: str, text: str) -> dict[str, Any]:
    return {
        "speaker": speaker,
        "text": text,
        "start_time": round(k * slot + 0.15 * slot * rng.random(), 1),
        "end_time": round((k + 1) * slot - 0.15 * slot * rng.random(), 1),
        "confidence": round(rng.uniform(0.8, 0.99), 2),
    }


def make_transcript(seed: int, pos: int, c: Call) -> dict[str, Any]:
    """The completed transcript of call `c`, deterministic from (seed, pos)."""
    rng = random.Random(f"{seed}:{pos}")
    bank = _bank(rng, c.language)
    first_name = c.name.split()[0]
    n = min(rng.randint(2, 12), max(2, c.duration // 4))
    agent_only = rng.random() < 0.05
    slot = c.duration / n
    segments: list[dict[str, Any]] = []
    for k in range(n):
        speaker = "agent" if agent_only or k % 2 == 0 else "customer"
        if k == 0:
            text = bank["agent"][0].format(name=first_name)
        else:
            text = rng.choice(bank[speaker]).replace("{name}", first_name)
        segments.append(_segment(rng, k, slot, speaker, text))
    if rng.random() < EXTRA_SHARE:
        seg = rng.choice(segments)
        seg["words"] = len(str(seg["text"]).split())
    mood = MOOD.get(c.disposition, 0.0)
    overall = _score(mood + rng.gauss(0, 0.2))
    by_speaker = {
        "agent": _score(0.5 + rng.gauss(0, 0.15)),
        "customer": 0.0 if agent_only else _score(mood + rng.gauss(0, 0.25)),
    }
    out = _transcript(c, segments, SUMMARIES.get(c.disposition, "Call completed."))
    out["sentiment"] = {"overall": overall, "by_speaker": by_speaker}
    if rng.random() < EXTRA_SHARE:
        out["keywords"] = rng.sample(["loan", "renewal", "interest rate", "EMI", "callback"], 2)
    return out


def remake_transcript(seed: int, pos: int, c: Call, revision: int, n: int) -> dict[str, Any]:
    """Revision `revision` (1, 2, ...) of call `c`'s transcript, with exactly `n` segments
    alternating agent and customer; `sentiment.by_speaker` names only the speakers present."""
    rng = random.Random(f"{seed}:{pos}:revision:{revision}")
    bank = _bank(rng, c.language)
    first_name = c.name.split()[0]
    slot = c.duration / n if n else 0.0
    segments = []
    for k in range(n):
        speaker = "agent" if k % 2 == 0 else "customer"
        text = rng.choice(bank[speaker]).replace("{name}", first_name)
        segments.append(_segment(rng, k, slot, speaker, text))
    mood = MOOD.get(c.disposition, 0.0)
    summary = SUMMARIES.get(c.disposition, "Call completed.")
    out = _transcript(c, segments, f"{summary} (re-transcribed, revision {revision})")
    centre = {"agent": 0.5, "customer": mood}
    by_speaker = {s: _score(centre[s] + rng.gauss(0, 0.2)) for s in ("agent", "customer")}
    speakers = {s["speaker"] for s in segments}
    out["sentiment"] = {
        "overall": _score(mood + rng.gauss(0, 0.2)),
        "by_speaker": {s: v for s, v in by_speaker.items() if s in speakers},
    }
    return out


def _transcript(c: Call, segments: list[dict[str, Any]], summary: str) -> dict[str, Any]:
    return {
        "call_id": c.id,
        "job_id": c.job_id,
        "status": "completed",
        "language": c.language,
        "duration_seconds": c.duration,
        "transcript": segments,
        "summary": summary,
    }


# -- planted personal data (`Sandbox(plant_pii=True)`): what a redaction must find -------------


def planted_pii(seed: int, pos: int, c: Call) -> dict[str, str]:
    """The identifiers planted in call `c`'s transcript, deterministic from (seed, pos): each
    one a string no redacted warehouse may hold. `order` is a 16-digit number failing Luhn: a
    redaction must leave it."""
    rng = random.Random(f"{seed}:{pos}:pii")
    national = c.phone[3:] if c.phone.startswith("+91") else c.phone.lstrip("+")
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    pan = "".join(rng.choice(letters) for _ in range(3)) + "P" + rng.choice(letters)
    pan += f"{rng.randint(1000, 9999)}{rng.choice(letters)}"
    first = c.name.split()[0]
    return {
        "name": c.name,
        "first_name": first,
        "phone_spaced": f"+91 {national[:5]} {national[5:]}",
        "phone_national": f"{national[:5]} {national[5:]}",
        "phone_trunk": f"0{national}",
        "other_phone": f"{rng.choice('6789')}{rng.randint(10**8, 10**9 - 1)}",
        "email": f"customer{pos}.{rng.randint(10, 99)}@example.in",
        "pan": pan,
        "aadhaar": _with_check(f"{rng.randint(2, 9)}{rng.randint(10**9, 10**10 - 1)}", "v"),
        "card": _with_check(f"4{rng.randint(10**13, 10**14 - 1)}", "l"),
        "order": _with_check(f"7{rng.randint(10**13, 10**14 - 1)}", "l", fail=True),
    }


def _with_check(body: str, kind: str, fail: bool = False) -> str:
    """`body` and the check digit (Luhn "l", Verhoeff "v", python-stdnum's) that makes it
    valid, or the next digit, which makes it invalid."""
    from stdnum import luhn, verhoeff

    digit = (luhn if kind == "l" else verhoeff).calc_check_digit(body)
    return body + (str((int(digit) + 1) % 10) if fail else digit)


def plant_pii(transcript: dict[str, Any], planted: dict[str, str]) -> dict[str, Any]:
    """The transcript with the contact saying its identifiers (Hinglish, Hindi, Tamil), and the
    summary naming the contact and their number."""
    p = planted
    card = " ".join(p["card"][i : i + 4] for i in range(0, 16, 4))
    aadhaar = " ".join(p["aadhaar"][i : i + 4] for i in range(0, 12, 4))
    said = [
        f"Main {p['name']} bol raha hoon, mera number {p['phone_spaced']} hai.",
        f"WhatsApp {p['phone_national']} pe karo, ya landline se {p['phone_trunk']} pe.",
        f"मेरा पैन {p['pan']} है और आधार {aadhaar}, कार्ड {card}.",
        f"என் மின்னஞ்சல் {p['email']}, என் அண்ணன் எண் {p['other_phone']}.",
        f"Order number {p['order']} ka status batao, {p['first_name']} ko callback chahiye.",
    ]
    segments = list(transcript.get("transcript") or [])
    end = max((float(s.get("end_time") or 0) for s in segments), default=0.0)
    for k, text in enumerate(said):
        segments.append(
            {
                "speaker": "customer",
                "text": text,
                "start_time": round(end + k, 1),
                "end_time": round(end + k + 0.9, 1),
                "confidence": 0.9,
            }
        )
    summary = f"{transcript.get('summary')} {p['name']} ({p['phone_spaced']}) shared their PAN."
    return {**transcript, "transcript": segments, "summary": summary}
