"""Work that leaves the database: the transactional outbox and e-mail sent exactly once."""
