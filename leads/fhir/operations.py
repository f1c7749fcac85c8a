"""A lead as a FHIR R4 `Bundle` of type `collection` (CONTRACT §4, §5): its `Patient`, a
`ServiceRequest` for the treatment, an `Organization` per referred clinic and a `Task` per
referral; and a clinic's answer given as a `Task` status, done by the pipeline's own
operations.

Entries are addressed by `urn:uuid:` full URLs derived from the resource's type and id under
`PUBLIC_BASE_URL`, so the same lead answers the same addresses every time, and a `Task`
answered alone refers to what its Bundle holds. What a caller may see of the patient is
decided where the JSON answers decide it (leads/pipeline/schemas.py for staff,
`patient_for_clinic` for a clinic); here it is only written as FHIR."""

import uuid

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task

from leads.catalogue.models import Clinic
from leads.core.clock import utcnow
from leads.core.errors import Invalid
from leads.core.settings import settings
from leads.pipeline.clinic_schemas import patient_for_clinic
from leads.pipeline.models import Lead, Referral
from leads.pipeline.schemas import PatientOutSchema
from leads.pipeline.states import LeadStatus, ReferralStatus, RequestStatus, TaskStatus
from leads.pipeline.workflow import accept_referral, decline_referral

_R, _T = ReferralStatus, TaskStatus
# The one table from a referral's status to its Task's (FHIR R4 Task.status). `quoted` is
# `in-progress`: the clinic has started work on the patient's case (FHIR: "started but not
# complete"), beyond `accepted` ("agreed to, not yet started"); `booked` is `completed`, the
# referral's purpose, a patient booked with the clinic, being met; `expired` is `failed`,
# the clinic's time to answer having run out.
TASK_STATUS_OF: dict[ReferralStatus, TaskStatus] = {
    _R.REQUESTED: _T.REQUESTED,
    _R.RECEIVED: _T.RECEIVED,
    _R.ACCEPTED: _T.ACCEPTED,
    _R.QUOTED: _T.IN_PROGRESS,
    _R.BOOKED: _T.COMPLETED,
    _R.DECLINED: _T.REJECTED,
    _R.EXPIRED: _T.FAILED,
    _R.CANCELLED: _T.CANCELLED,
}
_L, _Q = LeadStatus, RequestStatus
# A lead's status as its ServiceRequest's: open while the marketplace works on it; spam
# should never have existed; a closed lead, or a duplicate carried by its first, is revoked.
REQUEST_STATUS_OF: dict[LeadStatus, RequestStatus] = {
    _L.RECEIVED: _Q.ACTIVE,
    _L.ROUTED: _Q.ACTIVE,
    _L.QUOTED: _Q.ACTIVE,
    _L.BOOKED: _Q.ACTIVE,
    _L.NEEDS_REVIEW: _Q.ACTIVE,
    _L.COMPLETED: _Q.COMPLETED,
    _L.CLOSED: _Q.REVOKED,
    _L.DUPLICATE: _Q.REVOKED,
    _L.SPAM: _Q.ENTERED_IN_ERROR,
}
# The Task statuses a clinic may answer with (`answer_task`).
CLINIC_ANSWERS = frozenset({TASK_STATUS_OF[_R.ACCEPTED], TASK_STATUS_OF[_R.DECLINED]})
LANGUAGE_SYSTEM = "urn:ietf:bcp:47"
COUNTRY_SYSTEM = "urn:iso:std:iso:3166"
BUNDLE_TYPE = "collection"
EMPTY = (None, "", [], {})
INTENT = "order"


def _url(path: str) -> str:
    return f"{settings().public_base_url}/{path}"


def full_url(resource_type: str, resource_id: str) -> str:
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, _url(f"{resource_type}/{resource_id}")))


def _ref(resource_type: str, resource_id: str, display: str | None = None) -> dict:
    return {"reference": full_url(resource_type, resource_id), "display": display}


def _extension(name: str, **value) -> dict:
    return {"url": _url(f"fhir/StructureDefinition/{name}"), **value}


def kept(value):
    """The element without its empty parts: FHIR has no empty strings, lists or objects,
    and a value left out is how it says "not known" (an erased name, a clinic's blank
    city)."""
    if isinstance(value, dict):
        value = {key: kept(item) for key, item in value.items()}
        return {key: item for key, item in value.items() if item not in EMPTY}
    if isinstance(value, list):
        return [item for item in map(kept, value) if item not in EMPTY]
    return value


def _contacts(*pairs: tuple[str, str | None]) -> list[dict]:
    """ContactPoints for the (system, value) pairs that have a value."""
    return [{"system": system, "value": value} for system, value in pairs if value]


def _resource(model, **elements):
    return model.model_validate(kept(elements))


def patient_resource(lead: Lead, seen: dict) -> Patient:
    """The patient as `seen` (a JSON answer's `patient`) says the caller may see them."""
    return _resource(
        Patient, id=lead.reference,
        name=[{"given": [seen.get("first_name")], "family": seen.get("last_name")}],
        telecom=_contacts(("email", seen.get("email")), ("phone", seen.get("phone"))),
        birthDate=str(seen["birth_year"]) if seen.get("birth_year") else None,
        address=[{"country": seen.get("country")}],
        communication=[{"language": {"coding": [{"system": LANGUAGE_SYSTEM,
                                                 "code": seen.get("language")}]},
                        "preferred": True}] if seen.get("language") else None,
    )


def service_request_resource(lead: Lead) -> ServiceRequest:
    """The treatment asked for, with the condition as a note and the patient's wishes
    (destinations, budget, imaging) as extensions; the travel window is when it may occur."""
    treatment = lead.treatment
    extensions = [_extension("lead-destination", valueCodeableConcept={
        "coding": [{"system": COUNTRY_SYSTEM, "code": country}]}) for country in lead.destinations]
    if lead.budget_amount is not None:
        extensions.append(_extension("lead-budget", valueMoney={
            "value": lead.budget_amount, "currency": lead.budget_currency}))
    if lead.has_imaging is not None:
        extensions.append(_extension("lead-has-imaging", valueBoolean=lead.has_imaging))
    return _resource(
        ServiceRequest, id=lead.reference, extension=extensions,
        identifier=[{"system": _url("api/v1/inquiries"), "value": lead.reference}],
        status=REQUEST_STATUS_OF[lead.status], intent=INTENT,
        code={"coding": [{"system": _url("api/v1/treatments"), "code": treatment.slug,
                          "display": treatment.name}], "text": treatment.name},
        subject=_ref("Patient", lead.reference),
        occurrencePeriod={"start": lead.travel_earliest, "end": lead.travel_latest},
        authoredOn=lead.created_at,
        note=[{"text": lead.condition}],
    )


def organization_resource(clinic: Clinic) -> Organization:
    return _resource(
        Organization, id=str(clinic.id), active=clinic.active, name=clinic.name,
        telecom=_contacts(("email", clinic.email), ("phone", clinic.phone),
                          ("url", clinic.website)),
        address=[{"city": clinic.city, "country": clinic.country}],
    )


def task_resource(referral: Referral) -> Task:
    """The referral as a Task for its clinic; `businessStatus` keeps the referral's own status,
    which the FHIR status only approximates (both `accepted` and `quoted` are work taken on)."""
    lead = referral.lead
    return _resource(
        Task, id=str(referral.id),
        status=TASK_STATUS_OF[referral.status],
        statusReason={"text": referral.decline_reason},
        businessStatus={"coding": [{"system": _url("fhir/CodeSystem/referral-status"),
                                    "code": referral.status}], "text": referral.status},
        intent=INTENT,
        focus=_ref("ServiceRequest", lead.reference),
        # `for` as FHIR spells it: the model's own name for it is `for_fhir`.
        **{"for": _ref("Patient", lead.reference)},
        owner=_ref("Organization", str(referral.clinic_id), referral.clinic.name),
        authoredOn=referral.created_at,
        lastModified=referral.updated_at,
        restriction={"period": {"end": referral.expires_at}},
    )


def _bundle(lead: Lead, patient: Patient, referrals: list[Referral]) -> Bundle:
    resources: list[Resource] = [patient, service_request_resource(lead)]
    resources += [organization_resource(r.clinic) for r in referrals]
    resources += [task_resource(r) for r in referrals]
    return Bundle(type=BUNDLE_TYPE, timestamp=utcnow(), entry=[
        {"fullUrl": full_url(resource.get_resource_type(), resource.id), "resource": resource}
        for resource in resources])


def staff_bundle(lead: Lead) -> Bundle:
    """Everything about the lead, contact details included, with every referral."""
    return _bundle(lead, patient_resource(lead, PatientOutSchema().dump(lead)),
                   list(lead.referrals))


def clinic_bundle(referral: Referral) -> Bundle:
    """What the referral's clinic sees: its own Task only, the patient as its JSON answer
    shows them (contact details once it has accepted)."""
    lead = referral.lead
    return _bundle(lead, patient_resource(lead, patient_for_clinic(referral)), [referral])


def answer_task(referral: Referral, task: dict) -> None:
    """A clinic's answer given as a Task (`TaskAnswerSchema`'s): the very operations of
    `/accept` and `/decline`, the `statusReason` text being the decline's reason."""
    if task.get("id", str(referral.id)) != str(referral.id):
        raise Invalid("id", f"This is Task {referral.id}.")
    if task["status"] == TASK_STATUS_OF[_R.ACCEPTED]:
        accept_referral(referral)
    elif task["status"] == TASK_STATUS_OF[_R.DECLINED]:
        decline_referral(referral, (task.get("statusReason") or {}).get("text"))
    else:
        raise Invalid("status", f"Must be one of: {', '.join(sorted(CLINIC_ANSWERS))}.")
