"""A lead's way through the pipeline (CONTRACT §6): its states, its timeline, what
coordinators and clinics do to it, and how it is found."""
