"""The catalogue's HTTP resources: treatments, clinics, currency rates."""
