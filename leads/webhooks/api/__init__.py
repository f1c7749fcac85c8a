"""The webhooks' HTTP resources: a clinic's own endpoints, and every clinic's for admins."""
