"""The coordinators' console (CONTRACT §9): sign-in with a staff token, the queue, a lead
with every action of §4, the funnel, and the admins' pages (clinics and their
accreditations, staff users).

The queue loads its query with the schema of GET /api/v1/leads and finds leads with the same
query; each action loads its form with the schema of the API endpoint it mirrors and calls
the same domain operation. A form the schema refuses shows the lead again (422) with the
messages beside the fields; a refusal of the domain (409) is answered as an error page."""

from flask import Blueprint, flash, redirect, request, url_for
from flask_babel import gettext, lazy_gettext
from marshmallow import EXCLUDE, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from webargs.flaskparser import abort

from leads.accounts.models import User
from leads.accounts.operations import active_staff, change_user, create_user, staff_token_for
from leads.accounts.schemas import StaffUserInSchema
from leads.attachments.operations import lead_attachment
from leads.catalogue.models import Clinic
from leads.catalogue.operations import (
    clinic_accreditation,
    clinics_query,
    list_treatments,
    set_verified,
)
from leads.core.database import db
from leads.core.paging import PageQuerySchema, page
from leads.pipeline.models import Lead
from leads.pipeline.queries import filtered_leads, find_lead, newest_leads_first, status_counts
from leads.pipeline.queries import funnel as funnel_figures
from leads.pipeline.schemas import (
    FunnelQuerySchema,
    LeadDetailSchema,
    LeadListQuerySchema,
    LeadPatchSchema,
    LeadSchema,
    NoteInSchema,
    RerouteSchema,
    TransitionSchema,
)
from leads.pipeline.states import (
    LEAD_STATUSES,
    LEAD_TRANSITIONS,
    PRIORITIES,
    REROUTABLE,
    EventKind,
    LeadStatus,
    Priority,
    allowed_targets,
)
from leads.pipeline.workflow import (
    add_note,
    move_lead,
    reroute,
    reroute_exclusion_choices,
    update_lead,
)
from leads.web.downloads import file_response
from leads.web.guards import Audience, SignedIn, allow, current_staff
from leads.web.pages.charts import bar_chart
from leads.web.pages.forms import (
    ROLE_WORDS,
    ActionForm,
    FunnelForm,
    NewUserForm,
    NoteForm,
    PriorityForm,
    QueueFilterForm,
    RerouteForm,
    TagsForm,
    TransitionForm,
    given_query,
)
from leads.web.pages.rendering import render_page
from leads.web.pages.signing_in import sign_in_limit, sign_in_page, sign_out_page
from leads.web.pages.words import REFERRAL_STATUS_WORDS
from leads.web.parsing import refuse_nul
from leads.web.problems import flatten_errors
from leads.web.publisher import nudge_relay

blp = Blueprint("console_pages", __name__, url_prefix="/console")

LEAD_STATUS_WORDS = {
    LeadStatus.RECEIVED: lazy_gettext("Received"),
    LeadStatus.ROUTED: lazy_gettext("Routed"),
    LeadStatus.QUOTED: lazy_gettext("Quoted"),
    LeadStatus.BOOKED: lazy_gettext("Booked"),
    LeadStatus.NEEDS_REVIEW: lazy_gettext("Needs review"),
    LeadStatus.CLOSED: lazy_gettext("Closed"),
    LeadStatus.SPAM: lazy_gettext("Spam"),
    LeadStatus.DUPLICATE: lazy_gettext("Duplicate"),
    LeadStatus.COMPLETED: lazy_gettext("Completed"),
}
PRIORITY_WORDS = {
    Priority.LOW: lazy_gettext("Low"),
    Priority.NORMAL: lazy_gettext("Normal"),
    Priority.HIGH: lazy_gettext("High"),
    Priority.URGENT: lazy_gettext("Urgent"),
}
EVENT_WORDS = {
    EventKind.RECEIVED: lazy_gettext("Inquiry received"),
    EventKind.DUPLICATE_RECEIVED: lazy_gettext("Duplicate inquiry received"),
    EventKind.STATUS_CHANGED: lazy_gettext("Status changed"),
    EventKind.REFERRED: lazy_gettext("Referred to a clinic"),
    EventKind.REFERRAL_STATUS_CHANGED: lazy_gettext("Referral status changed"),
    EventKind.REROUTED: lazy_gettext("Rerouted"),
    EventKind.QUOTED: lazy_gettext("Quote received"),
    EventKind.ASSIGNED: lazy_gettext("Assigned"),
    EventKind.PRIORITY_CHANGED: lazy_gettext("Priority changed"),
    EventKind.TAGS_CHANGED: lazy_gettext("Tags changed"),
    EventKind.NOTE_ADDED: lazy_gettext("Note added"),
    EventKind.ATTACHMENT_ADDED: lazy_gettext("File added"),
    EventKind.MESSAGE_FAILED: lazy_gettext("E-mail failed"),
    EventKind.ERASED: lazy_gettext("Personal data erased"),
}
ANY = ""  # the choice of a select that filters nothing


def words_helpers() -> dict:
    return {"lead_status_words": LEAD_STATUS_WORDS, "referral_status_words": REFERRAL_STATUS_WORDS,
            "priority_words": PRIORITY_WORDS, "event_words": EVENT_WORDS}


blp.context_processor(words_helpers)


@blp.route("", methods=["GET", "POST"])
@sign_in_limit
@allow(Audience.ANYONE)
def sign_in():
    return sign_in_page(
        SignedIn.STAFF, staff_token_for, "console_pages.leads",
        title=lazy_gettext("Console sign-in"), label=lazy_gettext("Your staff token"),
        hint=lazy_gettext("The token starts with stf_. An admin can issue a new one."),
        wrong=lazy_gettext("This token is not valid. Check it, or ask an admin for a new one."))


@blp.post("/sign-out")
@allow(Audience.STAFF_PAGE)
def sign_out():
    return sign_out_page("console_pages.sign_in")


# --- the queue ---------------------------------------------------------------------------

def _queue_query() -> dict:
    """The query string as GET /api/v1/leads loads it."""
    given = given_query()
    refuse_nul(given, "query")
    return LeadListQuerySchema().load(given, unknown=EXCLUDE)


def _filter_form(staff: list) -> QueueFilterForm:
    form = QueueFilterForm(request.args)
    form.status.choices = [(ANY, gettext("Any status"))] + [
        (status, LEAD_STATUS_WORDS[status]) for status in LEAD_STATUSES]
    form.treatment.choices = [(ANY, gettext("Any treatment"))] + [
        (treatment.slug, treatment.name) for treatment in list_treatments(include_inactive=True)]
    form.assigned_to.choices = [(ANY, gettext("Anyone or nobody")), ("me", gettext("Me")),
                                ("none", gettext("Nobody"))] + [
        (str(user.id), user.email) for user in staff]
    return form


def _with_errors(form, messages: dict) -> None:
    """The schema's messages beside the form's fields ("tags.2" beside `tags`); those naming
    no field of the form above it."""
    for path, texts in flatten_errors(messages).items():
        name = path.split(".")[0]
        if name in form:
            form[name].errors = [*form[name].errors, *texts]
        else:
            form.form_errors.extend(texts)


@blp.get("/leads")
@allow(Audience.STAFF_PAGE)
def leads():
    """The queue: the filters and search of GET /api/v1/leads, newest first, by cursor."""
    user, staff = current_staff(), active_staff()
    form = _filter_form(staff)
    context = {"user": user, "form": form, "items": None, "counts": {},
               "assignees": {person.id: person.email for person in staff}}
    try:
        query = _queue_query()
        limit, cursor = query.pop("limit"), query.pop("cursor")
        found = newest_leads_first(filtered_leads(query, user), limit, cursor)
    except ValidationError as error:
        _with_errors(form, error.messages)
        return render_page("pages/console/leads.html", status=422, **context)
    kept = {name: value for name, value in given_query().items() if name != "cursor"}
    return render_page(
        "pages/console/leads.html", **{
            **context, "items": LeadSchema(many=True).dump(found["items"]),
            "counts": status_counts(query, user)},
        status_url=lambda status: url_for(".leads", **{**kept, "status": status}),
        first_url=url_for(".leads", **kept) if cursor else None,
        next_url=found["next_cursor"] and url_for(".leads", **kept,
                                                  cursor=found["next_cursor"]))


# --- a lead ------------------------------------------------------------------------------

def _lead_page(lead: Lead, status: int = 200, **forms):
    """The lead as GET /api/v1/leads/{id} answers it, with a form for each action; `forms`
    replaces some with the ones just posted (and their errors)."""
    user = current_staff()
    staff = active_staff()
    priority = PriorityForm(formdata=None, priority=lead.priority)
    priority.priority.choices = [(p, PRIORITY_WORDS[p]) for p in PRIORITIES]
    tags = TagsForm(formdata=None, tags=", ".join(lead.tags))
    transition = TransitionForm(formdata=None)
    transition.to.choices = [(target, LEAD_STATUS_WORDS[target]) for target in LEAD_STATUSES
                             if target in allowed_targets(LEAD_TRANSITIONS, lead.status)]
    exclude = RerouteForm(formdata=None)
    exclude.exclude_clinic_ids.choices = (reroute_exclusion_choices(lead)
                                          if lead.status in REROUTABLE else [])
    defaults = {"assign_form": ActionForm(formdata=None), "priority_form": priority,
                "tags_form": tags, "note_form": NoteForm(formdata=None),
                "transition_form": transition, "reroute_form": exclude}
    for name, form in forms.items():
        # The choices of the posted form are the page's, whatever it sent.
        for field in form:
            if hasattr(field, "choices"):
                field.choices = defaults[name][field.name].choices
    return render_page(
        "pages/console/lead.html", status=status, user=user,
        lead=LeadDetailSchema().dump(lead), reroutable=lead.status in REROUTABLE,
        assignees={person.id: person.email for person in staff},
        **{**defaults, **forms})


@blp.get("/leads/<int:lead_id>")
@allow(Audience.STAFF_PAGE)
def lead(lead_id):
    """One lead: the patient, the referrals, quotes, files, the timeline, and the actions."""
    return _lead_page(find_lead(lead_id))


@blp.get("/leads/<int:lead_id>/attachments/<int:attachment_id>")
@allow(Audience.STAFF_PAGE)
def attachment(lead_id, attachment_id):
    """One of the lead's files, as GET /api/v1/leads/{id}/attachments/{id} answers it."""
    found = lead_attachment(lead_id, attachment_id)
    if found is None:
        abort(404, message=gettext("This lead has no such file."))
    return file_response(found)


def _loaded(schema, data: dict, form) -> dict | None:
    """`data` loaded by the API endpoint's schema; None, with the messages on `form`, when
    it refuses it."""
    try:
        return schema().load(data)
    except ValidationError as error:
        _with_errors(form, error.messages)
        return None


def _done(lead: Lead, message: str):
    """After a change: committed, said, and back to the lead (303, so a reload posts
    nothing again)."""
    db.session.commit()
    flash(message, "info")
    return redirect(url_for(".lead", lead_id=lead.id), code=303)


def _changed(lead_id: int, form_name: str, form, changes: dict | None):
    """PATCH /api/v1/leads/{id} with `changes` (None: the form was refused)."""
    lead = find_lead(lead_id, for_update=True)
    if changes is None:
        return _lead_page(lead, 422, **{form_name: form})
    update_lead(lead, current_staff(), changes)
    return _done(lead, gettext("The lead was updated."))


@blp.post("/leads/<int:lead_id>/assign-to-me")
@allow(Audience.STAFF_PAGE)
def assign_to_me(lead_id):
    form = ActionForm()
    return _changed(lead_id, "assign_form", form,
                    _loaded(LeadPatchSchema, {"assigned_to": current_staff().id}, form))


@blp.post("/leads/<int:lead_id>/priority")
@allow(Audience.STAFF_PAGE)
def set_priority(lead_id):
    form = PriorityForm()
    return _changed(lead_id, "priority_form", form,
                    _loaded(LeadPatchSchema, {"priority": form.priority.data}, form))


@blp.post("/leads/<int:lead_id>/tags")
@allow(Audience.STAFF_PAGE)
def set_tags(lead_id):
    """Tags typed as one line, comma-separated; an empty line clears them."""
    form = TagsForm()
    tags = [tag.strip() for tag in (form.tags.data or "").split(",") if tag.strip()]
    return _changed(lead_id, "tags_form", form, _loaded(LeadPatchSchema, {"tags": tags}, form))


@blp.post("/leads/<int:lead_id>/notes")
@allow(Audience.STAFF_PAGE)
def note(lead_id):
    form = NoteForm()
    body = _loaded(NoteInSchema, {"body": form.body.data}, form)
    lead = find_lead(lead_id)
    if body is None:
        return _lead_page(lead, 422, note_form=form)
    add_note(lead, current_staff(), body["body"])
    return _done(lead, gettext("The note was added."))


@blp.post("/leads/<int:lead_id>/transitions")
@allow(Audience.STAFF_PAGE)
def move(lead_id):
    """POST /api/v1/leads/{id}/transitions: a move the table refuses answers 409."""
    form = TransitionForm()
    body = _loaded(TransitionSchema, {"to": form.to.data, "reason": form.reason.data or None},
                   form)
    lead = find_lead(lead_id, for_update=True)
    if body is None:
        return _lead_page(lead, 422, transition_form=form)
    move_lead(lead, body["to"], current_staff(), body.get("reason"))
    answer = _done(lead, gettext("The lead is now %(status)s.",
                                 status=LEAD_STATUS_WORDS[lead.status]))
    nudge_relay()
    return answer


@blp.post("/leads/<int:lead_id>/reroute")
@allow(Audience.STAFF_PAGE)
def reroute_lead(lead_id):
    """POST /api/v1/leads/{id}/reroute with the clinics ticked: from a status that allows
    none it answers 409."""
    form = RerouteForm()
    # A form sends text; the schema takes ids as JSON numbers, and names what is not one.
    ticked = [int(value) if value.isascii() and value.isdigit() else value
              for value in form.exclude_clinic_ids.data]
    body = _loaded(RerouteSchema, {"exclude_clinic_ids": ticked}, form)
    lead = find_lead(lead_id, for_update=True)
    if body is None:
        return _lead_page(lead, 422, reroute_form=form)
    referred = reroute(lead, set(body["exclude_clinic_ids"]), current_staff())
    answer = _done(lead, gettext("Matching ran again: %(count)s new referrals.",
                                 count=len(referred)))
    nudge_relay()
    return answer


@blp.get("/funnel")
@allow(Audience.STAFF_PAGE)
def funnel():
    """The figures of GET /api/v1/stats/funnel over the window asked for, the leads by
    status drawn as a chart beside their table."""
    form = FunnelForm(request.args)
    window = _loaded(FunnelQuerySchema, {name: value for name, value in given_query().items()
                                         if name in form}, form)
    if window is None:
        return render_page("pages/console/funnel.html", status=422, user=current_staff(),
                           form=form, figures=None)
    figures = funnel_figures(window)
    by_status = [(LEAD_STATUS_WORDS[status], figures["by_status"].get(status, 0))
                 for status in LEAD_STATUSES]
    return render_page("pages/console/funnel.html", user=current_staff(), form=form,
                       figures=figures, by_status=by_status, chart=bar_chart(by_status))


def _page_of(query, id_column) -> dict:
    """One page of `query` at the `?cursor=` asked for, as the API pages it (a cursor it
    never gave out answers 422)."""
    paging = PageQuerySchema().load({"cursor": request.args.get("cursor") or None})
    return page(db.session, query, id_column, paging["limit"], paging["cursor"])


@blp.get("/clinics")
@allow(Audience.ADMIN_PAGE)
def clinics():
    """Clinics, newest first, with their accreditations to verify."""
    listed = _page_of(clinics_query({}).options(selectinload(Clinic.accreditations)),
                      Clinic.id)
    return render_page("pages/console/clinics.html", user=current_staff(),
                       clinics=listed["items"], next_cursor=listed["next_cursor"])


@blp.post("/clinics/<int:clinic_id>/accreditations/<int:accreditation_id>/verify")
@allow(Audience.ADMIN_PAGE)
def verify_accreditation(clinic_id, accreditation_id):
    """What PATCH .../accreditations/{id} {"verified": true} does; who and when are kept."""
    accreditation = clinic_accreditation(clinic_id, accreditation_id)
    set_verified(accreditation, True, current_staff())
    db.session.commit()
    flash(gettext("%(body)s of %(clinic)s is verified.", body=accreditation.body,
                  clinic=accreditation.clinic.name), "info")
    return redirect(url_for("console_pages.clinics"), code=303)


def _users_page(status: int = 200, form: NewUserForm | None = None, created=None):
    listed = _page_of(select(User), User.id)
    return render_page("pages/console/users.html", status=status, user=current_staff(),
                       users=listed["items"], next_cursor=listed["next_cursor"],
                       form=form or NewUserForm(formdata=None), role_words=ROLE_WORDS,
                       created=created)


@blp.get("/users")
@allow(Audience.ADMIN_PAGE)
def users():
    """Staff users, newest first, a form to add one and a button to deactivate each."""
    return _users_page()


@blp.post("/users")
@allow(Audience.ADMIN_PAGE)
def add_user():
    """What POST /api/v1/users does. The new token is on this answer alone: it is not kept
    (nor put in the session cookie, which is signed, not encrypted), so the page is shown
    here instead of after a redirect, and never cached."""
    form = NewUserForm()
    fields = _loaded(StaffUserInSchema, {"email": form.email.data, "role": form.role.data},
                     form)
    if fields is None:
        return _users_page(422, form)
    created, token = create_user(fields["email"], fields["role"])
    db.session.commit()
    body, status = _users_page(201, created={"email": created.email, "token": token})
    return body, status, {"Cache-Control": "no-store"}


@blp.post("/users/<int:user_id>/deactivate")
@allow(Audience.ADMIN_PAGE)
def deactivate_user(user_id):
    """What PATCH /api/v1/users/{id} {"active": false} does: every token of theirs and
    every console session signed in with one is refused from the next request."""
    deactivated = change_user(user_id, {"active": False}, current_staff())
    db.session.commit()
    flash(gettext("%(email)s is deactivated.", email=deactivated.email), "info")
    return redirect(url_for("console_pages.users"), code=303)
