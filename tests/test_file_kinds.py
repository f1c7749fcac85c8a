"""Telling a whole PDF, JPEG, PNG or DICOM file from anything else, and making a filename
safe: plain functions on bytes and strings (leads/file_kinds.py)."""

import struct

import pytest

from leads.attachments.kinds import MAX_FILENAME, media_type, safe_filename
from tests import samples

WHOLE = {"application/pdf": samples.pdf(), "image/jpeg": samples.jpeg(),
         "image/png": samples.png(), "application/dicom": samples.dicom()}


@pytest.mark.parametrize("kind", sorted(WHOLE))
def test_a_whole_file_is_its_kind_and_no_cut_of_it_is_any_kind(kind):
    content = WHOLE[kind]
    assert media_type(content) == kind
    # A PDF may lose the line break after its %%EOF; DICOM has no end marker, so a cut
    # between two of its elements is a shorter, whole file.
    ends = len(content.rstrip(b"\n")) if kind == "application/pdf" else len(content)
    boundaries = {n for n in range(ends) if kind == "application/dicom"
                  and media_type(content[:n]) == kind}
    for n in set(range(ends)) - boundaries:
        assert media_type(content[:n]) is None, (kind, n)
    assert len(boundaries) < 15


@pytest.mark.parametrize("kind", sorted(WHOLE))
def test_anything_after_the_end_makes_it_no_kind(kind):
    assert media_type(WHOLE[kind] + b"<html><script>alert(1)</script></html>") is None


def test_line_breaks_after_a_pdfs_end_are_allowed():
    assert media_type(samples.pdf().rstrip(b"\n") + b"\r\n\r\n") == "application/pdf"


def test_a_polyglot_and_executables_are_no_kind():
    assert media_type(b"%PDF-1.4\n<html><body><script>alert(1)</script></body></html>") is None
    assert media_type(samples.ELF) is None and media_type(samples.MZ) is None
    # An executable in a DICOM file's preamble (CVE-2019-11687).
    assert media_type(samples.MZ.ljust(128, b"\x00") + samples.dicom()[128:]) is None


def test_a_png_with_a_bad_crc_or_without_ihdr_first_is_no_png():
    content = bytearray(samples.png())
    content[-20] ^= 0x01  # inside IDAT
    assert media_type(bytes(content)) is None
    no_ihdr = b"\x89PNG\r\n\x1a\n" + samples.png_chunk(b"IEND", b"")
    assert media_type(no_ihdr) is None


def test_a_jpeg_with_a_segment_running_past_the_end_is_no_jpeg():
    content = samples.jpeg()
    longer = content[:4] + struct.pack(">H", 0xFFF0) + content[6:]
    assert media_type(longer) is None


@pytest.mark.parametrize("given, expected", [
    ("scan.pdf", "scan.pdf"),
    ("../../etc/passwd.pdf", "passwd.pdf"),
    ("C:\\Users\\ana\\x-ray.png", "x-ray.png"),
    ("..", "attachment.pdf"),
    ("", "attachment.pdf"),
    (None, "attachment.pdf"),
    ("/", "attachment.pdf"),
    ("evil\r\nContent-Type: text-html.pdf", "evilContent-Type: text-html.pdf"),
    ("scan\u202egpj.exe", "scangpj.exe"),
    ("nul\x00byte.pdf", "nulbyte.pdf"),
    (" .hidden.pdf. ", "hidden.pdf"),
    ("Röntgen Ñandú.pdf", "Röntgen Ñandú.pdf"),
])
def test_filenames_lose_paths_and_control_characters(given, expected):
    assert safe_filename(given, "application/pdf") == expected


def test_a_long_filename_is_cut_keeping_its_extension():
    name = safe_filename("a" * 1000 + ".jpeg", "image/jpeg")
    assert len(name) == MAX_FILENAME and name.endswith(".jpeg")
    assert len(safe_filename("b" * 1000, "image/png")) == MAX_FILENAME
