"""A patient's inquiry accepted: validated, kept with the work it starts, answered once
per idempotency key, followed with the status link."""
