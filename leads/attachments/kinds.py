"""What kind of file some bytes are, judged by the whole file (CONTRACT §3), and a name for it
that is safe to keep and to hand back. Plain functions on bytes and strings."""

import io
import logging
import struct
import unicodedata
import warnings
import zlib

import pydicom
from pydicom.dataelem import RawDataElement

PDF, JPEG, PNG, DICOM = "application/pdf", "image/jpeg", "image/png", "application/dicom"
EXTENSIONS = {PDF: ".pdf", JPEG: ".jpg", PNG: ".png", DICOM: ".dcm"}
MAX_FILENAME = 200
FALLBACK_STEM = "attachment"

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DICOM_PREAMBLE = 128
# An executable in a DICOM file's free preamble makes a file that runs as a program and opens
# as an image (CVE-2019-11687); such a preamble is refused.
EXECUTABLE_STARTS = (b"MZ", b"\x7fELF", b"#!", b"\xca\xfe\xba\xbe", b"\xfe\xed\xfa\xce",
                     b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe")
UNDEFINED_LENGTH = 0xFFFFFFFF
# The sequence delimitation item (FFFE,E0DD), little and big endian: what ends a last element
# of undefined length (a sequence, or encapsulated pixel data).
DICOM_SEQUENCE_ENDS = (b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", b"\xff\xfe\xe0\xdd\x00\x00\x00\x00")

# pydicom's warnings quote values from the file, which may be a patient's data: not for logs.
logging.getLogger("pydicom").setLevel(logging.ERROR)


def is_pdf(content: bytes) -> bool:
    return content.startswith(b"%PDF-") and content.rstrip(b"\r\n").endswith(b"%%EOF")


def _jpeg_scan_end(content: bytes, at: int) -> int:
    """Where the entropy-coded data starting at `at` ends: at the next marker that is neither
    a stuffed 0xFF00 nor a restart marker."""
    while True:
        at = content.find(b"\xff", at)
        if at < 0 or at + 1 >= len(content):
            return -1
        following = content[at + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            at += 1
            continue
        return at


def is_jpeg(content: bytes) -> bool:
    """SOI, then well-formed segments and scans, and the image's EOI as the last two bytes."""
    if not content.startswith(b"\xff\xd8"):
        return False
    at = 2
    while at + 2 <= len(content):
        if content[at] != 0xFF:
            return False
        marker = content[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if marker == 0xD9:
            return at + 2 == len(content)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            at += 2
            continue
        if at + 4 > len(content):
            return False
        (length,) = struct.unpack(">H", content[at + 2:at + 4])
        if length < 2 or at + 2 + length > len(content):
            return False
        at += 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next marker
            at = _jpeg_scan_end(content, at)
            if at < 0:
                return False
    return False


def is_png(content: bytes) -> bool:
    """The signature, then chunks with good CRCs from IHDR to IEND, and nothing after IEND."""
    if not content.startswith(PNG_SIGNATURE):
        return False
    at = len(PNG_SIGNATURE)
    first = True
    while at + 12 <= len(content):
        length, kind = struct.unpack(">I4s", content[at:at + 8])
        end = at + 12 + length
        if end > len(content) or not kind.isalpha():
            return False
        data = content[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", content[end - 4:end])
        if zlib.crc32(kind + data) != crc or (first and kind != b"IHDR"):
            return False
        if kind == b"IEND":
            return end == len(content)
        first = False
        at = end
    return False


def is_dicom(content: bytes) -> bool:
    """A DICOM Part 10 file that pydicom reads, whose last element ends where the file does."""
    if content[DICOM_PREAMBLE:DICOM_PREAMBLE + 4] != b"DICM" or content.startswith(
            EXECUTABLE_STARTS):
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(io.BytesIO(content))
            if len(dataset) == 0 or "TransferSyntaxUID" not in dataset.file_meta:
                return False
            # Tags ascend in a DICOM file: the highest is the last one written.
            last = dataset.get_item(max(dataset.keys()))
    except Exception:  # noqa: BLE001  (any failure to parse untrusted bytes means "not DICOM")
        return False
    # pydicom reads a cut-off value as a short one, without a word; its end tells.
    if isinstance(last, RawDataElement) and last.length != UNDEFINED_LENGTH:
        return last.value_tell + last.length == len(content)
    return content.endswith(DICOM_SEQUENCE_ENDS)


def media_type(content: bytes) -> str | None:
    """The media type the whole file is, whatever it is called; None for anything else."""
    if is_pdf(content):
        return PDF
    if is_jpeg(content):
        return JPEG
    if is_png(content):
        return PNG
    if is_dicom(content):
        return DICOM
    return None


def safe_filename(name: str | None, content_type: str) -> str:
    """The name without any path (either slash), control or formatting characters, dots or
    spaces at its ends, and at most MAX_FILENAME characters (keeping its extension); a
    fallback name when nothing is left."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    # Cc: control characters; Cf: formatting ones, such as the right-to-left override that
    # shows "scan\u202egpj.exe" as "scanexe.jpg".
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf"))
    name = name.strip(" .")
    if not name:
        return FALLBACK_STEM + EXTENSIONS[content_type]
    if len(name) > MAX_FILENAME:
        stem, dot, extension = name.rpartition(".")
        keep = dot + extension if stem and len(extension) <= 10 else ""
        name = name[:MAX_FILENAME - len(keep)].rstrip(" .") + keep
    return name
