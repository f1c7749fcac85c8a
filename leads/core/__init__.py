"""Building blocks every domain shares: the database, column types, the clock, settings,
domain errors, task names, form fields, paging and logging. No HTTP here."""
