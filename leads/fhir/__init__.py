"""Leads and referrals as HL7 FHIR R4 resources (CONTRACT §4, §5), built with the
`fhir.resources` package's R4B models, and a clinic's answer read from a FHIR `Task`."""
