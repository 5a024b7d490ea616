"""Unit tests of the HL7 v2 gateway's pure parts: ER7 parsing and escapes, MLLP framing, TS values,
ACKs, PID → Patient and the CDA document an MDM/ORU carries. No sockets, no store."""

from __future__ import annotations

import base64
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_server.french.fr_core import CS_V2_0445, EXT_IDENTITY_RELIABILITY
from fhir_server.synthetic_v2 import encoded, mdm, msh, patient_of
from fhir_server.synthetic_v2 import pid as pid_segment
from hl7v2.ack import (
    ACCEPT,
    DATA_TYPE_ERROR,
    ERROR,
    REJECT,
    REQUIRED_FIELD_MISSING,
    Location,
    V2Error,
    V2Problem,
    acknowledge,
    readable_header,
)
from hl7v2.document import carried_document
from hl7v2.er7 import DEFAULT, Delimiters, Er7Error, escape, parse, unescape
from hl7v2.mllp import FrameReader, TooLarge, frame
from hl7v2.patient import AUTHORITY, read_pid
from hl7v2.values import fhir_date, fhir_date_time

VT, FS, CR = b"\x0b", b"\x1c", b"\r"
NIR_TEST, NIR, NIA = "1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9"
ALT = Delimiters("#", "$", "%", "\\", "*")  # MSH#$%\*
ALT_BANG = Delimiters("#", "$", "%", "!", "*")  # a non-backslash escape character too


def header(d: Delimiters = DEFAULT, *, charset: str | None = None, control: str = "CTRL-1") -> str:
    """An MSH written with ``d``; MSH-18 only when ``charset`` is given."""
    c = d.component
    fields = ["MSH", d.encoding_characters, "APP" + c + "SUB", "FAC", "MES", "MES", "20261124101500", "",
              c.join(["ADT", "A04", "ADT_A01"]), control, "P", "2.5"]
    if charset is not None:
        fields += ["", "", "", "", "FRA", charset]
    return d.field.join(fields)


def message(segments: list[str], *, codec: str = "utf-8", sep: str = "\r") -> bytes:
    return (sep.join(segments) + sep).encode(codec)


# --- ER7: delimiters and MSH numbering -------------------------------------------------------------


def test_msh_numbering_default_delimiters():
    m = parse(message([header()]))
    assert m.delimiters == DEFAULT
    assert m.msh(1) == "|"
    assert m.msh.raw(2) == "^~\\&"
    assert m.msh.field(2).raw == "^~\\&"  # MSH-2 is not split into repetitions
    assert m.msh(3) == "APP" and m.msh(3, 2) == "SUB"
    assert (m.msh(9, 1), m.msh(9, 2), m.msh(9, 3)) == ("ADT", "A04", "ADT_A01")
    assert m.msh(10) == "CTRL-1" == m.control_id
    assert m.event == ("ADT", "A04")
    assert m.version == "2.5"
    assert m.sender == "APP^SUB|FAC"
    assert m.msh.size == 12


@pytest.mark.parametrize("d", [ALT, ALT_BANG], ids=["hash-dollar-backslash", "hash-dollar-bang"])
def test_non_default_delimiters_read_from_msh1_msh2(d):
    pid = d.field.join(["PID", "1", "", d.repetition.join([
        d.component.join(["123", "", "", d.subcomponent.join(["CHU", "1.2.3", "ISO"]), "PI"]),
        d.component.join(["456", "", "", "X", "AN"])]), "", d.component.join(["DUPONT", "JEAN"])])
    m = parse(message([header(d), pid]))
    assert m.delimiters == d
    assert m.msh(1) == "#"
    assert m.msh.raw(2) == d.encoding_characters
    assert m.event == ("ADT", "A04") and m.control_id == "CTRL-1"
    assert m.msh(3, 2) == "SUB"
    reps = m.first("PID").repetitions(3)
    assert [r.get(1) for r in reps] == ["123", "456"]
    assert (reps[0].get(4, 1), reps[0].get(4, 2), reps[0].get(4, 3)) == ("CHU", "1.2.3", "ISO")
    assert reps[1].get(5) == "AN"
    assert m.first("PID")(5, 2) == "JEAN"


def test_non_default_delimiters_parse_like_the_default_message():
    def build(d: Delimiters) -> bytes:
        e = d.escape
        pid = d.field.join(["PID", "1", "", d.component.join(["1", "", "", d.subcomponent.join(["A", "1.2"])]),
                            "", d.repetition.join([d.component.join(["DUP" + e + "F" + e + "ONT", "J"]),
                                                   d.component.join(["X", "Y"])])])
        return message([header(d), pid])

    default, alternative = parse(build(DEFAULT)), parse(build(ALT))
    for seg_d, seg_a in zip(default.segments, alternative.segments, strict=True):
        assert seg_d.name == seg_a.name and seg_d.size == seg_a.size
        for n in range(3, seg_d.size + 1):
            reps_d, reps_a = seg_d.repetitions(n), seg_a.repetitions(n)
            assert len(reps_d) == len(reps_a)
            for rd, ra in zip(reps_d, reps_a, strict=True):
                for c in range(1, 5):
                    for s in range(1, 3):
                        # \F\ is each message's own field separator
                        assert rd.get(c, s).replace("|", "#") == ra.get(c, s)
    assert default.first("PID")(5) == "DUP|ONT"
    assert alternative.first("PID")(5) == "DUP#ONT"


def test_repetitions_components_subcomponents():
    pid = "PID|1||a^^^NS&1.2.250&ISO^PI~b^^^X^MR||x\\S\\y^z&w\\T\\v|"
    m = parse(message([header(), pid]))
    seg = m.first("PID")
    reps = seg.repetitions(3)
    assert len(reps) == 2
    assert reps[0].get(4, 2) == "1.2.250" and reps[0].get(5) == "PI"
    assert reps[1].get(1) == "b" and reps[1].get(4) == "X"
    assert reps[0].get(9) == "" and reps[0].get(4, 9) == ""  # beyond the last: empty
    assert seg(5, 1) == "x^y"  # an escaped separator does not split
    assert seg(5, 2, 1) == "z" and seg(5, 2, 2) == "w&v"
    assert seg.raw(5) == "x\\S\\y^z&w\\T\\v"
    assert seg.field(4).raw == "" and not seg.field(99)
    assert seg.repetitions(99) == []


# --- ER7: escapes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "text"), [
    ("\\F\\", "|"), ("\\S\\", "^"), ("\\T\\", "&"), ("\\R\\", "~"), ("\\E\\", "\\"),
    ("\\X41\\", "A"), ("\\X4142\\", "AB"), ("\\X\\", ""), ("\\.br\\", "\n"), ("\\H\\", ""), ("\\N\\", ""),
    ("a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\.br\\g", "a|b^c&d~e\\f\ng"),
    ("\\X4\\", "\\X4\\"), ("\\XZZ\\", "\\XZZ\\"), ("\\Q\\", "\\Q\\"),  # malformed: kept as sent
])
def test_every_escape_sequence(raw, text):
    assert unescape(raw) == text


def test_escape_sequences_use_the_message_delimiters():
    assert unescape("!F!!S!!T!!R!!E!!.br!!X41!", ALT_BANG) == "#$*%!\nA"
    assert unescape("\\F\\\\S\\\\T\\\\R\\", ALT) == "#$*%"
    pid = "PID#1#a!F!b!S!c!T!d!R!e!E!f"
    assert parse(message([header(ALT_BANG), pid])).first("PID")(2) == "a#b$c*d%e!f"


def test_escape_output():
    assert escape("a|b^c&d~e\\f") == "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f"
    assert escape("l1\nl2\r\nl3") == "l1\\.br\\l2\\.br\\l3"
    assert escape("a#b$c", ALT_BANG) == "a!F!b!S!c"


@settings(max_examples=300)
@given(st.text())
def test_escape_unescape_round_trip(text):
    # \.br\ is HL7's only line break: CR and CRLF come back as LF
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    assert unescape(escape(text)) == normalised
    assert unescape(escape(text, ALT_BANG), ALT_BANG) == normalised
    for delimiter in "|^&~\r\n":
        assert delimiter not in escape(text)


DELIMITER_CHARS = sorted(set(string.punctuation) - {"-", "/", ".", "_"})  # used in the header's values


@st.composite
def delimiter_sets(draw) -> Delimiters:
    chars = draw(st.permutations(DELIMITER_CHARS))[:5]
    return Delimiters(*chars)


LEAF = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=8)
STRUCTURE = st.lists(  # segments of fields of repetitions of components of subcomponents
    st.lists(st.lists(st.lists(st.lists(LEAF, min_size=1, max_size=2), min_size=1, max_size=3),
                      min_size=1, max_size=2), min_size=1, max_size=4), min_size=1, max_size=3)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(delimiter_sets(), STRUCTURE)
def test_any_delimiters_any_text_round_trip_through_parse(d, structure):
    lines = [header(d)]
    for n, fields in enumerate(structure):
        lines.append(d.field.join([f"Z{n:02d}", *(
            d.repetition.join(d.component.join(d.subcomponent.join(escape(leaf, d) for leaf in comp)
                                               for comp in rep) for rep in field) for field in fields)]))
    m = parse(message(lines))
    assert m.delimiters == d and m.control_id == "CTRL-1" and m.event == ("ADT", "A04")
    for n, fields in enumerate(structure):
        seg = m.segments[n + 1]
        assert seg.name == f"Z{n:02d}"
        for f, field in enumerate(fields, 1):
            reps = seg.repetitions(f)
            if reps:
                assert len(reps) == len(field)
            for r, rep in enumerate(field):
                got = reps[r] if reps else None
                for c, comp in enumerate(rep, 1):
                    for s, leaf in enumerate(comp, 1):
                        assert (got.get(c, s) if got is not None else "") == leaf


# --- ER7: character sets -----------------------------------------------------------------------------

PID_ACCENTED = "PID|1||1^^^X^PI||ÉLOÏSE^François"


@pytest.mark.parametrize(("charset", "codec", "expected_codec"), [
    ("8859/1", "iso-8859-1", "iso-8859-1"),
    ("UNICODE UTF-8", "utf-8", "utf-8"),
    ("8859/15", "iso-8859-15", "iso-8859-15"),
    (None, "utf-8", "utf-8"),  # no MSH-18, valid UTF-8
    (None, "iso-8859-1", "iso-8859-1"),  # no MSH-18, not UTF-8: Latin-1
])
def test_charsets(charset, codec, expected_codec):
    m = parse(message([header(charset=charset), PID_ACCENTED], codec=codec))
    assert m.codec == expected_codec
    assert m.charset == (charset or "")
    assert m.first("PID")(5, 1) == "ÉLOÏSE" and m.first("PID")(5, 2) == "François"


def test_charset_8859_15_euro():
    m = parse(message([header(charset="8859/15"), "NTE|1||100 €"], codec="iso-8859-15"))
    assert m.first("NTE")(3) == "100 €"


def test_charset_first_repetition_of_msh18():
    m = parse(message([header(charset="8859/1~UNICODE UTF-8"), PID_ACCENTED], codec="iso-8859-1"))
    assert m.codec == "iso-8859-1" and m.first("PID")(5) == "ÉLOÏSE"


def test_unknown_charset_is_an_error():
    with pytest.raises(Er7Error, match="KLINGON"):
        parse(message([header(charset="KLINGON"), PID_ACCENTED]))


@pytest.mark.parametrize(("charset", "codec"), [("UNICODE UTF-8", "iso-8859-1"), ("ASCII", "utf-8")])
def test_bytes_invalid_for_the_declared_charset(charset, codec):
    with pytest.raises(Er7Error, match=charset):
        parse(message([header(charset=charset), PID_ACCENTED], codec=codec))


# --- ER7: segments -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"], ids=["CR", "LF", "CRLF"])
def test_segment_separators(sep):
    m = parse(message([header(), "EVN||20261124", "PID|1||1^^^X^PI||DUPONT"], sep=sep))
    assert [s.name for s in m.segments] == ["MSH", "EVN", "PID"]
    assert m.msh(12) == "2.5" and m.first("PID")(5) == "DUPONT"


def test_blank_lines_are_ignored():
    m = parse(f"{header()}\r\r\nEVN||1\n\n".encode())
    assert [s.name for s in m.segments] == ["MSH", "EVN"]


@pytest.mark.parametrize("line", ["pid|1", "PI|1", "PIDX|1", "1ID|1", "P-D|1", " PID|1"])
def test_bad_segment_names(line):
    with pytest.raises(Er7Error):
        parse(message([header(), line]))


@pytest.mark.parametrize("data", [b"PID|1||x\r", b"\x0bMSH|^~\\&|A\r", b" MSH|^~\\&|A\r", b"", b"MSH|^~\r",
                                  b"MSHA^~\\&A\r", b"MSH|^~|A|B\r", b"MSH|^~\\A|B\r"])
def test_not_an_er7_message(data):
    with pytest.raises(Er7Error):
        parse(data)


# --- MLLP framing -----------------------------------------------------------------------------------

CONTENT = st.binary(max_size=40).map(lambda b: b.replace(VT, b"").replace(FS, b""))
GARBAGE = st.binary(max_size=12).map(lambda b: b.replace(VT, b""))


def same_frames(out: list, expected: list, max_bytes: int) -> None:
    """``expected`` holds TooLarge(size, whole content); a head must be the frame's first bytes, at least
    as many as it takes to tell the frame is too large (all of them, up to 512, when max_bytes >= 512)."""
    assert len(out) == len(expected)
    for got, want in zip(out, expected, strict=True):
        if isinstance(want, TooLarge):
            assert isinstance(got, TooLarge) and got.size == want.size
            assert want.head.startswith(got.head) and min(512, want.size, max_bytes + 1) <= len(got.head) <= 512
        else:
            assert got == want


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@st.composite
def streams(draw):
    """A byte stream of frames (with or without the CR after FS), abandoned partial frames and
    garbage; and what a reader must yield (``max_bytes`` small, so some frames are too large)."""
    max_bytes = draw(st.integers(0, 30))
    stream, expected = bytearray(draw(GARBAGE)), []
    for _ in range(draw(st.integers(0, 6))):
        for _ in range(draw(st.integers(0, 1))):  # an abandoned frame: a new VT comes before its FS
            stream += VT + draw(CONTENT)
        content = draw(CONTENT)
        stream += VT + content + (FS + CR if draw(st.booleans()) else FS)
        expected.append(content if len(content) <= max_bytes else TooLarge(len(content), content))
        stream += draw(GARBAGE)
    if draw(st.booleans()):
        stream += VT + draw(CONTENT)  # a partial frame at the end: nothing yet
    return bytes(stream), expected, max_bytes


@settings(max_examples=400)
@given(streams(), st.lists(st.integers(0, 10_000), max_size=12))
def test_frame_reader_yields_exactly_the_frames(generated, cuts):
    stream, expected, max_bytes = generated
    reader = FrameReader(max_bytes)
    same_frames([item for piece in chunks(stream, cuts) for item in reader.feed(piece)], expected, max_bytes)


@settings(max_examples=200)
@given(streams())
def test_frame_reader_byte_by_byte(generated):
    stream, expected, max_bytes = generated
    reader = FrameReader(max_bytes)
    same_frames([item for i in range(len(stream)) for item in reader.feed(stream[i:i + 1])], expected, max_bytes)


@settings(max_examples=300)
@given(st.lists(st.tuples(GARBAGE, CONTENT, st.booleans()), max_size=6), GARBAGE)
def test_discarded_counts_the_garbage(items, tail):
    stream, garbage, ended_without_cr = bytearray(), 0, False
    for junk, content, with_cr in items:
        if ended_without_cr and junk[:1] == CR:
            junk = junk[1:]  # would be read as the previous frame's CR
        stream += junk + VT + content + (FS + CR if with_cr else FS)
        garbage += len(junk)
        ended_without_cr = not with_cr
    if ended_without_cr and tail[:1] == CR:
        tail = tail[1:]
    stream += tail
    garbage += len(tail)
    reader = FrameReader(1_000)
    assert reader.feed(bytes(stream)) == [content for _, content, _ in items]
    assert reader.discarded == garbage


def test_fs_without_cr():
    reader = FrameReader(100)
    assert reader.feed(VT + b"one" + FS + VT + b"two" + FS + CR + VT + b"three" + FS) == [b"one", b"two", b"three"]
    assert reader.discarded == 0


def test_vt_inside_a_frame_restarts_it():
    reader = FrameReader(100)
    assert reader.feed(VT + b"half a mess") == []
    assert reader.feed(b"age" + VT + b"MSH|whole" + FS + CR) == [b"MSH|whole"]


def test_too_large_then_next_frame_intact():
    big = b"MSH|^~\\&|APP|FAC|MES|MES|2026||ADT^A04|BIG-1|P|2.5\r" + b"x" * 2000
    stream = frame(big) + frame(b"MSH|small")
    reader = FrameReader(1000)
    out = [item for i in range(0, len(stream), 100) for item in reader.feed(stream[i:i + 100])]
    assert out == [TooLarge(len(big), big[:512]), b"MSH|small"]
    assert b"BIG-1" in out[0].head


def test_max_bytes_boundary():
    reader = FrameReader(5)
    assert reader.feed(frame(b"12345") + frame(b"123456")) == [b"12345", TooLarge(6, b"123456")]


def test_frame():
    assert frame(b"MSH|x") == b"\x0bMSH|x\x1c\r"


# --- TS values --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    ("20260115103000", "2026-01-15T10:30:00+01:00"),  # winter, Paris
    ("20260715103000", "2026-07-15T10:30:00+02:00"),  # summer, Paris
    ("20260715103000+0000", "2026-07-15T10:30:00+00:00"),
    ("20260115103000-0500", "2026-01-15T10:30:00-05:00"),
    ("20260715103000.1234+0530", "2026-07-15T10:30:00+05:30"),
    ("202607151030", "2026-07-15T10:30:00+02:00"),
    ("2026071510", "2026-07-15T10:00:00+02:00"),
    ("20261025013000", "2026-10-25T01:30:00+02:00"),  # the night summer time ends
    ("20261025040000", "2026-10-25T04:00:00+01:00"),
    ("2026", "2026"), ("202607", "2026-07"), ("20260715", "2026-07-15"), (" 20260715 ", "2026-07-15"),
    ("", None), ("abc", None), ("2026-07-15", None), ("202", None), ("2026071", None),
    ("20260715103000+01", None), ("20260715253000", None), ("20260230103000", None), ("20260715106000", None),
])
def test_fhir_date_time(raw, expected):
    assert fhir_date_time(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("20260715103000+0200", "2026-07-15"), ("20260715", "2026-07-15"), ("202607", "2026-07"), ("2026", "2026"),
    ("", None), ("15/07/2026", None), ("2026-07-15", None),
])
def test_fhir_date(raw, expected):
    assert fhir_date(raw) == expected


# --- ACK ----------------------------------------------------------------------------------------------


def adt_message(charset: str = "UNICODE UTF-8", control: str = "CTRL-42") -> bytes:
    p = patient_of()
    return encoded([msh("ADT^A04^ADT_A01", control, charset=charset, sender="LPS|CABINET"), pid_segment(p)],
                   charset)


@pytest.mark.parametrize("code", [ACCEPT, ERROR, REJECT])
def test_ack_header(code):
    source = parse(adt_message())
    problems = () if code == ACCEPT else (V2Problem(REQUIRED_FIELD_MISSING, "No name", "Pas de nom",
                                                    Location("PID", 5)),)
    ack = parse(acknowledge(source, code, problems))
    assert (ack.msh(3), ack.msh(4), ack.msh(5), ack.msh(6)) == ("MES", "MES", "LPS", "CABINET")
    assert ack.event == ("ACK", "A04") and ack.msh(9, 3) == "ACK"
    assert ack.control_id and ack.control_id != "CTRL-42"
    assert ack.msh(12) == "2.5" and ack.msh(18) == "UNICODE UTF-8" and ack.charset == "UNICODE UTF-8"
    msa = ack.first("MSA")
    assert msa(1) == code and msa(2) == "CTRL-42"
    assert msa(3) == ("" if code == ACCEPT else "No name")
    assert len(ack.all("ERR")) == len(problems)


def test_ack_control_ids_are_unique():
    source = parse(adt_message())
    assert parse(acknowledge(source, ACCEPT)).control_id != parse(acknowledge(source, ACCEPT)).control_id


def test_ack_repeats_the_version():
    source = parse(adt_message().replace(b"|2.5|", b"|2.6|", 1))
    assert parse(acknowledge(source, ACCEPT)).msh(12) == "2.6"


def test_ack_err_segment():
    source = parse(adt_message())
    problem = V2Problem(DATA_TYPE_ERROR, "OBX-5 is not valid base64", "OBX-5 n'est pas un base64 valide",
                        Location("OBX", 5, 5, sequence=2), dmp_code="902")
    ack = parse(acknowledge(source, ERROR, (problem,)))
    err = ack.first("ERR")
    assert err.raw(2) == "OBX^2^5^1^5"
    assert (err(2, 1), err(2, 2), err(2, 3), err(2, 4), err(2, 5)) == ("OBX", "2", "5", "1", "5")
    assert (err(3, 1), err(3, 2), err(3, 3)) == ("102", "Data type error", "HL70357")
    assert err(4) == "E"
    assert (err(5, 1), err(5, 3)) == ("902", "DMPERRORCODE")
    assert err(7) == "OBX-5 is not valid base64"
    assert err(8) == "OBX-5 n'est pas un base64 valide"


def test_ack_err_locations():
    assert Location("PID", 5).er7() == "PID^1^5^1"
    assert Location("PID").er7() == "PID^1"
    assert Location("OBX", 5, 5, 3).er7() == "OBX^3^5^1^5"


def test_ack_warning_on_accept():
    source = parse(adt_message())
    warning = V2Problem(REQUIRED_FIELD_MISSING, "No phone", "Pas de téléphone", severity="W")
    ack = parse(acknowledge(source, ACCEPT, (warning,)))
    assert ack.first("MSA")(1) == "AA" and ack.first("MSA")(3) == ""
    assert ack.first("ERR")(4) == "W" and ack.first("ERR")(2) == "" and ack.first("ERR")(5) == ""


def test_ack_in_8859_1():
    source = parse(adt_message("8859/1"))
    assert source.codec == "iso-8859-1"
    problem = V2Problem(REQUIRED_FIELD_MISSING, "Missing birth name", "Nom de naissance absent : élément requis",
                        Location("PID", 5))
    data = acknowledge(source, ERROR, (problem,))
    assert "Nom de naissance absent : élément requis".encode("iso-8859-1") in data
    assert "élément".encode() not in data
    ack = parse(data)
    assert ack.charset == "8859/1" and ack.codec == "iso-8859-1"
    assert ack.first("ERR")(8) == "Nom de naissance absent : élément requis"


def test_ack_escapes_delimiters_in_texts():
    source = parse(adt_message(control="A\\S\\B"))
    nasty = "x|y^z&w~v\\u\nt"
    problem = V2Problem(DATA_TYPE_ERROR, nasty, "fr " + nasty, Location("PID", 7))
    data = acknowledge(source, ERROR, (problem,))
    ack = parse(data)
    assert [s.name for s in ack.segments] == ["MSH", "MSA", "ERR"]
    assert ack.first("MSA")(2) == "A^B"
    assert ack.first("MSA")(3) == nasty
    assert ack.first("ERR")(7) == nasty and ack.first("ERR")(8) == "fr " + nasty
    assert ack.first("ERR").size == 8


def test_ack_msa3_is_cut_to_80_characters_before_escaping():
    source = parse(adt_message())
    ack = parse(acknowledge(source, ERROR, (V2Problem(DATA_TYPE_ERROR, "|" * 100, "x"),)))
    assert ack.first("MSA")(3) == "|" * 80


def test_ack_with_non_default_delimiters():
    source = parse(message([header(ALT, charset="UNICODE UTF-8"), "PID#1"]))
    problem = V2Problem(REQUIRED_FIELD_MISSING, "a#b", "c$d", Location("PID", 5))
    data = acknowledge(source, ERROR, (problem,))
    assert data.startswith(b"MSH#$%\\*#")
    ack = parse(data)
    assert ack.delimiters == ALT
    assert ack.event == ("ACK", "A04") and ack.first("MSA")(2) == "CTRL-1"
    assert ack.first("ERR")(2, 3) == "5" and ack.first("ERR")(3, 3) == "HL70357"
    assert ack.first("ERR")(7) == "a#b" and ack.first("ERR")(8) == "c$d"


def test_readable_header_on_broken_input():
    broken = adt_message(control="BROKEN-7").replace(b"UNICODE UTF-8", b"KLINGON")
    with pytest.raises(Er7Error):
        parse(broken)
    echo = readable_header(broken)
    assert echo["control_id"] == "BROKEN-7"
    assert (echo["sending_app"], echo["sending_facility"], echo["receiving_app"]) == ("LPS", "CABINET", "MES")
    assert echo["version"] == "2.5" and echo["trigger"] == "A04"
    ack = parse(acknowledge(None, REJECT, (V2Problem("203", "Unsupported charset", "Jeu inconnu"),), echo=echo))
    msa = ack.first("MSA")
    assert (msa(1), msa(2), msa(3)) == ("AR", "BROKEN-7", "Unsupported charset")
    assert ack.msh(5) == "LPS" and ack.msh(3) == "MES" and ack.event == ("ACK", "A04")
    assert ack.msh(12) == "2.5" and ack.msh(18) == ""


@pytest.mark.parametrize("data", [b"", b"garbage", b"PID|1", b"\x0bMSH|"])
def test_readable_header_without_msh(data):
    assert readable_header(data) == {}


def test_readable_header_short_msh():
    assert readable_header(b"MSH|^~\\&|APP") == {"sending_app": "APP"}
    ack = parse(acknowledge(None, REJECT, echo={}))
    assert ack.first("MSA")(2) == "" and ack.msh(12) == "2.5" and ack.msh(9) == "ACK"


# --- PID → Patient ------------------------------------------------------------------------------------


def pid_of(fields: dict[int, str]) -> object:
    """A PID segment with ``fields`` (number → raw ER7), parsed."""
    values = [""] * (max(fields) + 1)
    values[0] = "PID"
    for n, v in fields.items():
        values[n] = v
    return parse(message([header(), "|".join(values)])).first("PID")


BASE = {1: "1", 3: "IPP1^^^MES&1.2.250.1.999.1.1&ISO^PI", 5: "DUPONT^Jean^Jean Paul^^^^L", 7: "19800102", 8: "M"}


def patient_with(**changes: str) -> dict:
    fields = dict(BASE)
    for key, value in changes.items():
        fields[int(key.removeprefix("f"))] = value
    return read_pid(pid_of(fields)).resource


def v2_error(fields: dict[int, str]) -> V2Error:
    with pytest.raises(V2Error) as caught:
        read_pid(pid_of(fields))
    return caught.value


@pytest.mark.parametrize(("oid", "code"), [(NIR_TEST, "INS-NIR-TEST"), (NIR, "INS-NIR"), (NIA, "INS-NIA")])
def test_ins_by_oid(oid, code):
    read = read_pid(pid_of({**BASE, 3: f"IPP1^^^MES&1.2.250.1.999.1.1&ISO^PI~1800175123456^^^ASIP&{oid}&ISO^NH"}))
    assert read.ins == f"urn:oid:{oid}|1800175123456"
    ins = read.resource["identifier"][0]
    assert ins["system"] == f"urn:oid:{oid}" and ins["value"] == "1800175123456" and ins["use"] == "official"
    assert ins["type"]["coding"][0]["code"] == code
    assert read.resource["meta"]["profile"] == ["https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins"]
    assert read.keys == (f"urn:oid:{oid}|1800175123456", "urn:oid:1.2.250.1.999.1.1|IPP1")


def test_first_ins_wins():
    ids = f"111^^^A&{NIR}&ISO^INS~222^^^B&{NIA}&ISO^INS~IPP1^^^MES&1.2.250.1.999.1.1&ISO^PI"
    read = read_pid(pid_of({**BASE, 3: ids}))
    assert read.ins == f"urn:oid:{NIR}|111"
    assert [i["value"] for i in read.resource["identifier"]] == ["111", "IPP1"]


def test_ins_typed_but_not_an_ins_oid():
    read = read_pid(pid_of({**BASE, 3: "123^^^X&1.2.250.1.999.9&ISO^INS"}))
    assert read.ins is None
    assert read.resource["meta"]["profile"] == ["https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient"]
    assert [i["system"] for i in read.resource["identifier"]] == ["urn:oid:1.2.250.1.999.9"]


def test_ipp_typed_pi_first_with_urn_oid():
    read = read_pid(pid_of({**BASE, 3: "V1^^^CHU&1.2.250.1.5&ISO^AN~IPP1^^^CHU&1.2.250.1.5^PI"}))
    first, second = read.resource["identifier"]
    assert first == {"use": "usual", "type": {"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PI"}]},
        "system": "urn:oid:1.2.250.1.5", "value": "IPP1"}  # an OID without the ISO type: still an OID
    assert second["use"] == "secondary" and second["type"]["coding"][0]["code"] == "AN"
    assert read.local == ("urn:oid:1.2.250.1.5|IPP1", "urn:oid:1.2.250.1.5|V1")


@pytest.mark.parametrize(("authority", "system"), [
    ("CHU-X&000897406&M", AUTHORITY + "000897406"),
    ("CHU-X", AUTHORITY + "CHU-X"),
    ("CHU X/Nord", AUTHORITY + "CHU%20X%2FNord"),
])
def test_non_oid_authority(authority, system):
    assert system.startswith("https://mes-interop.org/fhir/NamingSystem/assigning-authority/")
    read = read_pid(pid_of({**BASE, 3: f"IPP9^^^{authority}^PI"}))
    assert read.resource["identifier"][0]["system"] == system
    assert read.local == (f"{system}|IPP9",)


def test_identifiers_without_authority_dropped():
    read = read_pid(pid_of({**BASE, 3: "LOOSE^^^^PI~IPP1^^^MES&1.2.250.1.999.1.1&ISO^PI~^^^MES&1.2.250.1&ISO^PI"}))
    assert [i["value"] for i in read.resource["identifier"]] == ["IPP1"]
    error = v2_error({**BASE, 3: "LOOSE^^^^PI"})
    assert error.ack_code == "AE"
    assert error.problems[0].code == REQUIRED_FIELD_MISSING and error.problems[0].location == Location("PID", 3)


def test_no_pid_segment():
    with pytest.raises(V2Error) as caught:
        read_pid(None)
    assert caught.value.problems[0].location == Location("PID")


def test_names_birth_and_used():
    names = patient_with(f5="DUPONT^Jean^Jean Paul^^^^L~MARTIN^Jeannot^^^^^D")["name"]
    assert names[0]["use"] == "official" and names[0]["family"] == "DUPONT" and names[0]["given"] == ["Jean"]
    assert names[0]["extension"][0]["valueString"] == "Jean Paul"
    assert names[1] == {"use": "usual", "family": "MARTIN", "given": ["Jeannot"]}


def test_names_order_does_not_matter_and_untyped_name_is_the_birth_name():
    names = patient_with(f5="MARTIN^Jeannot^^^^^D~DUPONT^Jean^^^^^L")["name"]
    assert [n["family"] for n in names] == ["DUPONT", "MARTIN"]
    assert patient_with(f5="DURAND^Anne")["name"] == [
        {"use": "official", "family": "DURAND", "extension": [
            {"url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-birth-list-given-name",
             "valueString": "Anne"}], "given": ["Anne"]}]


@pytest.mark.parametrize("names", ["MARTIN^Jeannot^^^^^D", "^Jean^^^^^L", ""])
def test_missing_birth_name(names):
    error = v2_error({**BASE, 5: names})
    assert error.ack_code == "AE"
    assert error.problems[0].code == REQUIRED_FIELD_MISSING and error.problems[0].location == Location("PID", 5)


@pytest.mark.parametrize("raw", ["1980", "198001", "notadate", "1980-01-02", "1980010"])
def test_bad_birth_date(raw):
    error = v2_error({**BASE, 7: raw})
    assert error.ack_code == "AE"
    assert error.problems[0].code == DATA_TYPE_ERROR and error.problems[0].location == Location("PID", 7)


@pytest.mark.parametrize(("raw", "expected"), [("19800102", "1980-01-02"), ("198001021230", "1980-01-02"),
                                               ("19800102103000+0100", "1980-01-02")])
def test_birth_date(raw, expected):
    assert patient_with(f7=raw)["birthDate"] == expected


def test_no_birth_date():
    assert "birthDate" not in patient_with(f7="")


@pytest.mark.parametrize(("code", "gender"), [("M", "male"), ("F", "female"), ("U", "unknown"), ("O", "other"),
                                              ("A", "other"), ("N", "unknown"), ("Z", "unknown")])
def test_sex(code, gender):
    assert patient_with(f8=code)["gender"] == gender


def test_no_sex():
    assert "gender" not in patient_with(f8="")


def test_telecom():
    resource = patient_with(
        f13="^PRN^PH^^^^^^^^^0473000000~^PRN^CP^^^^^^^^^0600000000~^NET^Internet^jean.dupont@example.fr"
            "~^PRN^FX^^^^^^^^^0473000001~0499^^PH",
        f14="^WPN^PH^^^^^^^^^0473111111~^^Internet^pro@example.fr~^^^")
    assert resource["telecom"] == [
        {"system": "phone", "value": "0473000000", "use": "home"},
        {"system": "phone", "value": "0600000000", "use": "mobile"},
        {"system": "email", "value": "jean.dupont@example.fr"},
        {"system": "fax", "value": "0473000001", "use": "home"},
        {"system": "phone", "value": "0499"},
        {"system": "phone", "value": "0473111111", "use": "work"},
        {"system": "email", "value": "pro@example.fr", "use": "work"},
    ]


def test_addresses_and_birth_place():
    resource = patient_with(f11="12 rue de l'\\E\\glise^Bât. A^Lyon^^69003^FRA^H~1 place Jaude^^Clermont^^63000^FRA^O"
                                "~^^^^^^BDL^^63113~^^Ailleurs^^^^^^")
    assert resource["address"] == [
        {"use": "home", "line": ["12 rue de l'\\glise", "Bât. A"], "city": "Lyon", "postalCode": "69003",
         "country": "FRA"},
        {"use": "work", "line": ["1 place Jaude"], "city": "Clermont", "postalCode": "63000", "country": "FRA"},
        {"city": "Ailleurs"},
    ]
    place = resource["extension"][0]
    assert place["url"] == "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
    assert place["valueAddress"]["extension"][0]["valueCoding"]["code"] == "63113"


def test_birth_place_br_without_address():
    resource = patient_with(f11="^^Lyon^^^^BR^^69383")
    assert "address" not in resource
    assert resource["extension"][0]["valueAddress"]["extension"][0]["valueCoding"]["code"] == "69383"


def test_death():
    assert patient_with(f29="20260115103000")["deceasedDateTime"] == "2026-01-15T10:30:00+01:00"
    assert patient_with(f29="20260715", f30="Y")["deceasedDateTime"] == "2026-07-15"
    resource = patient_with(f30="Y")
    assert resource["deceasedBoolean"] is True and "deceasedDateTime" not in resource
    resource = patient_with(f30="N")
    assert "deceasedBoolean" not in resource and "deceasedDateTime" not in resource


def test_reliability():
    resource = patient_with(f11="^^^^^^BDL^^63113", f32="XXXX~VALI")
    reliability = resource["extension"][0]
    assert reliability == {"url": EXT_IDENTITY_RELIABILITY, "extension": [
        {"url": "identityStatus", "valueCoding": {"system": CS_V2_0445, "code": "VALI"}}]}
    assert resource["extension"][1]["url"] == "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
    assert "extension" not in patient_with(f32="NOPE")
    assert "extension" not in patient_with(f32="")


def test_synthetic_pid_reads_back():
    p = patient_of(email="a.b@example.fr")
    read = read_pid(parse(encoded([msh("ADT^A04^ADT_A01", "C1"), pid_segment(p)], "UNICODE UTF-8")).first("PID"))
    r = read.resource
    assert list(r) == ["resourceType", "meta", "extension", "identifier", "name", "telecom", "gender", "birthDate",
                       "address"]
    assert read.ins == f"urn:oid:{NIR_TEST}|{p.ins}"
    assert read.local == (f"urn:oid:{p.ipp_authority}|{p.ipp}",)
    assert r["name"][0]["family"] == p.birth_family and r["name"][1]["family"] == p.used_family
    assert r["birthDate"] == f"{p.birth_date[:4]}-{p.birth_date[4:6]}-{p.birth_date[6:]}"
    assert r["address"][0]["line"] == [p.street] and r["address"][0]["city"] == p.city
    assert {"system": "email", "value": "a.b@example.fr"} in r["telecom"]


# --- the CDA document an MDM / ORU carries -------------------------------------------------------------

CDA = '<?xml version="1.0" encoding="UTF-8"?><ClinicalDocument xmlns="urn:hl7-org:v3"><title>Éch &amp; co</title>' \
      '</ClinicalDocument>'.encode()


@pytest.mark.parametrize("event", ["T02", "T04", "T10", "R01"])
def test_document_base64(event):
    doc = carried_document(parse(mdm(event, CDA, patient_of(), "D1")))
    assert doc.data == CDA
    assert doc.labels == frozenset() and doc.flags == {}
    assert doc.for_dmp is True and doc.changes_visibility is False


def test_document_flags():
    flags = {"DESTDMP": False, "MASQUE_PS": True, "INVISIBLE_PATIENT": False, "INVISIBLE_REP_LEGAUX": True,
             "MODIF_CONF_CODE": True, "DESTMSSANTEPS": True}
    doc = carried_document(parse(mdm("T02", CDA, patient_of(), "D2", flags=flags)))
    assert doc.flags == flags
    assert doc.labels == frozenset({"MASQUE_PS", "INVISIBLE_REPRESENTANTS_LEGAUX"})
    assert doc.for_dmp is False and doc.changes_visibility is True


def test_document_flag_values():
    doc = carried_document(parse(obx_message(
        "OBX|1|CWE|DESTDMP^DESTDMP^MetaDMPMSS||||||||F",
        "OBX|2|CWE|MASQUE_PS^MASQUE_PS^MetaDMPMSS||y^^expandedYes-NoIndicator||||||F",
        "OBX|3|CWE|INVISIBLE_PATIENT^INVISIBLE_PATIENT^MetaDMPMSS||X||||||F",
        f"OBX|4|ED|x^y^LN||^text^XML^Base64^{base64.b64encode(CDA).decode()}||||||F")))
    assert doc.flags == {"DESTDMP": False, "MASQUE_PS": True, "INVISIBLE_PATIENT": False}
    assert doc.for_dmp is False and doc.labels == frozenset({"MASQUE_PS"})


def test_document_invisible_patient_and_destdmp_yes():
    doc = carried_document(parse(mdm("T02", CDA, patient_of(), "D3",
                                     flags={"DESTDMP": True, "INVISIBLE_PATIENT": True})))
    assert doc.labels == frozenset({"INVISIBLE_PATIENT"}) and doc.for_dmp is True


def obx_message(*obx: str, charset: str = "UNICODE UTF-8") -> bytes:
    return encoded([msh("MDM^T02^MDM_T02", "D9", charset=charset), pid_segment(patient_of()), *obx], charset)


def test_document_plain_text_encoding():
    xml = CDA.decode()
    doc = carried_document(parse(obx_message(f"OBX|1|ED|11488-4^CR^LN||^text^xml^A^{escape(xml)}||||||F")))
    assert doc.data == CDA


def test_document_base64_with_line_breaks():
    data = base64.encodebytes(CDA * 5).decode().replace("\n", "\\.br\\")
    doc = carried_document(parse(obx_message(f"OBX|1|ED|11488-4^CR^LN||^text^XML^Base64^{data}||||||F")))
    assert doc.data == CDA * 5


def test_document_first_xml_ed_wins():
    pdf = base64.b64encode(b"%PDF-1.4").decode()
    other = base64.b64encode(b"<other/>").decode()
    doc = carried_document(parse(obx_message(
        f"OBX|1|ED|x^y^LN||^application^PDF^Base64^{pdf}||||||F",
        f"OBX|2|ED|x^y^LN||^text^XML^Base64^{base64.b64encode(CDA).decode()}||||||F",
        f"OBX|3|ED|x^y^LN||^text^XML^Base64^{other}||||||F")))
    assert doc.data == CDA


@pytest.mark.parametrize("obx", [(), ("OBX|1|ST|x^y^LN||hello||||||F",),
                                 ("OBX|1|ED|x^y^LN||^application^PDF^Base64^JVBERg==||||||F",),
                                 ("OBX|1|CWE|DESTDMP^DESTDMP^MetaDMPMSS||Y||||||F",)])
def test_document_missing(obx):
    with pytest.raises(V2Error) as caught:
        carried_document(parse(obx_message(*obx)))
    assert caught.value.ack_code == "AE"
    problem = caught.value.problems[0]
    assert problem.code == REQUIRED_FIELD_MISSING and problem.location == Location("OBX", 5)


def test_document_bad_base64():
    with pytest.raises(V2Error) as caught:
        carried_document(parse(obx_message("OBX|1|CWE|DESTDMP^DESTDMP^MetaDMPMSS||Y||||||F",
                                           "OBX|2|ED|x^y^LN||^text^XML^Base64^PD94b!!!bWw=||||||F")))
    assert caught.value.ack_code == "AE"
    problem = caught.value.problems[0]
    assert problem.code == DATA_TYPE_ERROR
    assert problem.location == Location("OBX", 5, 5, sequence=2)
    assert problem.location.er7() == "OBX^2^5^1^5"


def test_document_unknown_encoding():
    with pytest.raises(V2Error) as caught:
        carried_document(parse(obx_message("OBX|1|ED|x^y^LN||^text^XML^Hex^3C3E||||||F")))
    assert caught.value.problems[0].code == DATA_TYPE_ERROR
    assert caught.value.problems[0].location == Location("OBX", 5, 5, 1)


# --- what the first review of these tests found (fixed since) -------------------------------------


@pytest.mark.parametrize("raw", ["20261340", "20260230", "202613", "2026071524", "20260715120000+2500"])
def test_impossible_moments_are_not_time_stamps(raw):
    assert fhir_date_time(raw) is None and fhir_date(raw) is None


def test_an_impossible_birth_date_is_refused_at_pid_7():
    error = v2_error({**BASE, 7: "19801340"})
    assert error.problems[0].location.field == 7 and error.problems[0].code == "102"


def test_the_cr_after_fs_in_the_next_read_is_not_garbage():
    reader = FrameReader(1000)
    assert reader.feed(VT + b"ab" + FS) == [b"ab"]
    assert reader.feed(b"\r" + b"xx" + VT + b"cd" + FS + b"\r") == [b"cd"]
    assert reader.discarded == 2


def test_msh_1_and_2_are_the_delimiters_whole():
    msh = parse(message([header(ALT)])).msh
    assert (msh(1), msh(2)) == ("#", "$%\\*")


def test_readable_header_reads_the_trigger_with_the_message_delimiters():
    broken = message([header(ALT, charset="KLINGON", control="ALT-1")])
    assert readable_header(broken)["trigger"] == "A04"


def test_ack_control_ids_fit_hl7s_twenty_characters():
    answers = [parse(acknowledge(parse(adt_message()), "AA")).msh(10) for _ in range(20_000)]
    assert max(map(len, answers)) <= 20 and len(set(answers)) == len(answers)


@pytest.mark.parametrize("encoding", ["^~^&", "^^^^", "^~\\^"])
def test_delimiters_must_differ(encoding):
    with pytest.raises(Er7Error):
        parse(f"MSH|{encoding}|APP|FAC|MES|MES|2026||ADT^A04|1|P|2.5\r".encode())


def test_an_iso_typed_authority_that_is_no_oid_gets_a_naming_system():
    resource = patient_with(f3="IPP1^^^X&FOO&ISO^PI")
    assert resource["identifier"][0]["system"] == AUTHORITY + "FOO"


def test_a_plain_text_document_keeps_the_message_charset():
    cda = '<?xml version="1.0" encoding="ISO-8859-1"?><ClinicalDocument><title>Échographie</title></ClinicalDocument>'
    data = encoded([msh("MDM^T02^MDM_T02", "A-1", charset="8859/1"),
                    f"OBX|1|ED|11488-4^CR^LN||^text^XML^A^{escape(cda)}||||||F"], "8859/1")
    assert carried_document(parse(data)).data == cda.encode("iso-8859-1")
