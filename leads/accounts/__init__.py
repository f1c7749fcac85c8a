"""Who may call the service: staff users with their tokens, and clinics' API keys."""
