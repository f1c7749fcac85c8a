"""The console's funnel and its admins' pages (CONTRACT §9, issue 12) through HTTP: the
funnel's figures are the API's, drawn as well-formed SVG beside their table; an admin
verifies an accreditation, adds a staff user and deactivates one, and the API reports each
change; coordinators are offered none of it and refused (403) every admin page and action;
every form needs its CSRF token."""

import re
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from sqlalchemy import select

from leads.catalogue.models import Accreditation, Clinic
from leads.core.clock import today
from leads.pipeline.states import LEAD_STATUSES
from leads.web.pages.charts import BAR_SPACE, bar_chart
from leads.web.pages.console import LEAD_STATUS_WORDS
from tests.helpers import auth, csrf_token_of, page_sign_in, route, submit

SVG = "{http://www.w3.org/2000/svg}"


def secret_of(headers: dict) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def html(response) -> str:
    assert response.mimetype == "text/html", response.get_data()[:300]
    return response.get_data(as_text=True)


@pytest.fixture
def admin(app, staff):
    client = app.test_client()
    assert page_sign_in(client, "/console", secret_of(staff["admin"])).status_code == 303
    return client


@pytest.fixture
def coordinator(app, staff):
    client = app.test_client()
    assert page_sign_in(client, "/console", secret_of(staff["coordinator"])).status_code == 303
    return client


@pytest.fixture
def unverified(db_session, staff):
    """The catalogue's clinic whose one accreditation is not verified, and that
    accreditation's id."""
    clinic_id, accreditation_id = db_session.execute(
        select(Clinic.id, Accreditation.id).join(Accreditation)
        .where(Clinic.name == "unverified")).one()
    return {"clinic_id": clinic_id, "accreditation_id": accreditation_id,
            "path": f"/console/clinics/{clinic_id}/accreditations/{accreditation_id}/verify"}


def post_form(client, path: str, **fields):
    """A page's form posted as a browser sends it: with the session's CSRF token."""
    token = csrf_token_of(html(client.get("/console/funnel")))
    return client.post(path, data={"csrf_token": token, **fields})


def svg_of(page: str) -> ET.Element:
    found = re.search(r"<svg\b.*?</svg>", page, re.DOTALL)
    assert found, "no SVG on the page"
    return ET.fromstring(found.group(0))


def status_table(page: str) -> dict[str, int]:
    found = re.search(r'<table class="by-status">.*?</table>', page, re.DOTALL)
    assert found, "no table of statuses on the page"
    rows = ET.fromstring(found.group(0)).iter("tr")
    next(rows)  # the header
    return {row.find("th").text: int(row.find("td").text) for row in rows}


def in_words(by_status: dict) -> dict[str, int]:
    """The API's counts by status as the page names them, with a zero for each status the
    API leaves out."""
    return {str(LEAD_STATUS_WORDS[status]): by_status.get(status, 0)
            for status in LEAD_STATUSES}


def chart_bars(svg: ET.Element) -> dict[str, int]:
    bars = {}
    for bar in svg.iter(SVG + "g"):
        label, value = (text.text for text in bar.iter(SVG + "text"))
        assert bar.find(SVG + "rect") is not None
        bars[label] = int(value)
    return bars


def test_the_funnel_page_draws_the_apis_figures_beside_their_table(app, client, db_session,
                                                                     coordinator, staff):
    route(app, db_session, submit(client)["reference"])
    submit(client)
    submit(client, website="bot")
    api = client.get("/api/v1/stats/funnel", headers=staff["coordinator"]).get_json()
    assert sum(api["by_status"].values()) == 3

    response = coordinator.get("/console/funnel")
    assert response.status_code == 200
    page = html(response)
    shown = in_words(api["by_status"])
    assert status_table(page) == shown

    svg = svg_of(page)
    assert svg.get("role") == "img"
    title, desc = svg.find(SVG + "title"), svg.find(SVG + "desc")
    assert title.text == "Leads by status"
    assert svg.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    assert all(f"{status} {count}" in desc.text for status, count in shown.items())
    assert chart_bars(svg) == shown
    lengths = {bar.find(SVG + "text").text: float(bar.find(SVG + "rect").get("width"))
               for bar in svg.iter(SVG + "g")}
    assert lengths["Received"] == BAR_SPACE and lengths["Quoted"] == 0  # the largest is full
    assert "style=" not in page and "<script" not in page

    for clinic in api["clinics"]:
        assert f'<th scope="row">{clinic["name"]}</th>' in page
    assert "<th scope=\"row\">stem-cell-spine-arthritis</th>" in page


def test_the_funnel_page_takes_the_apis_window_and_names_a_bad_date(client, coordinator,
                                                                      staff):
    submit(client)
    tomorrow = (today() + timedelta(days=1)).isoformat()
    for window in ({"created_from": tomorrow},
                   {"created_from": today().isoformat(), "created_to": today().isoformat()}):
        api = client.get("/api/v1/stats/funnel", headers=staff["coordinator"],
                         query_string=window).get_json()
        page = html(coordinator.get("/console/funnel", query_string=window))
        assert status_table(page) == in_words(api["by_status"])
        assert chart_bars(svg_of(page)) == status_table(page)
        assert f'value="{window["created_from"]}"' in page

    refused = coordinator.get("/console/funnel", query_string={"created_from": "soon",
                                                               "created_to": tomorrow})
    page = html(refused)
    assert refused.status_code == 422
    assert re.search(r'id="created_from-error">Not a date or date-time\.', page)
    assert re.search(r'<input[^>]*aria-invalid="true"[^>]*id="created_from"', page)
    assert 'id="created_to-error"' not in page and "<svg" not in page


def test_an_admin_verifies_an_accreditation_and_the_api_reports_it(client, admin, staff,
                                                                     unverified):
    page = html(admin.get("/console/clinics"))
    assert f'action="{unverified["path"]}"' in page
    assert page.count("Verify<span") == 1  # every other accreditation is verified already

    response = post_form(admin, unverified["path"])
    assert response.status_code == 303 and response.headers["Location"] == "/console/clinics"
    clinic = client.get(f"/api/v1/clinics/{unverified['clinic_id']}",
                        headers=staff["admin"]).get_json()
    accreditation, = clinic["accreditations"]
    assert accreditation["verified"] is True and accreditation["verified_by"] == staff["admin_id"]
    page = html(admin.get("/console/clinics"))
    assert "JCI of unverified is verified." in page
    assert f"Verified on {today().isoformat()}" in page and "Verify<span" not in page


def test_verifying_an_unknown_or_another_clinics_accreditation_answers_404(admin, unverified):
    other_clinic = unverified["clinic_id"] + 1
    for path in (f"/console/clinics/{unverified['clinic_id']}/accreditations/999999/verify",
                 f"/console/clinics/{other_clinic}/accreditations/"
                 f"{unverified['accreditation_id']}/verify"):
        response = post_form(admin, path)
        assert response.status_code == 404, path
        assert "has no accreditation" in html(response)


def test_an_admin_adds_a_staff_user_whose_token_is_shown_once(client, admin, staff):
    response = post_form(admin, "/console/users", email=" New.Coord@Care.example ",
                         role="coordinator")
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    token = re.search(r'<code class="secret">(stf_[^<]+)</code>', html(response)).group(1)
    me = client.get("/api/v1/me", headers=auth(token)).get_json()
    assert me["email"] == "new.coord@care.example" and me["role"] == "coordinator"
    listed = client.get("/api/v1/users", headers=staff["admin"]).get_json()["items"]
    assert "new.coord@care.example" in {user["email"] for user in listed}
    again = html(admin.get("/console/users"))
    assert "new.coord@care.example" in again and token not in again


def test_adding_a_user_names_each_bad_field_and_refuses_a_taken_address(admin):
    response = post_form(admin, "/console/users", email="not-an-address", role="owner")
    page = html(response)
    assert response.status_code == 422
    assert re.search(r'id="email-error">Not an e-mail address\.', page)
    assert re.search(r'id="role-error">Must be one of', page)
    assert 'value="not-an-address"' in page  # what was typed stays to be corrected
    blank = post_form(admin, "/console/users", email="", role="admin")
    assert blank.status_code == 422 and 'id="email-error"' in html(blank)

    taken = post_form(admin, "/console/users", email="coord@care.example", role="admin")
    assert taken.status_code == 409
    assert "exists already" in html(taken)


def test_a_deactivated_user_loses_their_token_and_their_console_session(client, admin,
                                                                          coordinator, staff):
    assert coordinator.get("/console/funnel").status_code == 200
    page = html(admin.get("/console/users"))
    path = f"/console/users/{staff['coordinator_id']}/deactivate"
    assert f'action="{path}"' in page
    assert f'action="/console/users/{staff["admin_id"]}/deactivate"' not in page  # not oneself

    response = post_form(admin, path)
    assert response.status_code == 303 and response.headers["Location"] == "/console/users"
    users = {user["email"]: user for user in client.get(
        "/api/v1/users", headers=staff["admin"]).get_json()["items"]}
    assert users["coord@care.example"]["active"] is False
    assert client.get("/api/v1/me", headers=staff["coordinator"]).status_code == 401
    refused = coordinator.get("/console/funnel")
    assert refused.status_code == 303
    assert refused.headers["Location"] == "/console?next=/console/funnel"
    page = html(admin.get("/console/users"))
    assert "coord@care.example is deactivated." in page and f'action="{path}"' not in page


def test_the_admin_pages_page_as_the_api_and_refuse_a_bad_cursor(admin, staff):
    for n in range(51):
        assert post_form(admin, "/console/users", email=f"temp{n}@care.example",
                         role="coordinator").status_code == 201
    first = html(admin.get("/console/users"))
    cursor = re.search(r'href="/console/users\?cursor=([^"]+)"', first).group(1)
    second = html(admin.get("/console/users", query_string={"cursor": cursor}))
    assert "temp50@care.example" in first and "temp50@care.example" not in second
    assert "admin@care.example" in second and "admin@care.example" not in first
    for path in ("/console/users", "/console/clinics"):
        refused = admin.get(path, query_string={"cursor": "bogus"})
        assert refused.status_code == 422, path
        assert "Not a cursor this API gave out." in html(refused)


def test_the_funnel_and_admin_pages_speak_the_browsers_language(admin):
    for path, spanish, german in (
            ("/console/funnel", "Solicitudes por estado", "Anfragen nach Status"),
            ("/console/clinics", "Acreditaciones de", "Akkreditierungen von"),
            ("/console/users", "Añadir un usuario", "Mitarbeiter hinzufügen")):
        assert spanish in html(admin.get(path, headers={"Accept-Language": "es"})), path
        assert german in html(admin.get(path, headers={"Accept-Language": "de"})), path


def test_an_admin_cannot_deactivate_themselves(admin, staff):
    response = post_form(admin, f"/console/users/{staff['admin_id']}/deactivate")
    assert response.status_code == 409
    assert "cannot deactivate themselves" in html(response)
    assert admin.get("/console/users").status_code == 200


def admin_actions(staff, unverified) -> list[tuple[str, dict]]:
    return [(unverified["path"], {}),
            ("/console/users", {"email": "sneaky@care.example", "role": "admin"}),
            (f"/console/users/{staff['admin_id']}/deactivate", {})]


def test_every_admin_form_without_its_csrf_token_answers_400(client, admin, staff,
                                                             unverified):
    for path, fields in admin_actions(staff, unverified):
        response = admin.post(path, data=fields)
        assert response.status_code == 400, path
        assert "did not come from this site" in html(response)
    assert nothing_changed(client, staff, unverified)


def test_a_coordinator_is_offered_no_admin_page_and_refused_each(client, coordinator, staff,
                                                                 unverified):
    page = html(coordinator.get("/console/funnel"))
    assert 'href="/console/funnel"' in page
    assert 'href="/console/clinics"' not in page and 'href="/console/users"' not in page
    for path in ("/console/clinics", "/console/users"):
        refused = coordinator.get(path)
        assert refused.status_code == 403, path
        assert "You may not open this page" in html(refused)
    for path, fields in admin_actions(staff, unverified):
        assert post_form(coordinator, path, **fields).status_code == 403, path
    assert nothing_changed(client, staff, unverified)


def nothing_changed(client, staff, unverified) -> bool:
    clinic = client.get(f"/api/v1/clinics/{unverified['clinic_id']}",
                        headers=staff["admin"]).get_json()
    users = client.get("/api/v1/users", headers=staff["admin"]).get_json()["items"]
    return (not clinic["accreditations"][0]["verified"]
            and "sneaky@care.example" not in {user["email"] for user in users}
            and client.get("/api/v1/me", headers=staff["admin"]).status_code == 200)


def test_a_bar_chart_scales_to_its_largest_value_and_shows_every_non_zero_one():
    chart = bar_chart([("a", 200), ("b", 1), ("c", 0), ("d", 100)])
    lengths = [bar.length for bar in chart.bars]
    assert lengths[0] == BAR_SPACE and lengths[3] == BAR_SPACE / 2
    assert 0 < lengths[1] < BAR_SPACE / 100 + 2 and lengths[2] == 0
    tops = [bar.top for bar in chart.bars]
    assert tops == sorted(tops)
    assert all(bar.top + chart.bar_height < chart.height for bar in chart.bars)
    assert bar_chart([("a", 0)]).bars[0].length == 0 and bar_chart([]).bars == ()
