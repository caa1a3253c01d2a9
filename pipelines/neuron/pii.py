"""Personal data: the policy (`SOURCES__NEURON__PII`), pseudonyms, transcript redaction, erasures.

Under `pseudonymize`, rows are rewritten in the source, before dlt sees them:
- `contact_phone` becomes the lowercase hex HMAC-SHA256 of the E.164 number under
  `SOURCES__NEURON__PII_KEY` (`phone_hash`), so one number is one value in every table and view,
  and a team holding the key computes the same value; every other `contact_*` field is NULL;
- segment text and the summary keep their words, with typed placeholders where personal data
  was (`redact_text`): the contact's own name and number as people say them, other phone
  numbers, emails (also spoken: "at the rate ... dot com"), PAN, Aadhaar and card numbers, each
  checked by python-stdnum (formats, Verhoeff and Luhn check digits: the `pii` extra). A number
  failing its check digit stays: an order number is no card.

`REDACTION_VERSION` names what the redaction finds: a release that finds more raises it, and
the warehouse's stored texts are screened again (pipelines/privacy.py).

Under both policies, calls of an erased contact (`neuron-calls forget`) are dropped: the run
holds their keyed hashes (`Privacy.erased`), never the numbers.
"""

from __future__ import annotations

import functools
import hmac
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from .api.errors import ConfigError

try:  # the `pii` extra; without it `pseudonymize` is refused (`privacy_of`)
    from stdnum import luhn
    from stdnum.in_ import aadhaar, pan
except ImportError:  # pragma: no cover - a `keep`-only install
    luhn = aadhaar = pan = None  # type: ignore[assignment]

Row = dict[str, Any]

KEEP = "keep"
PSEUDONYMIZE = "pseudonymize"
POLICIES = (KEEP, PSEUDONYMIZE)
KEY_SETTING = "SOURCES__NEURON__PII_KEY"
POLICY_SETTING = "SOURCES__NEURON__PII"
RECORDINGS_SETTING = "SOURCES__NEURON__PII_ARCHIVE_RECORDINGS"
MIN_KEY_CHARS = 16
_KEY_ID_LABEL = b"neuron-calls pii key id"
# 1: the releases before it was recorded (a hand-typed Verhoeff table let valid Aadhaar numbers
# through); 2: python-stdnum's checks
REDACTION_VERSION = 2

PHONE, NAME, EMAIL, PAN, AADHAAR, CARD = (
    "<PHONE>",
    "<NAME>",
    "<EMAIL>",
    "<PAN>",
    "<AADHAAR>",
    "<CARD>",
)

_E164 = re.compile(r"\+[1-9]\d{6,14}")
_PHONE_PUNCTUATION = re.compile(r"[\s().\-\u00a0]")


# -- pseudonyms ----------------------------------------------------------------------------------


def e164(value: Any) -> str | None:
    """The number as E.164 (`+919876543210`: spaces, dots, dashes and brackets dropped), or None
    when it is not one."""
    if not isinstance(value, str):
        return None
    if value[1:].isdigit() and value[:1] == "+" and value[1:2] != "0" and 8 <= len(value) <= 16:
        return value  # the API's own form: no regex
    compact = _PHONE_PUNCTUATION.sub("", value)
    return compact if _E164.fullmatch(compact) else None


def phone_hash(key: bytes, phone: str) -> str:
    """Lowercase hex HMAC-SHA256 of the number (E.164 when it is one, else as given)."""
    return hmac.digest(key, (e164(phone) or phone).encode(), "sha256").hex()


def key_id(key: bytes) -> str:
    """A short name of the key, never the key: the HMAC of a fixed label (16 hex digits)."""
    return hmac.digest(key, _KEY_ID_LABEL, "sha256").hex()[:16]


# -- redaction of text ---------------------------------------------------------------------------

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# spoken: "priya dot sharma at the rate gmail dot com"
_SPOKEN_EMAIL = re.compile(
    r"(?<!\w)\w+(?:\s+dot\s+\w+)*\s+at(?:\s+the\s+rate(?:\s+of)?)?\s+\w+"
    r"(?:\s+dot\s+\w+)*\s+dot\s+(?:com|in|org|net|co)(?!\w)",
    re.IGNORECASE,
)
# a run of digits in groups (spaces, dashes, dots between), perhaps after a +; one character
# class, so the scan skips ahead fast (an alternation tried at every position cost 3x)
_DIGIT_RUN = re.compile(r"\+?\d[\d \u00a0.\-]*")
# PAN: five letters, four digits, a letter, perhaps spaced; looked for around every four digits a
# run finds, then checked by stdnum (the holder's kind, the serial)
_PAN = re.compile(r"[A-Za-z]{5}\s?[0-9]{4}\s?[A-Za-z]")
# what a text holds before any of the above can match: most speech holds none of it, and this
# one search costs a tenth of the scans it spares
_MAYBE_NUMBER = re.compile(r"\d(?:\d{3}|[ \u00a0.\-]+\d)")
_DIGIT_GROUP = re.compile(r"\d+")
_MIN_DIGITS, _MAX_DIGITS = 8, 19
# words of a contact's name that are titles, not the name
_TITLES = frozenset({"mr", "mrs", "ms", "dr", "shri", "sri", "smt", "ji"})


@dataclass(frozen=True)
class Contact:
    """What a transcript is checked against: the contact's name (whole, and each word) and
    national number with the prefixes people say it with."""

    names: tuple[str, ...] = ()  # lowercased, longest first
    national: str = ""  # the digits after the country code
    prefixes: frozenset[str] = frozenset()  # "", "0", "91", "091", "0091"

    @classmethod
    def of(cls, name: Any, phone: Any) -> Contact:
        names: set[str] = set()
        if isinstance(name, str) and name.strip():
            words = [w for w in (w.strip(".,") for w in name.split()) if w]
            names.update(w.lower() for w in words if len(w) > 1 and w.lower() not in _TITLES)
            names.add(" ".join(words).lower())
        number = e164(phone)
        national, prefixes = "", frozenset[str]()
        if number is not None:
            code = _country_code(number)
            national = number[1 + len(code) :]
            prefixes = frozenset({"", "0", code, "0" + code, "00" + code})
        return cls(tuple(sorted(names, key=len, reverse=True)), national, prefixes)

    def owns(self, digits: str) -> bool:
        """The contact's own number, said with or without a trunk or country prefix."""
        n = self.national
        return bool(n) and digits.endswith(n) and digits[: len(digits) - len(n)] in self.prefixes


def _country_code(number: str) -> str:
    """The country calling code of an E.164 number: the 1 to 3 digits after the + that are one
    (phonenumbers' list when installed; else 91 for Indian numbers, the first digit otherwise:
    only used to recognise the prefixes people say)."""
    codes = _country_codes()
    if not codes:
        return "91" if number.startswith("+91") else number[1:2]
    return next((number[1:n] for n in (2, 3, 4) if int(number[1:n]) in codes), number[1:2])


@functools.cache
def _country_codes() -> frozenset[int]:
    try:
        from phonenumbers import COUNTRY_CODE_TO_REGION_CODE
    except ImportError:
        return frozenset()
    return frozenset(COUNTRY_CODE_TO_REGION_CODE)


def redact_text(text: Any, contact: Contact = Contact()) -> Any:
    """`text` with typed placeholders where personal data was; anything but a string as is."""
    if not isinstance(text, str) or not text:
        return text
    lowered = text.lower()
    spans = list(_name_spans(text, lowered, contact.names))
    if "@" in text:
        spans.extend((m.start(), m.end(), EMAIL) for m in _EMAIL.finditer(text))
    if "dot" in lowered:
        spans.extend((m.start(), m.end(), EMAIL) for m in _SPOKEN_EMAIL.finditer(text))
    if _MAYBE_NUMBER.search(text):
        for run in _DIGIT_RUN.finditer(text):
            start, end = run.start(), run.start() + len(run.group().rstrip(" \u00a0.-"))
            if end - start == 4:
                spans.extend(_pan_span(text, start, end))
            elif start == 0 or not _is_word_char(text[start - 1]):  # not digits inside a word
                spans.extend(_number_spans(text, start, end, contact))
    if not spans:
        return text
    spans.sort(key=lambda s: (s[0], -s[1]))
    out, at = [], 0
    for start, end, placeholder in spans:
        if start < at:
            continue  # inside a span already replaced (a name inside an email)
        out.append(text[at:start])
        out.append(placeholder)
        at = end
    out.append(text[at:])
    return "".join(out)


def _is_word_char(char: str) -> bool:
    """Letters, digits and the combining marks of Indic scripts (a vowel sign is part of its
    word; Python's \\b would split a Devanagari or Tamil word there)."""
    return char.isalnum() or char == "_" or unicodedata.category(char)[0] == "M"


def _name_spans(text: str, lowered: str, names: tuple[str, ...]) -> Any:
    if not names:
        return
    if len(lowered) != len(text):  # a letter whose lowercase is longer: compare as written
        lowered = text
    for name in names:
        start = lowered.find(name)
        while start >= 0:
            end = start + len(name)
            before = text[start - 1] if start else " "
            after = text[end] if end < len(text) else " "
            if not _is_word_char(before) and not _is_word_char(after):
                yield start, end, NAME
            start = lowered.find(name, start + 1)


def _ascii_digits(run: str) -> str:
    return run if run.isascii() else "".join(str(unicodedata.decimal(c)) for c in run)


def _pan_span(text: str, start: int, end: int) -> list[tuple[int, int, str]]:
    """The PAN whose four digits are text[start:end], if any (letters, perhaps a space apart)."""
    for before in (5, 6):
        for after in (1, 2):
            first, last = start - before, end + after
            if (
                first >= 0
                and _PAN.fullmatch(text, first, last)
                and pan.is_valid(text[first:last])
                and (first == 0 or not _is_word_char(text[first - 1]))
                and (last == len(text) or not _is_word_char(text[last]))
            ):
                return [(first, last, PAN)]
    return []


def _number_spans(text: str, start: int, end: int, contact: Contact) -> list[tuple[int, int, str]]:
    """The identifiers in a run of digit groups: from each group on, the longest run of whole
    groups that is one ("call 98765 43210 2 baje": the number, and the hour stays)."""
    if end - start < _MIN_DIGITS:
        return []
    groups = [
        (g.start(), g.end(), _ascii_digits(g.group()))
        for g in _DIGIT_GROUP.finditer(text, start, end)
    ]
    if sum(len(g[2]) for g in groups) < _MIN_DIGITS:
        return []
    spans = []
    i = 0
    while i < len(groups):
        found = None
        for j in range(len(groups), i, -1):
            digits = "".join(g[2] for g in groups[i:j])
            if len(digits) > _MAX_DIGITS:
                continue
            if len(digits) < _MIN_DIGITS:
                break
            first = groups[i][0] - (1 if i == 0 and text[start] == "+" else 0)
            kind = classify(text[first : groups[j - 1][1]], digits, contact)
            if kind is not None:
                found = (first, groups[j - 1][1], kind), j
                break
        if found is None:
            i += 1
        else:
            spans.append(found[0])
            i = found[1]
    return spans


def classify(raw: str, digits: str, contact: Contact = Contact()) -> str | None:
    """The placeholder for a number said as `raw` (its digits `digits`), or None: not personal."""
    if contact.owns(digits):
        return PHONE
    plus = raw.startswith("+")
    if plus and _valid_phone(raw):
        return PHONE
    if len(digits) == 12 and not plus and aadhaar.is_valid(digits):
        return AADHAAR
    if 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn.is_valid(digits):
        return CARD
    if plus or len(digits) > 13:  # no phone number is that long said without its +
        return None
    if _INDIAN_MOBILE.fullmatch(digits) or _valid_phone(digits):
        return PHONE
    return None


# an Indian mobile number, with the prefixes people say: no need to ask phonenumbers
_INDIAN_MOBILE = re.compile(r"(?:0|91|091|0091)?[6-9]\d{9}")


@functools.lru_cache(maxsize=4096)
def _valid_phone(raw: str) -> bool:
    """A valid number for phonenumbers (an Indian one when it has no country code); without
    the library (the `pii` extra), none but the Indian mobile numbers found before."""
    if len(raw) > 20:
        return False
    try:
        import phonenumbers
    except ImportError:
        return False
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(raw, "IN")))
    except phonenumbers.NumberParseException:
        return False


# -- the policy of a run -------------------------------------------------------------------------


@dataclass
class Privacy:
    """A run's personal data policy, its key, and the erased contacts it must not load.

    `erased` maps a key to the HMACs of erased contacts' numbers under it (the key of the
    warehouse's erasures: PII_KEY, or the warehouse's own salt; see docs/pii.md)."""

    policy: str = KEEP
    key: bytes | None = None
    archive_recordings: bool = False
    erased: dict[bytes, frozenset[str]] = field(default_factory=dict)

    @property
    def pseudonymize(self) -> bool:
        return self.policy == PSEUDONYMIZE

    @property
    def key_id(self) -> str | None:
        return key_id(self.key) if self.key is not None else None

    def suppressed(self, call: Row | None) -> bool:
        """A calls row or list item of an erased contact."""
        if not self.erased or call is None:
            return False
        phone = call.get("contact_phone")
        contact = call.get("contact")
        if phone is None and isinstance(contact, dict):
            phone = contact.get("phone")
        if not isinstance(phone, str):
            return False
        return any(phone_hash(key, phone) in hashes for key, hashes in self.erased.items())

    def call(self, row: Row) -> Row:
        """A calls row as the policy loads it (a new dict; the given one is left alone)."""
        if not self.pseudonymize:
            return row
        assert self.key is not None
        out = {k: (None if k.startswith("contact_") else v) for k, v in row.items()}
        phone = row.get("contact_phone")
        out["contact_phone"] = phone_hash(self.key, phone) if isinstance(phone, str) else None
        return out

    def transcript(
        self, call: Row | None, rows: tuple[Row, list[Row], list[Row]]
    ) -> tuple[Row, list[Row], list[Row]]:
        """A transcript's rows with the PII in its summary and segment texts redacted, checked
        against `call`'s contact (its calls row, before `call()`)."""
        if not self.pseudonymize:
            return rows
        head, segments, speakers = rows
        call = call or {}
        contact = Contact.of(call.get("contact_name"), call.get("contact_phone"))
        head = {**head, "summary": redact_text(head.get("summary"), contact)}
        segments = [{**s, "text": redact_text(s.get("text"), contact)} for s in segments]
        return head, segments, speakers

    def screen(self, fetched: Any) -> bool:
        """Rewrite a fetched call's rows under the policy (`extract.Fetched`: `call`,
        `transcript`); False when the call is an erased contact's and must not be loaded."""
        if self.suppressed(fetched.call):
            return False
        if self.pseudonymize:
            if fetched.transcript is not None:
                fetched.transcript = self.transcript(fetched.call, fetched.transcript)
            if fetched.call is not None:
                fetched.call = self.call(fetched.call)
        return True


KEPT = Privacy()  # the default of functions that take a policy: keep, no erasure; never changed


def privacy_of(
    pii: str | None = KEEP, pii_key: Any = None, pii_archive_recordings: Any = False
) -> Privacy:
    """The policy from its settings; a wrong one is a ConfigError naming the setting."""
    policy = (pii or KEEP).strip().lower()
    if policy not in POLICIES:
        raise ConfigError(f"{POLICY_SETTING} must be keep or pseudonymize, not {pii!r}")
    key = str(pii_key).encode() if pii_key not in (None, "") else None
    if policy == PSEUDONYMIZE and aadhaar is None:
        raise ConfigError(
            f"{POLICY_SETTING}=pseudonymize needs the pii extra (python-stdnum checks Aadhaar, "
            "PAN and card numbers): pip install 'neuron-calls[pii]'"
        )
    if policy == PSEUDONYMIZE and key is None:
        raise ConfigError(
            f"{POLICY_SETTING}=pseudonymize needs {KEY_SETTING}: a secret of at least "
            f"{MIN_KEY_CHARS} characters (e.g. `openssl rand -hex 32`), kept like a password"
        )
    if key is not None and len(key) < MIN_KEY_CHARS:
        raise ConfigError(f"{KEY_SETTING} is too short: use at least {MIN_KEY_CHARS} characters")
    archive = str(pii_archive_recordings).strip().lower() in ("1", "true", "yes", "on")
    return Privacy(policy, key, archive)
