"""A FHIR resource answered as `application/fhir+json` (CONTRACT §4, §5), written by the
`fhir.resources` model itself so that what is sent is what that package parses back."""

from flask import Response

FHIR_JSON = "application/fhir+json"


def resource_schema(resource_type: str) -> dict:
    """The OpenAPI description of an answered resource; its full shape is FHIR R4's."""
    return {"type": "object", "required": ["resourceType"],
            "properties": {"resourceType": {"type": "string", "enum": [resource_type]}},
            "externalDocs": {"url": f"https://hl7.org/fhir/R4/{resource_type.lower()}.html"},
            "description": f"A FHIR R4 {resource_type}."}


def fhir_response(resource) -> Response:
    return Response(resource.model_dump_json(), mimetype=FHIR_JSON)

