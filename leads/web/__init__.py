"""The web plumbing: the app factory, problem details, request parsing, credential guards,
security headers, operations endpoints."""
