"""Files a patient adds to their inquiry (CONTRACT §3): judged by the whole file, at most
10 MB, at most five, behind the status link's token, 20 uploads an hour per address; and
given back (CONTRACT §4, §5) to staff and to a clinic that accepted the referral only."""

import io
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from leads.attachments.models import Attachment
from tests import samples
from tests.helpers import act, clinics_of, detail, problem, status_token, submit

MIB = 1024 * 1024
PDF, JPEG, PNG, DICOM = samples.pdf(), samples.jpeg(), samples.png(), samples.dicom()
FILES = {"scan.pdf": PDF, "xray.jpg": JPEG, "photo.png": PNG, "mri.dcm": DICOM}
TYPES = {"scan.pdf": "application/pdf", "xray.jpg": "image/jpeg", "photo.png": "image/png",
         "mri.dcm": "application/dicom"}


@pytest.fixture
def inquiry(app, client, catalogue):
    accepted = submit(client)
    return {"reference": accepted["reference"], "token": status_token(accepted)}


def upload(client, inquiry, content: bytes, filename: str = "file.pdf", *, token=None,
           field: str = "file", address: str = "127.0.0.1"):
    token = inquiry["token"] if token is None else token
    query = {"token": token} if token else {}
    return client.post(f"/api/v1/inquiries/{inquiry['reference']}/attachments",
                       query_string=query, content_type="multipart/form-data",
                       data={field: (io.BytesIO(content), filename)},
                       environ_base={"REMOTE_ADDR": address})


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
    assert body["content_type"] == TYPES[filename]
    assert stored(db_session) == 1


def test_content_decides_not_the_name(client, db_session, inquiry):
    # A PDF called .txt is a PDF; text called .pdf is not.
    assert upload(client, inquiry, PDF, "notes.txt").status_code == 201
    for content, name in [(b"just some text, not a PDF at all", "report.pdf"),
                          (b"GIF89a\x01\x00\x01\x00", "image.png"),
                          (b"<html><script>alert(1)</script></html>", "scan.jpg"),
                          (b"", "empty.pdf"), (b"x", "x.dcm")]:
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
        problem(upload(client, inquiry, samples.pdf_of_size(size)), 413)
    assert stored(db_session) == 0
    exactly = upload(client, inquiry, samples.pdf_of_size(10_000_000))
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


# --- whole files only -------------------------------------------------------------------------

REFUSED = {
    "a polyglot": (b"%PDF-1.7\n<html><body><script>alert(1)</script></body></html>\n",
                   "scan.pdf"),
    "a PNG cut before IEND": (PNG[:-12], "photo.png"),
    "a PNG with a chunk's CRC wrong": (PNG[:-13] + bytes([PNG[-13] ^ 1]) + PNG[-12:],
                                       "photo.png"),
    "a JPEG cut before its end": (JPEG[:-2], "xray.jpg"),
    "an ELF executable renamed .pdf": (samples.ELF, "report.pdf"),
    "an MZ executable renamed .pdf": (samples.MZ, "report.pdf"),
    "a PDF with an HTML page after its end": (PDF + b"<html></html>", "scan.pdf"),
    "a DICOM file cut inside an element": (DICOM[:-3], "mri.dcm"),
    "a DICOM file with an executable for a preamble": (
        samples.MZ.ljust(128, b"\x00") + DICOM[128:], "mri.dcm"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_only_a_whole_file_of_an_accepted_kind_is_taken(client, db_session, inquiry, case):
    content, name = REFUSED[case]
    body = problem(upload(client, inquiry, content, name), 422)
    assert list(body["errors"]) == ["file"], body
    assert stored(db_session) == 0


# --- downloads -------------------------------------------------------------------------------

def download(client, path: str, headers: dict):
    return client.get(path, headers=headers)


def assert_is_the_file(response, content: bytes, content_type: str):
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_data() == content
    assert response.mimetype == content_type
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_staff_see_the_files_on_the_lead_and_download_them_byte_for_byte(
        client, db_session, routed):
    inquiry = {"reference": routed["reference"], "token": status_token(routed["accepted"])}
    ids = {}
    for name, content in FILES.items():
        response = upload(client, inquiry, content, name)
        assert response.status_code == 201, response.get_json()
        ids[name] = response.get_json()["id"]
    lead = detail(client, routed["coordinator"], routed["lead_id"])
    listed = {a["filename"]: a for a in lead["attachments"]}
    assert set(listed) == set(FILES)
    for name, content in FILES.items():
        assert set(listed[name]) == {"id", "filename", "content_type", "size", "created_at"}
        assert listed[name]["id"] == ids[name] and listed[name]["size"] == len(content)
        assert listed[name]["content_type"] == TYPES[name]
        response = download(client, f"/api/v1/leads/{routed['lead_id']}/attachments/{ids[name]}",
                            routed["coordinator"])
        assert_is_the_file(response, content, TYPES[name])
        assert f'filename={name}' in response.headers["Content-Disposition"]
    problem(client.get(f"/api/v1/leads/{routed['lead_id']}/attachments/{ids['scan.pdf']}"), 401)


def test_a_clinic_gets_the_files_only_once_it_has_accepted(
        client, db_session, routed):
    inquiry = {"reference": routed["reference"], "token": status_token(routed["accepted"])}
    ids = {name: upload(client, inquiry, content, name).get_json()["id"]
           for name, content in FILES.items()}
    (mine, my_referral), (theirs, their_referral), _ = clinics_of(routed)
    stranger = routed["keys"][routed["unreferred"]]

    def clinic_download(headers, referral_id, attachment_id):
        return download(client, f"/api/v1/clinic/referrals/{referral_id}/attachments/"
                                f"{attachment_id}", headers)

    # Before accepting: no list, no file.
    seen = client.get(f"/api/v1/clinic/referrals/{my_referral}", headers=mine).get_json()
    assert "attachments" not in seen
    for attachment_id in ids.values():
        problem(clinic_download(mine, my_referral, attachment_id), 404)

    assert act(client, mine, my_referral, "accept").status_code == 200
    seen = client.get(f"/api/v1/clinic/referrals/{my_referral}", headers=mine).get_json()
    assert {a["filename"]: a["id"] for a in seen["attachments"]} == ids
    listed = client.get("/api/v1/clinic/referrals", headers=mine).get_json()["items"]
    assert {a["id"] for a in listed[0]["attachments"]} == set(ids.values())
    for name, attachment_id in ids.items():
        assert_is_the_file(clinic_download(mine, my_referral, attachment_id), FILES[name],
                           TYPES[name])

    # Another referred clinic, one never referred, and the accepting clinic through another
    # clinic's referral: 404 each.
    for headers, referral_id in [(theirs, their_referral), (stranger, their_referral),
                                 (stranger, my_referral), (mine, their_referral)]:
        problem(clinic_download(headers, referral_id, ids["scan.pdf"]), 404)
    assert "attachments" not in client.get(f"/api/v1/clinic/referrals/{their_referral}",
                                           headers=theirs).get_json()
    # Staff credentials are not a clinic's.
    problem(clinic_download(routed["admin"], my_referral, ids["scan.pdf"]), 401)


def test_an_attachment_is_found_only_under_its_own_lead(
        client, db_session, routed):
    inquiry = {"reference": routed["reference"], "token": status_token(routed["accepted"])}
    mine = upload(client, inquiry, PDF).get_json()["id"]
    other = submit(client)
    others = upload(client, {"reference": other["reference"], "token": status_token(other)},
                    PNG).get_json()["id"]
    (headers, referral_id), *_ = clinics_of(routed)
    assert act(client, headers, referral_id, "accept").status_code == 200
    problem(download(client, f"/api/v1/clinic/referrals/{referral_id}/attachments/{others}",
                     headers), 404)
    other_lead = db_session.scalar(select(Attachment.lead_id).where(Attachment.id == others))
    for lead_id, attachment_id in [(routed["lead_id"], others), (other_lead, mine),
                                   (routed["lead_id"], 999999)]:
        problem(download(client, f"/api/v1/leads/{lead_id}/attachments/{attachment_id}",
                         routed["coordinator"]), 404)


def test_filenames_are_made_safe_and_quoted_in_the_download(
        client, db_session, routed):
    inquiry = {"reference": routed["reference"], "token": status_token(routed["accepted"])}
    # (The test client cannot send CR, LF, quotes or backslashes in a multipart filename;
    # tests/test_file_kinds.py has those.)
    cases = {"../../etc/pass\x01wd\x7f\t.pdf": "passwd.pdf",
             "Röntgen; Ñandú.pdf": "Röntgen; Ñandú.pdf",
             "..": "attachment.pdf"}
    for given, expected in cases.items():
        response = upload(client, inquiry, PDF, given)
        assert response.status_code == 201, response.get_json()
        assert response.get_json()["filename"] == expected
        got = download(client, f"/api/v1/leads/{routed['lead_id']}/attachments/"
                               f"{response.get_json()['id']}", routed["coordinator"])
        disposition = got.headers["Content-Disposition"]
        assert "\r" not in disposition and "\n" not in disposition and "/" not in disposition
        if expected.isascii():
            assert disposition == f"attachment; filename={expected}"
        else:
            assert f"filename*=UTF-8''{quote(expected, safe='')}" in disposition


# --- limits and the honeypot -----------------------------------------------------------------

def test_the_21st_upload_in_an_hour_from_one_address_answers_429(client, db_session, catalogue):
    accepted = [submit(client) for _ in range(5)]
    inquiries = [{"reference": a["reference"], "token": status_token(a)} for a in accepted]
    answers = []
    for n in range(20):
        # Refused attempts count as well as kept files.
        content = PDF if n % 2 else b"not a file"
        answers.append(upload(client, inquiries[n % 5], content, address="10.20.30.40"))
    assert {a.status_code for a in answers} == {201, 422}
    refused = upload(client, inquiries[0], PDF, address="10.20.30.40")
    problem(refused, 429)
    assert int(refused.headers["Retry-After"]) > 0
    # Another address has its own allowance.
    assert upload(client, inquiries[1], PDF, address="10.20.30.41").status_code == 201
    assert stored(db_session) == 11


def test_an_upload_to_a_spam_lead_is_answered_as_usual_and_not_kept(client, db_session,
                                                                     catalogue):
    spam = submit(client, website="https://buy.example")
    inquiry = {"reference": spam["reference"], "token": status_token(spam)}
    real = submit(client)
    kept = upload(client, {"reference": real["reference"], "token": status_token(real)}, PNG,
                  "photo.png")
    response = upload(client, inquiry, PDF, "scan.pdf")
    assert response.status_code == 201
    body = response.get_json()
    assert body["filename"] == "scan.pdf" and body["size"] == len(PDF)
    assert isinstance(body["id"], int) and body["id"] > kept.get_json()["id"]
    assert stored(db_session) == 1
    # A bad file is refused as it would be for anyone.
    assert "file" in problem(upload(client, inquiry, b"not a file"), 422)["errors"]
