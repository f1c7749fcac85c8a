"""The leads service: a patient's inquiry, kept, matched to clinics and followed through.

One package per domain (catalogue, accounts, intake, attachments, pipeline, routing,
messaging, privacy), each with its models, schemas, operations, HTTP blueprint and tasks;
the web plumbing in `leads.web`, shared building blocks in `leads.core`."""
