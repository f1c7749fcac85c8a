"""What the marketplace offers: treatments, clinics, their prices and accreditations, and
the currency rates budgets and prices are compared in."""
