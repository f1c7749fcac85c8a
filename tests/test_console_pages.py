"""The coordinators' console (CONTRACT §9) through HTTP, from a signed-in page session: the
queue finds what GET /api/v1/leads finds for the same query, with counts per status and
paging; a lead's page shows what GET /api/v1/leads/{id} answers; each action changes a lead
as the API's endpoint changes its twin; refusals are shown on the page."""

import io
import re
from datetime import timedelta

import pytest

from leads.core.clock import today
from tests.helpers import (
    act,
    csrf_token_of,
    detail,
    events,
    listed,
    page_sign_in,
    references,
    route,
    status_token,
    submit,
    transition,
)
from tests.samples import pdf

QUEUE_ROW = re.compile(r'<th scope="row"><a href="/console/leads/(\d+)">([^<]+)</a></th>')


def html(response, status: int = 200) -> str:
    assert response.status_code == status, (response.status_code, response.get_data()[:500])
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def queue(console, **query) -> list[str]:
    """The references the queue shows for `query`, in its order."""
    return [reference for _, reference in QUEUE_ROW.findall(
        html(console.get("/console/leads", query_string=query)))]


@pytest.fixture
def console(app, staff):
    """A test client signed in on /console as the coordinator."""
    session = app.test_client()
    secret = staff["coordinator"]["Authorization"].removeprefix("Bearer ")
    assert page_sign_in(session, "/console", secret).status_code == 303
    return session


def post(console, path: str, data: dict | None = None):
    """A form on a lead's page, posted as the browser posts it: with the session's token."""
    token = csrf_token_of(html(console.get("/console/leads")))
    return console.post(path, data={"csrf_token": token, **(data or {})})


@pytest.mark.parametrize("query", [
    {}, {"status": "routed"}, {"status": "received"}, {"treatment": "dental-implants"},
    {"country": "DE"}, {"country": "de"}, {"destination": "PA"}, {"assigned_to": "me"},
    {"assigned_to": "none"}, {"q": "Jürgen"}, {"q": "j.baum@example.org"},
    {"created_from": today().isoformat()},
    {"created_to": (today() - timedelta(days=1)).isoformat()},
    {"status": "received", "destination": "MX"},
])
def test_the_queue_finds_what_the_api_finds_newest_first(console, staff, varied_leads, query):
    assert queue(console, **query) == references(listed(client_of(console), staff["coordinator"],
                                                        **query))


def client_of(console):
    return console.application.test_client()


def test_the_queue_searches_by_reference_and_ignores_empty_fields(console, staff, varied_leads):
    reference = varied_leads["german"]
    assert queue(console, q=reference.lower()) == [reference]
    # A browser sends every field of the form, the empty ones too: they filter nothing.
    everything = queue(console)
    assert len(everything) == len(varied_leads)
    assert queue(console, q="", status="", treatment="", assigned_to="", country="",
                 destination="", created_from="", created_to="") == everything


def test_the_queue_counts_leads_per_status_as_the_api_lists_them(console, staff, varied_leads):
    page = html(console.get("/console/leads", query_string={"status": "routed"}))
    counts = dict(re.findall(r'status=([a-z_]+)"[^>]*>[^<]+<span class="count">(\d+)</span>',
                             page))
    api = client_of(console)
    for status, shown in counts.items():
        assert int(shown) == len(listed(api, staff["coordinator"], status=status)), status
    assert int(counts["received"]) == 5 and int(counts["routed"]) == 1
    # the counts follow the other filters
    page = html(console.get("/console/leads", query_string={"treatment": "dental-implants"}))
    assert re.search(r'status=received[^"]*"[^>]*>[^<]+<span class="count">1</span>', page)


def test_the_queue_pages_by_cursor_as_the_api_does(console, client, staff, varied_leads):
    api_first = client.get("/api/v1/leads", headers=staff["coordinator"],
                           query_string={"limit": 4}).get_json()
    page = html(console.get("/console/leads", query_string={"limit": 4, "q": ""}))
    assert [r for _, r in QUEUE_ROW.findall(page)] == references(api_first["items"])
    next_url = re.search(r'<a href="([^"]+)" rel="next">', page).group(1).replace("&amp;", "&")
    assert f"cursor={api_first['next_cursor']}" in next_url and "limit=4" in next_url
    api_second = client.get("/api/v1/leads", headers=staff["coordinator"], query_string={
        "limit": 4, "cursor": api_first["next_cursor"]}).get_json()
    second = html(console.get(next_url))
    assert [r for _, r in QUEUE_ROW.findall(second)] == references(api_second["items"])
    assert 'rel="next"' not in second and "First page" in second


@pytest.mark.parametrize("name, value", [
    ("status", "bogus"), ("country", "XX"), ("destination", "Mexico"),
    ("assigned_to", "somebody"), ("assigned_to", "\u00b2"), ("created_from", "yesterday"),
    ("created_to", f"{today().year}-13-01"), ("limit", "0"), ("cursor", "not-ours")])
def test_a_bad_filter_answers_422_naming_it_beside_its_field(console, client, staff, name,
                                                              value):
    page = html(console.get("/console/leads", query_string={name: value}), 422)
    api_errors = client.get("/api/v1/leads", headers=staff["coordinator"],
                            query_string={name: value}).get_json()["errors"]
    assert name in api_errors
    if name in ("limit", "cursor"):  # not fields of the form: said above it
        assert api_errors[name][0] in page.replace("&#39;", "'")
    else:
        assert f'id="{name}-error"' in page and 'aria-invalid="true"' in page
    assert QUEUE_ROW.search(page) is None


@pytest.fixture
def twins(app, client, db_session, staff):
    """Two leads alike, each routed to three of the four eligible clinics: one to change on
    the page, one through the API."""
    ids = [route(app, db_session, submit(client)["reference"]) for _ in range(2)]
    return ids


def comparable(lead: dict) -> dict:
    """What an action changes in a lead, leaving out what differs between twins (ids,
    times, clinics, references)."""
    def plain(data):
        return {k: v for k, v in data.items()
                if not k.endswith("_id") and k not in ("clinic", "score", "excluded", "referred",
                                                       "assigned_to", "reference")}
    return {
        "status": lead["status"], "priority": lead["priority"], "tags": lead["tags"],
        "assigned": lead["assigned_to"] is not None,
        "referrals": sorted(r["status"] for r in lead["referrals"]),
        "timeline": [(e["actor"], e["kind"], plain(e["data"])) for e in lead["timeline"]],
    }


@pytest.mark.parametrize("action, form, api, kind", [
    ("assign-to-me", {}, ("PATCH", "", {"assigned_to": "me"}), "assigned"),
    ("priority", {"priority": "urgent"}, ("PATCH", "", {"priority": "urgent"}),
     "priority_changed"),
    ("tags", {"tags": " vip , spine,,"}, ("PATCH", "", {"tags": ["vip", "spine"]}),
     "tags_changed"),
    ("notes", {"body": "Called the patient; wants May."},
     ("POST", "/notes", {"body": "Called the patient; wants May."}), "note_added"),
    ("transitions", {"to": "closed", "reason": "Went elsewhere."},
     ("POST", "/transitions", {"to": "closed", "reason": "Went elsewhere."}),
     "referral_status_changed"),
    ("transitions", {"to": "needs_review", "reason": ""},
     ("POST", "/transitions", {"to": "needs_review"}), "status_changed"),
])
def test_each_action_changes_the_lead_as_the_api_does(console, client, staff, twins, action,
                                                      form, api, kind):
    on_page, through_api = twins
    answer = post(console, f"/console/leads/{on_page}/{action}", form)
    assert answer.status_code == 303 and answer.headers["Location"] == f"/console/leads/{on_page}"
    method, suffix, body = api
    if body.get("assigned_to") == "me":
        body = {"assigned_to": staff["coordinator_id"]}
    response = client.open(f"/api/v1/leads/{through_api}{suffix}", method=method,
                           headers=staff["coordinator"], json=body)
    assert response.status_code in (200, 201), response.get_json()
    changed = detail(client, staff["coordinator"], on_page)
    assert comparable(changed) == comparable(detail(client, staff["coordinator"], through_api))
    assert changed["timeline"][-1]["kind"] == kind
    if action == "assign-to-me":
        assert changed["assigned_to"] == staff["coordinator_id"]
    # and the page says so after the redirect
    assert "flash-info" in html(console.get(answer.headers["Location"]))


def test_a_reroute_excludes_the_clinics_ticked_as_the_api_does(console, client, staff, twins):
    on_page, through_api = twins
    leads = {lead_id: detail(client, staff["coordinator"], lead_id) for lead_id in twins}
    dropped = {lead_id: min(r["clinic"]["id"] for r in lead["referrals"])
               for lead_id, lead in leads.items()}
    page = html(console.get(f"/console/leads/{on_page}"))
    offered = set(map(int, re.findall(r'name="exclude_clinic_ids" value="(\d+)"', page)))
    # the clinics still referred, and the one eligible clinic not referred yet
    assert offered == staff["catalogue"]["eligible"]
    answer = post(console, f"/console/leads/{on_page}/reroute",
                  {"exclude_clinic_ids": [str(dropped[on_page])]})
    assert answer.status_code == 303
    response = client.post(f"/api/v1/leads/{through_api}/reroute", headers=staff["coordinator"],
                           json={"exclude_clinic_ids": [dropped[through_api]]})
    assert response.status_code == 202
    changed = detail(client, staff["coordinator"], on_page)
    assert comparable(changed) == comparable(detail(client, staff["coordinator"], through_api))
    [rerouted] = events(changed, "rerouted")
    assert rerouted["data"]["excluded"] == [dropped[on_page]]
    assert len(rerouted["data"]["referred"]) == 1
    assert len(changed["referrals"]) == 4


def test_the_lead_page_shows_what_the_api_answers(console, client, staff, routed):
    lead_id = routed["lead_id"]
    uploaded = client.post(
        f"/api/v1/inquiries/{routed['reference']}/attachments",
        query_string={"token": status_token(routed["accepted"])},
        content_type="multipart/form-data", data={"file": (io.BytesIO(pdf()), "scan.pdf")})
    assert uploaded.status_code == 201
    headers, referral_id = routed["keys"][min(routed["referrals"])], routed["referrals"][
        min(routed["referrals"])]
    assert act(client, headers, referral_id, "accept").status_code == 200
    assert act(client, headers, referral_id, "quote", {
        "amount": 9500, "currency": "USD", "includes": ["surgery", "hotel"]}).status_code == 200
    assert client.post(f"/api/v1/leads/{lead_id}/notes", headers=staff["coordinator"],
                       json={"body": "Spoke to the clinic."}).status_code == 201
    lead = detail(client, staff["coordinator"], lead_id)
    page = html(console.get(f"/console/leads/{lead_id}"))
    assert f"Lead {lead['reference']}" in page
    for text in (lead["patient"]["first_name"], lead["patient"]["email"], lead["condition"],
                 "9500.00 USD (surgery, hotel)", "Quoted"):
        assert text in page, text
    for referral in lead["referrals"]:
        assert referral["clinic"]["name"] in page and f"{referral['score']:.2f}" in page
        for reason in referral["reasons"]:
            assert reason["note"].replace("'", "&#39;") in page
    assert page.count('<li class="event ') == len(lead["timeline"])
    # staff are named by their e-mail on the timeline
    assert '<span class="actor">coord@care.example</span>' in page
    # Only the moves the pipeline allows from here are offered.
    offered = set(re.findall(r'<option[^>]*value="([a-z_]+)"', page.split('name="to"')[1]
                             .split("</select>")[0]))
    assert offered == {"booked", "closed"}
    [file] = lead["attachments"]
    link = f"/console/leads/{lead_id}/attachments/{file['id']}"
    assert f'href="{link}"' in page
    download = console.get(link)
    api_download = client.get(f"/api/v1/leads/{lead_id}/attachments/{file['id']}",
                              headers=staff["coordinator"])
    assert download.status_code == 200 and download.data == api_download.data == pdf()
    assert download.headers["Content-Disposition"] == api_download.headers["Content-Disposition"]
    assert download.headers["Cache-Control"] == "no-store"


def test_files_and_leads_not_found_answer_404_pages(console, routed):
    assert "Page not found" in html(console.get("/console/leads/999999"), 404)
    html(console.get(f"/console/leads/{routed['lead_id']}/attachments/999999"), 404)
    html(post(console, "/console/leads/999999/notes", {"body": "Hello there."}), 404)


@pytest.mark.parametrize("action, form, field", [
    ("priority", {"priority": "asap"}, "priority"),
    ("tags", {"tags": "x" * 51}, "tags"),
    ("tags", {"tags": ",".join(f"t{n}" for n in range(21))}, "tags"),
    ("notes", {"body": "   "}, "body"),
    ("transitions", {"to": "bogus"}, "to"),
    ("reroute", {"exclude_clinic_ids": ["zero"]}, "exclude"),
])
def test_a_form_the_api_would_refuse_shows_the_lead_again_with_422(console, client, staff,
                                                                   routed, action, form, field):
    before = detail(client, staff["coordinator"], routed["lead_id"])
    page = html(post(console, f"/console/leads/{routed['lead_id']}/{action}", form), 422)
    assert f'id="{field}-error"' in page
    assert f"Lead {routed['reference']}" in page  # the lead, shown again
    assert detail(client, staff["coordinator"], routed["lead_id"]) == before


def test_a_refused_move_or_reroute_answers_409_with_the_conflict(console, client, staff,
                                                                routed):
    lead_id = routed["lead_id"]
    page = html(post(console, f"/console/leads/{lead_id}/transitions", {"to": "booked"}), 409)
    assert "cannot go from &#39;routed&#39; to &#39;booked&#39;" in page
    assert transition(client, staff["coordinator"], lead_id, "closed").status_code == 200
    page = html(post(console, f"/console/leads/{lead_id}/reroute"), 409)
    assert "Only a routed lead or one in review can be rerouted" in page
    assert detail(client, staff["coordinator"], lead_id)["status"] == "closed"


@pytest.mark.parametrize("action", ["assign-to-me", "priority", "tags", "notes", "transitions",
                                    "reroute"])
def test_a_form_without_its_csrf_token_answers_400(console, client, staff, routed, action):
    before = detail(client, staff["coordinator"], routed["lead_id"])
    response = console.post(f"/console/leads/{routed['lead_id']}/{action}",
                            data={"priority": "urgent", "tags": "x", "body": "A note here.",
                                  "to": "closed"})
    assert "did not come from this site" in html(response, 400)
    assert detail(client, staff["coordinator"], routed["lead_id"]) == before
