"""Personal data, unit by unit: pseudonyms, check digits, the redaction of real-looking Hindi,
Tamil and Hinglish speech, the policy of a run, and the warehouse's record of it."""

from __future__ import annotations

import hashlib
import hmac
import random
from types import SimpleNamespace
from typing import Any

import duckdb
import pytest
from stdnum import verhoeff

from pipelines.neuron.api.errors import ConfigError
from pipelines.neuron.pii import (
    Contact,
    Privacy,
    e164,
    key_id,
    phone_hash,
    privacy_of,
    redact_text,
)
from pipelines.runner.outcomes import SyncAborted
from pipelines.warehouse.access import Warehouse
from pipelines.warehouse.privacy import bind, check_policy, erasure_key, record_erasure, remember

pytestmark = pytest.mark.unit

KEY = b"a-test-key-of-32-characters-long"
PRIYA = Contact.of("Priya Sharma", "+919876543210")
# Known-good and known-bad numbers from outside the code under test: python-stdnum's own examples
# (the docstrings of stdnum.in_.aadhaar and stdnum.in_.pan) and the card networks' published
# test numbers
AADHAAR_OK = "234123412346"
AADHAAR_NOT = {
    "234123412347": "a wrong check digit",
    "123412341234": "starts with 1",
    "222222222222": "a palindrome",
}
PAN_OK = ("ACUPA7085R", "AAPPV8261K")
PAN_NOT = {"ABMXA3211G": "no holder of kind X", "ACUPA0000R": "serial 0000"}
CARDS_OK = ("4111111111111111", "378282246310005", "5555555555554444")


def test_phone_hash_is_the_hmac_sha256_of_the_e164_number() -> None:
    expected = hmac.new(KEY, b"+919876543210", hashlib.sha256).hexdigest()
    assert phone_hash(KEY, "+919876543210") == expected
    assert phone_hash(KEY, "+91 98765-43210") == expected  # written with spaces: same number
    assert phone_hash(b"another-key-of-16-chars", "+919876543210") != expected
    assert len(key_id(KEY)) == 16 and key_id(KEY) not in KEY.hex()


def test_e164() -> None:
    assert e164("+91 (98765) 43210") == "+919876543210"
    for bad in ("9876543210", "+0123456789", "+91abc", "", None, 919876543210):
        assert e164(bad) is None


def test_published_identifiers_are_redacted_and_the_near_misses_stay() -> None:
    assert redact_text(f"aadhaar {AADHAAR_OK} hai") == "aadhaar <AADHAAR> hai"
    for number, why in AADHAAR_NOT.items():
        assert "<AADHAAR>" not in redact_text(f"aadhaar {number} hai"), why
    for number in PAN_OK:
        assert redact_text(f"PAN {number} hai") == "PAN <PAN> hai"
    for number, why in PAN_NOT.items():
        assert redact_text(f"PAN {number} hai") == f"PAN {number} hai", why
    for number in CARDS_OK:
        assert redact_text(f"card {number} hai") == "card <CARD> hai"
        wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
        assert redact_text(f"card {wrong} hai") == f"card {wrong} hai"


def test_every_aadhaar_with_a_right_verhoeff_digit_is_redacted() -> None:
    """Numbers whose check digit python-stdnum computed, said in groups of four: every one is
    redacted, and none of the nine with another last digit is (a hand-typed Verhoeff table with
    a wrong row let a share of real numbers through, and its tests agreed with it)."""
    rng = random.Random(31)
    for _ in range(300):
        body = f"{rng.randint(2, 9)}{rng.randint(10**9, 10**10 - 1)}"
        good = body + verhoeff.calc_check_digit(body)
        said = " ".join(good[i : i + 4] for i in (0, 4, 8))
        assert redact_text(f"mera aadhaar {said} hai") == "mera aadhaar <AADHAAR> hai", good
        for digit in set("0123456789") - {good[-1]}:
            assert "<AADHAAR>" not in redact_text(f"ref {body + digit} hai"), body + digit


@pytest.mark.parametrize(
    ("said", "redacted"),
    [
        # Hinglish: the contact's own number in the ways people say it
        (
            "Haan ji, mera number +91 98765 43210 hai, WhatsApp bhi isi pe hai.",
            "Haan ji, mera number <PHONE> hai, WhatsApp bhi isi pe hai.",
        ),
        ("98765 43210 pe call karo, 2 baje ke baad.", "<PHONE> pe call karo, 2 baje ke baad."),
        ("Landline se 09876543210 milao.", "Landline se <PHONE> milao."),
        ("Number hai 9 8 7 6 5 4 3 2 1 0.", "Number hai <PHONE>."),
        ("919876543210 pe SMS bhejo", "<PHONE> pe SMS bhejo"),
        ("+91-98765-43210", "<PHONE>"),
        # Hindi, with Devanagari digits
        ("मेरा नंबर ९८७६५ ४३२१० है।", "मेरा नंबर <PHONE> है।"),
        # another person's number (not the contact's): still a phone number
        ("Mere bhai ka number 98450 12345 hai.", "Mere bhai ka number <PHONE> hai."),
        ("என் அண்ணன் எண் 8056012345, அவரிடம் பேசுங்கள்.", "என் அண்ணன் எண் <PHONE>, அவரிடம் பேசுங்கள்."),
        # emails, written and spoken
        (
            "Mail kar dijiye priya.sharma92@gmail.com pe.",
            "Mail kar dijiye <EMAIL> pe.",
        ),
        (
            "Email hai priya dot sharma at the rate gmail dot com, note kar lo.",
            "Email hai <EMAIL>, note kar lo.",
        ),
        ("என் மின்னஞ்சல் ravi.k@yahoo.co.in தான்.", "என் மின்னஞ்சல் <EMAIL> தான்."),
        # PAN, Aadhaar, cards
        ("मेरा पैन कार्ड ABCPE1234F है।", "मेरा पैन कार्ड <PAN> है।"),
        ("PAN hai abcpe 1234 f", "PAN hai <PAN>"),
        ("आधार नंबर 2341 2341 2346 है।", "आधार नंबर <AADHAAR> है।"),
        ("ஆதார் எண் 234123412346.", "ஆதார் எண் <AADHAAR>."),
        ("Card number 4111 1111 1111 1111, expiry 12/27.", "Card number <CARD>, expiry 12/27."),
        ("கார்டு 4111-1111-1111-1111 தான்.", "கார்டு <CARD> தான்."),
    ],
)
def test_redacts_every_identifier_kind(said: str, redacted: str) -> None:
    assert redact_text(said, PRIYA) == redacted


@pytest.mark.parametrize(
    "said",
    [
        # numbers that are no identifier stay, with the words around them
        "Order number 4111 1111 1111 1112 ka status kya hai?",  # fails Luhn: no card
        "Reference 2341 2341 2345 hai.",  # 12 digits failing Verhoeff: no Aadhaar
        "Ticket 1234567 khul gaya hai.",
        "हमारे पास आपके लिए प्रोसेसिंग फ़ीस पर ₹2,000 की छूट है।",
        "Loan amount 5,00,000 hai aur EMI 12,345 rupaye.",
        "உங்கள் கடன் புதுப்பிப்பு நேரம் வந்துவிட்டது, 2026 மார்ச் 15 வரை.",
        "Meeting 10.30 baje, room 4B.",
        # the contact's name inside other words is not the name
        "Priyanka ji ne bola tha, Sharmaji ki dukaan pe milna.",
        "Aapki priyatam yojana yahi hai.",
    ],
)
def test_leaves_what_is_no_personal_data(said: str) -> None:
    assert redact_text(said, PRIYA) == said


def test_the_contacts_name_as_said() -> None:
    assert redact_text("Namaste Priya ji, main VInfer se bol raha hoon.", PRIYA) == (
        "Namaste <NAME> ji, main VInfer se bol raha hoon."
    )
    assert redact_text("PRIYA SHARMA se baat karni hai", PRIYA) == "<NAME> se baat karni hai"
    assert redact_text("Sharma ji, Priyanka nahi, Priya.", PRIYA) == (
        "<NAME> ji, Priyanka nahi, <NAME>."
    )
    # a name in its own script; the name inside a longer word (a vowel sign joins it) stays
    ram = Contact.of("राम कुमार", "+919000000001")
    assert redact_text("राम जी, रामायण पढ़ी?", ram) == "<NAME> जी, रामायण पढ़ी?"
    murugan = Contact.of("முருகன் சுப்பிரமணியம்", "+919000000002")
    assert redact_text("வணக்கம் முருகன், முருகனே வாருங்கள்", murugan) == ("வணக்கம் <NAME>, முருகனே வாருங்கள்")
    # titles are not the name; a name inside an email goes with the email
    doctor = Contact.of("Dr. Anil Rao", "+919000000003")
    assert redact_text("Dr. Anil, anil.rao@x.in", doctor) == "Dr. <NAME>, <EMAIL>"


def test_only_strings_are_redacted() -> None:
    assert redact_text(None, PRIYA) is None
    assert redact_text("", PRIYA) == ""
    assert redact_text(12, PRIYA) == 12


def test_privacy_keep_changes_nothing() -> None:
    row = {"id": "c1", "contact_phone": "+919876543210", "contact_name": "Priya Sharma"}
    assert Privacy().call(row) is row
    rows = ({"summary": "Priya"}, [{"text": "98765 43210"}], [])
    assert Privacy().transcript(row, rows) is rows


def test_privacy_pseudonymize_rewrites_a_fetched_call() -> None:
    privacy = Privacy("pseudonymize", KEY)
    call = {
        "id": "c1",
        "contact_phone": "+919876543210",
        "contact_name": "Priya Sharma",
        "contact_email": "p@x.in",  # a contact field the API added later
        "status": "completed",
    }
    head = {"call_id": "c1", "summary": "Priya Sharma asked for a callback on 98765 43210."}
    segments = [{"call_id": "c1", "segment_index": 0, "text": "Priya ji, PAN ABCPE1234F?"}]
    fetched = SimpleNamespace(call=call, transcript=(head, segments, []))
    assert privacy.screen(fetched)
    assert fetched.call == {
        "id": "c1",
        "contact_phone": phone_hash(KEY, "+919876543210"),
        "contact_name": None,
        "contact_email": None,
        "status": "completed",
    }
    assert call["contact_name"] == "Priya Sharma"  # the source's own dict is left alone
    new_head, new_segments, _ = fetched.transcript
    assert new_head["summary"] == "<NAME> asked for a callback on <PHONE>."
    assert new_segments[0]["text"] == "<NAME> ji, PAN <PAN>?"


def test_erased_contacts_are_suppressed_under_both_policies() -> None:
    salt = b"a-warehouse-salt-of-some-length"
    for privacy in (Privacy(), Privacy("pseudonymize", KEY)):
        privacy.erased = {salt: frozenset({phone_hash(salt, "+919876543210")})}
        assert privacy.suppressed({"contact": {"phone": "+919876543210"}})  # a list item
        assert privacy.suppressed({"contact_phone": "+919876543210"})  # a calls row
        assert not privacy.suppressed({"contact_phone": "+919876543211"})
        assert not privacy.screen(SimpleNamespace(call={"contact_phone": "+919876543210"}))


def test_settings_of_the_policy() -> None:
    assert privacy_of().policy == "keep"
    assert privacy_of("pseudonymize", "k" * 16).key == b"k" * 16
    assert privacy_of("Pseudonymize", "k" * 16, "true").archive_recordings
    with pytest.raises(ConfigError, match="SOURCES__NEURON__PII_KEY"):
        privacy_of("pseudonymize")
    with pytest.raises(ConfigError, match="keep or pseudonymize"):
        privacy_of("hash")
    with pytest.raises(ConfigError, match="too short"):
        privacy_of("pseudonymize", "short")


# -- the warehouse's record ----------------------------------------------------------------------


@pytest.fixture
def wh() -> Warehouse:
    conn = duckdb.connect()
    conn.execute("create schema neuron")
    warehouse = Warehouse.on(conn)
    warehouse.__enter__()
    return warehouse


def test_a_policy_switch_is_refused_unless_a_full_refresh(wh: Warehouse) -> None:
    keep, pseudo = Privacy(), Privacy("pseudonymize", KEY)
    check_policy(wh, pseudo)  # nothing loaded yet: any policy
    wh.execute("create table neuron.calls (id varchar)", "insert into neuron.calls values ('c1')")
    with pytest.raises(SyncAborted, match="--full-refresh"):
        check_policy(wh, pseudo)  # loaded in clear before policies were recorded
    check_policy(wh, keep)
    remember(wh, pseudo)
    check_policy(wh, pseudo)
    with pytest.raises(SyncAborted, match="PII=pseudonymize") as refused:
        check_policy(wh, keep)
    assert "--full-refresh" in str(refused.value)
    check_policy(wh, keep, full_refresh=True)
    with pytest.raises(SyncAborted, match="another key") as rotated:
        check_policy(wh, Privacy("pseudonymize", b"another-key-of-16-chars"))
    assert KEY.decode() not in str(rotated.value)


def test_erasures_under_the_salt_or_the_key(wh: Warehouse) -> None:
    salt = erasure_key(wh, Privacy())  # no PII key: the warehouse's own salt, made once
    assert erasure_key(wh, Privacy()) == salt
    assert erasure_key(wh, Privacy("pseudonymize", KEY)) == KEY
    record_erasure(wh, phone_hash(salt, "+919876543210"), salt, 2)
    privacy = Privacy()
    bind(wh, privacy)
    assert privacy.suppressed({"contact_phone": "+919876543210"})
    record_erasure(wh, phone_hash(KEY, "+919876543211"), KEY, 1)
    with pytest.raises(SyncAborted, match=key_id(KEY)):
        bind(wh, Privacy())  # an erasure under a key this run lacks would let them back in
    privacy = Privacy("pseudonymize", KEY)
    bind(wh, privacy)
    assert privacy.suppressed({"contact_phone": "+919876543211"})
    assert privacy.suppressed({"contact_phone": "+919876543210"})
    _, rows = wh.query("select contact_hash from neuron._pii_erasures")
    assert all("9876543210" not in row[0] for row in rows)


# -- the audit of a warehouse with erased contacts, pseudonymized ----------------------------------


@pytest.mark.parametrize("calls", [30, 150])  # a day within one list page, a bigger one
def test_the_audit_sees_no_drift_in_erased_or_pseudonymized_calls(calls: int) -> None:
    import asyncio

    from pipelines.neuron.audit import audit_window

    from .fakes import DAY, UNTIL, FakeApi, MemoryReader, calls_of_day, client_of, stored

    api_calls = calls_of_day(calls)
    erased = "+919811111111"
    for call in api_calls[:10]:
        call["contact"] = {"phone": erased, "name": "Ravi Kumar"}
    privacy = Privacy("pseudonymize", KEY, erased={KEY: frozenset({phone_hash(KEY, erased)})})
    reader = MemoryReader(api_calls[10:])  # forgotten: the warehouse no longer has them
    reader.rows = {key: privacy.call(row) for key, row in reader.rows.items()}

    def audit(privacy: Privacy) -> Any:
        async def go() -> Any:
            async with client_of(FakeApi(api_calls, {})) as client:
                held = stored(reader, DAY, DAY)
                return await audit_window(client, held, DAY, DAY, until=UNTIL, privacy=privacy)

        return asyncio.run(go())

    (day,) = audit(privacy).days
    assert not day.drift and (day.api, day.warehouse) == (calls - 10, calls - 10)
    (day,) = audit(Privacy()).days  # the same warehouse seen without the policy: all differs
    assert day.drift and day.missing == 10 and day.changed == calls - 10
