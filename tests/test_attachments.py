"""Files a patient adds to their inquiry (CONTRACT §3): judged by content, at most 10 MB,
at most five, behind the status link's token."""

import io

import pytest
from sqlalchemy import func, select

from leads.models import Attachment
from tests.test_staff_api import problem, status_token, submit

MIB = 1024 * 1024
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06" + b"\0" * 20
DICOM = b"\x00" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00" + b"\x00" * 32
FILES = {"scan.pdf": PDF, "xray.jpg": JPEG, "photo.png": PNG, "mri.dcm": DICOM}


@pytest.fixture
def inquiry(app, client, catalogue):
    accepted = submit(client)
    return {"reference": accepted["reference"], "token": status_token(accepted)}


def upload(client, inquiry, content: bytes, filename: str = "file.pdf", *, token=None,
           field: str = "file"):
    token = inquiry["token"] if token is None else token
    query = {"token": token} if token else {}
    return client.post(f"/api/v1/inquiries/{inquiry['reference']}/attachments",
                       query_string=query, content_type="multipart/form-data",
                       data={field: (io.BytesIO(content), filename)})


def stored(db_session) -> int:
    db_session.expire_all()
    return db_session.scalar(select(func.count()).select_from(Attachment))


@pytest.mark.parametrize("filename", sorted(FILES))
def test_pdf_jpeg_png_and_dicom_are_accepted(client, db_session, inquiry, filename):
    content = FILES[filename]
    response = upload(client, inquiry, content, filename)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert {"id", "filename", "size"} <= set(body)
    assert isinstance(body["id"], int)
    assert body["filename"] == filename and body["size"] == len(content)
    assert stored(db_session) == 1


def test_content_decides_not_the_name(client, db_session, inquiry):
    # A PDF called .txt is a PDF; text called .pdf is not.
    assert upload(client, inquiry, PDF, "notes.txt").status_code == 201
    for content, name in [(b"just some text, not a PDF at all", "report.pdf"),
                          (b"GIF89a\x01\x00\x01\x00", "image.png"),
                          (b"<html><script>alert(1)</script></html>", "scan.jpg"),
                          (b"", "empty.pdf")]:
        body = problem(upload(client, inquiry, content, name), 422)
        assert "file" in body["errors"], body
    assert stored(db_session) == 1


def test_a_wrong_or_missing_token_answers_404(client, db_session, inquiry, catalogue):
    problem(upload(client, inquiry, PDF, token="wrong-token"), 404)
    problem(upload(client, inquiry, PDF, token=""), 404)
    other = submit(client)
    problem(upload(client, inquiry, PDF, token=status_token(other)), 404)
    problem(upload(client, {**inquiry, "reference": "MT-0000000"}, PDF), 404)
    assert stored(db_session) == 0


def test_a_file_over_10_mb_answers_413(client, db_session, inquiry):
    """10 MB read as 10,000,000 bytes, so a file over it by any reading is refused."""
    for size in (10_000_001, 10 * MIB + 1, 12 * MIB):
        problem(upload(client, inquiry, PDF + b"\0" * (size - len(PDF))), 413)
    assert stored(db_session) == 0
    exactly = upload(client, inquiry, PDF + b"\0" * (10_000_000 - len(PDF)))
    assert exactly.status_code == 201 and exactly.get_json()["size"] == 10_000_000


def test_a_sixth_file_answers_422(client, db_session, inquiry):
    for n in range(5):
        assert upload(client, inquiry, PNG, f"page{n}.png").status_code == 201
    body = problem(upload(client, inquiry, PDF, "sixth.pdf"), 422)
    assert "file" in body["errors"]
    assert stored(db_session) == 5
    # Another inquiry has its own five.
    other = submit(client)
    assert upload(client, {"reference": other["reference"], "token": status_token(other)},
                  PDF).status_code == 201


def test_the_file_field_is_required(client, inquiry):
    body = problem(upload(client, inquiry, PDF, field="document"), 422)
    assert "file" in body["errors"]
    response = client.post(f"/api/v1/inquiries/{inquiry['reference']}/attachments",
                           query_string={"token": inquiry["token"]}, json={"file": "x"})
    assert response.status_code in (415, 422)
    assert response.mimetype == "application/problem+json"
